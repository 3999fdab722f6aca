//! Stock clients read clvd's errors.
//!
//! A C-core client: `tests/clients/grpcio_bad_import.py` (Python grpcio
//! with received metadata limited to 16 KiB) sends a batch of 5,000 bad
//! transactions and must get INVALID_ARGUMENT with BadRequest details that
//! grpc_status decodes. Runs when python3 has grpcio, grpcio-tools and
//! grpcio-status; `.ci/run` installs them and sets CLVD_REQUIRE_GRPCIO=1 so
//! that CI cannot skip it.
//!
//! grpcurl (Go), which prints the details' message rather than
//! `grpc-message`: a failed import must still say which batch failed and
//! what was committed. Runs when grpcurl is on PATH (CLVD_REQUIRE_GRPCURL,
//! as for the reflection test).

use std::{path::Path, process::Command};

use crate::helpers::*;

fn grpcio_present() -> bool {
    Command::new("python3")
        .args(["-c", "import grpc, grpc_tools, grpc_status"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_grpcio_client_with_a_16_kib_metadata_limit_decodes_a_5000_row_rejection() {
    if !grpcio_present() {
        assert!(
            std::env::var("CLVD_REQUIRE_GRPCIO").is_err() && std::env::var("CI").is_err(),
            "python3 with grpcio, grpcio-tools and grpcio-status is required \
             (CLVD_REQUIRE_GRPCIO or CI is set)"
        );
        eprintln!("python3 lacks grpcio, grpcio-tools or grpcio-status: skipped");
        return;
    }
    let app = spawn_app().await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tokio::task::block_in_place(|| {
        Command::new("python3")
            .arg(root.join("tests/clients/grpcio_bad_import.py"))
            .arg(root.join("proto"))
            .arg(app.addr.to_string())
            .output()
            .expect("run python3")
    });
    assert!(
        out.status.success(),
        "the grpcio client failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The good batch before the bad one, and nothing else.
    assert_eq!(app.transactions_stored().await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn grpcurl_shows_which_batch_failed_and_what_was_committed() {
    let Some(grpcurl) = grpcurl() else {
        return;
    };
    let app = spawn_app().await;
    let row = |id: &str, units: i64| {
        format!(
            r#"{{"customer_id":"g","transaction_id":"{id}","occurred_at":"2026-01-05T10:00:00Z",
            "kind":"TRANSACTION_KIND_PURCHASE","amount":{{"currency_code":"USD","units":"{units}"}}}}"#
        )
    };
    let stream = format!(
        r#"{{"transactions":[{},{}]}} {{"transactions":[{}]}}"#,
        row("t1", 1),
        row("t2", 2),
        row("t3", -3)
    );
    let out = tokio::task::block_in_place(|| {
        Command::new(&grpcurl)
            .args(["-plaintext", "-d", &stream, &app.addr.to_string()])
            .arg("clv.v1.IngestService/ImportTransactions")
            .output()
            .expect("run grpcurl")
    });
    assert!(!out.status.success(), "grpcurl accepted a bad batch");
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(shown.contains("Code: InvalidArgument"), "{shown}");
    assert!(shown.contains("batch 1 (0-based)"), "{shown}");
    assert!(
        shown.contains("batches committed before it: 1 (2 transactions: 2 recorded, 0 duplicates)"),
        "{shown}"
    );
    assert!(
        shown.contains("batches[1].transactions[0].amount"),
        "{shown}"
    );
    assert_eq!(app.transactions_stored().await, 2);
}
