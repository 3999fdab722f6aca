//! Calibration of the score intervals on simulated populations (the
//! simulators follow each family's story, not its likelihood).
//!
//! - Count intervals: after fitting on the calibration period, the share
//!   of customers whose holdout purchases fall in their 90 % count
//!   interval. The count is discrete, so each interval holds a nominal
//!   probability πᵢ ≥ 0.9 (`purchase_count_probability`); the expected
//!   share is π̄ = mean πᵢ. Tolerance: 4 standard deviations of the share
//!   under independence, 4·√(Σ πᵢ(1−πᵢ))/N, plus the change in π̄ between
//!   the fitted and the true parameters (the fit's own error moves the
//!   intervals; it is measured, not assumed).
//! - Parameter intervals: over 50 simulated data sets (seeds), how often
//!   the 90 % interval for P(alive) and for predicted value, at fixed
//!   customers, contains the value at the true parameters. With 50
//!   independent trials at 0.9 the count is Binomial(50, 0.9): sd 2.1, so
//!   at least 39 (3 sd below 45) is required.
//! - The delta method and the parameter draws agree.

use clv_model::{
    fit_bgnbd, fit_gamma_gamma, fit_mbgnbd, fit_pareto_nbd, simulate_process, Acquisition,
    BgNbdFitInput, BgNbdParams, ClvModel, CustomerSummary, FitOptions, GammaGammaFitInput,
    GammaGammaParams, MbgNbdParams, ModelUncertainty, ParameterDraws, ParetoNbdParams,
    PurchaseCountDistribution, PurchaseParams, PurchaseProcess, ScoreOptions, SimulatedCustomer,
    SimulationConfig, TimeResolution,
};

const LEVEL: f64 = 0.9;

fn population(
    process: PurchaseProcess,
    customers: usize,
    holdout_days: f64,
    seed: u64,
) -> Vec<SimulatedCustomer> {
    let config = SimulationConfig {
        purchases: BgNbdParams::new(1.0, 1.0, 1.0, 1.0).unwrap(),
        spend: Some(GammaGammaParams::new(6.0, 4.0, 15.0).unwrap()),
        customers,
        calibration_days: 365.0,
        holdout_days,
        acquisition: Acquisition::Uniform { window_days: 300.0 },
        resolution: TimeResolution::Continuous,
        seed,
        record_occasions: false,
    };
    simulate_process(&config, process)
}

fn summaries(customers: &[SimulatedCustomer]) -> Vec<CustomerSummary> {
    customers.iter().map(|c| c.summary).collect()
}

/// Fits the family of `truth` on the calibration summaries.
fn fit(truth: PurchaseParams, input: &BgNbdFitInput) -> (PurchaseParams, [[f64; 4]; 4]) {
    let options = FitOptions::default();
    match truth {
        PurchaseParams::BgNbd(_) => {
            let f = fit_bgnbd(input, &options).unwrap();
            (f.params.into(), f.log_parameter_covariance.unwrap())
        }
        PurchaseParams::MbgNbd(_) => {
            let f = fit_mbgnbd(input, &options).unwrap();
            (f.params.into(), f.log_parameter_covariance.unwrap())
        }
        PurchaseParams::ParetoNbd(_) => {
            let f = fit_pareto_nbd(input, &options).unwrap();
            (f.params.into(), f.log_parameter_covariance.unwrap())
        }
    }
}

fn process_of(p: PurchaseParams) -> PurchaseProcess {
    match p {
        PurchaseParams::BgNbd(p) => PurchaseProcess::BgNbd(p),
        PurchaseParams::MbgNbd(p) => PurchaseProcess::MbgNbd(p),
        PurchaseParams::ParetoNbd(p) => PurchaseProcess::ParetoNbd(p),
    }
}

fn assert_count_intervals_calibrated(truth: PurchaseParams, seed: u64) {
    let holdout = 180.0;
    let customers = population(process_of(truth), 8_000, holdout, seed);
    let input = BgNbdFitInput::from_summaries(&summaries(&customers));
    let (fitted, _) = fit(truth, &input);
    let (mut inside, mut nominal, mut nominal_true, mut variance) = (0.0, 0.0, 0.0, 0.0);
    let interval = |p: &PurchaseParams, c: &CustomerSummary| {
        let d: PurchaseCountDistribution = p.conditional_purchase_distribution(c, holdout);
        let (lo, hi) = d.central_interval(LEVEL);
        (lo, hi, d.mass_between(lo, hi))
    };
    for c in &customers {
        let (lo, hi, mass) = interval(&fitted, &c.summary);
        let y = c.holdout_purchases as usize;
        if lo <= y && y <= hi {
            inside += 1.0;
        }
        nominal += mass;
        variance += mass * (1.0 - mass);
        nominal_true += interval(&truth, &c.summary).2;
    }
    let n = customers.len() as f64;
    let (share, expected) = (inside / n, nominal / n);
    let tolerance = 4.0 * variance.sqrt() / n + (nominal - nominal_true).abs() / n;
    eprintln!(
        "{:?}: share inside the 90 % count interval {share:.4}, nominal {expected:.4}, tolerance {tolerance:.4}",
        truth.family()
    );
    assert!(
        expected >= LEVEL && (share - expected).abs() <= tolerance,
        "{:?}: share {share} vs nominal {expected} ± {tolerance}",
        truth.family()
    );
}

#[test]
fn count_intervals_hold_their_share_of_holdout_purchases() {
    assert_count_intervals_calibrated(BgNbdParams::new(0.6, 25.0, 0.7, 2.2).unwrap().into(), 51);
    assert_count_intervals_calibrated(MbgNbdParams::new(0.6, 25.0, 0.7, 2.2).unwrap().into(), 52);
    assert_count_intervals_calibrated(
        ParetoNbdParams::new(0.8, 40.0, 0.5, 60.0).unwrap().into(),
        53,
    );
}

fn spend_fit(customers: &[CustomerSummary]) -> (GammaGammaParams, [[f64; 3]; 3]) {
    let rows = customers
        .iter()
        .filter(|c| c.x() > 0.0 && c.m() > 0.0)
        .map(|c| (c.x(), c.m(), 1));
    let f = fit_gamma_gamma(
        &GammaGammaFitInput::from_groups(rows).unwrap(),
        &FitOptions::default(),
    )
    .unwrap();
    (f.params, f.log_parameter_covariance.unwrap())
}

/// The family of `truth` and Gamma-Gamma fitted on `customers`, with the
/// fits' log-parameter covariances.
fn fitted_model(
    truth: PurchaseParams,
    customers: &[CustomerSummary],
) -> (ClvModel, ModelUncertainty) {
    let (purchases, purchase_cov) = fit(truth, &BgNbdFitInput::from_summaries(customers));
    let (spend, spend_cov) = spend_fit(customers);
    let uncertainty = ModelUncertainty {
        purchases: purchase_cov,
        spend: spend_cov,
    };
    (ClvModel { purchases, spend }, uncertainty)
}

fn assert_parameter_intervals_cover(truth: PurchaseParams, first_seed: u64) {
    let true_spend = GammaGammaParams::new(6.0, 4.0, 15.0).unwrap();
    let true_model = ClvModel {
        purchases: truth,
        spend: true_spend,
    };
    let options = ScoreOptions::default();
    let fixed = [
        CustomerSummary::new(1.0, 60.0, 300.0, 30.0).unwrap(),
        CustomerSummary::new(4.0, 250.0, 330.0, 45.0).unwrap(),
        CustomerSummary::new(10.0, 200.0, 340.0, 20.0).unwrap(),
    ];
    let seeds = 50;
    let mut covered = vec![[0_u32; 2]; fixed.len()];
    for seed in first_seed..first_seed + seeds {
        let customers = summaries(&population(process_of(truth), 3_000, 0.0, seed));
        let (model, uncertainty) = fitted_model(truth, &customers);
        for (c, hits) in fixed.iter().zip(covered.iter_mut()) {
            let i = model
                .score_intervals(&uncertainty, c, &options, LEVEL)
                .unwrap();
            let t = true_model.score(c, &options).unwrap();
            hits[0] += i.probability_alive.contains(t.probability_alive) as u32;
            hits[1] += i.predicted_value.contains(t.predicted_value) as u32;
        }
    }
    eprintln!(
        "{:?}: of {seeds} fits, intervals containing the truth [P(alive), value] per customer: {covered:?}",
        truth.family()
    );
    for hits in covered {
        for h in hits {
            assert!((39..=50).contains(&h), "{:?}: {hits:?}", truth.family());
        }
    }
}

#[test]
fn parameter_intervals_contain_the_truth_at_their_rate() {
    assert_parameter_intervals_cover(BgNbdParams::new(0.6, 25.0, 0.7, 2.2).unwrap().into(), 1_000);
    assert_parameter_intervals_cover(
        MbgNbdParams::new(0.6, 25.0, 0.7, 2.2).unwrap().into(),
        2_000,
    );
}

#[test]
fn delta_method_and_parameter_draws_agree() {
    let truth: PurchaseParams = MbgNbdParams::new(0.6, 25.0, 0.7, 2.2).unwrap().into();
    let customers = summaries(&population(process_of(truth), 4_000, 0.0, 7));
    let (model, uncertainty) = fitted_model(truth, &customers);
    let draws = ParameterDraws::new(&model, &uncertainty, 4_000, 1).unwrap();
    let options = ScoreOptions::default();
    let c = CustomerSummary::new(3.0, 200.0, 330.0, 40.0).unwrap();
    let delta = model
        .score_intervals(&uncertainty, &c, &options, LEVEL)
        .unwrap();
    let sampled = draws.score_intervals(&c, &options, LEVEL).unwrap();
    let close = |what: &str, a: clv_model::Interval, b: clv_model::Interval| {
        let width = b.upper - b.lower;
        assert!(
            (a.lower - b.lower).abs() < 0.15 * width && (a.upper - b.upper).abs() < 0.15 * width,
            "{what}: delta {a:?} vs draws {b:?}"
        );
    };
    close(
        "P(alive)",
        delta.probability_alive,
        sampled.probability_alive,
    );
    close(
        "expected purchases",
        delta.expected_purchases,
        sampled.expected_purchases,
    );
    close(
        "expected spend",
        delta.expected_spend,
        sampled.expected_spend,
    );
    close(
        "predicted value",
        delta.predicted_value,
        sampled.predicted_value,
    );
    assert_eq!(delta.purchase_count, sampled.purchase_count);
}

#[test]
fn levels_outside_zero_one_are_refused_and_certain_scores_are_points() {
    let model = ClvModel {
        purchases: BgNbdParams::new(0.6, 25.0, 0.7, 2.2).unwrap().into(),
        spend: GammaGammaParams::new(6.0, 4.0, 15.0).unwrap(),
    };
    let identity4 = std::array::from_fn(|i| std::array::from_fn(|j| f64::from(i == j) * 0.01));
    let identity3 = std::array::from_fn(|i| std::array::from_fn(|j| f64::from(i == j) * 0.01));
    let u = ModelUncertainty {
        purchases: identity4,
        spend: identity3,
    };
    let c = CustomerSummary::new(0.0, 0.0, 200.0, 0.0).unwrap();
    for level in [0.0, 1.0, -0.5, f64::NAN] {
        let e = model
            .score_intervals(&u, &c, &ScoreOptions::default(), level)
            .unwrap_err();
        assert!(e.to_string().contains("interval level"), "{e}");
    }
    // BG/NBD: a customer without repeat purchases is alive with
    // probability 1 at any parameters: the interval is that point.
    let i = model
        .score_intervals(&u, &c, &ScoreOptions::default(), 0.9)
        .unwrap();
    assert_eq!(
        (i.probability_alive.lower, i.probability_alive.upper),
        (1.0, 1.0)
    );
    assert!(i.expected_purchases.lower < i.expected_purchases.upper);
}
