//! How a batch locks its customers: a customer created by another
//! transaction while the batch waited for it is locked, read and counted
//! once.

use clvd::api::pb;

use crate::helpers::*;

/// The batch's statement snapshot predates the other transaction's commit;
/// its upsert still finds the row the other transaction created, locks it
/// and returns it, and the purchase is counted on it.
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
    let call = record_in_background(&client, purchase("z", "t1", at(2026, 1, 2, 12, 0), 250));
    assert_eq!(
        app.lock_waiters(1).await,
        1,
        "the call waits for the other transaction"
    );
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
