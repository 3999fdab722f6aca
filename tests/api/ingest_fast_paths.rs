//! Ingest's fast paths against the plain computation. A batch's first
//! attempt looks up none of its own keys (the primary key refuses a stored
//! one and the batch is redone with every key looked up), reads no occasion
//! the customer's summary answers, and writes new and stored day rows
//! apart; its statements probe the primary keys instead of scanning tables.
//!
//! Random batches (new and existing customers, purchases before, on,
//! between and after the stored days, same-day purchases, refunds of stored
//! and of same-batch purchases, whole batches and single entries sent
//! again, stored keys mixed into new batches), over two concurrent import
//! streams and single calls at once: afterwards the stored transactions are
//! exactly the distinct ones sent, and every day row, refunded amount and
//! summary equals plain SQL recomputed from the stored transactions.

use clvd::api::pb;
use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};

use crate::helpers::*;

/// Day rows that differ from the plain aggregate of the stored
/// transactions (refunds counted on their purchase's day), either way.
pub(crate) const DAYS_DIFFERING: &str = "
    WITH refunds AS (
        SELECT customer_id, refunded_transaction_id, count(*) AS n, sum(amount_nanos) AS amount
          FROM transactions WHERE kind = 2 GROUP BY 1, 2
    ), want AS (
        SELECT p.customer_id, p.occasion_day AS day, count(*)::int AS purchases,
               coalesce(sum(r.n), 0)::int AS refunds,
               sum(p.amount_nanos)::numeric - coalesce(sum(r.amount), 0) AS net_nanos,
               coalesce(sum(p.cost_nanos), 0)::numeric AS cost_nanos,
               (count(*) FILTER (WHERE p.cost_nanos IS NULL))::int AS uncosted_purchases,
               min(p.occurred_at) AS first_purchase_at, max(p.occurred_at) AS last_purchase_at
          FROM transactions p
          LEFT JOIN refunds r
            ON r.customer_id = p.customer_id AND r.refunded_transaction_id = p.transaction_id
         WHERE p.kind = 1 GROUP BY 1, 2
    ), got AS (
        SELECT customer_id, day, purchases, refunds, net_nanos, cost_nanos, uncosted_purchases,
               first_purchase_at, last_purchase_at
          FROM customer_days
    )
    SELECT count(*) FROM ((TABLE want EXCEPT TABLE got) UNION ALL (TABLE got EXCEPT TABLE want)) d";

/// Purchases whose refunded amount is not the sum of their stored refunds.
pub(crate) const REFUNDED_DIFFERING: &str = "
    SELECT count(*) FROM transactions p
     WHERE p.kind = 1 AND p.refunded_nanos <> coalesce(
         (SELECT sum(r.amount_nanos) FROM transactions r
           WHERE r.kind = 2 AND r.customer_id = p.customer_id
             AND r.refunded_transaction_id = p.transaction_id), 0)";

/// Summaries that differ from the plain aggregate of the day rows
/// (repeat value: the net of every day but the first), either way.
pub(crate) const SUMMARIES_DIFFERING: &str = "
    WITH want AS (
        SELECT customer_id, min(day) AS first_day, max(day) AS last_day,
               min(first_purchase_at) AS first_at, max(last_purchase_at) AS last_at,
               count(*)::int AS occasions, sum(purchases)::int AS purchases,
               sum(refunds)::int AS refunds, sum(net_nanos) AS net,
               sum(net_nanos) - (array_agg(net_nanos ORDER BY day))[1] AS repeat,
               sum(cost_nanos) AS cost, sum(uncosted_purchases)::int AS uncosted
          FROM customer_days GROUP BY 1
    ), got AS (
        SELECT customer_id, first_purchase_day, last_purchase_day, first_purchase_at,
               last_purchase_at, purchase_occasions, purchase_count, refund_count,
               net_revenue_nanos, repeat_value_nanos, cost_nanos, uncosted_purchases
          FROM customers
    )
    SELECT count(*) FROM ((TABLE want EXCEPT TABLE got) UNION ALL (TABLE got EXCEPT TABLE want)) d";

/// One customer's transactions in a sending order: purchases shuffled,
/// each refund somewhere after its purchase.
pub(crate) fn customer_transactions(rng: &mut StdRng, customer: &str) -> Vec<pb::Transaction> {
    let mut sequence: Vec<pb::Transaction> = Vec::new();
    for i in 0..rng.random_range(1..10) {
        // Few days, so purchases share days and land before, on, between
        // and after the days already stored.
        let when = at(2026, 3, 1, 0, 0)
            + chrono::Duration::days(rng.random_range(0..8))
            + chrono::Duration::minutes(rng.random_range(0..1440));
        let cents = rng.random_range(0..50_000);
        let mut p = purchase(customer, &format!("p{i}"), when, cents);
        if rng.random_bool(0.5) {
            p.cost = Some(usd_cents(cents / 3));
        }
        let at_index = rng.random_range(0..=sequence.len());
        sequence.insert(at_index, p);
        let mut left = cents;
        for j in 0..rng.random_range(0..3) {
            if left == 0 {
                break;
            }
            let amount = rng.random_range(1..=left);
            left -= amount;
            let r = refund(
                customer,
                &format!("r{i}-{j}"),
                &format!("p{i}"),
                when + chrono::Duration::hours(3),
                amount,
            );
            let after = sequence
                .iter()
                .position(|t| t.transaction_id == format!("p{i}"))
                .unwrap_or(0);
            let at_index = rng.random_range(after + 1..=sequence.len());
            sequence.insert(at_index, r);
        }
    }
    sequence
}

/// Batches of one lane: chunks of its sequence, some followed by a resend
/// of themselves, some carrying a few already sent transactions along with
/// new ones; the whole lane is sent again at the end.
fn lane_batches(rng: &mut StdRng, sequence: &[pb::Transaction]) -> Vec<Vec<pb::Transaction>> {
    let mut batches = Vec::new();
    let mut sent: Vec<pb::Transaction> = Vec::new();
    let mut rest = sequence;
    while !rest.is_empty() {
        let n = rng.random_range(1..=rest.len().min(12));
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        let mut batch = chunk.to_vec();
        if !sent.is_empty() && rng.random_bool(0.3) {
            for _ in 0..rng.random_range(1..3) {
                let old = sent[rng.random_range(0..sent.len())].clone();
                batch.push(old);
            }
            batch.shuffle(rng);
        }
        sent.extend_from_slice(chunk);
        batches.push(batch.clone());
        if rng.random_bool(0.2) {
            batches.push(batch);
        }
    }
    batches.extend(sequence.chunks(7).map(<[_]>::to_vec));
    batches
}

/// Sends `batches` as one ImportTransactions stream and expects it to succeed.
pub(crate) async fn import(app: &TestApp, batches: Vec<Vec<pb::Transaction>>) {
    let requests: Vec<_> = batches
        .into_iter()
        .map(|transactions| pb::ImportTransactionsRequest { transactions })
        .collect();
    app.ingest()
        .await
        .import_transactions(futures::stream::iter(requests))
        .await
        .expect("import");
}

async fn record_each(app: &TestApp, rng: &mut StdRng, sequence: Vec<pb::Transaction>) {
    let mut client = app.ingest().await;
    for t in sequence {
        let again = rng.random_bool(0.3);
        client
            .record_transaction(record(t.clone()))
            .await
            .expect("record");
        if again {
            client
                .record_transaction(record(t))
                .await
                .expect("record again");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retried_and_mixed_batches_store_what_plain_sql_recomputes() {
    let app = spawn_app().await;
    for seed in 0..6u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        // Lanes 0 and 1 import (their own customers), lane 2 records one
        // call at a time; all three run at once.
        let mut lanes: Vec<Vec<pb::Transaction>> = vec![Vec::new(); 3];
        let mut distinct = 0;
        for c in 0..15 {
            let sequence = customer_transactions(&mut rng, &format!("s{seed}-c{c}"));
            distinct += sequence.len();
            lanes[c % 3].extend(sequence);
        }
        let unary = lanes.pop().unwrap_or_default();
        let second = lanes.pop().unwrap_or_default();
        let first = lanes.pop().unwrap_or_default();
        let (first, second) = (
            lane_batches(&mut rng, &first),
            lane_batches(&mut rng, &second),
        );
        let mut unary_rng = StdRng::seed_from_u64(seed + 100);
        tokio::join!(
            import(&app, first),
            import(&app, second),
            record_each(&app, &mut unary_rng, unary)
        );
        assert_stored_as_plain_sql_recomputes(&app, &format!("s{seed}-"), distinct, seed).await;
    }
}

/// Exactly `distinct` transactions are stored for the customers whose ids
/// start with `prefix`, and every day row, refunded amount and summary
/// equals the plain SQL recomputation over the stored transactions.
pub(crate) async fn assert_stored_as_plain_sql_recomputes(
    app: &TestApp,
    prefix: &str,
    distinct: usize,
    seed: u64,
) {
    let stored = app
        .count(&format!(
            "SELECT count(*) FROM transactions WHERE customer_id LIKE '{prefix}%'"
        ))
        .await;
    assert_eq!(stored, distinct as i64, "seed {seed}: transactions stored");
    assert_eq!(app.count(DAYS_DIFFERING).await, 0, "seed {seed}: day rows");
    assert_eq!(
        app.count(REFUNDED_DIFFERING).await,
        0,
        "seed {seed}: refunded"
    );
    assert_eq!(
        app.count(SUMMARIES_DIFFERING).await,
        0,
        "seed {seed}: summaries"
    );
}

/// Sequential scans of `transactions` and `customers` in this database
/// so far, once the server's sessions have reported the counts of the
/// first `inserted` transactions (each session reports its counts at most
/// once a second, and an idle one within ten seconds).
async fn seq_scans(app: &TestApp, inserted: i64) -> (i64, i64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let reported = app
            .count("SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'transactions'")
            .await;
        if reported >= inserted {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "statistics of {inserted} inserts not reported ({reported})"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let scans =
        |table: &str| format!("SELECT seq_scan FROM pg_stat_user_tables WHERE relname = '{table}'");
    (
        app.count(&scans("transactions")).await,
        app.count(&scans("customers")).await,
    )
}

/// A batch of existing customers was joined to `transactions` (the key
/// read) and to `customers` (the summary update) by scanning each whole
/// table: a cost per batch that grows with the tables. It must probe the
/// primary keys instead.
#[tokio::test]
async fn a_batch_of_existing_customers_scans_no_table() {
    let app = spawn_app_with(|s| s.report_aggregate_interval_ms = 3_600_000).await;
    let batch = |round: i64| pb::ImportTransactionsRequest {
        transactions: (0..2_000)
            .map(|c| {
                let when = at(2026, 1, 1, 0, 0) + chrono::Duration::days(round * 10 + c % 7);
                purchase(&format!("c{c}"), &format!("t{round}-{c}"), when, 100 + c)
            })
            .collect(),
    };
    let mut client = app.ingest().await;
    for round in 0..2 {
        client
            .import_transactions(futures::stream::iter(vec![batch(round)]))
            .await
            .expect("first batches");
    }
    let before = seq_scans(&app, 4_000).await;
    // Backdated purchases, between and before the stored days: these need
    // the occasion read too.
    let mut late = batch(2);
    for (i, t) in late.transactions.iter_mut().enumerate() {
        let day = if i % 2 == 0 { 5 } else { -3 };
        t.occurred_at = Some(timestamp(
            at(2026, 1, 1, 12, 0) + chrono::Duration::days(day),
        ));
    }
    client
        .import_transactions(futures::stream::iter(vec![batch(3), late]))
        .await
        .expect("batches of existing customers");
    assert_eq!(
        seq_scans(&app, 8_000).await,
        before,
        "sequential scans of (transactions, customers)"
    );
    // Counted after the scans were read: a count(*) is a scan itself.
    assert_eq!(app.transactions_stored().await, 8_000);
}
