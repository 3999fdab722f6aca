//! How a batch locks its customers (issue 15, third session): existing
//! customers are locked without a new row version (the summary update
//! writes each row once), and a customer created by another transaction
//! while the batch waited for it is still locked, read and counted (the
//! attempt is redone with every customer upserted).

use std::time::{Duration, Instant};

use clvd::api::pb;

use crate::helpers::*;

fn batch(round: i64, customers: i64) -> pb::ImportTransactionsRequest {
    pb::ImportTransactionsRequest {
        transactions: (0..customers)
            .map(|c| {
                let when = at(2026, 1, 1, 0, 0) + chrono::Duration::days(round * 10 + c % 7);
                purchase(&format!("c{c}"), &format!("t{round}-{c}"), when, 100 + c)
            })
            .collect(),
    }
}

/// Row versions written to `customers` by updates so far, once the
/// server's sessions have reported the first `inserted` transactions (a
/// session reports its counts at most once a second).
async fn customer_updates(app: &TestApp, inserted: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reported = app
            .count("SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'transactions'")
            .await;
        if reported >= inserted {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "statistics of {inserted} inserts not reported ({reported})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.count("SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'customers'")
        .await
}

/// The lock upserted every existing customer (a row version only to lock
/// it) before the summary update wrote another: two updates per customer
/// and batch. Now one.
#[tokio::test]
async fn a_batch_of_existing_customers_updates_each_customer_row_once() {
    let app = spawn_app_with(|s| s.report_aggregate_interval_ms = 3_600_000).await;
    let mut client = app.ingest().await;
    client
        .import_transactions(futures::stream::iter(vec![batch(0, 1_000)]))
        .await
        .expect("first batch");
    let before = customer_updates(&app, 1_000).await;
    client
        .import_transactions(futures::stream::iter(vec![batch(1, 1_000)]))
        .await
        .expect("a batch of existing customers");
    assert_eq!(
        customer_updates(&app, 2_000).await - before,
        1_000,
        "updates of customers rows for a batch of 1,000 existing customers"
    );
    let summary = app.summary("c7").await.expect("summary");
    assert_eq!((summary.purchase_count, summary.purchase_occasions), (2, 2));
    assert_eq!(app.transactions_stored().await, 2_000);
}

/// The batch's statement snapshot predates the other transaction's commit,
/// so its read of the existing customers does not see the new one; the
/// batch is redone with the customers upserted, and counts its purchase
/// on the row the other transaction created.
#[tokio::test]
async fn a_customer_created_while_a_batch_waits_is_locked_and_counted() {
    let app = spawn_app().await;
    let mut client = app.ingest().await;

    // Another transaction creates the customer's row and holds it.
    let mut holder = app.pool.begin().await.unwrap();
    sqlx::query("INSERT INTO customers (customer_id) VALUES ('z')")
        .execute(&mut *holder)
        .await
        .unwrap();
    let call = {
        let mut client = client.clone();
        tokio::spawn(async move {
            client
                .record_transaction(record(purchase("z", "t1", at(2026, 1, 2, 12, 0), 250)))
                .await
        })
    };
    let mut waiting = 0;
    for _ in 0..200 {
        waiting = app
            .count(
                "SELECT count(*) FROM pg_stat_activity
                  WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .await;
        if waiting >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(waiting, 1, "the call waits for the other transaction");
    holder.commit().await.unwrap();
    let recorded = call.await.unwrap().expect("recorded").into_inner();
    assert!(!recorded.duplicate);

    let summary = app.summary("z").await.expect("summary");
    assert_eq!((summary.purchase_count, summary.purchase_occasions), (1, 1));
    assert_eq!(summary.net_revenue.nanos(), i128::from(nanos(250)));
    assert_eq!(app.transactions_stored().await, 1);
    assert_eq!(
        app.count("SELECT count(*) FROM customers WHERE customer_id = 'z'")
            .await,
        1
    );

    // And a batch of it alongside a new customer, sent again: counted once.
    for _ in 0..2 {
        client
            .import_transactions(futures::stream::iter(vec![pb::ImportTransactionsRequest {
                transactions: vec![
                    purchase("z", "t2", at(2026, 1, 5, 12, 0), 300),
                    purchase("w", "t3", at(2026, 1, 5, 12, 0), 400),
                ],
            }]))
            .await
            .expect("batch");
    }
    let summary = app.summary("z").await.expect("summary");
    assert_eq!((summary.purchase_count, summary.purchase_occasions), (2, 2));
    assert_eq!(app.transactions_stored().await, 3);
}
