//! Cohort report benchmark: a 24-month × 24-period monthly cohort report
//! over gRPC (everything recorded, no as_of) against the plain SQL GROUP BY
//! over the transactions table that a user would write for the same
//! numbers, in one run, on the same database.
//!
//! Setup writes the data with SQL inside PostgreSQL (support/cohort_data.rs:
//! importing 10M transactions over gRPC takes far longer than the bench
//! itself), in exactly the shape ingest stores: transactions (purchases and
//! refunds, refunds booked on their purchase), per-day rollups, customer
//! summaries. Every customer is then queued for the report aggregates and
//! the aggregation step is run to completion (timed: what a first
//! deployment over existing data costs). clvd runs as its own process (the
//! release binary). The bench checks that the report and the plain query
//! agree cell by cell before timing them.
//!
//! Run: `cargo bench --bench reports`. Knobs: `BENCH_CUSTOMERS` (1,000,000),
//! `BENCH_TRANSACTIONS` (about 10,000,000 purchases, plus 1 in 20 refunded),
//! `BENCH_ROUNDS` (report rounds, 10), `BENCH_PLAIN_ROUNDS` (3).
//!
//! `BENCH_SCENARIO=first` times the first report after a bulk import
//! instead (defaults 200,000 customers, 1,000,000 purchases): the same SQL
//! setup, then the queue a bulk import leaves behind when the background
//! job has done none of it (one entry per purchase, in random order: an
//! import in batches of thousands queues a customer once per batch it
//! appears in), with the server's background job off
//! (`CLVD_REPORT_AGGREGATE_INTERVAL_MS=0`); the first GetCohortReport,
//! behind by more than the catch-up bound, reads the rollups and leaves
//! the queue alone (checked). It is checked against the plain query, a
//! second report is timed, then the queue is caught up in one step (what
//! the job would do, timed) and a report from the aggregates is timed and
//! checked.

#[path = "support/cohort_data.rs"]
mod cohort_data;
mod support;

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};
use support::{connect, cpu_model, env_or, median, num_cpus, spawn_clvd, spawn_clvd_with};

use anyhow::{ensure, Context};
use chrono::NaiveDate;
use clvd::{
    api::pb::{self, report_service_client::ReportServiceClient},
    storage::Storage,
};
use sqlx::{PgPool, Row};

/// The query a user would write: net revenue per purchase (refunds of it
/// subtracted), each customer's first purchase month as the cohort, then
/// one GROUP BY over cohort and month.
const PLAIN: &str = "
    WITH refunds AS (
        SELECT customer_id, refunded_transaction_id AS transaction_id, sum(amount_nanos) AS refunded
          FROM transactions WHERE kind = 2 GROUP BY 1, 2
    ), purchases AS (
        SELECT p.customer_id, p.occasion_day, p.amount_nanos - coalesce(r.refunded, 0) AS net
          FROM transactions p LEFT JOIN refunds r USING (customer_id, transaction_id)
         WHERE p.kind = 1
    ), firsts AS (
        SELECT customer_id, date_trunc('month', min(occasion_day))::date AS cohort
          FROM purchases GROUP BY customer_id
    )
    SELECT f.cohort, date_trunc('month', p.occasion_day)::date AS period,
           count(DISTINCT p.customer_id) AS active, count(*) AS orders, sum(p.net)::int8 AS revenue
      FROM purchases p JOIN firsts f USING (customer_id)
     WHERE f.cohort >= '2024-11-01' AND f.cohort < '2026-11-01'
     GROUP BY 1, 2";

struct Knobs {
    customers: i64,
    transactions: i64,
    rounds: usize,
    plain_rounds: usize,
}

fn main() -> anyhow::Result<()> {
    let first = std::env::var("BENCH_SCENARIO").is_ok_and(|s| s == "first");
    let (customers, transactions) = if first {
        (200_000, 1_000_000)
    } else {
        (1_000_000, 10_000_000)
    };
    let k = Knobs {
        customers: env_or("BENCH_CUSTOMERS", customers),
        transactions: env_or("BENCH_TRANSACTIONS", transactions),
        rounds: env_or("BENCH_ROUNDS", 10),
        plain_rounds: env_or("BENCH_PLAIN_ROUNDS", 3),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if first {
        rt.block_on(first_report(k))
    } else {
        rt.block_on(run(k))
    }
}

/// The first report after a bulk import, with the import's queue left
/// whole (see the module doc).
async fn first_report(k: Knobs) -> anyhow::Result<()> {
    let (dir, pg, pool) = support::start_postgres("reports-first", true).await?;
    Storage::from_pool(pool.clone()).migrate().await?;
    println!("machine: {} cores, {}", num_cpus(), cpu_model());
    println!("postgres: {}", pg.bin_dir().display());
    let started = Instant::now();
    cohort_data::load(&pool, k.customers, k.transactions).await?;
    sqlx::query(
        "INSERT INTO report_dirty (customer_id)
         SELECT customer_id FROM transactions WHERE kind = 1 ORDER BY random()",
    )
    .execute(&pool)
    .await?;
    sqlx::query("VACUUM ANALYZE").execute(&pool).await?;
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM report_dirty")
        .fetch_one(&pool)
        .await?;
    println!(
        "loaded {} customers, {} purchases, {queued} queue entries in {:.0} s",
        k.customers,
        k.transactions,
        started.elapsed().as_secs_f64()
    );

    let (mut server, endpoint) = spawn_clvd_with(
        &pg.url("bench"),
        8,
        &[("CLVD_REPORT_AGGREGATE_INTERVAL_MS", "0")],
    )?;
    let result = async {
        let mut client = ReportServiceClient::new(connect(&endpoint, 1).await?.remove(0));
        let mut times = Vec::new();
        let mut first = None;
        for _ in 0..2 {
            let started = Instant::now();
            let r = client
                .get_cohort_report(request())
                .await
                .context("GetCohortReport")?
                .into_inner();
            times.push(started.elapsed().as_secs_f64());
            first.get_or_insert(r);
        }
        // Behind by more than the catch-up bound, the reports read the
        // rollups and leave the queue to the background job.
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM report_dirty")
            .fetch_one(&pool)
            .await?;
        ensure!(
            left == queued || queued <= clvd::service::CATCH_UP_AT_MOST,
            "the report caught up {} queue entries inside the call",
            queued - left
        );
        let (want, _) = plain(&pool).await?;
        let got = report_cells(first.as_ref().context("no report")?);
        ensure!(got == want, "the first report and the plain query disagree");
        // What the background job then does, in one step, and a report
        // from the caught-up aggregates.
        let started = Instant::now();
        if let Some(end) = Storage::from_pool(pool.clone())
            .aggregate_queue_end()
            .await?
        {
            Storage::from_pool(pool.clone())
                .aggregate_through(end)
                .await?;
        }
        let catch_up = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let caught_up = client
            .get_cohort_report(request())
            .await
            .context("GetCohortReport")?
            .into_inner();
        let from_aggregates = started.elapsed().as_secs_f64();
        ensure!(
            report_cells(&caught_up) == want,
            "the report from the caught-up aggregates and the plain query disagree"
        );
        println!(
            "FIRST COHORT REPORT after a bulk import ({} customers, {} purchases, {queued} queue \
             entries, background job off): first GetCohortReport {:.2} s (equal to the plain \
             query on {} cells; {left} queue entries left to the job); second {:.1} ms; the \
             job's catch-up of the queue in one step {:.2} s; a report from the caught-up \
             aggregates {:.1} ms",
            k.customers,
            k.transactions,
            times[0],
            got.len(),
            times[1] * 1e3,
            catch_up,
            from_aggregates * 1e3
        );
        Ok(())
    }
    .await;
    let _ = server.kill();
    let _ = server.wait();
    pool.close().await;
    drop(pg);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run(k: Knobs) -> anyhow::Result<()> {
    // Reads are measured; durability settings only speed up the setup.
    let (dir, pg, pool) = support::start_postgres("reports", true).await?;
    let storage = Storage::from_pool(pool.clone());
    storage.migrate().await?;
    println!("machine: {} cores, {}", num_cpus(), cpu_model());
    println!("postgres: {}", pg.bin_dir().display());

    let started = Instant::now();
    cohort_data::load(&pool, k.customers, k.transactions).await?;
    let loaded = started.elapsed();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM transactions")
        .fetch_one(&pool)
        .await?;
    println!(
        "loaded {} customers, {rows} transactions (purchases and refunds) in {:.0} s",
        k.customers,
        loaded.as_secs_f64()
    );
    let started = Instant::now();
    sqlx::query("INSERT INTO report_dirty (customer_id) SELECT customer_id FROM customers")
        .execute(&pool)
        .await?;
    while storage.aggregate_step(10_000, None).await? > 0 {}
    println!(
        "report aggregates built for every customer in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    sqlx::query("VACUUM ANALYZE").execute(&pool).await?;

    let (mut server, endpoint) = spawn_clvd(&pg.url("bench"), 8)?;
    let result = measure(&k, &pool, &endpoint).await;
    let _ = server.kill();
    let _ = server.wait();
    pool.close().await;
    drop(pg);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

type Cells = HashMap<(NaiveDate, NaiveDate), (i64, i64, i64)>;

fn request() -> pb::GetCohortReportRequest {
    let first = chrono::DateTime::parse_from_rfc3339("2024-11-01T00:00:00Z").unwrap();
    let last = chrono::DateTime::parse_from_rfc3339("2026-10-01T00:00:00Z").unwrap();
    pb::GetCohortReportRequest {
        granularity: pb::Granularity::Month as i32,
        first_cohort: Some(prost_types::Timestamp {
            seconds: first.timestamp(),
            nanos: 0,
        }),
        last_cohort: Some(prost_types::Timestamp {
            seconds: last.timestamp(),
            nanos: 0,
        }),
        periods: 24,
        ..Default::default()
    }
}

/// (active, orders, revenue nanos) per (cohort, period) of a report.
fn report_cells(r: &pb::CohortReport) -> Cells {
    let mut out = Cells::new();
    for c in &r.cohorts {
        let cohort = NaiveDate::parse_from_str(&c.period_label, "%Y-%m-%d").unwrap();
        for p in c.periods.iter().filter(|p| p.orders > 0) {
            let m = p.revenue.as_ref().unwrap();
            let period = cohort + chrono::Months::new(p.k);
            out.insert(
                (cohort, period),
                (
                    p.active_customers as i64,
                    p.orders as i64,
                    m.units * 1_000_000_000 + i64::from(m.nanos),
                ),
            );
        }
    }
    out
}

async fn plain(pool: &PgPool) -> anyhow::Result<(Cells, Duration)> {
    let started = Instant::now();
    let rows = sqlx::query(PLAIN).fetch_all(pool).await?;
    let took = started.elapsed();
    let mut out = Cells::new();
    for row in rows {
        out.insert(
            (row.try_get("cohort")?, row.try_get("period")?),
            (
                row.try_get("active")?,
                row.try_get("orders")?,
                row.try_get("revenue")?,
            ),
        );
    }
    Ok((out, took))
}

async fn measure(k: &Knobs, pool: &PgPool, endpoint: &str) -> anyhow::Result<()> {
    let channel = connect(endpoint, 1).await?.remove(0);
    // Spend for every cohort month, so that CAC, LTV:CAC and payback are
    // computed too.
    cohort_data::record_monthly_spend(channel.clone()).await?;
    let mut client = ReportServiceClient::new(channel);
    let mut report_ms = Vec::new();
    let mut plain_ms = Vec::new();
    let mut checked = false;
    for round in 0..k.rounds.max(k.plain_rounds) {
        if round < k.rounds {
            let started = Instant::now();
            let r = client
                .get_cohort_report(request())
                .await
                .context("GetCohortReport")?
                .into_inner();
            let ms = started.elapsed().as_secs_f64() * 1e3;
            report_ms.push(ms);
            println!(
                "round {round}: GetCohortReport {ms:.1} ms ({} cohorts)",
                r.cohorts.len()
            );
            if !checked {
                let (want, took) = plain(pool).await?;
                let got = report_cells(&r);
                ensure!(got == want, "the report and the plain query disagree");
                println!(
                    "  the report equals the plain query on all {} cells (plain query {:.0} ms)",
                    got.len(),
                    took.as_secs_f64() * 1e3
                );
                plain_ms.push(took.as_secs_f64() * 1e3);
                checked = true;
                continue;
            }
        }
        if round < k.plain_rounds && round > 0 {
            let (_, took) = plain(pool).await?;
            println!(
                "round {round}: plain GROUP BY {:.0} ms",
                took.as_secs_f64() * 1e3
            );
            plain_ms.push(took.as_secs_f64() * 1e3);
        }
    }
    let (report, plain) = (median(report_ms), median(plain_ms));
    println!(
        "COHORT REPORT (24 monthly cohorts x 24 periods, {} customers, {} purchases): \
         GetCohortReport p50 {report:.1} ms; plain SQL GROUP BY p50 {plain:.0} ms; ratio {:.1}x",
        k.customers,
        k.transactions,
        plain / report
    );
    Ok(())
}
