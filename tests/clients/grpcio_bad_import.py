"""A stock C-core client (grpcio) reads clvd's errors.

Usage: grpcio_bad_import.py PROTO_DIR ADDRESS

Generates the stubs from PROTO_DIR into a temporary directory, then sends
ImportTransactions one batch of 5,000 bad transactions, with
grpc.max_metadata_size = 16 KiB (the limit C-core clients are known to
enforce), and again with 8 KiB as both the soft and the hard limit; then a
good batch followed by one bad transaction. Each must get INVALID_ARGUMENT (not RESOURCE_EXHAUSTED for
oversized trailers), and grpc_status.rpc_status.from_call must decode the
google.rpc.Status (it raises ValueError when its code or message differ
from the status line) with a google.rpc.BadRequest naming the first bad
transactions by their place in the stream. Exits non-zero on the first
failed check.
"""

import glob
import os
import sys
import tempfile

import grpc
from grpc_status import rpc_status
from grpc_tools import protoc
from google.rpc import error_details_pb2

BAD_ROWS = 5000


def generate(proto_dir, out_dir):
    import grpc_tools

    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    files = sorted(glob.glob(os.path.join(proto_dir, "clv", "v1", "*.proto")))
    code = protoc.main(
        ["protoc", f"-I{proto_dir}", f"-I{include}",
         f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", *files]
    )
    if code != 0:
        sys.exit(f"protoc failed ({code})")
    sys.path.insert(0, out_dir)


def check(condition, what):
    if not condition:
        sys.exit(f"FAILED: {what}")


def bad_request_of(error):
    """The BadRequest of an RpcError, through grpc_status as users call it."""
    status = rpc_status.from_call(error)  # ValueError on a mismatch
    check(status is not None, f"no grpc-status-details-bin: {error.details()!r}")
    check(status.code == error.code().value[0], "details' code")
    check(status.message == error.details(), "details' message")
    for any_detail in status.details:
        if any_detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            any_detail.Unpack(bad)
            return bad
    sys.exit(f"FAILED: no BadRequest in the details of {error.details()!r}")


def reject_5000(stub, batch, options):
    """One batch of BAD_ROWS bad transactions: INVALID_ARGUMENT with the
    first violations listed and the rest counted."""
    try:
        stub.ImportTransactions(iter([batch]), timeout=60)
        sys.exit("FAILED: a batch of bad transactions was accepted")
    except grpc.RpcError as e:
        check(
            e.code() == grpc.StatusCode.INVALID_ARGUMENT,
            f"{options}: expected INVALID_ARGUMENT, got {e.code()}: {e.details()!r}",
        )
        fields = [v.field for v in bad_request_of(e).field_violations]
        check(1 <= len(fields) <= 20, f"{len(fields)} violations listed")
        check(
            fields[0] == "batches[0].transactions[0].amount",
            f"first field {fields[0]!r}",
        )
        check("more violations" in e.details(), e.details())


def main():
    proto_dir, address = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as out_dir:
        generate(proto_dir, out_dir)
        from clv.v1 import common_pb2, ingest_pb2, ingest_pb2_grpc  # noqa: E402
        from google.protobuf import timestamp_pb2

        def ok(i, units=1):
            return ingest_pb2.Transaction(
                customer_id="py",
                transaction_id=f"t-{i}",
                occurred_at=timestamp_pb2.Timestamp(seconds=1767225600),
                kind=ingest_pb2.TRANSACTION_KIND_PURCHASE,
                amount=common_pb2.Money(currency_code="USD", units=units),
            )

        def bad(i):
            return ok(f"bad-{i}", units=-1)

        batch = ingest_pb2.ImportTransactionsRequest(
            transactions=[bad(i) for i in range(BAD_ROWS)]
        )
        # 16 KiB, then 8 KiB as the hard limit too: the whole error, with
        # every other header, as C-core counts it (name + value + 32 bytes
        # per entry), is under 8 KiB.
        limits = [
            [("grpc.max_metadata_size", 16 * 1024)],
            [("grpc.max_metadata_size", 8 * 1024),
             ("grpc.absolute_max_metadata_size", 8 * 1024)],
        ]
        for options in limits:
            with grpc.insecure_channel(address, options=options) as channel:
                reject_5000(ingest_pb2_grpc.IngestServiceStub(channel), batch, options)
        with grpc.insecure_channel(address, options=limits[0]) as channel:
            stub = ingest_pb2_grpc.IngestServiceStub(channel)
            # One bad transaction after a good batch: the details must match
            # the status line (from_call raises ValueError otherwise) and
            # the message must say what was committed.
            good = ingest_pb2.ImportTransactionsRequest(transactions=[ok(0), ok(1)])
            one_bad = ingest_pb2.ImportTransactionsRequest(transactions=[bad(0)])
            try:
                stub.ImportTransactions(iter([good, one_bad]), timeout=60)
                sys.exit("FAILED: a bad transaction was accepted")
            except grpc.RpcError as e:
                check(e.code() == grpc.StatusCode.INVALID_ARGUMENT, str(e.code()))
                fields = [v.field for v in bad_request_of(e).field_violations]
                check(fields == ["batches[1].transactions[0].amount"], f"fields {fields!r}")
                check("batch 1 (0-based)" in e.details(), e.details())
                check("batches committed before it: 1 (2 transactions" in e.details(), e.details())

    print("ok: grpcio read every error")


if __name__ == "__main__":
    main()
