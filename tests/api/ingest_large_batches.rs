//! Import batches of many customers (at least `LOCK_WITHOUT_WRITE_FROM`,
//! 256, in `src/storage/ingest.rs`) lock the existing customers without
//! writing their rows and read their summaries in a second statement.
//! These tests hold that path to the same guarantees as the one-statement
//! lock: a summary committed while the batch waited for a lock is the one
//! it adds to, and concurrent large batches, resends and single calls store
//! what plain SQL recomputes from the stored transactions.

use clvd::api::pb;
use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::helpers::*;
use crate::ingest_fast_paths::{
    assert_stored_as_plain_sql_recomputes, customer_transactions, import, DAYS_DIFFERING,
    SUMMARIES_DIFFERING,
};

/// More distinct customers than the threshold of the two-statement lock.
const CUSTOMERS: usize = 300;

/// A large batch waits for the lock of its first customer ("a"); meanwhile
/// a single call for a later customer ("y", not yet locked by the batch)
/// commits. The batch's summary of "y" must include that purchase: a read
/// taken with the snapshot from before the wait would miss it, and the
/// batch would then overwrite "y"'s summary without it.
#[tokio::test]
async fn a_large_batch_adds_to_a_summary_committed_while_it_waited() {
    let app = spawn_app_with(|s| s.report_aggregate_interval_ms = 3_600_000).await;
    import(
        &app,
        vec![vec![
            purchase("a", "a1", at(2026, 1, 2, 12, 0), 100),
            purchase("y", "y1", at(2026, 1, 2, 12, 0), 200),
        ]],
    )
    .await;
    let mut client = app.ingest().await;

    let holder = app.hold_customer_lock("a").await;
    let mut transactions = vec![
        purchase("a", "a2", at(2026, 1, 9, 12, 0), 300),
        purchase("y", "y2", at(2026, 1, 9, 12, 0), 400),
    ];
    transactions.extend((0..CUSTOMERS).map(|c| {
        purchase(
            &format!("n{c:03}"),
            "n1",
            at(2026, 1, 3, 12, 0),
            50 + c as i64,
        )
    }));
    let batch = {
        let mut client = client.clone();
        tokio::spawn(async move {
            client
                .import_transactions(futures::stream::iter(vec![pb::ImportTransactionsRequest {
                    transactions,
                }]))
                .await
        })
    };
    assert_eq!(
        app.lock_waiters(1).await,
        1,
        "the batch waits for customer a"
    );
    // "y" sorts after "a": the batch has not locked it yet.
    client
        .record_transaction(record(purchase("y", "y3", at(2026, 1, 5, 12, 0), 500)))
        .await
        .expect("single call for y while the batch waits");
    holder.commit().await.expect("release a");
    batch.await.expect("batch task").expect("batch recorded");

    let y = app.summary("y").await.expect("summary of y");
    assert_eq!((y.purchase_count, y.purchase_occasions), (3, 3));
    assert_eq!(
        y.net_revenue.nanos(),
        i128::from(nanos(200) + nanos(400) + nanos(500))
    );
    let a = app.summary("a").await.expect("summary of a");
    assert_eq!((a.purchase_count, a.purchase_occasions), (2, 2));
    assert_eq!(
        app.transactions_stored().await,
        2 + 2 + 1 + CUSTOMERS as i64
    );
    assert_eq!(app.count(SUMMARIES_DIFFERING).await, 0, "summaries");
    assert_eq!(app.count(DAYS_DIFFERING).await, 0, "day rows");
}

/// One lane's batches: the k-th batch holds the k-th chunk (1 to 3
/// entries) of every customer's sequence that has one left, so early
/// batches span all the lane's customers; some batches are sent twice, and
/// the whole lane is sent again at the end in large batches.
fn lane_batches(rng: &mut StdRng, sequences: &[Vec<pb::Transaction>]) -> Vec<Vec<pb::Transaction>> {
    let mut rests: Vec<&[pb::Transaction]> = sequences.iter().map(Vec::as_slice).collect();
    let mut batches = Vec::new();
    while rests.iter().any(|r| !r.is_empty()) {
        let mut batch = Vec::new();
        for rest in rests.iter_mut().filter(|r| !r.is_empty()) {
            let n = rng.random_range(1..=3).min(rest.len());
            let (chunk, tail) = rest.split_at(n);
            batch.extend_from_slice(chunk);
            *rest = tail;
        }
        batches.push(batch.clone());
        if rng.random_bool(0.3) {
            batches.push(batch);
        }
    }
    let all: Vec<pb::Transaction> = sequences.iter().flatten().cloned().collect();
    batches.extend(all.chunks(1_500).map(<[_]>::to_vec));
    batches
}

/// Single calls: new purchases of the lanes' customers, on their days, at
/// the same time as the lanes' batches.
async fn purchases_meanwhile(app: &TestApp, seed: u64, customers: Vec<String>) {
    let mut client = app.ingest().await;
    for (i, customer) in customers.iter().enumerate() {
        let when = at(2026, 3, 1, 0, 0) + chrono::Duration::days((i % 9) as i64);
        client
            .record_transaction(record(purchase(
                customer,
                &format!("u{seed}-{i}"),
                when,
                (i as i64 + 1) * 7,
            )))
            .await
            .expect("single call");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_large_batches_store_what_plain_sql_recomputes() {
    let app = spawn_app().await;
    for seed in 0..2u64 {
        let mut rng = StdRng::seed_from_u64(seed + 1_000);
        let mut lanes: Vec<Vec<Vec<pb::Transaction>>> = vec![Vec::new(), Vec::new()];
        let mut distinct = 0;
        let mut singles = Vec::new();
        for c in 0..2 * CUSTOMERS {
            let customer = format!("L{seed}-c{c:04}");
            let sequence = customer_transactions(&mut rng, &customer);
            distinct += sequence.len();
            lanes[c % 2].push(sequence);
            if c % 5 == 0 {
                singles.push(customer);
            }
        }
        distinct += singles.len();
        let first = lane_batches(&mut rng, &lanes[0]);
        let second = lane_batches(&mut rng, &lanes[1]);
        assert!(
            first[0].len() >= CUSTOMERS,
            "the first batch spans every customer of its lane"
        );
        tokio::join!(
            import(&app, first),
            import(&app, second),
            purchases_meanwhile(&app, seed, singles)
        );
        assert_stored_as_plain_sql_recomputes(&app, &format!("L{seed}-"), distinct, seed).await;
    }
}
