//! The shape of every error: `grpc-status-details-bin` carries a
//! google.rpc.Status whose code and message are exactly the status line's
//! (gRPC's Python and C++ status helpers refuse a mismatch, grpcurl prints
//! the details' message), the whole error stays under 8 KiB whatever the
//! input, and a failed import says which batch failed and what was
//! committed before it.

use std::time::Duration;

use clvd::{
    api::pb::{
        self, model_service_client::ModelServiceClient, report_service_client::ReportServiceClient,
        scoring_service_client::ScoringServiceClient,
    },
    auth::hash_key,
    config::AuthMode,
};
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{transport::Channel, Code, Request, Status};
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
use tonic_types::StatusExt;

use crate::helpers::*;

/// The error size every client must be able to read: under the 8 KiB
/// default of many HTTP/2 stacks (C-core's hard limit is 16 KiB).
const MAX_ERROR_BYTES: usize = 8 * 1024;

/// Bytes the status takes in the response headers or trailers, as the
/// server writes them: `grpc-message` percent-encoded the way tonic does
/// (controls, non-ASCII and ` "#%<>`?{}` take 3 bytes), the details in
/// unpadded base64, and HPACK's 32 bytes of overhead per field.
fn wire_size(status: &Status) -> usize {
    let message: usize = status
        .message()
        .bytes()
        .map(|b| {
            if !(0x20..0x7f).contains(&b) || b" \"#%<>`?{}".contains(&b) {
                3
            } else {
                1
            }
        })
        .sum();
    let details = status.details().len().div_ceil(3) * 4;
    "grpc-status".len()
        + 2
        + 32
        + "grpc-message".len()
        + message
        + 32
        + "grpc-status-details-bin".len()
        + details
        + 32
}

/// Asserts what every error must be: details present, decodable, with the
/// status line's code and message, and the whole under [`MAX_ERROR_BYTES`].
#[track_caller]
fn assert_well_formed(what: &str, status: &Status, code: Code) {
    assert_eq!(status.code(), code, "{what}: {status:?}");
    assert!(
        !status.details().is_empty(),
        "{what}: no grpc-status-details-bin: {status:?}"
    );
    let inner = tonic_types::pb::Status::decode(status.details())
        .unwrap_or_else(|e| panic!("{what}: details are not a google.rpc.Status: {e}"));
    assert_eq!(inner.code, code as i32, "{what}: details' code");
    assert_eq!(inner.message, status.message(), "{what}: details' message");
    assert!(
        wire_size(status) < MAX_ERROR_BYTES,
        "{what}: {} bytes",
        wire_size(status)
    );
}

fn bad_purchase(i: usize) -> pb::Transaction {
    pb::Transaction {
        amount: Some(usd_cents(-1)),
        ..purchase("c", &format!("bad-{i}"), at(2026, 1, 2, 0, 0), 100)
    }
}

fn good_batch(n: usize) -> pb::ImportTransactionsRequest {
    pb::ImportTransactionsRequest {
        transactions: (0..n)
            .map(|i| purchase("c", &format!("t{i}"), at(2026, 1, 1, 0, 0), 100))
            .collect(),
    }
}

fn bad_batch(n: usize) -> pb::ImportTransactionsRequest {
    pb::ImportTransactionsRequest {
        transactions: (0..n).map(bad_purchase).collect(),
    }
}

#[tokio::test]
async fn every_rpcs_error_carries_details_equal_to_its_status_line() {
    let app = spawn_app_with(|s| s.max_decoding_message_bytes = 8 * 1024).await;
    let ch = channel(&app.endpoint()).await.unwrap();
    let mut ingest = app.ingest().await;
    let mut scoring = ScoringServiceClient::new(ch.clone());
    let mut models = ModelServiceClient::new(ch.clone());
    let mut reports = ReportServiceClient::new(ch.clone());

    // IngestService.
    let e = ingest
        .record_transaction(pb::RecordTransactionRequest { transaction: None })
        .await
        .unwrap_err();
    assert_well_formed("RecordTransaction", &e, Code::InvalidArgument);
    ingest
        .record_transaction(record(purchase("k", "t", at(2026, 1, 1, 0, 0), 100)))
        .await
        .unwrap();
    let e = ingest
        .record_transaction(record(purchase("k", "t", at(2026, 1, 1, 0, 0), 200)))
        .await
        .unwrap_err();
    assert_well_formed("RecordTransaction conflict", &e, Code::AlreadyExists);
    let huge = pb::Transaction {
        customer_id: "x".repeat(10_000),
        ..purchase("k", "t", at(2026, 1, 1, 0, 0), 100)
    };
    let e = ingest.record_transaction(record(huge)).await.unwrap_err();
    assert_well_formed(
        "RecordTransaction over the size limit",
        &e,
        Code::OutOfRange,
    );

    let e = ingest
        .import_transactions(futures::stream::iter([good_batch(3), bad_batch(2)]))
        .await
        .unwrap_err();
    assert_well_formed("ImportTransactions", &e, Code::InvalidArgument);
    let mut clash = good_batch(1);
    clash.transactions[0].amount = Some(usd_cents(999));
    let e = ingest
        .import_transactions(futures::stream::iter([clash]))
        .await
        .unwrap_err();
    assert_well_formed("ImportTransactions conflict", &e, Code::AlreadyExists);

    let e = ingest
        .record_feedback(pb::RecordFeedbackRequest { feedback: None })
        .await
        .unwrap_err();
    assert_well_formed("RecordFeedback", &e, Code::InvalidArgument);
    let e = ingest
        .record_acquisition_spend(pb::RecordAcquisitionSpendRequest { spend: None })
        .await
        .unwrap_err();
    assert_well_formed("RecordAcquisitionSpend", &e, Code::InvalidArgument);
    let e = ingest
        .delete_customer(pb::DeleteCustomerRequest {
            customer_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_well_formed("DeleteCustomer", &e, Code::InvalidArgument);

    // ScoringService.
    let e = scoring
        .get_customer_value(pb::GetCustomerValueRequest {
            customer_id: "nobody".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_well_formed("GetCustomerValue", &e, Code::NotFound);
    let e = scoring
        .batch_get_customer_values(pb::BatchGetCustomerValuesRequest::default())
        .await
        .unwrap_err();
    assert_well_formed("BatchGetCustomerValues", &e, Code::InvalidArgument);
    let e = scoring
        .get_churn_risk(pb::GetChurnRiskRequest {
            customer_id: String::new(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_well_formed("GetChurnRisk", &e, Code::InvalidArgument);
    let e = scoring
        .list_at_risk_customers(pb::ListAtRiskCustomersRequest::default())
        .await
        .unwrap_err();
    assert_well_formed("ListAtRiskCustomers", &e, Code::FailedPrecondition);

    // ModelService.
    let e = models
        .get_model(pb::GetModelRequest::default())
        .await
        .unwrap_err();
    assert_well_formed("GetModel", &e, Code::NotFound);
    let e = models
        .list_models(pb::ListModelsRequest {
            page_token: "forged".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_well_formed("ListModels", &e, Code::InvalidArgument);
    let e = models
        .evaluate_model(pb::EvaluateModelRequest::default())
        .await
        .unwrap_err();
    assert_well_formed("EvaluateModel", &e, Code::InvalidArgument);
    // Nobody bought on two days: the data cannot support a fit.
    let e = models
        .fit_model(pb::FitModelRequest::default())
        .await
        .unwrap_err();
    assert_well_formed("FitModel", &e, Code::FailedPrecondition);

    // ReportService.
    let e = reports
        .get_cohort_report(pb::GetCohortReportRequest::default())
        .await
        .unwrap_err();
    assert_well_formed("GetCohortReport", &e, Code::InvalidArgument);
    let e = reports
        .get_loyalty_summary(pb::GetLoyaltySummaryRequest::default())
        .await
        .unwrap_err();
    assert_well_formed("GetLoyaltySummary", &e, Code::InvalidArgument);
    let e = reports
        .get_segment_report(pb::GetSegmentReportRequest::default())
        .await
        .unwrap_err();
    assert_well_formed("GetSegmentReport", &e, Code::FailedPrecondition);

    // Health, and a method no service has (both answered by library code).
    let e = HealthClient::new(ch.clone())
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_well_formed("Health/Check", &e, Code::NotFound);
    let e = unknown_method(ch.clone()).await;
    assert_well_formed("an unknown method", &e, Code::Unimplemented);
}

/// A call of `/clv.v1.IngestService/NoSuchMethod`.
async fn unknown_method(ch: Channel) -> Status {
    let mut grpc = tonic::client::Grpc::new(ch);
    grpc.ready().await.unwrap();
    grpc.unary::<(), (), _>(
        Request::new(()),
        http::uri::PathAndQuery::from_static("/clv.v1.IngestService/NoSuchMethod"),
        tonic_prost::ProstCodec::default(),
    )
    .await
    .unwrap_err()
}

/// `request` with `authorization: Bearer <key>`.
fn keyed<T>(key: &str, mut request: Request<T>) -> Request<T> {
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    request
}

#[tokio::test]
async fn refusals_before_the_handler_carry_details_equal_to_their_status_line() {
    const INGEST_KEY: &str = "ingest-key-7c1d";
    let app = spawn_app_with(|s| {
        s.auth = AuthMode::On;
        s.api_keys = vec![format!("{}:ingest", hash_key(INGEST_KEY)).parse().unwrap()];
        s.max_concurrent_calls = 1;
        s.max_call_seconds = 2;
    })
    .await;
    let ch = channel(&app.endpoint()).await.unwrap();

    let e = ReportServiceClient::new(ch.clone())
        .get_segment_report(pb::GetSegmentReportRequest::default())
        .await
        .unwrap_err();
    assert_well_formed("no key", &e, Code::Unauthenticated);
    let e = ModelServiceClient::new(ch.clone())
        .fit_model(keyed(
            INGEST_KEY,
            Request::new(pb::FitModelRequest::default()),
        ))
        .await
        .unwrap_err();
    assert_well_formed("a key without the scope", &e, Code::PermissionDenied);

    // One call holds the only slot until the configured maximum call time
    // ends it; meanwhile another call is shed.
    let (tx, rx) = mpsc::unbounded_channel();
    tx.send(good_batch(1)).unwrap();
    let mut holder = pb::ingest_service_client::IngestServiceClient::new(ch.clone());
    let held = tokio::spawn(async move {
        holder
            .import_transactions(keyed(
                INGEST_KEY,
                Request::new(UnboundedReceiverStream::new(rx)),
            ))
            .await
    });
    while app.transactions_stored().await < 1 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let e = pb::ingest_service_client::IngestServiceClient::new(ch.clone())
        .delete_customer(keyed(
            INGEST_KEY,
            Request::new(pb::DeleteCustomerRequest {
                customer_id: "c".into(),
            }),
        ))
        .await
        .unwrap_err();
    assert_well_formed(
        "a call over the concurrency limit",
        &e,
        Code::ResourceExhausted,
    );
    let e = held.await.unwrap().unwrap_err();
    assert_well_formed(
        "a call past the maximum call time",
        &e,
        Code::DeadlineExceeded,
    );
    drop(tx);
}

#[tokio::test]
async fn a_batch_of_5000_bad_transactions_gets_a_small_error_naming_the_first_ones() {
    let app = spawn_app().await;
    let mut client = app.ingest().await;
    let e = client
        .import_transactions(futures::stream::iter([
            good_batch(10),
            good_batch(10),
            bad_batch(5_000),
        ]))
        .await
        .unwrap_err();
    assert_well_formed("5,000 bad transactions", &e, Code::InvalidArgument);
    let fields = violated_fields(&e);
    assert!(
        (1..=20).contains(&fields.len()),
        "{} violations listed",
        fields.len()
    );
    // The first ones, in order, with their position in the stream.
    for (k, field) in fields.iter().enumerate() {
        assert_eq!(field, &format!("batches[2].transactions[{k}].amount"));
    }
    let message = e.message();
    let rest = 5_000 - fields.len();
    assert!(
        message.contains(&format!(
            "and {} more violations",
            with_thousands(rest as u64)
        )),
        "{message}"
    );
    // The second batch repeats the first: 10 recorded, 10 duplicates.
    assert!(message.contains("batch 2 (0-based)"), "{message}");
    assert!(
        message.contains(
            "batches committed before it: 2 (20 transactions: 10 recorded, 10 duplicates)"
        ),
        "{message}"
    );
    assert_eq!(app.transactions_stored().await, 10);
}

#[tokio::test]
async fn an_oversized_later_message_says_what_was_committed_before_it() {
    let app = spawn_app_with(|s| s.max_decoding_message_bytes = 4 * 1024).await;
    let mut client = app.ingest().await;
    let e = client
        .import_transactions(futures::stream::iter([good_batch(5), good_batch(200)]))
        .await
        .unwrap_err();
    assert_well_formed("an oversized second message", &e, Code::OutOfRange);
    let message = e.message();
    assert!(message.contains("batch 1 (0-based)"), "{message}");
    assert!(
        message
            .contains("batches committed before it: 1 (5 transactions: 5 recorded, 0 duplicates)"),
        "{message}"
    );
    assert!(message.contains("4096"), "the limit: {message}");
    assert_eq!(app.transactions_stored().await, 5);
}

#[tokio::test]
async fn a_conflict_in_a_later_batch_says_what_was_committed_before_it() {
    let app = spawn_app().await;
    let mut client = app.ingest().await;
    let mut clash = good_batch(3);
    clash.transactions[2].amount = Some(usd_cents(5));
    let e = client
        .import_transactions(futures::stream::iter([good_batch(3), clash]))
        .await
        .unwrap_err();
    assert_well_formed("a conflicting later batch", &e, Code::AlreadyExists);
    let message = e.message();
    assert!(message.contains("batch 1 (0-based)"), "{message}");
    assert!(message.contains("batches[1].transactions[2]"), "{message}");
    assert!(
        message
            .contains("batches committed before it: 1 (3 transactions: 3 recorded, 0 duplicates)"),
        "{message}"
    );
}

#[tokio::test]
async fn long_values_and_many_bad_ids_are_cut_to_a_readable_error() {
    let app = spawn_app().await;
    // A currency code of 100,000 characters is quoted in its violation.
    let long = pb::Transaction {
        amount: Some(pb::Money {
            currency_code: "Ü".repeat(100_000),
            units: 1,
            nanos: 0,
        }),
        ..purchase("c", "t", at(2026, 1, 1, 0, 0), 100)
    };
    let e = app
        .ingest()
        .await
        .record_transaction(record(long))
        .await
        .unwrap_err();
    assert_well_formed("a long currency code", &e, Code::InvalidArgument);
    assert_eq!(violated_fields(&e), ["transaction.amount.currency_code"]);

    // 1,000 ids (the most a call takes), each bad and as long as allowed.
    let ids: Vec<String> = (0..1_000).map(|i| format!("\u{1}{i:0>127}")).collect();
    let e = ScoringServiceClient::new(channel(&app.endpoint()).await.unwrap())
        .batch_get_customer_values(pb::BatchGetCustomerValuesRequest {
            customer_ids: ids,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_well_formed("1,000 bad ids", &e, Code::InvalidArgument);
    let fields = violated_fields(&e);
    assert!((1..=20).contains(&fields.len()), "{fields:?}");
    assert_eq!(fields[0], "customer_ids[0]");
    assert!(
        e.message().contains(&format!(
            "and {} more violations",
            with_thousands(1_000 - fields.len() as u64)
        )),
        "{}",
        e.message()
    );
    assert_eq!(
        e.get_details_bad_request().unwrap().field_violations.len(),
        fields.len()
    );
}

/// `4990` as `4,990`.
fn with_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
