//! Scoring benchmark (issue 4): GetChurnRisk and GetCustomerValue against
//! PostgreSQL's own primary-key read, in one run, on the same machine,
//! database and data.
//!
//! Setup: one private PostgreSQL with durable settings (fsync on), started
//! here from the machine's binaries; N customers (default 1,000,000, ids
//! `c0` .. `c{N-1}`) simulated with the model crate's BG/NBD + Gamma-Gamma
//! simulator and streamed through ImportTransactions (batches of 5,000, 2
//! streams split by customer); then ModelService.FitModel once. clvd runs as
//! its own process (the release binary).
//!
//! Steady state before the measured rounds (issue 15): the server runs
//! with the report-aggregation job off (`CLVD_REPORT_AGGREGATE_INTERVAL_MS=0`:
//! the import's queue stays queued, untouched, instead of being worked off
//! during the rounds); after the fit the bench waits until no other
//! database session is active (the fit's background aggregates, autovacuum),
//! then runs `VACUUM ANALYZE` of the whole database and a CHECKPOINT.
//!
//! Each round runs, in turn: pgbench reading one random customer row by
//! primary key (`SELECT * FROM customers WHERE customer_id = ...`,
//! `-M prepared -c C -j 2 -n`), GetChurnRisk and GetCustomerValue at
//! concurrency C (default 32) for random known customers, and the floor:
//! grpc.health.v1 Check on the same server, through the same tower layers,
//! from the same load generator (no database, no model). Medians over the
//! rounds are reported, with the ratio clvd / pgbench.
//!
//! Then (BENCH_INTERVALS, default 1) the intervals variant, in the same
//! run: GetCustomerValue with the score intervals (the fitted version's
//! covariances stored, as FitModel leaves them) and without them (the
//! version's covariances set to NULL, as on a version stored before they
//! were kept), alternating for BENCH_ROUNDS rounds; the ratio of the
//! medians with / without is the target (at least 0.8).
//!
//! Run: `cargo bench --bench scoring` (env knobs in [`Knobs`]).

#[path = "support/cpu.rs"]
mod cpu;
#[path = "support/lean_grpc.rs"]
mod lean_grpc;
#[path = "support/pgbench.rs"]
mod pgbench;
mod support;

use std::{
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};
use support::{connect, cpu_model, env_or, median, money, num_cpus, spawn_clvd_with};

use anyhow::bail;
use clv_model::{
    simulate, Acquisition, BgNbdParams, GammaGammaParams, SimulationConfig, TimeResolution,
};
use clvd::{
    api::pb::{
        self, ingest_service_client::IngestServiceClient, model_service_client::ModelServiceClient,
        scoring_service_client::ScoringServiceClient,
    },
    embedded_postgres::EmbeddedPostgres,
    storage::Storage,
};
use cpu::{CpuClock, CpuTimes};
use hdrhistogram::Histogram;
use lean_grpc::{workers_of, GrpcPath, LeanChannel, LeanGenerator};
use rand::{rngs::StdRng, Rng, SeedableRng};
use tonic::transport::Channel;
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest, HealthCheckResponse};

/// Knobs (environment), with their defaults.
struct Knobs {
    /// BENCH_SECONDS (15): length of each measured phase.
    seconds: u64,
    /// BENCH_ROUNDS (3).
    rounds: usize,
    /// BENCH_CONCURRENCY (32): calls in flight, and pgbench clients.
    concurrency: usize,
    /// BENCH_CONNECTIONS (4): HTTP/2 connections the load is spread over.
    connections: usize,
    /// BENCH_CUSTOMERS (1,000,000).
    customers: usize,
    /// BENCH_BATCH (5,000): transactions per ImportTransactions message.
    batch: usize,
    /// BENCH_STREAMS (2): concurrent import streams.
    streams: usize,
    /// BENCH_TOP (1): sample `top -b -n 2 -d 5` in the first round.
    top: bool,
    /// BENCH_CUSTOM_PLAN_CHECK (1): after the rounds, run the baseline once
    /// more with clvd's session setting `plan_cache_mode=force_custom_plan`.
    custom_plan_check: bool,
    /// BENCH_INTERVALS (1): GetCustomerValue with and without intervals.
    intervals: bool,
    /// BENCH_CLIENT_THREADS (0): worker threads of this process's runtime,
    /// the load generator's: 0 is one per core (the default runtime); 1
    /// runs it on one thread (less CPU per call, but less throughput on two
    /// shared cores: docs/benchmarks.md, issue 15); more gives that many
    /// workers.
    client_threads: usize,
    /// BENCH_CLIENT (lean): the load generator of the measured phases.
    /// `lean` is [`lean_grpc`] (h2 directly); `tonic` is tonic's generated
    /// clients, as before issue 15's fourth session; `both` measures with
    /// the lean client and, in each round, GetChurnRisk and the floor once
    /// more with tonic's, printed beside it (same run, same server).
    client: ClientKind,
    /// BENCH_LEAN_THREADS (1): threads of the lean generator, each with its
    /// own connections (at most BENCH_CONNECTIONS) and share of the workers.
    lean_threads: usize,
    /// BENCH_FAMILY (unset: FitModel's default, every family, the selected
    /// one activated): `bg_nbd`, `mbg_nbd` or `pareto_nbd` fits and
    /// activates that family alone, so the scoring phases (the intervals'
    /// above all: their cost differs by family) run under it.
    family: Option<pb::ModelFamily>,
}

#[derive(Clone, Copy, PartialEq)]
enum ClientKind {
    Lean,
    Tonic,
    Both,
}

impl Knobs {
    fn from_env() -> Self {
        Self {
            seconds: env_or("BENCH_SECONDS", 15),
            rounds: env_or("BENCH_ROUNDS", 3),
            concurrency: env_or("BENCH_CONCURRENCY", 32),
            connections: env_or("BENCH_CONNECTIONS", 4),
            customers: env_or("BENCH_CUSTOMERS", 1_000_000),
            batch: env_or("BENCH_BATCH", 5_000),
            streams: env_or("BENCH_STREAMS", 2),
            top: env_or("BENCH_TOP", 1u8) != 0,
            custom_plan_check: env_or("BENCH_CUSTOM_PLAN_CHECK", 1u8) != 0,
            intervals: env_or("BENCH_INTERVALS", 1u8) != 0,
            client_threads: env_or("BENCH_CLIENT_THREADS", 0),
            lean_threads: env_or("BENCH_LEAN_THREADS", 1),
            family: std::env::var("BENCH_FAMILY").ok().map(|name| {
                pb::ModelFamily::from_str_name(&format!("MODEL_FAMILY_{}", name.to_uppercase()))
                    .unwrap_or_else(|| {
                        panic!("BENCH_FAMILY={name}: expected bg_nbd, mbg_nbd or pareto_nbd")
                    })
            }),
            client: match std::env::var("BENCH_CLIENT").as_deref() {
                Ok("tonic") => ClientKind::Tonic,
                Ok("both") => ClientKind::Both,
                Ok("lean") | Err(_) => ClientKind::Lean,
                Ok(other) => panic!("BENCH_CLIENT={other}: expected lean, tonic or both"),
            },
        }
    }
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes --bench; nothing else is expected.
    let knobs = Knobs::from_env();
    let rt = match knobs.client_threads {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        0 => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?,
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build()?,
    };
    rt.block_on(run(knobs))
}

/// Calibration period of the simulated history, days (ending yesterday).
const HISTORY_DAYS: f64 = 365.0;

#[derive(Clone, Copy, PartialEq)]
enum Rpc {
    ChurnRisk,
    CustomerValue,
    /// GetCustomerValue, every answer with intervals.
    ValueWithIntervals,
    /// GetCustomerValue, every answer without intervals.
    ValueWithoutIntervals,
    /// grpc.health.v1 Check (the server's overall status): the floor.
    HealthCheck,
}

impl Rpc {
    fn name(self) -> &'static str {
        match self {
            Rpc::ChurnRisk => "GetChurnRisk",
            Rpc::CustomerValue => "GetCustomerValue",
            Rpc::ValueWithIntervals => "GetCustomerValue with intervals",
            Rpc::ValueWithoutIntervals => "GetCustomerValue without intervals",
            Rpc::HealthCheck => "grpc.health.v1 Check",
        }
    }
}

/// One round's figures for one side.
#[derive(Default)]
struct Series {
    tps: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
}

impl Series {
    fn push(&mut self, tps: f64, p50: f64, p99: f64) {
        self.tps.push(tps);
        self.p50.push(p50);
        self.p99.push(p99);
    }
}

async fn run(k: Knobs) -> anyhow::Result<()> {
    let (dir, pg, pool) = support::start_postgres("scoring", false).await?;
    Storage::from_pool(pool.clone()).migrate().await?;
    let pg_version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&pool)
        .await?;

    // The report-aggregation job off: the import's queue would otherwise be
    // worked off (500 entries a second) during the measured rounds.
    let (mut server, endpoint) = spawn_clvd_with(
        &pg.url("bench"),
        k.concurrency,
        &[("CLVD_REPORT_AGGREGATE_INTERVAL_MS", "0")],
    )?;
    let channels = connect(&endpoint, k.connections).await?;
    // The measured phases' load generator (BENCH_CLIENT); setup, fit and
    // checks use tonic's clients on `channels`.
    let generator = match k.client {
        ClientKind::Tonic => Clients::Tonic(channels.clone()),
        ClientKind::Lean | ClientKind::Both => Clients::Lean(Arc::new(
            LeanGenerator::start(&endpoint, k.connections, k.lean_threads).await?,
        )),
    };
    let tonic_beside = (k.client == ClientKind::Both).then(|| Clients::Tonic(channels.clone()));

    println!("machine: {} cores, {}", num_cpus(), cpu_model());
    let tonic_runtime = match k.client_threads {
        1 => "one thread".to_owned(),
        0 => "one worker per core".to_owned(),
        n => format!("{n} worker threads"),
    };
    println!(
        "load generator (BENCH_CLIENT): {}{}, {} HTTP/2 connections",
        match &generator {
            Clients::Lean(g) => format!(
                "lean client on {} thread(s) of its own (BENCH_LEAN_THREADS)",
                g.threads()
            ),
            Clients::Tonic(_) => format!("tonic client, {tonic_runtime} (BENCH_CLIENT_THREADS)"),
        },
        if tonic_beside.is_some() {
            format!("; and tonic's client beside it in each round, {tonic_runtime} (BENCH_CLIENT_THREADS)")
        } else {
            String::new()
        },
        k.connections
    );
    println!(
        "postgres: {pg_version} ({}), clvd pid {}",
        pg.bin_dir().display(),
        server.id()
    );
    println!();

    // Setup: simulate, import, fit.
    let started = Instant::now();
    let lanes = simulated_lanes(k.customers, k.streams);
    let transactions: usize = lanes.iter().map(Vec::len).sum();
    println!(
        "simulated {} customers, {transactions} purchases in {:.1} s",
        k.customers,
        started.elapsed().as_secs_f64()
    );
    let import_secs = import(&channels, lanes, k.batch).await?;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM transactions")
        .fetch_one(&pool)
        .await?;
    let summarised: i64 =
        sqlx::query_scalar("SELECT count(*) FROM customers WHERE purchase_occasions > 0")
            .fetch_one(&pool)
            .await?;
    anyhow::ensure!(
        stored as usize == transactions && summarised as usize == k.customers,
        "import incomplete: {stored} transactions, {summarised} customers"
    );
    println!(
        "imported {transactions} transactions in {import_secs:.1} s ({:.0} tx/s, batches of {}, {} streams)",
        transactions as f64 / import_secs,
        k.batch,
        k.streams
    );
    sqlx::query("VACUUM ANALYZE customers")
        .execute(&pool)
        .await?;
    sqlx::query("CHECKPOINT").execute(&pool).await?;

    let fit_started = Instant::now();
    let model = ModelServiceClient::new(channels[0].clone())
        .fit_model(pb::FitModelRequest {
            families: k.family.map(|f| f as i32).into_iter().collect(),
            ..Default::default()
        })
        .await?
        .into_inner();
    anyhow::ensure!(
        model.state == pb::ModelState::Succeeded as i32 && model.active,
        "FitModel did not give an active model: {}",
        model.failure
    );
    println!(
        "FitModel: version {} ({}) over {} customers in {:.2} s (converged {})",
        model.version,
        pb::ModelFamily::try_from(model.family).map_or("unknown family", |f| f.as_str_name()),
        model.customers,
        fit_started.elapsed().as_secs_f64(),
        model.converged
    );
    wait_for_model(&channels[0], model.version).await?;
    at_risk_first_page(&channels[0]).await?;
    settle(&pool).await?;
    println!();

    // The baseline: the same primary-key read, by pgbench.
    let script = dir.join("read.sql");
    std::fs::write(
        &script,
        format!(
            "\\set n random(0, {})\n\
             SELECT * FROM customers WHERE customer_id = 'c' || :n;\n",
            k.customers - 1
        ),
    )?;
    // Warm-up, unmeasured: both sides then start from the same cache state.
    pgbench(&pg, &script, k.concurrency, k.seconds.min(5))?;
    load(&generator, Rpc::ChurnRisk, &k, Duration::from_secs(2), 99).await?;

    let (mut base, mut churn, mut value, mut floor) = (
        Series::default(),
        Series::default(),
        Series::default(),
        Series::default(),
    );
    let (mut churn_tonic, mut floor_tonic) = (Series::default(), Series::default());
    let clock = CpuClock::new(pg.data_dir(), server.id())?;
    let mut cpu = CpuSeries::new(generator.name());
    let mut cpu_tonic = CpuSeries::new("tonic");
    for round in 0..k.rounds {
        let sample = k.top && round == 0;
        let top = sample.then(|| top_sampler("pgbench"));
        let t0 = clock.now();
        let b = pgbench(&pg, &script, k.concurrency, k.seconds)?;
        // Let the postmaster reap pgbench's backends, so their CPU counts.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t1 = clock.now();
        print_top(top);
        let top = sample.then(|| top_sampler("GetChurnRisk"));
        let t2 = clock.now();
        let c = load(
            &generator,
            Rpc::ChurnRisk,
            &k,
            Duration::from_secs(k.seconds),
            round,
        )
        .await?;
        let t3 = clock.now();
        print_top(top);
        let v = load(
            &generator,
            Rpc::CustomerValue,
            &k,
            Duration::from_secs(k.seconds),
            round,
        )
        .await?;
        let t4 = clock.now();
        let h = load(
            &generator,
            Rpc::HealthCheck,
            &k,
            Duration::from_secs(k.seconds),
            round,
        )
        .await?;
        let t5 = clock.now();
        let calls = |tps: f64| tps * k.seconds as f64;
        cpu.push(
            round,
            (t1 - t0, calls(b.0)),
            (t3 - t2, calls(c.0)),
            (t5 - t4, calls(h.0)),
        );
        println!(
            "round {round}: pgbench {:.0} tps, p50 {:.2} ms, p99 {:.2} ms | GetChurnRisk {:.0} tps, p50 {:.2} ms, p99 {:.2} ms \
             | GetCustomerValue {:.0} tps, p50 {:.2} ms, p99 {:.2} ms | health Check {:.0} tps, p50 {:.2} ms, p99 {:.2} ms",
            b.0, b.1, b.2, c.0, c.1, c.2, v.0, v.1, v.2, h.0, h.1, h.2
        );
        if let Some(tonic) = &tonic_beside {
            let seconds = Duration::from_secs(k.seconds);
            let t6 = clock.now();
            let c = load(tonic, Rpc::ChurnRisk, &k, seconds, round).await?;
            let t7 = clock.now();
            let h = load(tonic, Rpc::HealthCheck, &k, seconds, round).await?;
            let t8 = clock.now();
            cpu_tonic.push(
                round,
                (t1 - t0, calls(b.0)),
                (t7 - t6, calls(c.0)),
                (t8 - t7, calls(h.0)),
            );
            println!(
                "round {round}, tonic generator: GetChurnRisk {:.0} tps, p50 {:.2} ms, p99 {:.2} ms \
                 | health Check {:.0} tps, p50 {:.2} ms, p99 {:.2} ms",
                c.0, c.1, c.2, h.0, h.1, h.2
            );
            churn_tonic.push(c.0, c.1, c.2);
            floor_tonic.push(h.0, h.1, h.2);
        }
        base.push(b.0, b.1, b.2);
        churn.push(c.0, c.1, c.2);
        value.push(v.0, v.1, v.2);
        floor.push(h.0, h.1, h.2);
    }
    let base_tps = median(base.tps.clone());
    let churn_tps = median(churn.tps.clone());
    println!();
    println!(
        "BASELINE (median of {} rounds, concurrency {}): pgbench primary-key read {base_tps:.0} tps, \
         p50 {:.2} ms, p99 {:.2} ms",
        k.rounds,
        k.concurrency,
        median(base.p50),
        median(base.p99)
    );
    for (rpc, s) in [(Rpc::ChurnRisk, churn), (Rpc::CustomerValue, value)] {
        let tps = median(s.tps);
        let p99 = median(s.p99);
        let ratio = tps / base_tps;
        println!(
            "{} (median of {} rounds, concurrency {}): {tps:.0} tps, p50 {:.2} ms, p99 {p99:.2} ms; \
             ratio {ratio:.2} (target >= 0.5 with p99 < 5 ms: {})",
            rpc.name().to_uppercase(),
            k.rounds,
            k.concurrency,
            median(s.p50),
            if ratio >= 0.5 && p99 < 5.0 {
                "met"
            } else {
                "missed"
            }
        );
    }

    println!(
        "FLOOR: grpc.health.v1 Check (median of {} rounds, concurrency {}): {:.0} tps, p50 {:.2} ms, \
         p99 {:.2} ms ({:.2} of the baseline)",
        k.rounds,
        k.concurrency,
        median(floor.tps.clone()),
        median(floor.p50),
        median(floor.p99),
        median(floor.tps) / base_tps
    );
    cpu.print(base_tps, churn_tps);
    if tonic_beside.is_some() {
        let (tps, p99) = (median(churn_tonic.tps), median(churn_tonic.p99));
        println!(
            "GETCHURNRISK, TONIC GENERATOR BESIDE IT (median of {} rounds, same run): {tps:.0} tps, p50 {:.2} ms, \
             p99 {p99:.2} ms; ratio {:.2} | health Check {:.0} tps ({:.2} of the baseline)",
            k.rounds,
            median(churn_tonic.p50),
            tps / base_tps,
            median(floor_tonic.tps.clone()),
            median(floor_tonic.tps) / base_tps
        );
        cpu_tonic.print(base_tps, tps);
    }

    if k.intervals {
        intervals_variant(&generator, &pool, &k, model.version, &clock).await?;
    }

    // Diagnostic, not in the ratios: the baseline again with the session
    // setting every clvd connection uses (plan_cache_mode =
    // force_custom_plan, see Storage::tuned), which plans each execution.
    if k.custom_plan_check {
        let (tps, p50, p99) = pgbench_with(
            &pg,
            &script,
            k.concurrency,
            k.seconds,
            Some("-c plan_cache_mode=force_custom_plan"),
        )?;
        println!(
            "DIAGNOSTIC: pgbench with plan_cache_mode=force_custom_plan (clvd's session setting): \
             {tps:.0} tps, p50 {p50:.2} ms, p99 {p99:.2} ms ({:.2} of the baseline)",
            tps / base_tps
        );
    }

    let _ = server.kill();
    let _ = server.wait();
    pool.close().await;
    pg.stop();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// GetCustomerValue with intervals against without, alternating per round
/// (see the module doc): the active version's covariances are set to NULL
/// for the "without" phase and restored after it; each switch waits for
/// the scoring cache to reload (MODEL_REFRESH).
async fn intervals_variant(
    channels: &Clients,
    pool: &sqlx::PgPool,
    k: &Knobs,
    version: i64,
    clock: &CpuClock,
) -> anyhow::Result<()> {
    let (purchases, spend): (Option<Vec<f64>>, Option<Vec<f64>>) = sqlx::query_as(
        "SELECT log_parameter_covariance, spend_log_parameter_covariance FROM models \
         WHERE version = $1",
    )
    .bind(version)
    .fetch_one(pool)
    .await?;
    anyhow::ensure!(
        purchases.is_some() && spend.is_some(),
        "the active version stored no covariances: no intervals to measure"
    );
    let reload = clvd::service::MODEL_REFRESH + Duration::from_millis(500);
    let set = |p: Option<Vec<f64>>, s: Option<Vec<f64>>| {
        sqlx::query(
            "UPDATE models SET log_parameter_covariance = $1, \
             spend_log_parameter_covariance = $2 WHERE version = $3",
        )
        .bind(p)
        .bind(s)
        .bind(version)
        .execute(pool)
    };
    let (mut with, mut without) = (Series::default(), Series::default());
    println!();
    // CPU per call of each phase, µs: (PostgreSQL, clvd, load generator).
    let per_call = |cpu: CpuTimes, tps: f64| {
        let calls = tps * k.seconds as f64;
        [cpu.postgres, cpu.server, cpu.generator].map(|s| s * 1e6 / calls)
    };
    let (mut cpu_with, mut cpu_without) = (Vec::new(), Vec::new());
    for round in 0..k.rounds {
        let t0 = clock.now();
        let w = load(
            channels,
            Rpc::ValueWithIntervals,
            k,
            Duration::from_secs(k.seconds),
            round,
        )
        .await?;
        let with_cpu = per_call(clock.now() - t0, w.0);
        set(None, None).await?;
        tokio::time::sleep(reload).await;
        let t1 = clock.now();
        let o = load(
            channels,
            Rpc::ValueWithoutIntervals,
            k,
            Duration::from_secs(k.seconds),
            round,
        )
        .await?;
        let without_cpu = per_call(clock.now() - t1, o.0);
        set(purchases.clone(), spend.clone()).await?;
        tokio::time::sleep(reload).await;
        println!(
            "intervals round {round} CPU per call: with: PostgreSQL {:.1} µs, clvd {:.1} µs, load generator {:.1} µs \
             | without: PostgreSQL {:.1} µs, clvd {:.1} µs, load generator {:.1} µs",
            with_cpu[0], with_cpu[1], with_cpu[2], without_cpu[0], without_cpu[1], without_cpu[2]
        );
        cpu_with.push(with_cpu[1]);
        cpu_without.push(without_cpu[1]);
        println!(
            "intervals round {round}: with {:.0} tps, p50 {:.2} ms, p99 {:.2} ms | without {:.0} tps, \
             p50 {:.2} ms, p99 {:.2} ms | ratio {:.2}",
            w.0,
            w.1,
            w.2,
            o.0,
            o.1,
            o.2,
            w.0 / o.0
        );
        with.push(w.0, w.1, w.2);
        without.push(o.0, o.1, o.2);
    }
    let (w, o) = (median(with.tps), median(without.tps));
    println!(
        "GETCUSTOMERVALUE WITH INTERVALS (median of {} rounds, concurrency {}): {w:.0} tps, p50 {:.2} ms, \
         p99 {:.2} ms; without {o:.0} tps, p50 {:.2} ms, p99 {:.2} ms; ratio {:.2} (target >= 0.8: {})",
        k.rounds,
        k.concurrency,
        median(with.p50),
        median(with.p99),
        median(without.p50),
        median(without.p99),
        w / o,
        if w / o >= 0.8 { "met" } else { "missed" }
    );
    println!(
        "CPU PER CALL, INTERVALS (median of rounds): clvd {:.1} µs with, {:.1} µs without",
        median(cpu_with),
        median(cpu_without)
    );
    Ok(())
}

/// CPU per call, in µs, by side: the pgbench phase (PostgreSQL, pgbench),
/// the GetChurnRisk phase (PostgreSQL, clvd, load generator) and the
/// health Check phase (the floor: the same, with no database work), with
/// the name of the load generator's client.
struct CpuSeries {
    client: &'static str,
    pgbench: Vec<[f64; 2]>,
    churn: Vec<[f64; 3]>,
    floor: Vec<[f64; 3]>,
}

/// One phase's CPU use and the calls it served.
type Phase = (CpuTimes, f64);

impl CpuSeries {
    fn new(client: &'static str) -> Self {
        Self {
            client,
            pgbench: Vec::new(),
            churn: Vec::new(),
            floor: Vec::new(),
        }
    }

    fn push(&mut self, round: usize, (base, base_calls): Phase, churn: Phase, floor: Phase) {
        let us = |seconds: f64, n: f64| seconds * 1e6 / n;
        let b = [us(base.postgres, base_calls), us(base.children, base_calls)];
        let three = |(t, calls): Phase| {
            [
                us(t.postgres, calls),
                us(t.server, calls),
                us(t.generator, calls),
            ]
        };
        let (c, f) = (three(churn), three(floor));
        println!(
            "round {round} CPU per call ({} generator): pgbench phase: PostgreSQL {:.1} µs, pgbench {:.1} µs | \
             GetChurnRisk phase: PostgreSQL {:.1} µs, clvd {:.1} µs, load generator {:.1} µs | \
             health Check phase: PostgreSQL {:.1} µs, clvd {:.1} µs, load generator {:.1} µs",
            self.client, b[0], b[1], c[0], c[1], c[2], f[0], f[1], f[2]
        );
        self.pgbench.push(b);
        self.churn.push(c);
        self.floor.push(f);
    }

    /// `base_tps` and `churn_tps`: the medians of the pgbench and the
    /// GetChurnRisk phases, for the bounds their CPU costs set.
    fn print(&self, base_tps: f64, churn_tps: f64) {
        let m = |f: &dyn Fn(usize) -> f64| median((0..self.pgbench.len()).map(f).collect());
        let (pg_base, pgbench) = (m(&|i| self.pgbench[i][0]), m(&|i| self.pgbench[i][1]));
        let (pg, clvd, generator) = (
            m(&|i| self.churn[i][0]),
            m(&|i| self.churn[i][1]),
            m(&|i| self.churn[i][2]),
        );
        let (floor_clvd, floor_generator) = (m(&|i| self.floor[i][1]), m(&|i| self.floor[i][2]));
        println!(
            "CPU PER CALL ({} generator, median of rounds): pgbench read: PostgreSQL {pg_base:.1} µs + pgbench {pgbench:.1} µs; \
             GetChurnRisk: PostgreSQL {pg:.1} µs + clvd {clvd:.1} µs (target <= 25 µs: {}) + load generator \
             {generator:.1} µs. Server side (PostgreSQL + clvd) {:.2}x the baseline's PostgreSQL",
            self.client,
            if clvd <= 25.0 { "met" } else { "missed" },
            (pg + clvd) / pg_base
        );
        println!(
            "CPU PER CALL, FLOOR ({} generator; health Check through the same layers): clvd {floor_clvd:.1} µs + load generator \
             {floor_generator:.1} µs; GetChurnRisk's clvd above the floor: {:.1} µs",
            self.client,
            clvd - floor_clvd
        );
        // Every side shares the machine's cores: at these costs, fully busy
        // cores serve at most this many calls per second.
        let cores = num_cpus() as f64;
        let most = cores * 1e6 / (pg + clvd + generator);
        println!(
            "BOUNDS ({} generator): at {:.1} µs of CPU per GetChurnRisk call (all three sides), {cores} fully \
             busy cores serve at most {most:.0} calls/s, a ratio of {:.2}; the run reached {churn_tps:.0} \
             ({:.0}% of that). The floor leaves {:.1} µs of clvd's 25 µs target for the database read, \
             the model and the answer",
            self.client,
            pg + clvd + generator,
            most / base_tps,
            churn_tps / most * 100.0,
            25.0 - floor_clvd
        );
    }
}

/// Brings the database to a steady state before the measured rounds: waits
/// until no other session is active (the fit's background aggregates,
/// autovacuum workers), then `VACUUM ANALYZE` of every table and a
/// CHECKPOINT, so that no background work falls into the measured phases.
async fn settle(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    let started = Instant::now();
    let busy = || {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() \
             AND state IS DISTINCT FROM 'idle' \
             AND backend_type IN ('client backend', 'autovacuum worker')",
        )
        .fetch_one(pool)
    };
    let mut quiet = 0;
    while quiet < 4 {
        quiet = if busy().await? == 0 { quiet + 1 } else { 0 };
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "the database did not settle in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let waited = started.elapsed().as_secs_f64();
    sqlx::query("VACUUM ANALYZE").execute(pool).await?;
    sqlx::query("CHECKPOINT").execute(pool).await?;
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM report_dirty")
        .fetch_one(pool)
        .await?;
    println!(
        "steady state: background work finished after {waited:.1} s; VACUUM ANALYZE of every table \
         and CHECKPOINT in {:.1} s; report-aggregation job off, {queued} queue entries left untouched",
        started.elapsed().as_secs_f64() - waited
    );
    Ok(())
}

/// One purchase to import: customer number, occasion number, time, cents.
struct Purchase {
    customer: u32,
    occasion: u32,
    seconds: i64,
    cents: i64,
}

/// Simulated purchases, split into `streams` lanes by customer. Customer i
/// is `c{i}`; its history ends yesterday, so every purchase is in the past.
fn simulated_lanes(customers: usize, streams: usize) -> Vec<Vec<Purchase>> {
    let simulated = simulate(&SimulationConfig {
        // The parameters tests/api/models.rs uses (CDNOW-like, in days).
        purchases: BgNbdParams::new(0.243, 30.9, 0.793, 2.426).expect("BG/NBD parameters"),
        spend: Some(GammaGammaParams::new(6.25, 3.74, 15.44).expect("Gamma-Gamma parameters")),
        customers,
        calibration_days: HISTORY_DAYS,
        holdout_days: 0.0,
        acquisition: Acquisition::Uniform {
            window_days: HISTORY_DAYS / 2.0,
        },
        resolution: TimeResolution::WholeDays,
        seed: 4,
        record_occasions: true,
    });
    let today = chrono::Utc::now().date_naive();
    let start = (today - chrono::Duration::days(HISTORY_DAYS as i64 + 1))
        .and_hms_opt(12, 0, 0)
        .expect("noon")
        .and_utc()
        .timestamp();
    let mut lanes: Vec<Vec<Purchase>> = (0..streams).map(|_| Vec::new()).collect();
    for (i, c) in simulated.iter().enumerate() {
        for (k, o) in c.occasions.iter().enumerate() {
            lanes[i % streams].push(Purchase {
                customer: i as u32,
                occasion: k as u32,
                seconds: start + o.day as i64 * 86_400,
                cents: (o.value * 100.0).round() as i64,
            });
        }
    }
    lanes
}

/// Streams every lane through its own ImportTransactions call; the
/// messages are built as they are sent. Returns the seconds taken.
async fn import(
    channels: &[Channel],
    lanes: Vec<Vec<Purchase>>,
    batch: usize,
) -> anyhow::Result<f64> {
    let total: usize = lanes.iter().map(Vec::len).sum();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, lane) in lanes.into_iter().enumerate() {
        let mut client = IngestServiceClient::new(channels[i % channels.len()].clone())
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20);
        let batches = lane.len().div_ceil(batch);
        let messages = futures::stream::iter((0..batches).map(move |b| {
            let chunk = &lane[b * batch..((b + 1) * batch).min(lane.len())];
            pb::ImportTransactionsRequest {
                transactions: chunk
                    .iter()
                    .map(|p| pb::Transaction {
                        customer_id: format!("c{}", p.customer),
                        transaction_id: format!("o{}", p.occasion),
                        occurred_at: Some(prost_types::Timestamp {
                            seconds: p.seconds,
                            nanos: 0,
                        }),
                        kind: pb::TransactionKind::Purchase as i32,
                        amount: Some(money(p.cents)),
                        cost: None,
                        refunded_transaction_id: String::new(),
                    })
                    .collect(),
            }
        }));
        tasks.push(tokio::spawn(async move {
            client
                .import_transactions(messages)
                .await
                .map(|r| r.into_inner())
        }));
    }
    let mut recorded = 0;
    for t in tasks {
        recorded += t.await??.recorded;
    }
    anyhow::ensure!(
        recorded as usize == total,
        "clvd recorded {recorded} of {total}"
    );
    Ok(started.elapsed().as_secs_f64())
}

/// Waits until scoring answers with the fitted model (the server caches the
/// active model and refreshes it every 2 s).
/// ListAtRiskCustomers' first page (default filter: the HIGH band, 50 to a
/// page): median and worst of 21 calls, one at a time. Target: < 200 ms.
async fn at_risk_first_page(channel: &Channel) -> anyhow::Result<()> {
    let mut client = ScoringServiceClient::new(channel.clone());
    let mut times = Vec::new();
    let mut listed = 0;
    for _ in 0..21 {
        let started = Instant::now();
        let page = client
            .list_at_risk_customers(pb::ListAtRiskCustomersRequest::default())
            .await?
            .into_inner();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        listed = page.customers.len();
    }
    let worst = times.iter().copied().fold(0.0, f64::max);
    println!(
        "ListAtRiskCustomers first page ({listed} customers): median {:.2} ms, worst {worst:.2} ms over 21 calls \
         (target < 200 ms)",
        median(times)
    );
    Ok(())
}

async fn wait_for_model(channel: &Channel, version: i64) -> anyhow::Result<()> {
    let mut client = ScoringServiceClient::new(channel.clone());
    let started = Instant::now();
    loop {
        let r = client
            .get_churn_risk(pb::GetChurnRiskRequest {
                customer_id: "c0".into(),
                ..Default::default()
            })
            .await?
            .into_inner();
        if r.prediction_available && r.model_version == version {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!(
                "scoring did not pick up model {version}: {}",
                r.prediction_note
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The measured phases' load generator: tonic's generated clients on the
/// bench's runtime, or the lean h2 client (benches/support/lean_grpc.rs) on
/// its own one-thread runtime.
#[derive(Clone)]
enum Clients {
    Tonic(Vec<Channel>),
    Lean(Arc<LeanGenerator>),
}

impl Clients {
    fn name(&self) -> &'static str {
        match self {
            Clients::Tonic(_) => "tonic",
            Clients::Lean(_) => "lean",
        }
    }
}

/// One worker's client: the same three calls over either generator.
enum Caller {
    Tonic {
        scoring: ScoringServiceClient<Channel>,
        health: HealthClient<Channel>,
    },
    Lean {
        channel: LeanChannel,
        churn: GrpcPath,
        value: GrpcPath,
        health: GrpcPath,
    },
}

impl Caller {
    fn tonic(channel: &Channel) -> Self {
        Caller::Tonic {
            scoring: ScoringServiceClient::new(channel.clone()),
            health: HealthClient::new(channel.clone()),
        }
    }

    fn lean(channel: LeanChannel) -> Self {
        Caller::Lean {
            churn: channel.path("/clv.v1.ScoringService/GetChurnRisk"),
            value: channel.path("/clv.v1.ScoringService/GetCustomerValue"),
            health: channel.path("/grpc.health.v1.Health/Check"),
            channel,
        }
    }

    async fn churn_risk(
        &mut self,
        request: pb::GetChurnRiskRequest,
    ) -> anyhow::Result<pb::ChurnRisk> {
        Ok(match self {
            Caller::Tonic { scoring, .. } => scoring.get_churn_risk(request).await?.into_inner(),
            Caller::Lean { channel, churn, .. } => channel.unary(churn, &request).await?,
        })
    }

    async fn customer_value(
        &mut self,
        request: pb::GetCustomerValueRequest,
    ) -> anyhow::Result<pb::CustomerValue> {
        Ok(match self {
            Caller::Tonic { scoring, .. } => {
                scoring.get_customer_value(request).await?.into_inner()
            }
            Caller::Lean { channel, value, .. } => channel.unary(value, &request).await?,
        })
    }

    async fn health(&mut self) -> anyhow::Result<HealthCheckResponse> {
        let request = HealthCheckRequest::default();
        Ok(match self {
            Caller::Tonic { health, .. } => health.check(request).await?.into_inner(),
            Caller::Lean {
                channel, health, ..
            } => channel.unary(health, &request).await?,
        })
    }
}

/// Calls `rpc` from `k.concurrency` workers for random known customers for
/// `duration`: (calls per second, p50 ms, p99 ms). Every answer must carry
/// a prediction.
async fn load(
    clients: &Clients,
    rpc: Rpc,
    k: &Knobs,
    duration: Duration,
    round: usize,
) -> anyhow::Result<(f64, f64, f64)> {
    let (concurrency, customers) = (k.concurrency, k.customers);
    let started = Instant::now();
    let shards = match clients {
        Clients::Tonic(channels) => {
            let callers = (0..concurrency)
                .map(|w| (w, Caller::tonic(&channels[w % channels.len()])))
                .collect();
            vec![drive(callers, rpc, customers, duration, round).await?]
        }
        Clients::Lean(generator) => {
            let threads = generator.threads();
            generator
                .run(move |shard, channels| {
                    let callers = workers_of(shard, threads, concurrency, &channels)
                        .map(|(w, channel)| (w, Caller::lean(channel)))
                        .collect();
                    drive(callers, rpc, customers, duration, round)
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
    Ok((
        total as f64 / started.elapsed().as_secs_f64(),
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
    ))
}

/// [`load`] on the current runtime: one task per (worker number, caller);
/// the calls made and their latencies.
async fn drive(
    callers: Vec<(usize, Caller)>,
    rpc: Rpc,
    customers: usize,
    duration: Duration,
    round: usize,
) -> anyhow::Result<(u64, Histogram<u64>)> {
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for (worker, mut client) in callers {
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new(3).expect("histogram");
            let mut rng = StdRng::seed_from_u64((round * 1000 + worker) as u64 + rpc as u64);
            let mut n = 0u64;
            while Instant::now() < deadline {
                let customer_id = match rpc {
                    Rpc::HealthCheck => String::new(),
                    _ => format!("c{}", rng.random_range(0..customers)),
                };
                let sent = Instant::now();
                let predicted = match rpc {
                    Rpc::ChurnRisk => {
                        client
                            .churn_risk(pb::GetChurnRiskRequest {
                                customer_id,
                                ..Default::default()
                            })
                            .await?
                            .prediction_available
                    }
                    Rpc::CustomerValue => {
                        client
                            .customer_value(pb::GetCustomerValueRequest {
                                customer_id,
                                horizon_months: None,
                                annual_discount_rate: None,
                                ..Default::default()
                            })
                            .await?
                            .prediction_available
                    }
                    Rpc::ValueWithIntervals | Rpc::ValueWithoutIntervals => {
                        let v = client
                            .customer_value(pb::GetCustomerValueRequest {
                                customer_id,
                                ..Default::default()
                            })
                            .await?;
                        let expected = rpc == Rpc::ValueWithIntervals;
                        anyhow::ensure!(
                            v.probability_alive_interval.is_some() == expected,
                            "{} answered {} intervals",
                            rpc.name(),
                            if expected { "without" } else { "with" }
                        );
                        v.prediction_available
                    }
                    Rpc::HealthCheck => {
                        // SERVING (1): the server answered from its state.
                        client.health().await?.status == 1
                    }
                };
                hist.record(sent.elapsed().as_micros() as u64)
                    .expect("record latency");
                anyhow::ensure!(
                    predicted,
                    "{} answered without a prediction (or not SERVING)",
                    rpc.name()
                );
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

/// pgbench with `script`: (tps, p50 ms, p99 ms). The latencies come from
/// pgbench's per-transaction log (`-l`), read back here.
fn pgbench(
    pg: &EmbeddedPostgres,
    script: &std::path::Path,
    clients: usize,
    seconds: u64,
) -> anyhow::Result<(f64, f64, f64)> {
    pgbench_with(pg, script, clients, seconds, None)
}

/// [`pgbench`] with PGOPTIONS (session settings) when given.
fn pgbench_with(
    pg: &EmbeddedPostgres,
    script: &std::path::Path,
    clients: usize,
    seconds: u64,
    pg_options: Option<&str>,
) -> anyhow::Result<(f64, f64, f64)> {
    let logs = script.with_file_name(format!("pgbench-log-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs)?;
    let tps = pgbench::pgbench(pg, script, clients, seconds, |command| {
        if let Some(o) = pg_options {
            command.env("PGOPTIONS", o);
        }
        command.current_dir(&logs).arg("-l");
    })?;
    // Log lines: client_id transaction_no time_us script_no epoch epoch_us.
    let mut hist = Histogram::<u64>::new(3)?;
    for entry in std::fs::read_dir(&logs)? {
        let body = std::fs::read_to_string(entry?.path())?;
        for line in body.lines() {
            if let Some(us) = line.split_whitespace().nth(2).and_then(|v| v.parse().ok()) {
                hist.record(us)?;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&logs);
    anyhow::ensure!(!hist.is_empty(), "pgbench wrote no transaction log");
    Ok((
        tps,
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
    ))
}

/// Samples `top -b -n 2 -d 5` from 3 s into a phase, on a thread.
fn top_sampler(phase: &'static str) -> std::thread::JoinHandle<(String, String)> {
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(3));
        let out = Command::new("top")
            .args(["-b", "-n", "2", "-d", "5", "-w", "160"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_else(|e| format!("top failed: {e}"));
        (phase.to_owned(), out)
    })
}

/// Prints the second (5-second) sample of `top`: the CPU line and the
/// processes using more than 1% CPU, summed by command.
fn print_top(sampler: Option<std::thread::JoinHandle<(String, String)>>) {
    let Some(Ok((phase, out))) = sampler.map(|s| s.join()) else {
        return;
    };
    let second = out.rsplit("\ntop - ").next().unwrap_or(&out);
    let mut by_command: Vec<(String, f64, usize)> = Vec::new();
    let mut cpu_line = String::new();
    let mut in_table = false;
    for line in second.lines() {
        if line.starts_with("%Cpu") {
            cpu_line = line.trim().to_owned();
        }
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.first() == Some(&"PID") {
            in_table = true;
            continue;
        }
        if !in_table || cols.len() < 12 {
            continue;
        }
        let (Ok(cpu), command) = (cols[8].parse::<f64>(), cols[11].to_owned()) else {
            continue;
        };
        if cpu < 1.0 {
            continue;
        }
        match by_command.iter_mut().find(|(c, _, _)| *c == command) {
            Some(e) => {
                e.1 += cpu;
                e.2 += 1;
            }
            None => by_command.push((command, cpu, 1)),
        }
    }
    by_command.sort_by(|a, b| b.1.total_cmp(&a.1));
    let summary: Vec<String> = by_command
        .iter()
        .map(|(c, cpu, n)| format!("{c} {cpu:.0}% ({n} proc)"))
        .collect();
    println!("top during {phase} (5 s sample): {cpu_line}");
    println!("  by command: {}", summary.join(", "));
}
