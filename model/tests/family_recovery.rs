//! Parameter recovery for the MBG/NBD and Pareto/NBD families: customers
//! simulated from each family's own story (`simulate_process`, written from
//! the model's assumptions, not from its likelihood), in whole days as the
//! service records them (fewer distinct groups keep the debug-mode run time
//! down), are fitted, and every
//! estimate must lie within 4 standard errors of the truth. Also: on data
//! simulated from one family, that family's maximised log-likelihood beats
//! the other families' (all have four parameters, so AIC and BIC rank the
//! same way).

use clv_model::{
    fit_bgnbd, fit_mbgnbd, fit_pareto_nbd, BgNbdFitInput, FitOptions, MbgNbdParams,
    ParetoNbdParams, PurchaseProcess,
};

mod common;

/// Estimates must be within this many standard errors of the truth.
const STANDARD_ERRORS: f64 = 4.0;

fn simulated(process: PurchaseProcess, customers: usize, seed: u64) -> BgNbdFitInput {
    common::simulated_input(process, customers, 548.0, seed)
}

fn assert_within(estimates: [(&str, f64, f64, f64); 4]) {
    for (name, estimate, se, truth) in estimates {
        let z = (estimate - truth) / se;
        assert!(
            z.abs() < STANDARD_ERRORS,
            "{name}: estimate {estimate} ± {se}, truth {truth} (z = {z:.2})"
        );
        assert!(
            se > 0.0 && se < truth,
            "{name}: implausible standard error {se}"
        );
    }
}

fn assert_mbgnbd_recovers(truth: MbgNbdParams, customers: usize, seed: u64) {
    let input = simulated(PurchaseProcess::MbgNbd(truth), customers, seed);
    let fit = fit_mbgnbd(&input, &FitOptions::default()).expect("fit");
    let (p, se) = (fit.params, fit.standard_errors.expect("standard errors"));
    assert_within([
        ("r", p.r(), se.r, truth.r()),
        ("alpha", p.alpha(), se.alpha, truth.alpha()),
        ("a", p.a(), se.a, truth.a()),
        ("b", p.b(), se.b, truth.b()),
    ]);
}

fn assert_pareto_recovers(truth: ParetoNbdParams, customers: usize, seed: u64) {
    let input = simulated(PurchaseProcess::ParetoNbd(truth), customers, seed);
    let fit = fit_pareto_nbd(&input, &FitOptions::default()).expect("fit");
    let (p, se) = (fit.params, fit.standard_errors.expect("standard errors"));
    assert_within([
        ("r", p.r(), se.r, truth.r()),
        ("alpha", p.alpha(), se.alpha, truth.alpha()),
        ("s", p.s(), se.s, truth.s()),
        ("beta", p.beta(), se.beta, truth.beta()),
    ]);
}

#[test]
fn mbgnbd_recovers_cdnow_like_parameters() {
    assert_mbgnbd_recovers(
        MbgNbdParams::from_weeks(0.525, 6.183, 0.891, 1.614).unwrap(),
        30_000,
        11,
    );
}

#[test]
fn mbgnbd_recovers_a_large_alpha_and_a_above_one() {
    assert_mbgnbd_recovers(MbgNbdParams::new(2.0, 50.0, 1.5, 4.0).unwrap(), 20_000, 12);
}

#[test]
fn pareto_nbd_recovers_cdnow_like_parameters() {
    assert_pareto_recovers(
        ParetoNbdParams::from_weeks(0.553, 10.58, 0.606, 11.67).unwrap(),
        30_000,
        13,
    );
}

#[test]
fn pareto_nbd_recovers_alpha_below_beta() {
    assert_pareto_recovers(
        ParetoNbdParams::new(1.5, 20.0, 1.2, 100.0).unwrap(),
        10_000,
        14,
    );
}

/// Maximised log-likelihoods (BG/NBD, MBG/NBD, Pareto/NBD) on `input`.
fn log_likelihoods(input: &BgNbdFitInput) -> [f64; 3] {
    let options = FitOptions::default();
    [
        fit_bgnbd(input, &options)
            .expect("BG/NBD fit")
            .report
            .log_likelihood,
        fit_mbgnbd(input, &options)
            .expect("MBG/NBD fit")
            .report
            .log_likelihood,
        fit_pareto_nbd(input, &options)
            .expect("Pareto/NBD fit")
            .report
            .log_likelihood,
    ]
}

#[test]
fn the_family_simulated_from_fits_best() {
    // MBG/NBD with much dropout at the first purchase: many one-time buyers
    // are gone from day 0, which BG/NBD cannot express.
    let mbg = simulated(
        PurchaseProcess::MbgNbd(MbgNbdParams::new(1.0, 20.0, 2.0, 3.0).unwrap()),
        10_000,
        15,
    );
    let [bg, m, pareto] = log_likelihoods(&mbg);
    assert!(
        m > bg + 10.0 && m > pareto + 10.0,
        "BG {bg}, MBG {m}, Pareto {pareto}"
    );
    // Pareto/NBD with long-lived, frequent buyers: dropout in calendar time,
    // not per purchase.
    let par = simulated(
        PurchaseProcess::ParetoNbd(ParetoNbdParams::new(3.0, 30.0, 2.0, 150.0).unwrap()),
        10_000,
        16,
    );
    let [bg, m, pareto] = log_likelihoods(&par);
    assert!(
        pareto > bg + 10.0 && pareto > m + 10.0,
        "BG {bg}, MBG {m}, Pareto {pareto}"
    );
}
