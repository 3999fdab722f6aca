//! Ingest benchmark: clvd against PostgreSQL's own speed, in one run, on the
//! same machine, database and data.
//!
//! 1. Unary RecordTransaction at concurrency C (default 32) against pgbench
//!    running single-row INSERTs into a table of the same shape at the same
//!    concurrency: throughput, p50/p99 latency, ratio.
//! 2. ImportTransactions of N transactions (default 1,000,000) over M
//!    customers (default 200,000) against COPY of the same rows into a table
//!    of the same shape: rows per second, ratio. In the same rounds, the
//!    command-line client (`clvd import`, the real binary) imports the same
//!    rows from a CSV file in the example format: rows per second, and its
//!    ratio to ImportTransactions (`BENCH_CLI_IMPORT=0` skips it).
//!
//! 3. The cost of keeping the cohort report aggregates current: in the
//!    same rounds, ImportTransactions of the same rows into a second clvd
//!    whose background aggregation job is off
//!    (`CLVD_REPORT_AGGREGATE_INTERVAL_MS=0`): the import's slowdown with
//!    the job on, the queue the job-on import left behind and how long a
//!    catch-up (what the next report without as_of does) takes for it
//!    (`BENCH_AGGREGATION_COST=0` skips this).
//! 4. The import's floor, once after the rounds with the servers stopped:
//!    the same rows written by four set-based SQL statements per batch
//!    (benches/support/import_floor.rs), PostgreSQL's CPU per row, and the
//!    ceiling it puts on ImportTransactions / COPY on this machine
//!    (`BENCH_SQL_FLOOR=0` skips it).
//!
//! Both sides use one private PostgreSQL with durable settings (fsync on),
//! started here from the machine's binaries; clvd runs as its own process
//! (the release binary). Rounds alternate baseline and clvd; medians are
//! reported. Run: `cargo bench --bench ingest` (env knobs below).

#[path = "support/cpu.rs"]
mod cpu;
#[path = "support/import_floor.rs"]
mod import_floor;
#[path = "support/lean_grpc.rs"]
mod lean_grpc;
#[path = "support/pgbench.rs"]
mod pgbench;
mod support;

use std::{
    io::Write,
    process::Command,
    time::{Duration, Instant},
};
use support::{connect, cpu_model, env_or, median, money, num_cpus, spawn_clvd, spawn_clvd_with};

use anyhow::{bail, Context};
use clvd::{
    api::pb::{self, ingest_service_client::IngestServiceClient},
    embedded_postgres::EmbeddedPostgres,
    storage::Storage,
};
use hdrhistogram::Histogram;
use lean_grpc::{workers_of, GrpcPath, LeanChannel, LeanGenerator};
use rand::{rngs::StdRng, Rng, SeedableRng};
use sqlx::PgPool;
use tonic::transport::Channel;

/// Everything an import writes, so that each import starts from the same
/// empty tables (the report queue and aggregates included).
const TRUNCATE_INGESTED: &str =
    "TRUNCATE transactions, customer_days, customers, report_dirty, customer_periods, cohort_cells";

/// Empties what an import writes ([`TRUNCATE_INGESTED`]). The server's
/// report-aggregation job may be working the queue meanwhile, and the
/// TRUNCATE's locks, taken table by table, can then deadlock with it;
/// PostgreSQL aborts one of the two (seen once at full size, where the
/// bench's statement was the one aborted), so the bench tries again.
async fn empty_ingested(pool: &PgPool) -> anyhow::Result<()> {
    for attempt in 1.. {
        match sqlx::query(TRUNCATE_INGESTED).execute(pool).await {
            Ok(_) => break,
            Err(sqlx::Error::Database(e))
                if e.code().as_deref() == Some("40P01") && attempt < 5 =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

struct Knobs {
    seconds: u64,
    rounds: usize,
    concurrency: usize,
    connections: usize,
    import_rows: usize,
    import_customers: usize,
    batch: usize,
    streams: usize,
    cli_import: bool,
    aggregation_cost: bool,
    /// BENCH_SQL_FLOOR (1): after the rounds, the import's floor
    /// (benches/support/import_floor.rs).
    sql_floor: bool,
    /// BENCH_CLIENT (lean): the unary phase's load generator, `lean`
    /// (benches/support/lean_grpc.rs, one thread) or `tonic`.
    lean_client: bool,
    /// BENCH_LEAN_THREADS (1): threads of the lean generator.
    lean_threads: usize,
}

impl Knobs {
    fn from_env() -> Self {
        Self {
            seconds: env_or("BENCH_SECONDS", 15),
            rounds: env_or("BENCH_ROUNDS", 3),
            concurrency: env_or("BENCH_CONCURRENCY", 32),
            connections: env_or("BENCH_CONNECTIONS", 4),
            import_rows: env_or("BENCH_IMPORT_ROWS", 1_000_000),
            import_customers: env_or("BENCH_IMPORT_CUSTOMERS", 200_000),
            batch: env_or("BENCH_BATCH", 5_000),
            streams: env_or("BENCH_STREAMS", 2),
            cli_import: env_or("BENCH_CLI_IMPORT", 1) != 0,
            aggregation_cost: env_or("BENCH_AGGREGATION_COST", 1) != 0,
            sql_floor: env_or("BENCH_SQL_FLOOR", 1) != 0,
            lean_threads: env_or("BENCH_LEAN_THREADS", 1),
            lean_client: match std::env::var("BENCH_CLIENT").as_deref() {
                Ok("tonic") => false,
                Ok("lean") | Err(_) => true,
                Ok(other) => panic!("BENCH_CLIENT={other}: expected lean or tonic"),
            },
        }
    }
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes --bench; nothing else is expected.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(Knobs::from_env()))
}

async fn run(k: Knobs) -> anyhow::Result<()> {
    let (dir, pg, pool) = support::start_postgres("ingest", false).await?;
    Storage::from_pool(pool.clone()).migrate().await?;
    sqlx::query("CREATE TABLE baseline_tx (LIKE transactions INCLUDING ALL)")
        .execute(&pool)
        .await?;

    let (mut server, endpoint) = spawn_clvd(&pg.url("bench"), k.concurrency)?;
    let channels = connect(&endpoint, k.connections).await?;
    let clock = cpu::CpuClock::new(pg.data_dir(), server.id())?;
    let unary_client = if k.lean_client {
        UnaryClient::Lean(LeanGenerator::start(&endpoint, k.connections, k.lean_threads).await?)
    } else {
        UnaryClient::Tonic(channels.clone())
    };
    let mut quiet = None;
    if k.aggregation_cost {
        let (server, endpoint) = spawn_clvd_with(
            &pg.url("bench"),
            k.concurrency,
            &[("CLVD_REPORT_AGGREGATE_INTERVAL_MS", "0")],
        )?;
        quiet = Some((server, connect(&endpoint, k.connections).await?));
    }

    println!("machine: {} cores, {}", num_cpus(), cpu_model());
    println!("postgres: {}", pg.bin_dir().display());
    println!();

    // 1. Unary.
    let script = dir.join("insert.sql");
    std::fs::write(
        &script,
        "\\set cid random(1, 200000)\n\
         INSERT INTO baseline_tx (customer_id, transaction_id, kind, occurred_at, occasion_day, amount_nanos) \
         VALUES ('c' || :cid, gen_random_uuid()::text, 1, now(), current_date, 25000000000);\n",
    )?;
    let (mut pg_tps, mut clvd_tps, mut p50s, mut p99s) = (vec![], vec![], vec![], vec![]);
    for round in 0..k.rounds {
        let t0 = clock.now();
        let tps = pgbench::pgbench(&pg, &script, k.concurrency, k.seconds, |_| {})?;
        let t1 = clock.now();
        let (tps_clvd, hist) = unary_load(
            &unary_client,
            k.concurrency,
            Duration::from_secs(k.seconds),
            round,
        )
        .await?;
        let t2 = clock.now();
        let secs = k.seconds as f64;
        println!(
            "round {round} CPU per call: pgbench INSERT: PostgreSQL {:.1} µs, pgbench {:.1} µs | \
             RecordTransaction: PostgreSQL {:.1} µs, clvd {:.1} µs, load generator {:.1} µs",
            micros((t1 - t0).postgres, tps * secs),
            micros((t1 - t0).children, tps * secs),
            micros((t2 - t1).postgres, tps_clvd * secs),
            micros((t2 - t1).server, tps_clvd * secs),
            micros((t2 - t1).generator, tps_clvd * secs),
        );
        let (p50, p99) = (
            hist.value_at_quantile(0.5) as f64 / 1000.0,
            hist.value_at_quantile(0.99) as f64 / 1000.0,
        );
        println!(
            "round {round}: pgbench {tps:.0} tps | clvd RecordTransaction {tps_clvd:.0} tps, p50 {p50:.2} ms, p99 {p99:.2} ms"
        );
        pg_tps.push(tps);
        clvd_tps.push(tps_clvd);
        p50s.push(p50);
        p99s.push(p99);
    }
    let (pg_tps, clvd_tps) = (median(pg_tps), median(clvd_tps));
    println!(
        "UNARY (median of {} rounds, concurrency {}): pgbench INSERT {pg_tps:.0} tps; clvd {clvd_tps:.0} tps \
         (ratio {:.2}), p50 {:.2} ms, p99 {:.2} ms",
        k.rounds,
        k.concurrency,
        clvd_tps / pg_tps,
        median(p50s),
        median(p99s)
    );
    println!();

    // 2. Bulk import vs COPY.
    if std::env::var("BENCH_LOG_STATEMENTS").is_ok() {
        sqlx::query("ALTER SYSTEM SET log_min_duration_statement = 0")
            .execute(&pool)
            .await?;
        sqlx::query("SELECT pg_reload_conf()")
            .execute(&pool)
            .await?;
    }
    let rows = import_rows(k.import_rows, k.import_customers);
    let csv = dir.join("rows.csv");
    write_csv(&csv, &rows)?;
    let cli_csv = dir.join("rows-cli.csv");
    if k.cli_import {
        write_cli_csv(&cli_csv, &rows)?;
    }
    let (mut copy_rps, mut import_rps, mut cli_rps) = (vec![], vec![], vec![]);
    let (mut copy_cpu_per_row, mut import_client_cpu_per_row) = (vec![], vec![]);
    let mut aggregation = Vec::new();
    for round in 0..k.rounds {
        sqlx::query("TRUNCATE baseline_tx").execute(&pool).await?;
        sqlx::query("CHECKPOINT").execute(&pool).await?;
        let t0 = clock.now();
        let secs = copy(&pg, &csv)?;
        let copy_cpu = clock.now() - t0;
        let copied: i64 = sqlx::query_scalar("SELECT count(*) FROM baseline_tx")
            .fetch_one(&pool)
            .await?;
        anyhow::ensure!(copied as usize == rows.len(), "COPY stored {copied} rows");
        empty_ingested(&pool).await?;
        sqlx::query("CHECKPOINT").execute(&pool).await?;
        let t0 = clock.now();
        let import_secs = import(&channels, &rows, k.batch, k.streams).await?;
        let import_cpu = clock.now() - t0;
        check_import(&pool, rows.len(), k.import_customers).await?;
        let (c, i) = (rows.len() as f64 / secs, rows.len() as f64 / import_secs);
        println!("round {round}: COPY {c:.0} rows/s ({secs:.2} s) | clvd ImportTransactions {i:.0} tx/s ({import_secs:.2} s)");
        let n = rows.len() as f64;
        println!(
            "round {round} CPU per row: COPY: PostgreSQL {:.1} µs, psql {:.1} µs | \
             ImportTransactions: PostgreSQL {:.1} µs, clvd {:.1} µs, load generator {:.1} µs",
            micros(copy_cpu.postgres, n),
            micros(copy_cpu.children, n),
            micros(import_cpu.postgres, n),
            micros(import_cpu.server, n),
            micros(import_cpu.generator, n),
        );
        copy_rps.push(c);
        import_rps.push(i);
        copy_cpu_per_row.push(micros(copy_cpu.postgres, n));
        import_client_cpu_per_row.push(micros(import_cpu.server + import_cpu.generator, n));
        if let Some((_, quiet_channels)) = &quiet {
            let storage = Storage::from_pool(pool.clone());
            let left: i64 = sqlx::query_scalar("SELECT count(*) FROM report_dirty")
                .fetch_one(&pool)
                .await?;
            let end = storage.aggregate_queue_end().await?;
            let started = Instant::now();
            let caught_up = match end {
                Some(end) => storage.aggregate_through(end).await?,
                None => 0,
            };
            let catch_up = started.elapsed().as_secs_f64();
            empty_ingested(&pool).await?;
            sqlx::query("CHECKPOINT").execute(&pool).await?;
            let t0 = clock.now();
            let off_secs = import(quiet_channels, &rows, k.batch, k.streams).await?;
            let off_cpu = clock.now() - t0;
            check_import(&pool, rows.len(), k.import_customers).await?;
            let off = rows.len() as f64 / off_secs;
            println!(
                "round {round}: ImportTransactions with aggregation off {off:.0} tx/s ({off_secs:.2} s, \
                 PostgreSQL {:.1} µs per row); with it on {:.1}% slower, leaving {left} queue entries \
                 ({caught_up} customers, caught up in {catch_up:.2} s)",
                micros(off_cpu.postgres, n),
                (1.0 - i / off) * 100.0
            );
            aggregation.push((off, i, left, catch_up));
        }
        if k.cli_import {
            empty_ingested(&pool).await?;
            sqlx::query("CHECKPOINT").execute(&pool).await?;
            let cli_secs = cli_import(&endpoint, &cli_csv, rows.len(), k.batch, k.streams).await?;
            check_import(&pool, rows.len(), k.import_customers).await?;
            let r = rows.len() as f64 / cli_secs;
            println!(
                "round {round}: clvd import (CSV) {r:.0} rows/s ({cli_secs:.2} s), {:.2} of ImportTransactions",
                r / i
            );
            cli_rps.push(r);
        }
    }
    let per_round: Vec<f64> = cli_rps
        .iter()
        .zip(&import_rps)
        .map(|(c, i)| c / i)
        .collect();
    let (copy_rps, import_rps) = (median(copy_rps), median(import_rps));
    println!(
        "IMPORT (median of {} rounds, {} transactions over {} customers, batches of {}, {} streams): \
         COPY {copy_rps:.0} rows/s; clvd {import_rps:.0} tx/s (ratio {:.2})",
        k.rounds,
        rows.len(),
        k.import_customers,
        k.batch,
        k.streams,
        import_rps / copy_rps
    );
    if k.cli_import {
        println!(
            "CLI IMPORT (median of {} rounds, same rows from a CSV file, batches of {}, {} streams): \
             clvd import {:.0} rows/s; ImportTransactions {import_rps:.0} tx/s (ratio {:.2}; \
             median of the per-round ratios {:.2}; target >= 0.9)",
            k.rounds,
            k.batch,
            k.streams,
            median(cli_rps.clone()),
            median(cli_rps) / import_rps,
            median(per_round)
        );
    }

    if !aggregation.is_empty() {
        let off = median(aggregation.iter().map(|a| a.0).collect());
        let on = median(aggregation.iter().map(|a| a.1).collect());
        println!(
            "AGGREGATION COST (median of {} rounds): ImportTransactions with the background job \
             off {off:.0} tx/s, on {on:.0} tx/s ({:.1}% slower; target < 10%); queue left \
             {:.0} entries, caught up in {:.2} s",
            aggregation.len(),
            (1.0 - on / off) * 100.0,
            median(aggregation.iter().map(|a| a.2 as f64).collect()),
            median(aggregation.iter().map(|a| a.3).collect()),
        );
    }
    if let Some((mut quiet, _)) = quiet {
        let _ = quiet.kill();
        let _ = quiet.wait();
    }
    let _ = server.kill();
    let _ = server.wait();
    if k.sql_floor {
        // With no server left, nothing else works the database meanwhile.
        empty_ingested(&pool).await?;
        let floor = import_floor::measure(&pg, &pool, &clock, &csv, rows.len(), k.batch).await?;
        let cores = num_cpus() as f64;
        let ceiling = |per_row: f64| cores / per_row / copy_rps;
        // 0.35 of COPY's rows/s on these cores: the CPU per row every side
        // together may use, and what PostgreSQL's floor leaves of it.
        let budget = cores / (0.35 * copy_rps) * 1e6;
        println!(
            "SQL FLOOR (the same rows, one stream, batches of {}, four set-based statements each: \
             transactions, day rows, summaries, report queue): PostgreSQL {:.1} µs per row, \
             {:.1} µs without customer_days_by_day (COPY {:.1} µs, median). On {cores} cores \
             PostgreSQL alone then allows ImportTransactions / COPY at most {:.2} ({:.2} without \
             the index). The target 0.35 allows {budget:.1} µs of CPU per row for every side \
             together: the floor leaves {:.1} µs ({:.1} without the index) for clvd and the load \
             generator, which used {:.1} µs (medians of the rounds)",
            k.batch,
            floor.per_row * 1e6,
            floor.per_row_without_by_day * 1e6,
            median(copy_cpu_per_row),
            ceiling(floor.per_row),
            ceiling(floor.per_row_without_by_day),
            budget - floor.per_row * 1e6,
            budget - floor.per_row_without_by_day * 1e6,
            median(import_client_cpu_per_row),
        );
    }
    pool.close().await;
    pg.stop();
    if std::env::var("BENCH_LOG_STATEMENTS").is_err() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// CPU seconds spread over `calls`, in microseconds each.
fn micros(cpu_seconds: f64, calls: f64) -> f64 {
    cpu_seconds / calls.max(1.0) * 1e6
}

/// The unary phase's load generator: tonic's generated client on the
/// bench's runtime, or the lean h2 client on its own one-thread runtime.
enum UnaryClient {
    Tonic(Vec<Channel>),
    Lean(LeanGenerator),
}

/// One worker's client.
enum UnaryCaller {
    Tonic(IngestServiceClient<Channel>),
    Lean(LeanChannel, GrpcPath),
}

impl UnaryCaller {
    async fn record(&mut self, request: pb::RecordTransactionRequest) -> anyhow::Result<()> {
        match self {
            UnaryCaller::Tonic(client) => {
                client.record_transaction(request).await?;
            }
            UnaryCaller::Lean(channel, path) => {
                channel
                    .unary::<_, pb::RecordTransactionResponse>(path, &request)
                    .await?;
            }
        }
        Ok(())
    }
}

async fn unary_load(
    client: &UnaryClient,
    concurrency: usize,
    duration: Duration,
    round: usize,
) -> anyhow::Result<(f64, Histogram<u64>)> {
    let started = Instant::now();
    let shards = match client {
        UnaryClient::Tonic(channels) => {
            let callers = (0..concurrency)
                .map(|w| {
                    let client = IngestServiceClient::new(channels[w % channels.len()].clone());
                    (w, UnaryCaller::Tonic(client))
                })
                .collect();
            vec![drive_unary(callers, duration, round).await?]
        }
        UnaryClient::Lean(generator) => {
            let threads = generator.threads();
            generator
                .run(move |shard, channels| {
                    let callers = workers_of(shard, threads, concurrency, &channels)
                        .map(|(w, channel)| {
                            let path = channel.path("/clv.v1.IngestService/RecordTransaction");
                            (w, UnaryCaller::Lean(channel, path))
                        })
                        .collect();
                    drive_unary(callers, duration, round)
                })
                .await?
        }
    };
    let mut total = 0;
    let mut hist = Histogram::<u64>::new(3)?;
    for (n, h) in shards {
        total += n;
        hist.add(h)?;
    }
    Ok((total as f64 / started.elapsed().as_secs_f64(), hist))
}

/// [`unary_load`] on the current runtime: one task per (worker number,
/// caller); the calls made and their latencies.
async fn drive_unary(
    callers: Vec<(usize, UnaryCaller)>,
    duration: Duration,
    round: usize,
) -> anyhow::Result<(u64, Histogram<u64>)> {
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for (worker, mut client) in callers {
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new(3).expect("histogram");
            let mut rng = StdRng::seed_from_u64((round * 1000 + worker) as u64);
            let now = chrono::Utc::now().timestamp();
            let mut n = 0u64;
            while Instant::now() < deadline {
                let t = pb::Transaction {
                    customer_id: format!("c{}", rng.random_range(1..=200_000)),
                    transaction_id: format!("u{round}-{worker}-{n}"),
                    occurred_at: Some(prost_types::Timestamp {
                        seconds: now - rng.random_range(0..86_400 * 700),
                        nanos: 0,
                    }),
                    kind: pb::TransactionKind::Purchase as i32,
                    amount: Some(money(rng.random_range(100..20_000))),
                    cost: None,
                    refunded_transaction_id: String::new(),
                };
                let sent = Instant::now();
                client
                    .record(pb::RecordTransactionRequest {
                        transaction: Some(t),
                    })
                    .await?;
                hist.record(sent.elapsed().as_micros() as u64)
                    .expect("record latency");
                n += 1;
            }
            anyhow::Ok((n, hist))
        }));
    }
    let mut total = 0;
    let mut hist = Histogram::<u64>::new(3)?;
    for t in tasks {
        let (n, h) = t.await??;
        total += n;
        hist.add(h)?;
    }
    Ok((total, hist))
}

struct Row {
    customer: u32,
    id: u32,
    seconds: i64,
    cents: i64,
}

fn import_rows(n: usize, customers: usize) -> Vec<Row> {
    let mut rng = StdRng::seed_from_u64(42);
    let now = chrono::Utc::now().timestamp();
    (0..n)
        .map(|i| Row {
            customer: (i % customers) as u32,
            id: i as u32,
            seconds: now - rng.random_range(86_400..86_400 * 700),
            cents: rng.random_range(100..20_000),
        })
        .collect()
}

fn write_csv(path: &std::path::Path, rows: &[Row]) -> anyhow::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for r in rows {
        let at = chrono::DateTime::from_timestamp(r.seconds, 0).context("time")?;
        writeln!(
            f,
            "c{},i{},1,{},{},{}",
            r.customer,
            r.id,
            at.to_rfc3339(),
            at.date_naive(),
            r.cents * 10_000_000
        )?;
    }
    f.flush()?;
    // The postgres user reads nothing here: psql (root) streams the file.
    Ok(())
}

/// The rows in the example CSV format `clvd import` reads by default.
fn write_cli_csv(path: &std::path::Path, rows: &[Row]) -> anyhow::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(f, "customer_id,transaction_id,occurred_at,amount")?;
    for r in rows {
        let at = chrono::DateTime::from_timestamp(r.seconds, 0).context("time")?;
        writeln!(
            f,
            "c{},i{},{},{}.{:02}",
            r.customer,
            r.id,
            at.to_rfc3339(),
            r.cents / 100,
            r.cents % 100
        )?;
    }
    f.flush()?;
    Ok(())
}

/// `clvd import` of `csv` against the bench's server: seconds, from the
/// start of the process to its exit.
async fn cli_import(
    endpoint: &str,
    csv: &std::path::Path,
    rows: usize,
    batch: usize,
    streams: usize,
) -> anyhow::Result<f64> {
    let binary =
        std::env::var("BENCH_CLVD_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_clvd").to_owned());
    let started = Instant::now();
    let out = tokio::process::Command::new(binary)
        .args(["import", "--quiet", "-o", "json", "--server", endpoint])
        .args(["--batch-size", &batch.to_string()])
        .args(["--streams", &streams.to_string()])
        .arg(csv)
        .output()
        .await?;
    let secs = started.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "clvd import failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    anyhow::ensure!(
        summary[0]["recorded"].as_u64() == Some(rows as u64),
        "clvd import recorded {} of {rows}",
        summary[0]["recorded"]
    );
    Ok(secs)
}

fn copy(pg: &EmbeddedPostgres, csv: &std::path::Path) -> anyhow::Result<f64> {
    copy_into(pg, csv, "baseline_tx")
}

/// COPY of the bench's CSV file into `table` (the columns of a
/// transaction) by psql's `\copy`; its wall time in seconds.
fn copy_into(pg: &EmbeddedPostgres, csv: &std::path::Path, table: &str) -> anyhow::Result<f64> {
    let started = Instant::now();
    let out = Command::new(pg.bin_dir().join("psql"))
        .arg(pg.url("bench"))
        .args(["-v", "ON_ERROR_STOP=1", "-c"])
        .arg(format!(
            "\\copy {table} (customer_id, transaction_id, kind, occurred_at, occasion_day, amount_nanos) \
             FROM '{}' WITH (FORMAT csv)",
            csv.display()
        ))
        .output()?;
    if !out.status.success() {
        bail!(
            "COPY into {table} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(started.elapsed().as_secs_f64())
}

async fn import(
    channels: &[Channel],
    rows: &[Row],
    batch: usize,
    streams: usize,
) -> anyhow::Result<f64> {
    // Each stream takes whole customers, as a partitioned loader would.
    let mut lanes: Vec<Vec<pb::Transaction>> = vec![Vec::new(); streams];
    for r in rows {
        lanes[r.customer as usize % streams].push(pb::Transaction {
            customer_id: format!("c{}", r.customer),
            transaction_id: format!("i{}", r.id),
            occurred_at: Some(prost_types::Timestamp {
                seconds: r.seconds,
                nanos: 0,
            }),
            kind: pb::TransactionKind::Purchase as i32,
            amount: Some(money(r.cents)),
            cost: None,
            refunded_transaction_id: String::new(),
        });
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, lane) in lanes.into_iter().enumerate() {
        let mut client = IngestServiceClient::new(channels[i % channels.len()].clone())
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20);
        let batches: Vec<pb::ImportTransactionsRequest> = lane
            .chunks(batch)
            .map(|c| pb::ImportTransactionsRequest {
                transactions: c.to_vec(),
            })
            .collect();
        tasks.push(tokio::spawn(async move {
            client
                .import_transactions(futures::stream::iter(batches))
                .await
                .map(|r| r.into_inner())
        }));
    }
    let mut recorded = 0;
    for t in tasks {
        recorded += t.await??.recorded;
    }
    anyhow::ensure!(
        recorded as usize == rows.len(),
        "clvd recorded {recorded} of {}",
        rows.len()
    );
    Ok(started.elapsed().as_secs_f64())
}

async fn check_import(pool: &PgPool, rows: usize, customers: usize) -> anyhow::Result<()> {
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM transactions")
        .fetch_one(pool)
        .await?;
    let summarised: i64 = sqlx::query_scalar("SELECT count(*) FROM customers")
        .fetch_one(pool)
        .await?;
    anyhow::ensure!(
        stored as usize == rows && summarised as usize == customers,
        "import incomplete"
    );
    Ok(())
}
