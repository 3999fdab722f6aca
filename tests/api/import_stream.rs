//! ImportTransactions: each batch atomic, earlier batches kept, resending
//! the whole stream completes with exact totals.

use clvd::api::pb;
use tonic::Code;

use crate::helpers::*;

fn batch(range: std::ops::Range<i64>) -> pb::ImportTransactionsRequest {
    pb::ImportTransactionsRequest {
        transactions: range
            .map(|i| {
                purchase(
                    &format!("c{}", i % 7),
                    &format!("t{i}"),
                    at(2026, 1, 1 + (i % 28) as u32, 12, 0),
                    100 + i,
                )
            })
            .collect(),
    }
}

#[tokio::test]
async fn a_bad_batch_stores_nothing_earlier_batches_stay_and_a_resend_is_exact() {
    let app = spawn_app().await;
    let mut client = app.ingest().await;
    let mut bad = batch(20..30);
    bad.transactions[4].amount = Some(usd_cents(-1));
    let stream = vec![batch(0..10), batch(10..20), bad, batch(30..40)];

    let status = client
        .import_transactions(futures::stream::iter(stream.clone()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&status),
        vec!["batches[2].transactions[4].amount"]
    );
    assert!(status.message().contains("batch 2"), "{}", status.message());
    assert_eq!(
        app.transactions_stored().await,
        20,
        "exactly the two batches before the bad one"
    );

    let mut fixed = stream;
    fixed[2] = batch(20..30);
    let r = client
        .import_transactions(futures::stream::iter(fixed))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.batches, r.recorded, r.duplicates), (4, 20, 20));
    assert_eq!(app.transactions_stored().await, 40);
    let total: i64 = app
        .count("SELECT sum(net_revenue_nanos)::bigint FROM customers")
        .await;
    assert_eq!(total, (0..40).map(|i| nanos(100 + i)).sum::<i64>());
}

#[tokio::test]
async fn a_batch_with_a_conflicting_key_is_already_exists_and_stores_nothing() {
    let app = spawn_app().await;
    let mut client = app.ingest().await;
    client
        .import_transactions(futures::stream::iter(vec![batch(0..5)]))
        .await
        .unwrap();
    let mut clash = batch(5..10);
    clash
        .transactions
        .push(purchase("c1", "t1", at(2026, 1, 2, 12, 0), 999_999));
    let status = client
        .import_transactions(futures::stream::iter(vec![clash]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    assert_eq!(app.transactions_stored().await, 5);
}

#[tokio::test]
async fn repeats_within_a_batch_are_duplicates_and_clashes_within_it_are_rejected() {
    let app = spawn_app().await;
    let mut client = app.ingest().await;
    let t = purchase("c", "t", at(2026, 1, 1, 0, 0), 100);
    let repeated = pb::ImportTransactionsRequest {
        transactions: vec![t.clone(), t.clone()],
    };
    let r = client
        .import_transactions(futures::stream::iter(vec![repeated]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.recorded, r.duplicates), (1, 1));

    let clash = pb::ImportTransactionsRequest {
        transactions: vec![
            purchase("d", "t", at(2026, 1, 1, 0, 0), 100),
            purchase("d", "t", at(2026, 1, 1, 0, 0), 200),
        ],
    };
    let status = client
        .import_transactions(futures::stream::iter(vec![clash]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), vec!["batches[0].transactions[1]"]);
    assert_eq!(app.transactions_stored().await, 1);
}
