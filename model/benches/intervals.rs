//! Cost per customer of the score intervals, the two methods of
//! `interval.rs` side by side, against plain scoring (no intervals):
//! (a) K seeded parameter draws, precomputed once per model, each score
//! evaluated per draw; (b) the delta method (4 extra purchase evaluations,
//! analytic spend gradient) plus the count interval from the conditional
//! distribution. Plain timing, single thread, one family at a time.
//!
//!     cargo bench -p clv-model --bench intervals
//!
//! Environment: `BENCH_CUSTOMERS` (customers scored per method, default
//! 2000), `BENCH_DRAWS` (K, default 200), `BENCH_FAMILY` (bg_nbd,
//! mbg_nbd or pareto_nbd; default all).

use std::time::Instant;

use clv_model::{
    simulate_process, Acquisition, BgNbdParams, ClvModel, CustomerSummary, GammaGammaParams,
    MbgNbdParams, ModelUncertainty, ParameterDraws, ParetoNbdParams, PurchaseParams,
    PurchaseProcess, ScoreOptions, SimulationConfig, TimeResolution,
};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Microseconds per customer of `f` over `customers`.
fn per_customer(customers: &[CustomerSummary], mut f: impl FnMut(&CustomerSummary) -> f64) -> f64 {
    let started = Instant::now();
    let mut sink = 0.0;
    for c in customers {
        sink += f(c);
    }
    std::hint::black_box(sink);
    started.elapsed().as_secs_f64() * 1e6 / customers.len() as f64
}

fn main() {
    let n: usize = env_or("BENCH_CUSTOMERS", 2_000);
    let k: usize = env_or("BENCH_DRAWS", 200);
    let spend = GammaGammaParams::new(6.0, 4.0, 15.0).expect("spend");
    let diagonal4 = std::array::from_fn(|i| std::array::from_fn(|j| f64::from(i == j) * 0.002));
    let diagonal3 = std::array::from_fn(|i| std::array::from_fn(|j| f64::from(i == j) * 0.002));
    let uncertainty = ModelUncertainty {
        purchases: diagonal4,
        spend: diagonal3,
    };
    let options = ScoreOptions::default();
    println!(
        "customers {n}, draws K = {k}, horizon {} months",
        options.horizon_months
    );
    println!("family      plain µs  delta µs  (×plain)  draws µs  (×plain)");
    let families: [(PurchaseParams, PurchaseProcess); 3] = [
        {
            let p = BgNbdParams::new(0.6, 25.0, 0.7, 2.2).expect("params");
            (p.into(), PurchaseProcess::BgNbd(p))
        },
        {
            let p = MbgNbdParams::new(0.6, 25.0, 0.7, 2.2).expect("params");
            (p.into(), PurchaseProcess::MbgNbd(p))
        },
        {
            let p = ParetoNbdParams::new(0.8, 40.0, 0.5, 60.0).expect("params");
            (p.into(), PurchaseProcess::ParetoNbd(p))
        },
    ];
    let only: String = env_or("BENCH_FAMILY", String::new());
    for (purchases, process) in families {
        if !only.is_empty() && purchases.family().name() != only {
            continue;
        }
        let config = SimulationConfig {
            purchases: BgNbdParams::new(1.0, 1.0, 1.0, 1.0).expect("params"),
            spend: Some(spend),
            customers: n,
            calibration_days: 365.0,
            holdout_days: 0.0,
            acquisition: Acquisition::Uniform { window_days: 300.0 },
            resolution: TimeResolution::WholeDays,
            seed: 3,
            record_occasions: false,
        };
        let customers: Vec<CustomerSummary> = simulate_process(&config, process)
            .into_iter()
            .map(|c| c.summary)
            .collect();
        let model = ClvModel { purchases, spend };
        let plain = per_customer(&customers, |c| {
            model.score(c, &options).map_or(0.0, |s| s.predicted_value)
        });
        let delta = per_customer(&customers, |c| {
            model.score(c, &options).map_or(0.0, |s| s.predicted_value)
                + model
                    .score_intervals(&uncertainty, c, &options, 0.9)
                    .map_or(0.0, |i| i.predicted_value.upper)
        });
        let horizon = options.horizon_months as f64 * 30.0;
        let pmf = per_customer(&customers, |c| {
            purchases
                .conditional_purchase_distribution(c, horizon)
                .probability(0)
        });
        eprintln!(
            "  {}: conditional count distribution alone {pmf:.2} µs",
            purchases.family().name()
        );
        let draws = ParameterDraws::new(&model, &uncertainty, k, 1).expect("draws");
        let sampled = per_customer(&customers, |c| {
            model.score(c, &options).map_or(0.0, |s| s.predicted_value)
                + draws
                    .score_intervals(c, &options, 0.9)
                    .map_or(0.0, |i| i.predicted_value.upper)
        });
        println!(
            "{:<10} {plain:>9.2} {delta:>9.2} {:>9.1} {sampled:>9.1} {:>9.1}",
            purchases.family().name(),
            delta / plain,
            sampled / plain
        );
    }
}
