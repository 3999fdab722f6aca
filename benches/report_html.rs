//! `clvd report html` benchmark: the whole customer-value page for 24
//! monthly cohorts over a large base, end to end, as a user runs it: the
//! release `clvd` binary as its own process (start to exit: connecting,
//! the service's answers, drawing, writing the file), against a clvd
//! server of its own on a private PostgreSQL.
//!
//! Setup writes the base with SQL (support/cohort_data.rs: purchases whose
//! rates, lifetimes and amounts vary between and within customers), builds
//! the report aggregates for every customer, records $1,000,000 of
//! acquisition spend a month and fits the model once (FitModel, timed
//! apart: not part of the page). Then each round runs `clvd report html
//! --out FILE --first-cohort 2024-11-01 --last-cohort 2026-10-01 --periods
//! 24` (no --as-of: everything recorded) and checks that the page has every
//! section and no section that says why it is missing. To show where the
//! time goes, each round also makes the page's calls one at a time over
//! gRPC (the same requests, from the same flags: `html::HtmlArgs::requests`)
//! and times each.
//!
//! Run: `cargo bench --bench report_html`. Knobs: `BENCH_CUSTOMERS`
//! (1,000,000), `BENCH_TRANSACTIONS` (about 10,000,000 purchases),
//! `BENCH_ROUNDS` (5), `BENCH_CLVD_BIN` (another clvd build, for both the
//! server and the client), `BENCH_EXPLAIN` (a file: the plans, with
//! ANALYZE and BUFFERS, of every server statement over 100 ms, from
//! PostgreSQL's auto_explain, are copied there at the end).

#[path = "support/cohort_data.rs"]
mod cohort_data;
mod support;

use std::{future::Future, process::Command, time::Instant};
use support::{connect, cpu_model, env_or, median, num_cpus, spawn_clvd};

use anyhow::{bail, ensure, Context};
use clap::Parser;
use clvd::{
    api::pb::{
        self, model_service_client::ModelServiceClient, report_service_client::ReportServiceClient,
        scoring_service_client::ScoringServiceClient,
    },
    cli::{
        report::{html, ReportCommand},
        ClientCli, ClientCommand,
    },
    storage::Storage,
};

struct Knobs {
    customers: i64,
    transactions: i64,
    rounds: usize,
}

/// The page's flags after `report html --out FILE --server URL`.
const PAGE: [&str; 6] = [
    "--first-cohort",
    "2024-11-01",
    "--last-cohort",
    "2026-10-01",
    "--periods",
    "24",
];

/// Elements every complete page has: the figures' and sections' ids.
const SECTIONS: [&str; 10] = [
    "id=\"cohorts\"",
    "id=\"retention-heatmap\"",
    "id=\"cumulative-revenue\"",
    "id=\"loyalty\"",
    "id=\"model\"",
    "id=\"calibration\"",
    "id=\"p-alive\"",
    "id=\"expected-purchases\"",
    "id=\"pareto\"",
    "id=\"at-risk\"",
];

fn main() -> anyhow::Result<()> {
    let k = Knobs {
        customers: env_or("BENCH_CUSTOMERS", 1_000_000),
        transactions: env_or("BENCH_TRANSACTIONS", 10_000_000),
        rounds: env_or("BENCH_ROUNDS", 5),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(k))
}

async fn run(k: Knobs) -> anyhow::Result<()> {
    // Reads are measured; durability settings only speed up the setup.
    let (dir, pg, pool) = support::start_postgres("report-html", true).await?;
    let storage = Storage::from_pool(pool.clone());
    storage.migrate().await?;
    println!("machine: {} cores, {}", num_cpus(), cpu_model());
    println!("postgres: {}", pg.bin_dir().display());

    let started = Instant::now();
    cohort_data::load(&pool, k.customers, k.transactions).await?;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM transactions")
        .fetch_one(&pool)
        .await?;
    println!(
        "loaded {} customers, {rows} transactions (purchases and refunds) in {:.0} s",
        k.customers,
        started.elapsed().as_secs_f64()
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
    let explain = std::env::var("BENCH_EXPLAIN").ok();
    if explain.is_some() {
        // Only the server's connections, opened after this, load it.
        for setting in [
            "session_preload_libraries = 'auto_explain'",
            "auto_explain.log_min_duration = '100ms'",
            "auto_explain.log_analyze = on",
            "auto_explain.log_buffers = on",
            "auto_explain.log_nested_statements = on",
        ] {
            sqlx::query(&format!("ALTER DATABASE bench SET {setting}"))
                .execute(&pool)
                .await?;
        }
    }

    let (mut server, endpoint) = spawn_clvd(&pg.url("bench"), 8)?;
    let result = measure(&k, &endpoint, &dir).await;
    let _ = server.kill();
    let _ = server.wait();
    pool.close().await;
    drop(pg);
    if let Some(file) = explain {
        std::fs::copy(dir.join("postgres.log"), &file).context("copy the plans")?;
        println!("plans of the statements over 100 ms: {file}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The release binary the server runs, also run as the client.
fn clvd_binary() -> String {
    std::env::var("BENCH_CLVD_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_clvd").to_owned())
}

/// Milliseconds a call takes, failing with its name.
async fn timed<T, F>(name: &str, call: F) -> anyhow::Result<f64>
where
    F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let started = Instant::now();
    call.await.with_context(|| name.to_owned())?;
    Ok(started.elapsed().as_secs_f64() * 1e3)
}

/// The page's requests, from the same flags as the process's.
fn requests(endpoint: &str, out: &std::path::Path) -> anyhow::Result<html::Requests> {
    let mut argv = vec!["clvd", "report", "html", "--out"];
    let out = out.to_string_lossy().into_owned();
    argv.push(&out);
    argv.extend(PAGE);
    argv.extend(["--server", endpoint]);
    let cli = ClientCli::try_parse_from(argv)?;
    match cli.command {
        ClientCommand::Report(ReportCommand::Html(args)) => Ok(args.requests()),
        _ => bail!("not a report html command line"),
    }
}

async fn measure(k: &Knobs, endpoint: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let channel = connect(endpoint, 1).await?.remove(0);
    cohort_data::record_monthly_spend(channel.clone()).await?;
    let mut models = ModelServiceClient::new(channel.clone());
    let started = Instant::now();
    let fitted = models
        .fit_model(pb::FitModelRequest {
            as_of: None,
            time_unit: pb::TimeUnit::Day as i32,
            // BG/NBD alone: the page's time does not depend on the family,
            // and fitting every family on a million distinct summaries is
            // far slower (the all-family fit is issue 14's to measure).
            families: vec![pb::ModelFamily::BgNbd as i32],
            ..Default::default()
        })
        .await
        .context("FitModel")?
        .into_inner();
    println!(
        "FitModel (version {}, {} customers) in {:.1} s (setup, not part of the page)",
        fitted.version,
        fitted.customers,
        started.elapsed().as_secs_f64()
    );

    let out = dir.join("report.html");
    let mut reports = ReportServiceClient::new(channel.clone());
    let mut scoring = ScoringServiceClient::new(channel.clone());
    let mut page_ms = Vec::new();
    let names = [
        "GetCohortReport",
        "GetLoyaltySummary",
        "GetModel",
        "EvaluateModel",
        "GetSegmentReport",
        "ListAtRiskCustomers",
    ];
    let mut call_ms: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for round in 0..k.rounds {
        let _ = std::fs::remove_file(&out);
        let started = Instant::now();
        // The first argument must be the command (`clvd --server ...` is
        // the server's command line).
        let status = Command::new(clvd_binary())
            .args(["report", "html", "--out"])
            .arg(&out)
            .args(PAGE)
            .args(["--server", endpoint])
            .status()
            .context("run clvd report html")?;
        let ms = started.elapsed().as_secs_f64() * 1e3;
        ensure!(status.success(), "clvd report html: {status}");
        let page = std::fs::read_to_string(&out)?;
        for section in SECTIONS {
            ensure!(page.contains(section), "the page has no {section}");
        }
        ensure!(
            !page.contains("<p class=\"missing\""),
            "a section of the page says why it is missing"
        );
        page_ms.push(ms);

        // The same calls, one at a time.
        let r = requests(endpoint, &out)?;
        let evaluation = r.evaluation.context("the page evaluates the model")?;
        let took = [
            timed(names[0], reports.get_cohort_report(r.cohorts)).await?,
            timed(names[1], reports.get_loyalty_summary(r.loyalty)).await?,
            timed(names[2], models.get_model(r.model)).await?,
            timed(names[3], models.evaluate_model(evaluation)).await?,
            timed(names[4], reports.get_segment_report(r.segments)).await?,
            timed(names[5], scoring.list_at_risk_customers(r.at_risk)).await?,
        ];
        let calls: Vec<String> = names
            .iter()
            .zip(took)
            .map(|(n, t)| format!("{n} {t:.0} ms"))
            .collect();
        println!(
            "round {round}: clvd report html {ms:.0} ms ({} KiB); alone: {}",
            page.len() / 1024,
            calls.join(", ")
        );
        for (all, t) in call_ms.iter_mut().zip(took) {
            all.push(t);
        }
    }
    let calls: Vec<String> = names
        .iter()
        .zip(call_ms)
        .map(|(n, t)| format!("{n} {:.0}", median(t)))
        .collect();
    println!(
        "REPORT HTML (24 monthly cohorts x 24 periods, {} customers, about {} purchases): \
         clvd report html p50 {:.0} ms end to end over {} rounds; the page's calls alone, \
         p50 ms (the page makes them at once): {}",
        k.customers,
        k.transactions,
        median(page_ms),
        k.rounds,
        calls.join(", ")
    );
    Ok(())
}
