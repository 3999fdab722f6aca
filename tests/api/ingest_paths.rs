//! Ingest guarantees that faster paths (issue 15) must keep:
//! - ImportTransactions reads and checks the next batch while the current
//!   one is recorded; a batch the database refuses still ends the stream
//!   with nothing of the batches after it stored.
//! - A batch reads a customer's summary only once it holds the customer's
//!   lock: batches that waited for each other's lock each build on what
//!   the other committed (a lock and read done with a snapshot from before
//!   the wait would lose a batch's purchases from the summary).

use tonic::Code;

use crate::helpers::*;
use clvd::api::pb;

fn batch(customer: &str, ids: std::ops::Range<i64>) -> pb::ImportTransactionsRequest {
    pb::ImportTransactionsRequest {
        transactions: ids
            .map(|i| {
                purchase(
                    customer,
                    &format!("t{i}"),
                    at(2026, 1, 1 + (i % 28) as u32, 12, 0),
                    100 + i,
                )
            })
            .collect(),
    }
}

#[tokio::test]
async fn a_batch_the_database_refuses_ends_the_stream_and_later_batches_are_not_stored() {
    let app = spawn_app().await;
    let mut client = app.ingest().await;
    client
        .import_transactions(futures::stream::iter(vec![batch("a", 0..3)]))
        .await
        .unwrap();
    // Batch 1 passes every check of the message but repeats a stored key
    // with other content: only the database can refuse it, so batch 2 has
    // been read (and checked) by then.
    let mut clash = batch("b", 10..20);
    clash
        .transactions
        .push(purchase("a", "t1", at(2026, 1, 2, 12, 0), 999_999));
    let stream = vec![batch("c", 20..30), clash, batch("d", 30..40)];
    let status = client
        .import_transactions(futures::stream::iter(stream))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists, "{}", status.message());
    assert!(status.message().contains("batch 1"), "{}", status.message());
    assert_eq!(
        app.transactions_stored().await,
        3 + 10,
        "the first import and batch 0 of the second, nothing after"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM customers WHERE customer_id IN ('b', 'd')")
            .await,
        0
    );
}

#[tokio::test]
async fn batches_that_wait_for_a_customers_lock_each_see_what_the_other_committed() {
    let app = spawn_app().await;
    let mut client = app.ingest().await;
    client
        .import_transactions(futures::stream::iter(vec![batch("x", 0..1)]))
        .await
        .unwrap();

    // Hold the customer's row lock, as a batch in progress would.
    let holder = app.hold_customer_lock("x").await;
    let calls: Vec<_> = [(1..4), (4..9)]
        .into_iter()
        .map(|ids| {
            let mut client = client.clone();
            tokio::spawn(async move {
                client
                    .import_transactions(futures::stream::iter(vec![batch("x", ids)]))
                    .await
            })
        })
        .collect();
    // Both batches wait for the lock before it is released.
    assert_eq!(
        app.lock_waiters(2).await,
        2,
        "both batches wait for the customer's lock"
    );
    holder.commit().await.unwrap();
    for call in calls {
        call.await.unwrap().unwrap();
    }

    let (purchases, occasions, revenue): (i32, i32, i64) = sqlx::query_as(
        "SELECT purchase_count, purchase_occasions, net_revenue_nanos::bigint
           FROM customers WHERE customer_id = 'x'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let (days, day_revenue): (i64, i64) = sqlx::query_as(
        "SELECT count(*), sum(net_nanos)::bigint FROM customer_days WHERE customer_id = 'x'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let expected: i64 = (0..9).map(|i| nanos(100 + i)).sum();
    assert_eq!(purchases, 9, "every purchase counted once");
    assert_eq!(occasions as i64, days, "one occasion per stored day");
    assert_eq!(revenue, expected);
    assert_eq!(day_revenue, expected);
}
