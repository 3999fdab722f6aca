//! Parameter recovery: customers simulated from known parameters (the
//! simulator follows the models' story, not the likelihood) are fitted, and
//! every estimate must lie within 4 standard errors of the truth.
//!
//! Sizes are chosen so that the debug-mode test suite stays quick.

use clv_model::{
    evaluate_holdout, fit_bgnbd, fit_gamma_gamma, simulate, Acquisition, BgNbdFitInput,
    BgNbdParams, CustomerSummary, FitOptions, GammaGammaFitInput, GammaGammaParams,
    SimulationConfig, TimeResolution,
};

/// Estimates must be within this many standard errors of the truth.
const STANDARD_ERRORS: f64 = 4.0;

fn simulated(purchases: BgNbdParams, customers: usize, seed: u64) -> Vec<CustomerSummary> {
    let config = SimulationConfig {
        purchases,
        spend: Some(GammaGammaParams::new(6.0, 4.0, 15.0).unwrap()),
        customers,
        calibration_days: 548.0,
        holdout_days: 0.0,
        acquisition: Acquisition::Uniform { window_days: 365.0 },
        resolution: TimeResolution::Continuous,
        seed,
        record_occasions: false,
    };
    simulate(&config).into_iter().map(|c| c.summary).collect()
}

fn assert_recovers(truth: BgNbdParams, customers: usize, seed: u64) {
    let summaries = simulated(truth, customers, seed);
    let fit = fit_bgnbd(
        &BgNbdFitInput::from_summaries(&summaries),
        &FitOptions::default(),
    )
    .expect("fit");
    let se = fit.standard_errors.expect("standard errors");
    let p = fit.params;
    for (name, estimate, se, true_value) in [
        ("r", p.r(), se.r, truth.r()),
        ("alpha", p.alpha(), se.alpha, truth.alpha()),
        ("a", p.a(), se.a, truth.a()),
        ("b", p.b(), se.b, truth.b()),
    ] {
        let z = (estimate - true_value) / se;
        assert!(
            z.abs() < STANDARD_ERRORS,
            "{name}: estimate {estimate} ± {se}, truth {true_value} (z = {z:.2})"
        );
        assert!(
            se > 0.0 && se < true_value,
            "{name}: implausible standard error {se}"
        );
    }
}

#[test]
fn recovers_cdnow_like_parameters_with_a_below_one() {
    assert_recovers(
        BgNbdParams::from_weeks(0.243, 4.414, 0.793, 2.426).unwrap(),
        30_000,
        1,
    );
}

#[test]
fn recovers_a_large_alpha() {
    assert_recovers(BgNbdParams::new(2.0, 50.0, 1.5, 4.0).unwrap(), 20_000, 2);
}

#[test]
fn recovers_fast_dropout_with_small_a() {
    assert_recovers(BgNbdParams::new(0.8, 10.0, 0.4, 1.2).unwrap(), 20_000, 3);
}

#[test]
fn recovers_gamma_gamma_parameters() {
    let summaries = simulated(BgNbdParams::new(1.5, 20.0, 0.7, 3.0).unwrap(), 20_000, 4);
    let fit = fit_gamma_gamma(
        &GammaGammaFitInput::from_summaries(&summaries),
        &FitOptions::default(),
    )
    .expect("fit");
    let se = fit.standard_errors.expect("standard errors");
    for (name, estimate, se, truth) in [
        ("p", fit.params.p(), se.p, 6.0),
        ("q", fit.params.q(), se.q, 4.0),
        ("gamma", fit.params.gamma(), se.gamma, 15.0),
    ] {
        let z = (estimate - truth) / se;
        assert!(
            z.abs() < STANDARD_ERRORS,
            "{name}: estimate {estimate} ± {se}, truth {truth} (z = {z:.2})"
        );
    }
    // Spend is simulated independently of frequency.
    assert!(
        fit.frequency_spend_correlation.abs() < 0.05,
        "{}",
        fit.frequency_spend_correlation
    );
}

#[test]
fn holdout_purchases_match_the_conditional_expectation() {
    // Calibration/holdout: the sum of E[Y(holdout)] over customers predicts
    // the simulated holdout total (FHL section 4's check), at the true parameters.
    let truth = BgNbdParams::new(0.5, 15.0, 0.8, 2.5).unwrap();
    let config = SimulationConfig {
        purchases: truth,
        spend: None,
        customers: 20_000,
        calibration_days: 365.0,
        holdout_days: 180.0,
        acquisition: Acquisition::Uniform { window_days: 180.0 },
        resolution: TimeResolution::Continuous,
        seed: 5,
        record_occasions: false,
    };
    let customers: Vec<(CustomerSummary, u64)> = simulate(&config)
        .into_iter()
        .map(|c| (c.summary, c.holdout_purchases))
        .collect();
    let eval = evaluate_holdout(&truth, &customers, 180.0, 7);
    let (actual, predicted) = (eval.actual_total, eval.predicted_total);
    // Poisson-like noise on ~10⁴ purchases, plus heterogeneity: a few percent.
    assert!(
        ((predicted - actual) / actual).abs() < 0.05,
        "predicted {predicted} vs actual {actual}"
    );
    // The Figure 4 table: by calibration repeat purchases, where customers are plentiful.
    assert!(
        eval.buckets.iter().filter(|b| b.customers >= 1_000).count() >= 3,
        "{:?}",
        eval.buckets
    );
    for bucket in eval.buckets.iter().filter(|b| b.customers >= 1_000) {
        let gap = (bucket.predicted_mean - bucket.actual_mean).abs();
        assert!(gap < 0.1 * bucket.actual_mean.max(0.5), "{bucket:?}");
    }
}

#[test]
fn warm_start_reaches_the_same_optimum_as_a_cold_start() {
    let summaries = simulated(BgNbdParams::new(0.8, 30.0, 0.6, 2.0).unwrap(), 20_000, 6);
    let warm = FitOptions {
        warm_start_above_groups: 5_000,
        ..FitOptions::default()
    };
    let cold = FitOptions {
        warm_start_above_groups: usize::MAX,
        ..FitOptions::default()
    };
    let purchases = BgNbdFitInput::from_summaries(&summaries);
    let (w, c) = (
        fit_bgnbd(&purchases, &warm).unwrap(),
        fit_bgnbd(&purchases, &cold).unwrap(),
    );
    for (a, b) in [
        (w.params.r(), c.params.r()),
        (w.params.alpha(), c.params.alpha()),
        (w.params.a(), c.params.a()),
        (w.params.b(), c.params.b()),
    ] {
        assert!(((a - b) / b).abs() < 1e-8, "{a} vs {b}");
    }
    let spend = GammaGammaFitInput::from_summaries(&summaries);
    let (w, c) = (
        fit_gamma_gamma(&spend, &warm).unwrap(),
        fit_gamma_gamma(&spend, &cold).unwrap(),
    );
    for (a, b) in [
        (w.params.p(), c.params.p()),
        (w.params.q(), c.params.q()),
        (w.params.gamma(), c.params.gamma()),
    ] {
        assert!(((a - b) / b).abs() < 1e-8, "{a} vs {b}");
    }
}

#[test]
fn fits_converge_across_the_parameter_space() {
    // Random parameter sets over the ranges seen in practice (α from 1 to
    // 300 days, a and b from 0.1 to 15), 5,000 whole-day customers each.
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    for seed in 0..12 {
        let truth = BgNbdParams::new(
            10f64.powf(rng.random_range(-1.0..0.7)),
            10f64.powf(rng.random_range(0.0..2.5)),
            10f64.powf(rng.random_range(-1.0..0.8)),
            10f64.powf(rng.random_range(-0.5..1.2)),
        )
        .unwrap();
        let spend = GammaGammaParams::new(
            rng.random_range(1.0..10.0),
            rng.random_range(1.5..10.0),
            rng.random_range(1.0..100.0),
        )
        .unwrap();
        let config = SimulationConfig {
            purchases: truth,
            spend: Some(spend),
            customers: 5_000,
            calibration_days: 730.0,
            holdout_days: 0.0,
            acquisition: Acquisition::Uniform { window_days: 365.0 },
            resolution: TimeResolution::WholeDays,
            seed,
            record_occasions: false,
        };
        let summaries: Vec<CustomerSummary> =
            simulate(&config).into_iter().map(|c| c.summary).collect();
        let bg = fit_bgnbd(
            &BgNbdFitInput::from_summaries(&summaries),
            &FitOptions::default(),
        );
        assert!(
            bg.as_ref().is_ok_and(|f| f.report.converged),
            "{truth:?}: {bg:?}"
        );
        let gg = fit_gamma_gamma(
            &GammaGammaFitInput::from_summaries(&summaries),
            &FitOptions::default(),
        );
        assert!(
            gg.as_ref().is_ok_and(|f| f.report.converged),
            "{spend:?}: {gg:?}"
        );
    }
}
