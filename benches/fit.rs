//! FitModel benchmark: FitModel end to end over gRPC against the release
//! server on a base generated with SQL, the time of each stage of the fit
//! (from the server's `clvd_fit_stage_seconds` histogram), and Python
//! lifetimes' bare `BetaGeoFitter.fit` on the same summaries (exported from
//! the database) in the same run, with the ratio.
//!
//! Setup simulates two years of purchases with the model crate's BG/NBD +
//! Gamma-Gamma simulator (CDNOW-like parameters; spend varies between
//! customers and within each, so Gamma-Gamma has something to fit), copies
//! them into customer_days and builds customers from them with SQL, in
//! exactly the shape ingest stores them; a fit reads nothing else, so the
//! transactions table stays empty. Durability stays on: a fit writes.
//!
//! Run: `cargo bench --bench fit`. Knobs: `BENCH_CUSTOMERS` (1,000,000),
//! `BENCH_ROUNDS` (FitModel rounds, 5; the median is reported),
//! `BENCH_EXPLAIN` (1: print EXPLAIN (ANALYZE, BUFFERS) of the fit's
//! reads, the plain grouping from customer_days and the one-pass read,
//! before the rounds),
//! `LIFETIMES_PYTHON` (the Python with lifetimes installed, default
//! `python3`; `skip` leaves lifetimes out).

// Not every helper of support is used here.
#[allow(dead_code)]
mod support;

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    io::{Read, Write},
    time::Instant,
};
use support::{connect, cpu_model, env_or, median, num_cpus, spawn_clvd};

use anyhow::{bail, Context};
use clv_model::{
    simulate, Acquisition, BgNbdParams, GammaGammaParams, SimulationConfig, TimeResolution,
};
use clvd::{
    api::pb::{self, model_service_client::ModelServiceClient},
    storage::Storage,
};
use sqlx::{PgPool, Row};

/// The fits' as-of day: the day after the data ends.
const AS_OF: &str = "2026-11-01";

struct Knobs {
    customers: i64,
    explain: bool,
    rounds: usize,
    python: String,
}

fn main() -> anyhow::Result<()> {
    let k = Knobs {
        customers: env_or("BENCH_CUSTOMERS", 1_000_000),
        explain: env_or("BENCH_EXPLAIN", 0) == 1,
        rounds: env_or("BENCH_ROUNDS", 5),
        python: env_or("LIFETIMES_PYTHON", "python3".to_owned()),
    };
    // The server's metrics port, where the stage histogram is read.
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    // Set before any thread starts; the clvd child process inherits it.
    std::env::set_var("CLVD_METRICS_ADDR", metrics.to_string());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(k, metrics))
}

async fn run(k: Knobs, metrics: std::net::SocketAddr) -> anyhow::Result<()> {
    let (dir, pg, pool) = support::start_postgres("fit", false).await?;
    let storage = Storage::from_pool(pool.clone());
    storage.migrate().await?;
    println!("machine: {} cores, {}", num_cpus(), cpu_model());

    let started = Instant::now();
    load(&pool, k.customers).await?;
    println!(
        "loaded {} customers in {:.0} s",
        k.customers,
        started.elapsed().as_secs_f64()
    );
    sqlx::query("VACUUM ANALYZE").execute(&pool).await?;

    let (mut server, endpoint) = spawn_clvd(&pg.url("bench"), 8)?;
    let result = measure(&k, &pool, &endpoint, metrics).await;
    let _ = server.kill();
    let _ = server.wait();
    pool.close().await;
    drop(pg);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Days of simulated history, ending the day before [`AS_OF`].
const HISTORY_DAYS: i64 = 730;

/// customer_days and customers as ingest would have stored them.
async fn load(pool: &PgPool, customers: i64) -> anyhow::Result<()> {
    let started = Instant::now();
    let simulated = simulate(&SimulationConfig {
        // The parameters tests/api/models.rs uses (CDNOW-like, in days).
        purchases: BgNbdParams::new(0.243, 30.9, 0.793, 2.426)?,
        spend: Some(GammaGammaParams::new(6.25, 3.74, 15.44)?),
        customers: customers as usize,
        calibration_days: HISTORY_DAYS as f64 - 1.0,
        holdout_days: 0.0,
        acquisition: Acquisition::Uniform {
            window_days: HISTORY_DAYS as f64 / 2.0,
        },
        resolution: TimeResolution::WholeDays,
        seed: 15,
        record_occasions: true,
    });
    let first_day = chrono::NaiveDate::parse_from_str(AS_OF, "%Y-%m-%d")?
        - chrono::Duration::days(HISTORY_DAYS);
    // One customer_days row per customer and day (occasions of one day
    // merged), as COPY text.
    let mut conn = pool.acquire().await?;
    let mut copy = conn
        .copy_in_raw(
            "COPY customer_days (customer_id, day, purchases, refunds, net_nanos, cost_nanos,
                                 uncosted_purchases, first_purchase_at, last_purchase_at)
             FROM STDIN",
        )
        .await?;
    let mut buf = String::new();
    let mut rows = 0u64;
    for (i, c) in simulated.iter().enumerate() {
        let mut days: BTreeMap<i64, (u32, i64)> = BTreeMap::new();
        for o in &c.occasions {
            // Whole cents, at least one.
            let cents = ((o.value * 100.0).round() as i64).max(1);
            let day = days.entry(o.day as i64).or_default();
            day.0 += 1;
            day.1 += cents * 10_000_000;
        }
        for (day, (purchases, nanos)) in days {
            let day = first_day + chrono::Duration::days(day);
            let at = format!("{day} 12:00:00+00");
            writeln!(
                buf,
                "c{i}\t{day}\t{purchases}\t0\t{nanos}\t0\t{purchases}\t{at}\t{at}"
            )?;
            rows += 1;
        }
        if buf.len() > 1 << 20 {
            copy.send(std::mem::take(&mut buf).into_bytes()).await?;
        }
    }
    copy.send(buf.into_bytes()).await?;
    copy.finish().await?;
    drop(conn);
    println!(
        "  setup: {rows} customer days simulated and copied in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let done = sqlx::query(
        "INSERT INTO customers (customer_id, first_purchase_day, last_purchase_day, first_purchase_at,
                                last_purchase_at, purchase_occasions, purchase_count, refund_count,
                                net_revenue_nanos, repeat_value_nanos, cost_nanos, uncosted_purchases)
         SELECT customer_id, min(day), max(day), min(first_purchase_at), max(last_purchase_at), count(*),
                sum(purchases), sum(refunds), sum(net_nanos),
                sum(net_nanos) - (array_agg(net_nanos ORDER BY day))[1], sum(cost_nanos),
                sum(uncosted_purchases)
           FROM customer_days GROUP BY customer_id",
    )
    .execute(pool)
    .await?
    .rows_affected();
    println!(
        "  setup: {done} customer summaries in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn as_of() -> prost_types::Timestamp {
    let at = chrono::NaiveDate::parse_from_str(AS_OF, "%Y-%m-%d")
        .expect("a date")
        .and_hms_opt(12, 0, 0)
        .expect("a time")
        .and_utc();
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: 0,
    }
}

async fn measure(
    k: &Knobs,
    pool: &PgPool,
    endpoint: &str,
    metrics: std::net::SocketAddr,
) -> anyhow::Result<()> {
    if k.explain {
        explain(pool).await?;
    }
    let channel = connect(endpoint, 1).await?.remove(0);
    let mut client = ModelServiceClient::new(channel);
    let mut seconds = Vec::new();
    let mut all_families = Vec::new();
    // Rounds of BG/NBD alone (what lifetimes' BetaGeoFitter fits, so the
    // ratio compares like with like), then of the server's default: every
    // family, the best by BIC (the last BENCH_ALL_FAMILIES_ROUNDS rounds).
    let all_rounds = env_or("BENCH_ALL_FAMILIES_ROUNDS", 1usize);
    for round in 0..k.rounds + all_rounds {
        let every_family = round >= k.rounds;
        let families = if every_family {
            Vec::new()
        } else {
            vec![pb::ModelFamily::BgNbd as i32]
        };
        let before = stage_sums(metrics)?;
        let started = Instant::now();
        let model = client
            .fit_model(pb::FitModelRequest {
                as_of: Some(as_of()),
                families,
                ..Default::default()
            })
            .await
            .context("FitModel")?
            .into_inner();
        let took = started.elapsed().as_secs_f64();
        if every_family {
            all_families.push(took);
        } else {
            seconds.push(took);
        }
        let after = stage_sums(metrics)?;
        let stages: Vec<String> = after
            .iter()
            .map(|(stage, s)| {
                let was = before.get(stage).copied().unwrap_or(0.0);
                format!("{stage} {:.3}", s - was)
            })
            .collect();
        println!(
            "round {round}: FitModel {} {took:.3} s (version {}, family {:?}); stages (s): {}",
            if every_family {
                "all families"
            } else {
                "BG/NBD"
            },
            model.version,
            pb::ModelFamily::try_from(model.family).unwrap_or_default(),
            stages.join(", ")
        );
    }
    let fit = median(seconds);
    println!(
        "FITMODEL ({} customers): BG/NBD end to end p50 {fit:.3} s over {} rounds",
        k.customers, k.rounds
    );
    if !all_families.is_empty() {
        println!(
            "FITMODEL ALL FAMILIES ({} customers): end to end p50 {:.3} s over {} rounds",
            k.customers,
            median(all_families),
            all_rounds
        );
    }
    if k.python == "skip" {
        return Ok(());
    }
    lifetimes(k, pool, fit).await
}

/// The fit's reads, as src/storage/fit_data.rs and scores.rs write them
/// (copied here: a diagnostic, not the measurement), with their plans.
const EXPLAINED: [(&str, &str); 3] = [
    (
        "plain grouping from customer_days (one of two statements)",
        "SELECT x, t_x, t, count(*) AS customers FROM (
             SELECT count(*)::int - 1 AS x, max(day) - min(day) AS t_x, $1::date - min(day) AS t,
                    sum(net_nanos) - (array_agg(net_nanos ORDER BY day))[1] AS repeat_nanos
               FROM customer_days WHERE day <= $1::date GROUP BY customer_id) s
          GROUP BY x, t_x, t",
    ),
    (
        "one-pass grouped read",
        "WITH s AS (
             SELECT purchase_occasions - 1 AS x, last_purchase_day - first_purchase_day AS t_x,
                    $1::date - first_purchase_day AS t, repeat_value_nanos AS repeat_nanos
               FROM customers WHERE purchase_occasions > 0 AND last_purchase_day <= $1::date
             UNION ALL
             SELECT count(*)::int - 1, max(d.day) - min(d.day), $1::date - min(d.day),
                    sum(d.net_nanos) - (array_agg(d.net_nanos ORDER BY d.day))[1]
               FROM customers c JOIN customer_days d ON d.customer_id = c.customer_id
              WHERE c.purchase_occasions > 0 AND c.first_purchase_day <= $1::date
                AND c.last_purchase_day > $1::date AND d.day <= $1::date
              GROUP BY d.customer_id)
         SELECT GROUPING(t_x, t) = 0 AS purchases, x, t_x, t, m, count(*) AS customers
           FROM (SELECT x, t_x, t, CASE WHEN x > 0 AND repeat_nanos > 0
                                        THEN repeat_nanos::float8 / 1e9 / x END AS m FROM s) g
          GROUP BY GROUPING SETS ((x, t_x, t), (x, m))
         HAVING GROUPING(t_x, t) = 0 OR m IS NOT NULL",
    ),
    (
        "every customer's summary, for scoring",
        "SELECT c.customer_id, c.first_purchase_day, c.last_purchase_day, c.first_purchase_at,
                c.last_purchase_at, c.purchase_occasions, c.purchase_count, c.refund_count,
                c.net_revenue_nanos::text AS net_revenue, c.repeat_value_nanos::text AS repeat_value,
                c.cost_nanos::text AS cost, c.uncosted_purchases
           FROM customers c WHERE c.purchase_occasions > 0 AND $1::date IS NOT NULL",
    ),
];

async fn explain(pool: &PgPool) -> anyhow::Result<()> {
    let day = chrono::NaiveDate::parse_from_str(AS_OF, "%Y-%m-%d")?;
    let mut conn = pool.acquire().await?;
    // As the service reads them (src/storage/fit_data.rs).
    sqlx::query("SET work_mem = '256MB'")
        .execute(&mut *conn)
        .await?;
    for (what, sql) in EXPLAINED {
        let plan: Vec<String> =
            sqlx::query_scalar(&format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT TEXT) {sql}"))
                .bind(day)
                .fetch_all(&mut *conn)
                .await?;
        println!("EXPLAIN {what}:\n  {}", plan.join("\n  "));
    }
    Ok(())
}

/// Σ seconds of `clvd_fit_stage_seconds` per stage, scraped from the
/// server's metrics port. A plain HTTP/1.0 GET over a socket: one request
/// for a text page, and the dev-dependencies hold no HTTP client.
fn stage_sums(addr: std::net::SocketAddr) -> anyhow::Result<BTreeMap<String, f64>> {
    let mut stream = std::net::TcpStream::connect(addr).context("metrics port")?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut page = String::new();
    stream.read_to_string(&mut page)?;
    let mut out = BTreeMap::new();
    for line in page.lines() {
        let Some(rest) = line.strip_prefix("clvd_fit_stage_seconds_sum{stage=\"") else {
            continue;
        };
        let Some((stage, value)) = rest.split_once("\"} ") else {
            bail!("unexpected metric line {line}");
        };
        out.insert(stage.to_owned(), value.trim().parse()?);
    }
    Ok(out)
}

/// lifetimes' BetaGeoFitter.fit on the same summaries, and the ratio.
async fn lifetimes(k: &Knobs, pool: &PgPool, fit: f64) -> anyhow::Result<()> {
    let csv = std::env::temp_dir().join(format!("clvd-bench-fit-{}.csv", std::process::id()));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&csv)?);
    writeln!(out, "frequency,recency,T,monetary_value")?;
    // The fit's summaries (as of AS_OF), one line per customer.
    let rows = sqlx::query(&format!(
        "SELECT purchase_occasions - 1 AS x, last_purchase_day - first_purchase_day AS t_x,
                date '{AS_OF}' - first_purchase_day AS t,
                CASE WHEN purchase_occasions > 1
                     THEN repeat_value_nanos::float8 / 1e9 / (purchase_occasions - 1) ELSE 0 END AS m
           FROM customers WHERE purchase_occasions > 0"
    ))
    .fetch_all(pool)
    .await?;
    for row in &rows {
        let (x, t_x, t, m): (i32, i32, i32, f64) = (
            row.try_get("x")?,
            row.try_get("t_x")?,
            row.try_get("t")?,
            row.try_get("m")?,
        );
        writeln!(out, "{x},{t_x},{t},{m}")?;
    }
    drop(out);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/model/benches/lifetimes_fit.py"
    );
    println!(
        "running lifetimes on {} customers: {} {script} ...",
        rows.len(),
        k.python
    );
    let output = std::process::Command::new(&k.python)
        .arg(script)
        .arg(&csv)
        .output()
        .context("run python")?;
    let _ = std::fs::remove_file(&csv);
    if !output.status.success() {
        println!(
            "lifetimes failed (no ratio): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        return Ok(());
    }
    let theirs: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let bg = theirs["bgnbd_seconds"].as_f64().unwrap_or(f64::NAN);
    println!(
        "FITMODEL VS LIFETIMES ({} customers): FitModel end to end p50 {fit:.3} s; lifetimes \
         BetaGeoFitter.fit {bg:.3} s (GammaGammaFitter.fit {:.3} s more); lifetimes / FitModel \
         {:.2}x",
        k.customers,
        theirs["gamma_gamma_seconds"].as_f64().unwrap_or(f64::NAN),
        bg / fit
    );
    Ok(())
}
