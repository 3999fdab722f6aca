//! MBG/NBD and Pareto/NBD against independent references, on the fixtures
//! written by `model/fixtures/generate_family_fixtures.py`: the Python
//! `lifetimes` package (ModifiedBetaGeoFitter, ParetoNBDFitter) on CDNOW
//! and on simulated sets, and mpmath at 50 digits with the papers'
//! hypergeometric formulas, including the Pareto/NBD hard regions (α = β,
//! α ≈ β, α far from β, x in the hundreds, t_x just below T).
//!
//! Predictions are evaluated with OUR formulas at THEIR fitted parameters,
//! which isolates formula agreement from optimiser differences.

use clv_model::{
    fit_family, fit_mbgnbd, fit_pareto_nbd, BgNbdFitInput, CustomerSummary, FitOptions,
    MbgNbdParams, ParetoNbdParams, PurchaseFamily, PurchaseParams,
};
use serde_json::Value;

/// Fitted parameters: ours against lifetimes'.
const PARAMETER_TOLERANCE: f64 = 1e-4;
/// Log-likelihood at the optimum, ours against theirs (relative).
const LOG_LIKELIHOOD_TOLERANCE: f64 = 1e-6;
/// Formulas at the same parameters.
const FORMULA_TOLERANCE: f64 = 1e-6;
/// Against mpmath at 50 digits.
const MPMATH_TOLERANCE: f64 = 1e-10;

mod common;
use common::{assert_close, column, fixture, num};

fn input(f: &Value) -> BgNbdFitInput {
    let s = &f["summary"];
    let (x, tx, t) = (column(s, "x"), column(s, "t_x"), column(s, "T"));
    BgNbdFitInput::from_groups((0..x.len()).map(|i| (x[i], tx[i], t[i], 1))).expect("valid rows")
}

fn summary(p: &Value) -> CustomerSummary {
    CustomerSummary::new(num(p, "x"), num(p, "t_x"), num(p, "T"), 0.0).expect("valid summary")
}

/// One family's agreement with lifetimes and mpmath on a fixture block:
/// `key` is the fixture's name for the family ("mbgnbd", "pareto_nbd"),
/// `names` its parameters in order, `their_ll_tolerance` how closely our
/// log-likelihood at their parameters must equal theirs.
fn assert_family_matches(
    f: &Value,
    family: PurchaseFamily,
    (key, names): (&str, [&str; 4]),
    their_ll_tolerance: f64,
) {
    let input = input(f);
    let p = &f[format!("lifetimes_{key}")];
    let theirs = PurchaseParams::from_values(family, names.map(|n| num(p, n))).unwrap();
    let ll_theirs = num(f, &format!("lifetimes_{key}_log_likelihood"));
    assert_close(
        &format!("{family} LL at their parameters"),
        theirs.log_likelihood(&input),
        ll_theirs,
        their_ll_tolerance,
    );
    let fit = fit_family(family, &input, &FitOptions::default()).expect("fit");
    assert!(fit.report.converged);
    assert!(
        fit.report.log_likelihood >= ll_theirs - 1e-6,
        "LL ours {} < theirs {ll_theirs}",
        fit.report.log_likelihood
    );
    assert_close(
        &format!("{family} LL"),
        fit.report.log_likelihood,
        ll_theirs,
        LOG_LIKELIHOOD_TOLERANCE,
    );
    for ((name, o), t) in names.iter().zip(fit.params.values()).zip(theirs.values()) {
        assert_close(name, o, t, PARAMETER_TOLERANCE);
    }
    for p in f[format!("{key}_predictions")]
        .as_array()
        .expect("predictions")
    {
        let c = summary(p);
        let alive = theirs.probability_alive(&c);
        assert_close(
            "P(alive) vs lifetimes",
            alive,
            num(p, "p_alive"),
            FORMULA_TOLERANCE,
        );
        assert_close(
            "P(alive) vs mpmath",
            alive,
            num(p, "mpmath_p_alive"),
            MPMATH_TOLERANCE,
        );
        assert_close(
            "customer LL vs mpmath",
            theirs.customer_log_likelihood(c.x(), c.t_x(), c.t()),
            num(p, "mpmath_log_likelihood"),
            MPMATH_TOLERANCE,
        );
        for (horizons, tolerance) in [
            ("expected", FORMULA_TOLERANCE),
            ("mpmath_expected", MPMATH_TOLERANCE),
        ] {
            let Some(horizons_of) = p[horizons].as_object() else {
                continue; // mpmath's E[Y] is in the Pareto/NBD blocks only
            };
            for (h, v) in horizons_of {
                let h: f64 = h.parse().expect("horizon");
                assert_close(
                    &format!("{horizons} E[Y({h})] at {c:?}"),
                    theirs.expected_purchases(&c, h),
                    v.as_f64().expect("number"),
                    tolerance,
                );
            }
        }
    }
    for (h, v) in f[format!("{key}_unconditional_expected")]
        .as_object()
        .expect("horizons")
    {
        let h: f64 = h.parse().expect("horizon");
        assert_close(
            &format!("E[X({h})]"),
            theirs.expected_purchases_new_customer(h),
            v.as_f64().expect("number"),
            FORMULA_TOLERANCE,
        );
    }
}

fn assert_mbgnbd_matches(f: &Value) {
    let names = ["r", "alpha", "a", "b"];
    assert_family_matches(f, PurchaseFamily::MbgNbd, ("mbgnbd", names), 1e-12);
}

fn assert_pareto_matches(f: &Value) {
    let names = ["r", "alpha", "s", "beta"];
    assert_family_matches(f, PurchaseFamily::ParetoNbd, ("pareto_nbd", names), 1e-10);
}

#[test]
fn mbgnbd_on_cdnow_matches_lifetimes() {
    assert_mbgnbd_matches(&fixture("families_cdnow.json"));
}

#[test]
fn mbgnbd_on_a_simulated_set_matches_lifetimes() {
    assert_mbgnbd_matches(&fixture("families_simulated.json")["mbgnbd"]);
}

#[test]
fn pareto_nbd_on_cdnow_matches_lifetimes_and_the_published_fit() {
    let f = fixture("families_cdnow.json");
    assert_pareto_matches(&f);
    // Fader, Hardie & Lee (2005) note / SMC: r = 0.553, α = 10.58, s = 0.606,
    // β = 11.67 (weeks), given to 3-4 digits.
    let fit = fit_pareto_nbd(&input(&f), &FitOptions::default()).expect("fit");
    for (name, ours, published) in [
        ("r", fit.params.r(), 0.553),
        ("alpha", fit.params.alpha(), 10.58),
        ("s", fit.params.s(), 0.606),
        ("beta", fit.params.beta(), 11.67),
    ] {
        assert!(
            (ours - published).abs() <= 0.006 * published,
            "{name}: {ours} vs published {published}"
        );
    }
}

#[test]
fn pareto_nbd_on_a_simulated_set_matches_lifetimes() {
    assert_pareto_matches(&fixture("families_simulated.json")["pareto_nbd"]);
}

#[test]
fn pareto_nbd_matches_mpmath_in_the_hard_regions() {
    let f = fixture("families_extremes.json");
    for p in f["pareto_nbd_points"].as_array().expect("points") {
        let params =
            ParetoNbdParams::new(num(p, "r"), num(p, "alpha"), num(p, "s"), num(p, "beta"))
                .unwrap();
        let c = summary(p);
        let at = format!("{} at {c:?}", p["params"]);
        assert_close(
            &format!("LL {at}"),
            params.customer_log_likelihood(c.x(), c.t_x(), c.t()),
            num(p, "log_likelihood"),
            MPMATH_TOLERANCE,
        );
        assert_close(
            &format!("ln P(alive) {at}"),
            params.ln_probability_alive(&c),
            num(p, "ln_p_alive"),
            MPMATH_TOLERANCE,
        );
        assert_close(
            &format!("E[Y] {at}"),
            params.expected_purchases(&c, num(p, "t")),
            num(p, "expected_purchases"),
            MPMATH_TOLERANCE,
        );
    }
}

#[test]
fn both_families_refuse_data_without_repeat_purchases_and_too_few_customers() {
    use clv_model::ModelError;
    let none = BgNbdFitInput::from_groups([(0.0, 0.0, 30.0, 40), (0.0, 0.0, 90.0, 30)]).unwrap();
    let options = FitOptions::default();
    let expected = ModelError::NoRepeatPurchasers { customers: 70 };
    assert_eq!(fit_mbgnbd(&none, &options).unwrap_err(), expected);
    assert_eq!(fit_pareto_nbd(&none, &options).unwrap_err(), expected);
    let one = BgNbdFitInput::from_groups([(2.0, 10.0, 30.0, 1)]).unwrap();
    assert!(matches!(
        fit_mbgnbd(&one, &options),
        Err(ModelError::TooFewCustomers { got: 1, .. })
    ));
    assert!(matches!(
        fit_pareto_nbd(&one, &options),
        Err(ModelError::TooFewCustomers { got: 1, .. })
    ));
}

#[test]
fn heavy_buyers_score_finitely_in_both_families() {
    let mbg = MbgNbdParams::from_weeks(0.525, 6.183, 0.891, 1.614).unwrap();
    let pareto = ParetoNbdParams::from_weeks(0.553, 10.58, 0.606, 11.67).unwrap();
    for (x, t_x, t) in [
        (500.0, 10.0, 3000.0),
        (500.0, 2999.0, 3000.0),
        (0.0, 0.0, 3000.0),
    ] {
        let c = CustomerSummary::new(x, t_x, t, 0.0).unwrap();
        for horizon in [30.0, 36_500.0] {
            let (a, b) = (
                mbg.expected_purchases(&c, horizon),
                pareto.expected_purchases(&c, horizon),
            );
            assert!(
                a.is_finite() && a >= 0.0 && b.is_finite() && b >= 0.0,
                "{c:?}: {a} {b}"
            );
        }
        let (a, b) = (mbg.probability_alive(&c), pareto.probability_alive(&c));
        assert!(
            (0.0..=1.0).contains(&a) && (0.0..=1.0).contains(&b),
            "{c:?}: {a} {b}"
        );
    }
}
