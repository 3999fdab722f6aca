//! What recording means: idempotency, occasions, refunds, time zones.

use chrono::NaiveDate;
use clvd::api::pb;
use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn resending_the_same_transaction_is_a_duplicate_success() {
    let app = spawn_app().await;
    let mut client = app.ingest().await;
    let t = purchase("c1", "t1", at(2026, 1, 5, 10, 0), 2_550);
    let first = client
        .record_transaction(record(t.clone()))
        .await
        .unwrap()
        .into_inner();
    let second = client
        .record_transaction(record(t))
        .await
        .unwrap()
        .into_inner();
    assert!(!first.duplicate);
    assert!(second.duplicate);
    assert_eq!(app.transactions_stored().await, 1);
    let s = app.summary("c1").await.unwrap();
    assert_eq!(s.net_revenue.nanos(), i128::from(nanos(2_550)));
    assert_eq!(s.purchase_count, 1);
}

#[tokio::test]
async fn the_same_key_with_other_content_is_already_exists_and_changes_nothing() {
    let app = spawn_app().await;
    let mut client = app.ingest().await;
    client
        .record_transaction(record(purchase("c1", "t1", at(2026, 1, 5, 10, 0), 2_550)))
        .await
        .unwrap();
    let before = app.summary("c1").await;
    for other in [
        purchase("c1", "t1", at(2026, 1, 5, 10, 0), 2_551),
        purchase("c1", "t1", at(2026, 1, 6, 10, 0), 2_550),
        pb::Transaction {
            cost: Some(usd_cents(100)),
            ..purchase("c1", "t1", at(2026, 1, 5, 10, 0), 2_550)
        },
    ] {
        let status = client.record_transaction(record(other)).await.unwrap_err();
        assert_eq!(status.code(), Code::AlreadyExists);
    }
    assert_eq!(app.transactions_stored().await, 1);
    assert_eq!(app.summary("c1").await, before);
}

#[tokio::test]
async fn same_day_purchases_are_one_occasion_and_zero_value_purchases_count() {
    let app = spawn_app().await;
    let mut client = app.ingest().await;
    for t in [
        purchase("c1", "a", at(2026, 2, 1, 9, 0), 1_000),
        purchase("c1", "b", at(2026, 2, 1, 18, 0), 500),
        purchase("c1", "free", at(2026, 2, 10, 12, 0), 0),
        purchase("c1", "d", at(2026, 2, 20, 12, 0), 700),
    ] {
        client.record_transaction(record(t)).await.unwrap();
    }
    let s = app.summary("c1").await.unwrap();
    assert_eq!(s.purchase_occasions, 3);
    assert_eq!(s.purchase_count, 4);
    assert_eq!(
        s.first_purchase_day,
        NaiveDate::from_ymd_opt(2026, 2, 1).unwrap()
    );
    assert_eq!(
        s.last_purchase_day,
        NaiveDate::from_ymd_opt(2026, 2, 20).unwrap()
    );
    assert_eq!(s.first_purchase_at, at(2026, 2, 1, 9, 0));
    assert_eq!(s.last_purchase_at, at(2026, 2, 20, 12, 0));
    assert_eq!(s.net_revenue.nanos(), i128::from(nanos(2_200)));
    // Repeat occasions: the free one (0) and the 20th (7.00).
    assert_eq!(s.repeat_value.nanos(), i128::from(nanos(700)));
}

#[tokio::test]
async fn refunds_change_value_on_the_purchase_day_not_occasions() {
    let app = spawn_app().await;
    let mut client = app.ingest().await;
    for t in [
        purchase("c1", "p1", at(2026, 3, 1, 10, 0), 1_000),
        purchase("c1", "p2", at(2026, 3, 5, 10, 0), 4_000),
        refund("c1", "r1", "p2", at(2026, 3, 20, 10, 0), 1_500),
        refund("c1", "r2", "p2", at(2026, 3, 21, 10, 0), 2_500),
    ] {
        client.record_transaction(record(t)).await.unwrap();
    }
    let s = app.summary("c1").await.unwrap();
    assert_eq!(
        s.purchase_occasions, 2,
        "a fully refunded purchase is still an occasion"
    );
    assert_eq!(s.refund_count, 2);
    assert_eq!(s.net_revenue.nanos(), i128::from(nanos(1_000)));
    assert_eq!(s.repeat_value.nanos(), 0);
    assert_eq!(
        s.last_purchase_day,
        NaiveDate::from_ymd_opt(2026, 3, 5).unwrap(),
        "refund days are not occasions"
    );
    // Nothing is left of p2: any further refund is an over-refund.
    let status = client
        .record_transaction(record(refund("c1", "r3", "p2", at(2026, 3, 22, 0, 0), 1)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), vec!["transaction.amount"]);
}

#[tokio::test]
async fn a_refund_may_name_a_purchase_of_the_same_batch_wherever_it_sits() {
    let app = spawn_app().await;
    let batch = pb::ImportTransactionsRequest {
        transactions: vec![
            refund("c1", "r1", "p1", at(2026, 3, 2, 10, 0), 300),
            purchase("c1", "p1", at(2026, 3, 1, 10, 0), 1_000),
        ],
    };
    let r = app
        .ingest()
        .await
        .import_transactions(futures::stream::iter(vec![batch]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.batches, r.recorded, r.duplicates), (1, 2, 0));
    assert_eq!(
        app.summary("c1").await.unwrap().net_revenue.nanos(),
        i128::from(nanos(700))
    );
}

#[tokio::test]
async fn occasions_are_days_of_the_business_time_zone() {
    let app = spawn_app_with(|s| s.time_zone = chrono_tz::America::New_York).await;
    let mut client = app.ingest().await;
    // 03:30 UTC on the 2nd is 22:30 on the 1st in New York (EST, UTC-5).
    client
        .record_transaction(record(purchase("c1", "a", at(2026, 1, 1, 15, 0), 100)))
        .await
        .unwrap();
    client
        .record_transaction(record(purchase("c1", "b", at(2026, 1, 2, 3, 30), 100)))
        .await
        .unwrap();
    // 05:30 UTC on the 2nd is 00:30 on the 2nd in New York.
    client
        .record_transaction(record(purchase("c1", "c", at(2026, 1, 2, 5, 30), 100)))
        .await
        .unwrap();
    let s = app.summary("c1").await.unwrap();
    assert_eq!(s.purchase_occasions, 2);
    assert_eq!(
        s.first_purchase_day,
        NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()
    );
    assert_eq!(
        s.last_purchase_day,
        NaiveDate::from_ymd_opt(2026, 1, 2).unwrap()
    );
}

#[tokio::test]
async fn costs_are_summed_and_purchases_without_one_are_counted() {
    let app = spawn_app().await;
    let mut client = app.ingest().await;
    client
        .record_transaction(record(pb::Transaction {
            cost: Some(usd_cents(400)),
            ..purchase("c1", "a", at(2026, 1, 1, 0, 0), 1_000)
        }))
        .await
        .unwrap();
    client
        .record_transaction(record(purchase("c1", "b", at(2026, 1, 2, 0, 0), 1_000)))
        .await
        .unwrap();
    let s = app.summary("c1").await.unwrap();
    assert_eq!(s.cost.nanos(), i128::from(nanos(400)));
    assert_eq!(s.uncosted_purchases, 1);
}

#[tokio::test]
async fn an_earlier_purchase_arriving_late_becomes_the_first_occasion() {
    let app = spawn_app().await;
    let mut client = app.ingest().await;
    client
        .record_transaction(record(purchase("c1", "late", at(2026, 5, 1, 0, 0), 5_000)))
        .await
        .unwrap();
    client
        .record_transaction(record(purchase("c1", "early", at(2026, 4, 1, 0, 0), 1_000)))
        .await
        .unwrap();
    let s = app.summary("c1").await.unwrap();
    assert_eq!(
        s.first_purchase_day,
        NaiveDate::from_ymd_opt(2026, 4, 1).unwrap()
    );
    assert_eq!(s.repeat_value.nanos(), i128::from(nanos(5_000)));
}

#[tokio::test]
async fn a_rejected_first_transaction_leaves_no_trace_of_the_customer() {
    let app = spawn_app().await;
    let status = app
        .ingest()
        .await
        .record_transaction(record(refund(
            "never-seen",
            "r1",
            "p1",
            at(2026, 3, 2, 10, 0),
            300,
        )))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(app.row_counts().await, (0, 0, 0));
    assert!(app.summary("never-seen").await.is_none());
}
