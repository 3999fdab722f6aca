//! Fitting BG/NBD + Gamma-Gamma on 1,000,000 simulated customers: this
//! crate against the Python `lifetimes` package on the very same summaries,
//! and the time to score every customer.
//!
//!     LIFETIMES_PYTHON=/tmp/venv/bin/python cargo bench -p clv-model --bench fit_vs_lifetimes
//!
//! Environment: `BENCH_CUSTOMERS` (default 1000000), `BENCH_RUNS` (runs of
//! ours, default 7), `LIFETIMES_PYTHON` (interpreter with lifetimes
//! installed, default `python3`; `skip` to leave lifetimes out),
//! `LIFETIMES_ROWS` (fit lifetimes on the first N customers only; ours is
//! then also timed on those N).

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use clv_model::{
    fit_bgnbd, fit_gamma_gamma, simulate, Acquisition, BgNbdFitInput, BgNbdParams, ClvModel,
    CustomerSummary, FitOptions, GammaGammaFitInput, GammaGammaParams, ScoreOptions,
    SimulationConfig, TimeResolution,
};
use serde_json::Value;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// One complete fit from per-customer summaries: grouping included.
fn fit_from_summaries(
    summaries: &[CustomerSummary],
) -> (clv_model::BgNbdFit, clv_model::GammaGammaFit) {
    let options = FitOptions::default();
    let purchases =
        fit_bgnbd(&BgNbdFitInput::from_summaries(summaries), &options).expect("BG/NBD fit");
    let spend = fit_gamma_gamma(&GammaGammaFitInput::from_summaries(summaries), &options)
        .expect("Gamma-Gamma fit");
    (purchases, spend)
}

fn time_ours(
    label: &str,
    summaries: &[CustomerSummary],
    runs: usize,
) -> (clv_model::BgNbdFit, clv_model::GammaGammaFit, Duration) {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        let started = Instant::now();
        let fits = fit_from_summaries(summaries);
        times.push(started.elapsed());
        last = Some(fits);
    }
    let (bg, gg) = last.expect("at least one run");
    let all: Vec<String> = times.iter().map(|t| format!("{:.3}", secs(*t))).collect();
    println!(
        "ours, {label}: median {:.3} s over {runs} runs [{}]",
        secs(median(times.clone())),
        all.join(", ")
    );
    (bg, gg, median(times))
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("fit_vs_lifetimes: run with `cargo bench -p clv-model --bench fit_vs_lifetimes`");
        return;
    }
    let customers: usize = env_or("BENCH_CUSTOMERS", 1_000_000);
    let runs: usize = env_or("BENCH_RUNS", 7).max(1);
    let python: String = env_or("LIFETIMES_PYTHON", "python3".to_string());
    let lifetimes_rows: usize = env_or("LIFETIMES_ROWS", customers).min(customers);

    let truth_bg = BgNbdParams::from_weeks(0.243, 4.414, 0.793, 2.426).expect("parameters");
    let truth_gg = GammaGammaParams::new(6.25, 3.74, 15.44).expect("parameters");
    let config = SimulationConfig {
        purchases: truth_bg,
        spend: Some(truth_gg),
        customers,
        calibration_days: 730.0,
        holdout_days: 0.0,
        acquisition: Acquisition::Uniform { window_days: 365.0 },
        resolution: TimeResolution::WholeDays,
        seed: 2005,
        record_occasions: false,
    };
    let started = Instant::now();
    let summaries: Vec<CustomerSummary> =
        simulate(&config).into_iter().map(|c| c.summary).collect();
    println!(
        "simulated {customers} customers (whole days, 2-year window, acquisition over the first year) in {:.2} s",
        secs(started.elapsed())
    );
    let grouped = BgNbdFitInput::from_summaries(&summaries);
    let spend_groups = GammaGammaFitInput::from_summaries(&summaries);
    println!(
        "distinct (x, t_x, T): {}; spend model customers (x > 0, m > 0): {} in {} distinct (x, m)",
        grouped.groups().len(),
        spend_groups.customers(),
        spend_groups.groups().len()
    );
    println!(
        "machine: {} logical CPUs, rayon threads {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        rayon::current_num_threads()
    );

    // Where the time goes (one run).
    let t0 = Instant::now();
    let g1 = BgNbdFitInput::from_summaries(&summaries);
    let t1 = Instant::now();
    let f1 = fit_bgnbd(&g1, &FitOptions::default()).expect("fit");
    let t2 = Instant::now();
    let g2 = GammaGammaFitInput::from_summaries(&summaries);
    let t3 = Instant::now();
    let f2 = fit_gamma_gamma(&g2, &FitOptions::default()).expect("fit");
    let t4 = Instant::now();
    let no_se = FitOptions {
        standard_errors: false,
        ..FitOptions::default()
    };
    let f3 = fit_bgnbd(&g1, &no_se).expect("fit");
    let t5 = Instant::now();
    println!(
        "breakdown: group (x,t_x,T) {:.3} s, BG/NBD fit {:.3} s ({} it; without standard errors {:.3} s), group (x,m) {:.3} s, Gamma-Gamma fit {:.3} s ({} it)",
        secs(t1 - t0), secs(t2 - t1), f1.report.iterations, secs(t5 - t4), secs(t3 - t2), secs(t4 - t3), f2.report.iterations
    );
    assert_eq!(f3.params, f1.params);

    // Ours, from per-customer summaries (grouping included) on all customers.
    let (bg, gg, ours_all) = time_ours(
        &format!("{customers} customers, grouping included"),
        &summaries,
        runs,
    );
    // Ours, from pre-grouped rows (what the service reads from SQL GROUP BY).
    let rows: Vec<_> = grouped
        .groups()
        .iter()
        .map(|g| (g.x, g.t_x, g.t, g.count))
        .collect();
    let spend_rows: Vec<_> = spend_groups
        .groups()
        .iter()
        .map(|g| (g.x, g.m, g.count))
        .collect();
    let mut pre = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let a = fit_bgnbd(
            &BgNbdFitInput::from_groups(rows.iter().copied()).expect("rows"),
            &FitOptions::default(),
        )
        .expect("fit");
        let b = fit_gamma_gamma(
            &GammaGammaFitInput::from_groups(spend_rows.iter().copied()).expect("rows"),
            &FitOptions::default(),
        )
        .expect("fit");
        pre.push(started.elapsed());
        assert_eq!(a.report.customers, bg.report.customers);
        assert!(b.report.converged);
    }
    println!(
        "ours, {customers} customers from pre-grouped rows: median {:.3} s over {runs} runs",
        secs(median(pre))
    );
    println!(
        "  BG/NBD: {} iterations, ‖∇‖ {:.1e}, LL {:.4}; Gamma-Gamma: {} iterations, ‖∇‖ {:.1e}, LL {:.4}",
        bg.report.iterations, bg.report.gradient_norm, bg.report.log_likelihood, gg.report.iterations, gg.report.gradient_norm, gg.report.log_likelihood
    );

    // Scoring every customer: P(alive), P(no purchase in 90 days), E[Y] over 12 months, spend, value.
    let model = ClvModel {
        purchases: bg.params.into(),
        spend: gg.params,
    };
    let mut score_times = Vec::new();
    for _ in 0..runs.min(5) {
        let started = Instant::now();
        let scores = model
            .score_all(&summaries, &ScoreOptions::default())
            .expect("scores");
        score_times.push(started.elapsed());
        assert_eq!(scores.len(), customers);
    }
    println!("scoring all {customers} customers (P(alive), P(no purchase 90 d), E[Y(360 d)], E[spend], value 12 months at 10%): median {:.3} s", secs(median(score_times)));

    if python == "skip" {
        return;
    }
    // The same summaries for lifetimes.
    // Benches run in the package directory; the temporary directory is
    // writable wherever the workspace's target directory is.
    let csv = std::env::temp_dir().join("clv-bench-summaries.csv");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&csv).expect("create CSV"));
    writeln!(out, "frequency,recency,T,monetary_value").expect("write");
    for s in &summaries {
        writeln!(out, "{},{},{},{}", s.x(), s.t_x(), s.t(), s.m()).expect("write");
    }
    drop(out);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/lifetimes_fit.py");
    let (ours, ours_time) = if lifetimes_rows < customers {
        let (b, g, t) = time_ours(
            &format!("first {lifetimes_rows} customers, grouping included"),
            &summaries[..lifetimes_rows],
            runs,
        );
        ((b, g), t)
    } else {
        ((bg, gg), ours_all)
    };
    println!("running lifetimes on {lifetimes_rows} customers: {python} {script} (1 run) ...");
    let started = Instant::now();
    let output = Command::new(&python)
        .arg(script)
        .arg(&csv)
        .arg(lifetimes_rows.to_string())
        .output()
        .expect("run python");
    let wall = started.elapsed();
    if !output.status.success() {
        println!(
            "lifetimes failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        return;
    }
    let theirs: Value = serde_json::from_slice(&output.stdout).expect("lifetimes JSON");
    let their_seconds = theirs["seconds"].as_f64().expect("seconds");
    println!("lifetimes: fit {:.2} s (BG/NBD {:.2} s + Gamma-Gamma {:.2} s; process wall time incl. CSV load {:.2} s)",
        their_seconds, theirs["bgnbd_seconds"].as_f64().unwrap_or(f64::NAN), theirs["gamma_gamma_seconds"].as_f64().unwrap_or(f64::NAN), secs(wall));
    let (b, g) = ours;
    println!(
        "\n{:<12} {:>16} {:>16} {:>10}",
        "parameter", "clv-model", "lifetimes", "rel diff"
    );
    let their = |model: &str, k: &str| theirs[model][k].as_f64().unwrap_or(f64::NAN);
    for (name, o, t) in [
        ("r", b.params.r(), their("bgnbd", "r")),
        ("alpha (d)", b.params.alpha(), their("bgnbd", "alpha")),
        ("a", b.params.a(), their("bgnbd", "a")),
        ("b", b.params.b(), their("bgnbd", "b")),
        (
            "BG/NBD LL",
            b.report.log_likelihood,
            theirs["bgnbd_log_likelihood"].as_f64().unwrap_or(f64::NAN),
        ),
        ("p", g.params.p(), their("gamma_gamma", "p")),
        ("q", g.params.q(), their("gamma_gamma", "q")),
        ("gamma", g.params.gamma(), their("gamma_gamma", "v")),
        (
            "GG LL",
            g.report.log_likelihood,
            theirs["gamma_gamma_log_likelihood"]
                .as_f64()
                .unwrap_or(f64::NAN),
        ),
    ] {
        println!(
            "{name:<12} {o:>16.8} {t:>16.8} {:>10.2e}",
            ((o - t) / t).abs()
        );
    }
    println!(
        "\ntruth: r {} alpha {} a {} b {} | p {} q {} gamma {}",
        truth_bg.r(),
        truth_bg.alpha(),
        truth_bg.a(),
        truth_bg.b(),
        truth_gg.p(),
        truth_gg.q(),
        truth_gg.gamma()
    );
    println!(
        "speed-up on {lifetimes_rows} customers: lifetimes {:.2} s / ours {:.3} s (median) = {:.0}x",
        their_seconds,
        secs(ours_time),
        their_seconds / secs(ours_time)
    );
}
