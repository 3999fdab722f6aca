//! Purchase-count distributions of the three families: P(X(t) = n) for a
//! new customer and P(Y(t) = n | x, t_x, T) given a history.
//!
//! - Against `model/fixtures/families_counts.json` (written by
//!   `generate_family_fixtures.py count_distributions`): mpmath at 50
//!   digits by formulas independent of ours (BG/NBD and MBG/NBD: the joint
//!   P(history, Y = n) over P(history) with λ and p integrated out;
//!   Pareto/NBD: Fader & Hardie's note 028 eq. 16 with ₂F₁), and lifetimes
//!   where it has the function.
//! - Σₙ P = 1 and Σₙ n·P = the family's conditional expected purchases.
//! - Simulation: over a simulated population with a holdout, the number
//!   of customers with n holdout purchases against Σ_customers P(Y = n).

use clv_model::{
    simulate_process, Acquisition, BgNbdParams, CustomerSummary, MbgNbdParams, ParetoNbdParams,
    PurchaseCountDistribution, PurchaseProcess, SimulationConfig, TimeResolution,
};
use serde_json::Value;

/// Against mpmath: |ours − mpmath| ≤ this × max(mpmath, 1e-6). Relative
/// for probabilities above 1e-6; below, an absolute 1e-16 (the rounding
/// of the sums that make up the larger ones).
const MPMATH_TOLERANCE: f64 = 1e-10;
/// Against lifetimes (double precision with a 1 − Σ cancellation).
const LIFETIMES_TOLERANCE: f64 = 1e-8;
/// Σ P = 1 and Σ n·P = E[Y] (relative).
const SUM_TOLERANCE: f64 = 1e-10;

fn fixture() -> Value {
    let path = format!(
        "{}/fixtures/families_counts.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture exists"))
        .expect("fixture is JSON")
}

fn num(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is a number"))
}

/// One family at given parameters, for the tests.
enum Family {
    Bg(BgNbdParams),
    Mbg(MbgNbdParams),
    Pareto(ParetoNbdParams),
}

impl Family {
    fn of(name: &str, p: [f64; 4]) -> Self {
        let [a, b, c, d] = p;
        match name {
            "bgnbd" => Self::Bg(BgNbdParams::new(a, b, c, d).unwrap()),
            "mbgnbd" => Self::Mbg(MbgNbdParams::new(a, b, c, d).unwrap()),
            "pareto_nbd" => Self::Pareto(ParetoNbdParams::new(a, b, c, d).unwrap()),
            other => panic!("unknown family {other}"),
        }
    }

    /// Unconditional for T = 0, conditional otherwise.
    fn distribution(&self, (x, t_x, t): (f64, f64, f64), h: f64) -> PurchaseCountDistribution {
        if t == 0.0 {
            return match self {
                Self::Bg(p) => p.purchase_distribution(h),
                Self::Mbg(p) => p.purchase_distribution(h),
                Self::Pareto(p) => p.purchase_distribution(h),
            };
        }
        let c = CustomerSummary::new(x, t_x, t, 0.0).unwrap();
        match self {
            Self::Bg(p) => p.conditional_purchase_distribution(&c, h),
            Self::Mbg(p) => p.conditional_purchase_distribution(&c, h),
            Self::Pareto(p) => p.conditional_purchase_distribution(&c, h),
        }
    }

    fn expected(&self, (x, t_x, t): (f64, f64, f64), h: f64) -> f64 {
        if t == 0.0 {
            return match self {
                Self::Bg(p) => p.expected_purchases_new_customer(h),
                Self::Mbg(p) => p.expected_purchases_new_customer(h),
                Self::Pareto(p) => p.expected_purchases_new_customer(h),
            };
        }
        let c = CustomerSummary::new(x, t_x, t, 0.0).unwrap();
        match self {
            Self::Bg(p) => p.expected_purchases(&c, h),
            Self::Mbg(p) => p.expected_purchases(&c, h),
            Self::Pareto(p) => p.expected_purchases(&c, h),
        }
    }
}

fn point_of(p: &Value) -> (Family, (f64, f64, f64), f64, usize) {
    let params: Vec<f64> = p["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    (
        Family::of(
            p["family"].as_str().unwrap(),
            [params[0], params[1], params[2], params[3]],
        ),
        (num(p, "x"), num(p, "t_x"), num(p, "T")),
        num(p, "t"),
        p["n"].as_u64().unwrap() as usize,
    )
}

#[test]
fn every_family_matches_mpmath_and_lifetimes() {
    let f = fixture();
    let points = f["points"].as_array().unwrap();
    assert!(points.len() > 2000);
    let (mut checked_lifetimes, mut worst) = (0, 0.0_f64);
    let mut cache = std::collections::HashMap::new();
    for p in points {
        let (family, history, h, n) = point_of(p);
        let key = format!("{}{}{history:?}{h}", p["family"], p["params_name"]);
        let ours = cache
            .entry(key)
            .or_insert_with(|| family.distribution(history, h))
            .probability(n);
        let reference = num(p, "mpmath");
        let error = (ours - reference).abs() / reference.max(1e-6);
        worst = worst.max(error);
        assert!(
            error <= MPMATH_TOLERANCE,
            "{} {} {history:?} t={h} n={n}: ours {ours} vs mpmath {reference} ({error:.1e})",
            p["family"],
            p["params_name"]
        );
        if let Some(theirs) = p["lifetimes"].as_f64() {
            checked_lifetimes += 1;
            let error = (ours - theirs).abs() / theirs.abs().max(1e-6);
            assert!(
                error <= LIFETIMES_TOLERANCE,
                "{} {history:?} t={h} n={n}: ours {ours} vs lifetimes {theirs}",
                p["family"]
            );
        }
    }
    assert!(checked_lifetimes > 500, "{checked_lifetimes}");
    eprintln!("worst relative error against mpmath: {worst:.2e}");
}

#[test]
fn distributions_sum_to_one_with_the_expected_purchases_as_mean() {
    let f = fixture();
    let mut seen = std::collections::HashSet::new();
    for p in f["points"].as_array().unwrap() {
        let key = format!(
            "{}{}{}{}{}{}",
            p["family"], p["params_name"], p["x"], p["t_x"], p["T"], p["t"]
        );
        if !seen.insert(key) {
            continue;
        }
        let (family, history, h, _) = point_of(p);
        let d = family.distribution(history, h);
        let total: f64 = d.probabilities().iter().sum();
        assert!(
            (total - 1.0).abs() <= SUM_TOLERANCE,
            "{} {history:?} t={h}: Σ P = {total}",
            p["family"]
        );
        let expected = family.expected(history, h);
        let mean = d.mean();
        assert!(
            (mean - expected).abs() <= SUM_TOLERANCE * expected.max(1.0),
            "{} {} {history:?} t={h}: Σ n·P = {mean} vs E = {expected}",
            p["family"],
            p["params_name"]
        );
    }
    assert!(seen.len() > 250);
}

/// Customers simulated with a holdout from `process` (continuous time, the
/// models' own assumption), with their calibration summaries.
fn population(process: PurchaseProcess, seed: u64) -> Vec<(CustomerSummary, u64)> {
    let config = SimulationConfig {
        purchases: BgNbdParams::new(1.0, 1.0, 1.0, 1.0).unwrap(),
        spend: None,
        customers: 10_000,
        calibration_days: 365.0,
        holdout_days: 180.0,
        acquisition: Acquisition::Uniform { window_days: 300.0 },
        resolution: TimeResolution::Continuous,
        seed,
        record_occasions: false,
    };
    simulate_process(&config, process)
        .into_iter()
        .map(|c| (c.summary, c.holdout_purchases))
        .collect()
}

/// For n = 0, 1, 2, 3 and ≥ 4: the count of customers with n holdout
/// purchases against Σ P_i(n), within 4 standard deviations
/// (Var = Σ P_i(1 − P_i), the customers being independent).
fn assert_counts_match(
    customers: &[(CustomerSummary, u64)],
    law: impl Fn(&CustomerSummary) -> PurchaseCountDistribution,
) {
    let mut expected = [0.0; 5];
    let mut variance = [0.0; 5];
    let mut observed = [0.0; 5];
    for (c, holdout) in customers {
        let d = law(c);
        for k in 0..5 {
            let p = if k < 4 {
                d.probability(k)
            } else {
                1.0 - (0..4).map(|j| d.probability(j)).sum::<f64>()
            };
            expected[k] += p;
            variance[k] += p * (1.0 - p);
        }
        observed[(*holdout as usize).min(4)] += 1.0;
    }
    for k in 0..5 {
        let z = (observed[k] - expected[k]) / variance[k].sqrt();
        assert!(
            z.abs() < 4.0,
            "n = {k}{}: observed {} vs expected {:.1} (z = {z:.2})",
            if k == 4 { "+" } else { "" },
            observed[k],
            expected[k]
        );
    }
}

#[test]
fn conditional_distributions_match_simulated_holdouts() {
    let horizon = 180.0;
    let bg = BgNbdParams::new(0.6, 25.0, 0.7, 2.2).unwrap();
    let customers = population(PurchaseProcess::BgNbd(bg), 31);
    assert_counts_match(&customers, |c| {
        bg.conditional_purchase_distribution(c, horizon)
    });
    let mbg = MbgNbdParams::new(0.6, 25.0, 0.7, 2.2).unwrap();
    let customers = population(PurchaseProcess::MbgNbd(mbg), 32);
    assert_counts_match(&customers, |c| {
        mbg.conditional_purchase_distribution(c, horizon)
    });
    let pareto = ParetoNbdParams::new(0.8, 40.0, 0.5, 60.0).unwrap();
    let customers = population(PurchaseProcess::ParetoNbd(pareto), 33);
    assert_counts_match(&customers, |c| {
        pareto.conditional_purchase_distribution(c, horizon)
    });
}

#[test]
fn new_customer_distributions_match_simulation() {
    // Everybody acquired at the start, with no calibration time left: the
    // holdout count is X(t) of a new customer.
    let config = |seed| SimulationConfig {
        purchases: BgNbdParams::new(1.0, 1.0, 1.0, 1.0).unwrap(),
        spend: None,
        customers: 10_000,
        calibration_days: 1e-9,
        holdout_days: 200.0,
        acquisition: Acquisition::AtStart,
        resolution: TimeResolution::Continuous,
        seed,
        record_occasions: false,
    };
    let mbg = MbgNbdParams::new(0.9, 30.0, 1.1, 2.5).unwrap();
    let pareto = ParetoNbdParams::new(0.9, 30.0, 0.7, 80.0).unwrap();
    for (process, law) in [
        (
            PurchaseProcess::MbgNbd(mbg),
            mbg.purchase_distribution(200.0 + 1e-9),
        ),
        (
            PurchaseProcess::ParetoNbd(pareto),
            pareto.purchase_distribution(200.0 + 1e-9),
        ),
    ] {
        let customers: Vec<(CustomerSummary, u64)> = simulate_process(&config(41), process)
            .into_iter()
            .map(|c| {
                // Purchases in (0, 1e-9] are all but impossible; count the
                // calibration ones in too.
                let total = c.holdout_purchases + c.summary.x() as u64;
                (c.summary, total)
            })
            .collect();
        assert_counts_match(&customers, |_| law.clone());
    }
}
