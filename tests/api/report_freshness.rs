//! The cohort report aggregates under load: after imports, backdated
//! purchases, refunds and erasures arriving in random order and
//! concurrently (with aggregation steps and reports running meanwhile),
//! every stored cell equals a plain SQL computation over the raw
//! `transactions` rows; and under steady ingest each report includes
//! everything acknowledged before the call started.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
};

use chrono::{DateTime, Datelike, Duration, Utc};
use clvd::api::pb;
use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};

use crate::{helpers::*, report_cohorts::reports};

/// Every cohort cell, per granularity, from the raw rows: net value of a
/// purchase is its amount less the refunds that name it; a customer's
/// cohort is the period of their first purchase day; a repeat customer has
/// purchases on two or more days. Rows as text, sorted.
const PLAIN_CELLS: &str = "
    WITH r AS (
        SELECT customer_id, refunded_transaction_id AS transaction_id, sum(amount_nanos) AS refunded
          FROM transactions WHERE kind = 2 GROUP BY 1, 2
    ), p AS (
        SELECT t.customer_id, t.occasion_day AS day,
               t.amount_nanos - coalesce(r.refunded, 0) AS net, t.cost_nanos
          FROM transactions t LEFT JOIN r USING (customer_id, transaction_id)
         WHERE t.kind = 1
    ), f AS (
        SELECT customer_id, min(day) AS first, count(DISTINCT day) AS occasions
          FROM p GROUP BY 1
    ), x AS (
        SELECT g.granularity, date_trunc(g.unit, f.first::timestamp)::date AS cohort,
               date_trunc(g.unit, p.day::timestamp)::date AS period, p.customer_id, p.net,
               p.cost_nanos, f.occasions
          FROM p JOIN f USING (customer_id)
         CROSS JOIN (VALUES (1::int2, 'week'), (2::int2, 'month'), (3::int2, 'quarter'))
               AS g(granularity, unit)
    )
    SELECT concat_ws(' ', granularity, cohort, period, count(DISTINCT customer_id),
                     count(DISTINCT customer_id) FILTER (WHERE occasions >= 2 AND period = cohort),
                     count(*), sum(net), coalesce(sum(cost_nanos), 0),
                     count(*) FILTER (WHERE cost_nanos IS NULL))
      FROM x GROUP BY granularity, cohort, period
     ORDER BY granularity, cohort, period";

/// The stored cells in the same form (cells summing to nothing left out).
const STORED_CELLS: &str = "
    SELECT concat_ws(' ', granularity, cohort, period, customers, repeat_customers, orders,
                     net_nanos, cost_nanos, uncosted)
      FROM cohort_cells
     WHERE (customers, repeat_customers, orders, net_nanos, cost_nanos, uncosted)
           <> (0, 0, 0, 0, 0, 0)
     ORDER BY granularity, cohort, period";

async fn rows(app: &TestApp, sql: &str) -> Vec<String> {
    sqlx::query_scalar(sql).fetch_all(&app.pool).await.unwrap()
}

/// Calls GetCohortReport (everything recorded) until `done`, so that
/// reports catch the aggregates up while ingest runs.
async fn report_until(app: &TestApp, done: Arc<AtomicBool>) -> usize {
    let mut client = reports(app).await;
    let mut calls = 0;
    while !done.load(Ordering::Relaxed) {
        client
            .get_cohort_report(pb::GetCohortReportRequest {
                granularity: pb::Granularity::Week as i32,
                first_cohort: Some(timestamp(at(2025, 1, 1, 0, 0))),
                last_cohort: Some(timestamp(at(2025, 12, 1, 0, 0))),
                periods: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        calls += 1;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    calls
}

/// Aggregation steps of random sizes until `done`, next to the background
/// job and the reports' catch-ups.
async fn step_until(app: &TestApp, done: Arc<AtomicBool>, seed: u64) -> usize {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut taken = 0;
    while !done.load(Ordering::Relaxed) {
        taken += app
            .storage
            .aggregate_step(rng.random_range(1..300), None)
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(rng.random_range(0..20))).await;
    }
    taken
}

/// Sends `work` as ImportTransactions streams of random batch sizes, or
/// one RecordTransaction at a time, on `streams` concurrent connections.
async fn send_concurrently(app: &TestApp, work: Vec<pb::Transaction>, streams: usize, seed: u64) {
    let mut tasks = Vec::new();
    for (s, part) in work
        .chunks(work.len().div_ceil(streams).max(1))
        .map(<[pb::Transaction]>::to_vec)
        .enumerate()
    {
        let mut client = app.ingest().await;
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed + s as u64);
            let mut rest = part.as_slice();
            while !rest.is_empty() {
                let n = rng.random_range(1..=40).min(rest.len());
                let (now, later) = rest.split_at(n);
                rest = later;
                if n == 1 {
                    client.record_transaction(record(now[0].clone())).await?;
                } else {
                    let batch = pb::ImportTransactionsRequest {
                        transactions: now.to_vec(),
                    };
                    client
                        .import_transactions(futures::stream::iter([batch]))
                        .await?;
                }
            }
            Ok::<_, tonic::Status>(())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn cohort_cells_equal_plain_sql_after_concurrent_imports_refunds_backdating_and_erasures() {
    let app = spawn_app().await;
    let mut rng = StdRng::seed_from_u64(15);
    let start = at(2025, 3, 1, 0, 0);
    let span = (at(2026, 3, 1, 0, 0) - start).num_seconds();
    // 300 customers, 1-12 purchases each (some two on one day), half with a
    // cost, all shuffled: a customer's later-sent purchase is often earlier
    // than the ones already stored (a backdated purchase moves the customer
    // to an earlier cohort).
    let mut purchases = Vec::new();
    for c in 0..300 {
        let first = start + Duration::seconds(rng.random_range(0..span));
        for n in 0..rng.random_range(1..=12) {
            let when = if n > 0 && rng.random_bool(0.15) {
                first + Duration::minutes(rng.random_range(0..300))
            } else {
                start + Duration::seconds(rng.random_range(0..span))
            };
            let mut t = purchase(
                &format!("c{c}"),
                &format!("p{n}"),
                when,
                rng.random_range(1..50_000),
            );
            if rng.random_bool(0.5) {
                t.cost = Some(usd_cents(rng.random_range(0..10_000)));
            }
            purchases.push(t);
        }
    }
    purchases.shuffle(&mut rng);

    let done = Arc::new(AtomicBool::new(false));
    let app = Arc::new(app);
    let side = |app: &Arc<TestApp>, seed| {
        let (a, b, d) = (app.clone(), app.clone(), done.clone());
        let d2 = d.clone();
        (
            tokio::spawn(async move { step_until(&a, d, seed).await }),
            tokio::spawn(async move { report_until(&b, d2).await }),
        )
    };

    // Phase 1: every purchase, four streams, with steps and reports.
    let (steps, calls) = side(&app, 1);
    send_concurrently(&app, purchases.clone(), 4, 100).await;
    done.store(true, Ordering::Relaxed);
    let (stepped, reported) = (steps.await.unwrap(), calls.await.unwrap());

    // Phase 2, all at once: refunds of stored purchases, purchases dated
    // before everything stored (new first days), and erasures.
    let mut erased: Vec<String> = (0..300)
        .filter(|_| rng.random_bool(0.08))
        .map(|c| format!("c{c}"))
        .collect();
    erased.sort();
    let mut later = Vec::new();
    for (i, p) in purchases.iter().enumerate() {
        if erased.binary_search(&p.customer_id).is_ok() {
            continue;
        }
        let cents = crate::report_cohorts::cents(&p.amount);
        let when =
            DateTime::<Utc>::from_timestamp(p.occurred_at.as_ref().unwrap().seconds, 0).unwrap();
        if rng.random_bool(0.15) {
            let part = rng.random_range(1..=cents);
            later.push(refund(
                &p.customer_id,
                &format!("r{i}"),
                &p.transaction_id,
                when + Duration::days(rng.random_range(1..40)),
                part,
            ));
        }
        if rng.random_bool(0.03) {
            later.push(purchase(
                &p.customer_id,
                &format!("early{i}"),
                at(2025, 1, 1, 0, 0) + Duration::hours(rng.random_range(0..24 * 58)),
                rng.random_range(1..5_000),
            ));
        }
    }
    later.shuffle(&mut rng);
    done.store(false, Ordering::Relaxed);
    let (steps, calls) = side(&app, 2);
    let eraser = {
        let app = app.clone();
        let erased = erased.clone();
        tokio::spawn(async move {
            let mut client = app.ingest().await;
            for customer in erased {
                client
                    .delete_customer(pb::DeleteCustomerRequest {
                        customer_id: customer,
                    })
                    .await
                    .unwrap();
            }
        })
    };
    send_concurrently(&app, later.clone(), 3, 200).await;
    eraser.await.unwrap();
    done.store(true, Ordering::Relaxed);
    let stepped = stepped + steps.await.unwrap();
    let reported = reported + calls.await.unwrap();

    // The data is what the test meant to make.
    assert!(!erased.is_empty() && later.len() > 100, "{later:?}");
    assert!(
        stepped > 0 && reported > 0,
        "steps {stepped}, reports {reported}"
    );
    let backdated = app
        .count(
            "SELECT count(*) FROM transactions WHERE transaction_id LIKE 'early%'
                AND occasion_day < (SELECT min(occasion_day) FROM transactions t
                                     WHERE t.customer_id = transactions.customer_id
                                       AND t.transaction_id NOT LIKE 'early%')",
        )
        .await;
    assert!(backdated > 0);
    for c in &erased {
        let n = app
            .count(&format!(
                "SELECT count(*) FROM transactions WHERE customer_id = '{c}'"
            ))
            .await;
        assert_eq!(n, 0, "{c} erased");
    }

    // A report without as_of brings the cells up to date; then every cell
    // of every granularity equals the plain computation.
    reports(&app)
        .await
        .get_cohort_report(crate::report_cohorts::monthly(at(2025, 1, 1, 0, 0), 3))
        .await
        .unwrap();
    let want = rows(&app, PLAIN_CELLS).await;
    let got = rows(&app, STORED_CELLS).await;
    assert!(want.len() > 500, "only {} cells", want.len());
    assert_eq!(got, want);
}

/// Orders acknowledged per (cohort month, months since), for customers
/// whose purchases are sent in time order (so the cohort never moves).
type Acked = HashMap<(u32, u32), u64>;

fn month_index(t: DateTime<Utc>) -> u32 {
    (t.year() as u32 - 2025) * 12 + t.month0()
}

#[tokio::test]
async fn each_report_under_steady_ingest_includes_everything_acknowledged_before_it() {
    reports_under_steady_ingest(spawn_app().await).await;
}

/// The same with the aggregates far behind (the job off, a bulk import's
/// backlog queued): every report reads the rollups.
#[tokio::test]
async fn each_report_behind_a_large_backlog_includes_everything_acknowledged_before_it() {
    let app = spawn_app_with(|s| s.report_aggregate_interval_ms = 0).await;
    sqlx::query(
        "INSERT INTO report_dirty (customer_id)
         SELECT 'queued' || n FROM generate_series(1, $1::int8) n",
    )
    .bind(LARGE_BACKLOG)
    .execute(&app.pool)
    .await
    .unwrap();
    reports_under_steady_ingest(app).await;
}

async fn reports_under_steady_ingest(app: TestApp) {
    let app = Arc::new(app);
    let acked: Arc<Mutex<Acked>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));

    // Three streams of RecordTransaction and one of small imports, each
    // for its own customers, each customer's purchases in time order
    // within 2025.
    let mut writers = Vec::new();
    for stream in 0..4u64 {
        let (app, acked) = (app.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(stream);
            let mut client = app.ingest().await;
            for c in 0..60 {
                let customer = format!("s{stream}c{c}");
                let mut when =
                    at(2025, 1, 1, 0, 0) + Duration::hours(rng.random_range(0..24 * 200));
                let first = month_index(when);
                let mut batch = Vec::new();
                for n in 0..rng.random_range(1..6) {
                    if n > 0 {
                        when += Duration::hours(rng.random_range(0..24 * 30));
                    }
                    let t = purchase(&customer, &format!("p{n}"), when, 1_000);
                    batch.push(((first, month_index(when) - first), t));
                }
                if stream == 3 {
                    let request = pb::ImportTransactionsRequest {
                        transactions: batch.iter().map(|(_, t)| t.clone()).collect(),
                    };
                    client
                        .import_transactions(futures::stream::iter([request]))
                        .await
                        .unwrap();
                    let mut a = acked.lock().unwrap();
                    for (cell, _) in &batch {
                        *a.entry(*cell).or_default() += 1;
                    }
                } else {
                    for (cell, t) in batch {
                        client.record_transaction(record(t)).await.unwrap();
                        *acked.lock().unwrap().entry(cell).or_default() += 1;
                    }
                }
            }
        }));
    }

    let reporter = {
        let (app, acked, done) = (app.clone(), acked.clone(), done.clone());
        tokio::spawn(async move {
            let mut client = reports(&app).await;
            let mut checks = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let before = acked.lock().unwrap().clone();
                let r = client
                    .get_cohort_report(pb::GetCohortReportRequest {
                        granularity: pb::Granularity::Month as i32,
                        first_cohort: Some(timestamp(at(2025, 1, 1, 0, 0))),
                        last_cohort: Some(timestamp(at(2025, 12, 1, 0, 0))),
                        periods: 18,
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner();
                let mut got = Acked::new();
                for (i, c) in r.cohorts.iter().enumerate() {
                    for p in &c.periods {
                        if p.orders > 0 {
                            got.insert((i as u32, p.k), p.orders);
                        }
                    }
                }
                checks.push((before, got));
            }
            checks
        })
    };

    for w in writers {
        w.await.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let checks = reporter.await.unwrap();
    let all = acked.lock().unwrap().clone();
    assert!(checks.len() >= 3, "only {} reports", checks.len());
    let mut growing = 0;
    for (n, (before, got)) in checks.iter().enumerate() {
        for (cell, want) in before {
            let have = got.get(cell).copied().unwrap_or(0);
            assert!(
                have >= *want,
                "report {n}: cell {cell:?} has {have} orders, {want} were acknowledged before the call"
            );
        }
        for (cell, have) in got {
            let most = all.get(cell).copied().unwrap_or(0);
            assert!(
                *have <= most,
                "report {n}: cell {cell:?} has {have} orders, only {most} were ever sent"
            );
        }
        if before.values().sum::<u64>() < all.values().sum::<u64>() {
            growing += 1;
        }
    }
    // The reports ran while ingest did, not only after it.
    assert!(growing >= 2, "only {growing} reports ran during ingest");
}

/// Each `customer_periods` and `cohort_cells` row as "key version", the
/// version being the row's physical place and writing transaction: a
/// rewritten row gets a new one.
const ROW_VERSIONS: &str = "
    SELECT concat_ws(' ', customer_id, granularity, period, ctid, xmin) FROM customer_periods
    UNION ALL
    SELECT concat_ws(' ', 'cell', granularity, cohort, period, ctid, xmin) FROM cohort_cells
    ORDER BY 1";

#[tokio::test]
async fn a_catch_up_recomputes_each_queued_customer_once_and_rewrites_only_what_changed() {
    let app = spawn_app_with(|s| s.report_aggregate_interval_ms = 0).await;
    let mut client = app.ingest().await;
    // 40 customers, one purchase each in 5 imports (on 5 days of 2025):
    // each customer is queued 5 times.
    for round in 0..5u32 {
        let transactions = (0..40)
            .map(|c| {
                purchase(
                    &format!("c{c}"),
                    &format!("p{round}"),
                    at(2025, 1 + round * 2, 3 + c % 20, 10, 0),
                    1_000 + i64::from(c),
                )
            })
            .collect();
        client
            .import_transactions(futures::stream::iter([pb::ImportTransactionsRequest {
                transactions,
            }]))
            .await
            .unwrap();
    }
    assert_eq!(app.count("SELECT count(*) FROM report_dirty").await, 200);
    let end = app.storage.aggregate_queue_end().await.unwrap().unwrap();
    assert_eq!(app.storage.aggregate_through(end).await.unwrap(), 40);
    assert_eq!(app.count("SELECT count(*) FROM report_dirty").await, 0);
    assert_eq!(
        rows(&app, STORED_CELLS).await,
        rows(&app, PLAIN_CELLS).await
    );

    // Everyone queued again with nothing changed (as when a batch commits
    // while a step that already counts it runs): recomputed, nothing
    // rewritten.
    let before = rows(&app, ROW_VERSIONS).await;
    sqlx::query("INSERT INTO report_dirty (customer_id) SELECT customer_id FROM customers")
        .execute(&app.pool)
        .await
        .unwrap();
    let end = app.storage.aggregate_queue_end().await.unwrap().unwrap();
    assert_eq!(app.storage.aggregate_through(end).await.unwrap(), 40);
    assert_eq!(rows(&app, ROW_VERSIONS).await, before);

    // One more purchase of one customer, on a new day of a month they
    // already bought in: only that customer's rows for that week, month
    // and quarter, and those cells, are rewritten.
    client
        .record_transaction(record(purchase("c7", "extra", at(2025, 1, 28, 10, 0), 500)))
        .await
        .unwrap();
    let end = app.storage.aggregate_queue_end().await.unwrap().unwrap();
    assert_eq!(app.storage.aggregate_through(end).await.unwrap(), 1);
    let after = rows(&app, ROW_VERSIONS).await;
    let changed: Vec<&String> = after.iter().filter(|r| !before.contains(r)).collect();
    let keys: Vec<String> = changed
        .iter()
        .map(|r| r.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .collect();
    assert!(
        changed.len() <= 6 && keys.iter().filter(|k| k.starts_with("c7 ")).count() == 3,
        "rewritten: {changed:?}"
    );
    assert!(
        keys.iter()
            .all(|k| k.starts_with("c7 ") || k.starts_with("cell ")),
        "{keys:?}"
    );
    assert_eq!(
        rows(&app, STORED_CELLS).await,
        rows(&app, PLAIN_CELLS).await
    );
}

/// Every cohort of 2025 (to 2025-12-20) for 15 periods, per granularity,
/// without the call's own instant.
async fn cohorts_of_every_granularity(app: &TestApp) -> Vec<Vec<pb::Cohort>> {
    let mut client = reports(app).await;
    let mut all = Vec::new();
    for granularity in [
        pb::Granularity::Week,
        pb::Granularity::Month,
        pb::Granularity::Quarter,
    ] {
        let r = client
            .get_cohort_report(pb::GetCohortReportRequest {
                granularity: granularity as i32,
                first_cohort: Some(timestamp(at(2025, 1, 1, 0, 0))),
                last_cohort: Some(timestamp(at(2025, 12, 20, 0, 0))),
                periods: 15,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        all.push(r.cohorts);
    }
    all
}

/// Queue entries added to stand for a bulk import's backlog: more than a
/// report catches up inside the call.
const LARGE_BACKLOG: i64 = 20_000;

#[tokio::test]
async fn a_report_behind_a_large_backlog_reads_the_rollups_without_catching_up_and_equals_the_caught_up_cells(
) {
    let app = spawn_app_with(|s| s.report_aggregate_interval_ms = 0).await;
    let mut client = app.ingest().await;
    let mut rng = StdRng::seed_from_u64(77);
    // 120 customers, 1-6 purchases each over 2025, half with a cost, sent
    // in shuffled imports; then refunds and purchases dated before
    // everything stored (new cohorts), and one erasure.
    let mut purchases = Vec::new();
    for c in 0..120 {
        for n in 0..rng.random_range(1..=6) {
            let mut t = purchase(
                &format!("c{c}"),
                &format!("p{n}"),
                at(2025, 2, 1, 0, 0) + Duration::hours(rng.random_range(0..24 * 300)),
                rng.random_range(1..50_000),
            );
            if rng.random_bool(0.5) {
                t.cost = Some(usd_cents(rng.random_range(0..10_000)));
            }
            purchases.push(t);
        }
    }
    purchases.shuffle(&mut rng);
    for chunk in purchases.chunks(50) {
        client
            .import_transactions(futures::stream::iter([pb::ImportTransactionsRequest {
                transactions: chunk.to_vec(),
            }]))
            .await
            .unwrap();
    }
    // A small backlog is caught up by the report itself.
    let caught_up = cohorts_of_every_granularity(&app).await;
    assert_eq!(app.count("SELECT count(*) FROM report_dirty").await, 0);
    assert_eq!(
        rows(&app, STORED_CELLS).await,
        rows(&app, PLAIN_CELLS).await
    );

    let mut later = Vec::new();
    for (i, p) in purchases.iter().enumerate() {
        if rng.random_bool(0.2) {
            let when = DateTime::<Utc>::from_timestamp(p.occurred_at.as_ref().unwrap().seconds, 0)
                .unwrap();
            let cents = crate::report_cohorts::cents(&p.amount);
            later.push(refund(
                &p.customer_id,
                &format!("r{i}"),
                &p.transaction_id,
                when + Duration::days(3),
                rng.random_range(1..=cents),
            ));
        }
        if rng.random_bool(0.05) {
            later.push(purchase(
                &p.customer_id,
                &format!("early{i}"),
                at(2025, 1, 1, 0, 0) + Duration::hours(rng.random_range(0..24 * 30)),
                rng.random_range(1..5_000),
            ));
        }
    }
    later.shuffle(&mut rng);
    send_concurrently(&app, later, 3, 300).await;
    client
        .delete_customer(pb::DeleteCustomerRequest {
            customer_id: "c3".into(),
        })
        .await
        .unwrap();
    // The backlog a bulk import leaves: every customer queued many times.
    sqlx::query(
        "INSERT INTO report_dirty (customer_id)
         SELECT customer_id FROM customers, generate_series(1, $1::int8 / 100)
          ORDER BY random() LIMIT $1",
    )
    .bind(LARGE_BACKLOG)
    .execute(&app.pool)
    .await
    .unwrap();
    let queued = app.count("SELECT count(*) FROM report_dirty").await;
    assert!(queued >= LARGE_BACKLOG, "{queued} queued");
    assert!(queued > clvd::service::CATCH_UP_AT_MOST);

    // The report answers without catching the backlog up (the queue is as
    // it was) and includes everything committed before it.
    let from_rollups = cohorts_of_every_granularity(&app).await;
    assert_eq!(
        app.count("SELECT count(*) FROM report_dirty").await,
        queued,
        "the report caught the backlog up inside the call"
    );
    assert_ne!(from_rollups, caught_up, "the later data changed the report");

    // The same reports from the aggregates once caught up, and the cells
    // equal the plain computation over the raw rows.
    let end = app.storage.aggregate_queue_end().await.unwrap().unwrap();
    app.storage.aggregate_through(end).await.unwrap();
    assert_eq!(
        rows(&app, STORED_CELLS).await,
        rows(&app, PLAIN_CELLS).await
    );
    assert_eq!(cohorts_of_every_granularity(&app).await, from_rollups);
}
