//! Grouped RecordTransaction calls and their slots (issue 15, third
//! session): under steady load one group runs at a time, and a group that
//! waits on a customer's lock (held by an import batch, say) holds back the
//! calls behind it only for a short patience, after which they run on the
//! second slot. Both slots' groups commit what they acknowledged.

use std::time::{Duration, Instant};

use crate::helpers::*;

#[tokio::test]
async fn a_call_behind_a_locked_customer_is_held_back_only_briefly() {
    let app = spawn_app().await;
    let mut client = app.ingest().await;
    client
        .record_transaction(record(purchase("x", "t0", at(2026, 1, 1, 12, 0), 100)))
        .await
        .unwrap();

    // Hold the customer's row lock, as an import batch in progress would.
    let holder = app.hold_customer_lock("x").await;
    let stuck = record_in_background(&client, purchase("x", "t1", at(2026, 1, 2, 12, 0), 200));
    // The stuck group is waiting for the lock before the next call comes.
    assert_eq!(
        app.lock_waiters(1).await,
        1,
        "the first call's group waits for the lock"
    );

    // Another customer's call completes while the lock is still held.
    let started = Instant::now();
    let other = tokio::time::timeout(
        Duration::from_secs(10),
        client.record_transaction(record(purchase("y", "t2", at(2026, 1, 3, 12, 0), 300))),
    )
    .await
    .expect("a call of another customer is not held back by the locked one")
    .unwrap()
    .into_inner();
    assert!(!other.duplicate);
    let held_back = started.elapsed();
    assert!(
        held_back < Duration::from_secs(2),
        "held back for {held_back:?}"
    );
    assert!(
        !stuck.is_finished(),
        "the locked customer's call waits for the lock"
    );
    assert_eq!(app.summary("y").await.map(|s| s.purchase_count), Some(1));

    holder.commit().await.unwrap();
    let stuck = stuck.await.unwrap().unwrap().into_inner();
    assert!(!stuck.duplicate);
    assert_eq!(app.summary("x").await.map(|s| s.purchase_count), Some(2));
    assert_eq!(app.transactions_stored().await, 3);
}
