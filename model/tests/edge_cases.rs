//! Edge cases give finite numbers or a clear error, and grouping changes
//! nothing but speed.

use clv_model::{
    fit_bgnbd, fit_gamma_gamma, simulate, Acquisition, BgNbdFitInput, BgNbdParams, ClvModel,
    CustomerSummary, FitOptions, GammaGammaFitInput, GammaGammaParams, ModelError, ScoreOptions,
    SimulationConfig, TimeResolution,
};

fn whole_day_customers(n: usize, seed: u64) -> Vec<CustomerSummary> {
    let config = SimulationConfig {
        purchases: BgNbdParams::new(0.6, 25.0, 0.7, 2.5).unwrap(),
        spend: Some(GammaGammaParams::new(6.0, 4.0, 15.0).unwrap()),
        customers: n,
        calibration_days: 365.0,
        holdout_days: 0.0,
        acquisition: Acquisition::Uniform { window_days: 300.0 },
        resolution: TimeResolution::WholeDays,
        seed,
        record_occasions: false,
    };
    simulate(&config).into_iter().map(|c| c.summary).collect()
}

fn relative(a: f64, b: f64) -> f64 {
    ((a - b) / b).abs()
}

#[test]
fn nobody_buying_twice_is_no_repeat_purchasers() {
    let input = BgNbdFitInput::from_groups([(0.0, 0.0, 100.0, 50), (0.0, 0.0, 30.0, 20)]).unwrap();
    let err = fit_bgnbd(&input, &FitOptions::default()).unwrap_err();
    assert_eq!(err, ModelError::NoRepeatPurchasers { customers: 70 });
    assert!(
        err.to_string()
            .contains("no customer has a repeat purchase"),
        "{err}"
    );
}

#[test]
fn one_customer_is_too_few() {
    let input = BgNbdFitInput::from_groups([(3.0, 20.0, 100.0, 1)]).unwrap();
    let err = fit_bgnbd(&input, &FitOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            ModelError::TooFewCustomers {
                needed: 2,
                got: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("need at least 2, got 1"), "{err}");
}

#[test]
fn no_customers_for_the_spend_model_is_no_spend_data() {
    let input = GammaGammaFitInput::from_groups([(0.0, 10.0, 5), (2.0, 0.0, 5)]).unwrap();
    assert_eq!(
        fit_gamma_gamma(&input, &FitOptions::default()).unwrap_err(),
        ModelError::NoSpendData
    );
}

#[test]
fn identical_customers_give_finite_parameters_or_a_clear_error() {
    let input = BgNbdFitInput::from_groups([(2.0, 10.0, 30.0, 500)]).unwrap();
    match fit_bgnbd(&input, &FitOptions::default()) {
        Ok(fit) => {
            let p = fit.params;
            assert!([p.r(), p.alpha(), p.a(), p.b(), fit.report.log_likelihood]
                .iter()
                .all(|v| v.is_finite()));
        }
        Err(e) => assert!(
            matches!(
                e,
                ModelError::Unidentified { .. } | ModelError::NotConverged { .. }
            ),
            "unexpected error {e:?}"
        ),
    }
    let spend = GammaGammaFitInput::from_groups([(2.0, 40.0, 500)]).unwrap();
    match fit_gamma_gamma(&spend, &FitOptions::default()) {
        Ok(fit) => assert!([fit.params.p(), fit.params.q(), fit.params.gamma()]
            .iter()
            .all(|v| v.is_finite())),
        Err(e) => assert!(
            matches!(
                e,
                ModelError::Unidentified { .. } | ModelError::NotConverged { .. }
            ),
            "{e:?}"
        ),
    }
}

#[test]
fn last_purchase_on_the_last_day_fits_and_scores() {
    // Simulated customers, every third repeat buyer moved to a purchase on the last day.
    let customers: Vec<CustomerSummary> = whole_day_customers(5_000, 12)
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            if c.x() > 0.0 && i % 3 == 0 {
                CustomerSummary::new(c.x(), c.t(), c.t(), c.m()).unwrap()
            } else {
                c
            }
        })
        .collect();
    let fit = fit_bgnbd(
        &BgNbdFitInput::from_summaries(&customers),
        &FitOptions::default(),
    )
    .expect("fit");
    let c = CustomerSummary::new(4.0, 100.0, 100.0, 20.0).unwrap();
    let alive = fit.params.probability_alive(&c);
    assert!(alive.is_finite() && alive > 0.0 && alive <= 1.0);
}

#[test]
fn no_observed_dropout_is_unidentified_or_finite() {
    // Every repeat buyer bought on the last day: nothing shows dropout, so the
    // likelihood keeps rising as a → 0.
    let mut rows: Vec<(f64, f64, f64, u64)> =
        (1..40).map(|t| (0.0, 0.0, t as f64 * 5.0, 10)).collect();
    rows.extend((1..40).map(|t| ((t % 7 + 1) as f64, t as f64 * 5.0, t as f64 * 5.0, 3)));
    match fit_bgnbd(
        &BgNbdFitInput::from_groups(rows).unwrap(),
        &FitOptions::default(),
    ) {
        Ok(fit) => assert!(fit.params.a().is_finite() && fit.report.log_likelihood.is_finite()),
        Err(e) => {
            assert!(
                matches!(e, ModelError::Unidentified { name: "a", .. }),
                "{e:?}"
            );
            assert!(e.to_string().contains("do not identify"), "{e}");
        }
    }
}

#[test]
fn homogeneous_dropout_is_unidentified_or_finite() {
    // Synthetic histories whose likelihood keeps rising as a, b → ∞ with
    // a/(a+b) fixed (no heterogeneity in the dropout probability).
    let mut rows: Vec<(f64, f64, f64, u64)> =
        (1..40).map(|t| (0.0, 0.0, t as f64 * 5.0, 10)).collect();
    rows.extend((1..40).map(|t| ((t % 7 + 1) as f64, t as f64 * 5.0, t as f64 * 5.0, 3)));
    rows.extend((1..40).map(|t| ((t % 5 + 1) as f64, t as f64 * 2.0, t as f64 * 5.0, 2)));
    match fit_bgnbd(
        &BgNbdFitInput::from_groups(rows).unwrap(),
        &FitOptions::default(),
    ) {
        Ok(fit) => assert!(fit.params.a().is_finite() && fit.report.log_likelihood.is_finite()),
        Err(e) => assert!(matches!(e, ModelError::Unidentified { .. }), "{e:?}"),
    }
}

#[test]
fn enormous_spend_scales_gamma_only() {
    let customers = whole_day_customers(5_000, 9);
    let base = GammaGammaFitInput::from_summaries(&customers);
    let huge =
        GammaGammaFitInput::from_groups(base.groups().iter().map(|g| (g.x, g.m * 1e12, g.count)))
            .unwrap();
    let (a, b) = (
        fit_gamma_gamma(&base, &FitOptions::default()).unwrap(),
        fit_gamma_gamma(&huge, &FitOptions::default()).unwrap(),
    );
    assert!(
        relative(b.params.p(), a.params.p()) < 1e-6 && relative(b.params.q(), a.params.q()) < 1e-6
    );
    assert!(relative(b.params.gamma(), a.params.gamma() * 1e12) < 1e-6);
    let c = CustomerSummary::new(3.0, 50.0, 200.0, 4e12).unwrap();
    assert!(b.params.expected_spend(&c).unwrap().is_finite());
}

#[test]
fn scores_stay_finite_near_a_equal_one_and_for_heavy_buyers() {
    let model = ClvModel {
        purchases: BgNbdParams::new(0.8, 12.0, 1.0 + 1e-12, 3.0)
            .unwrap()
            .into(),
        spend: GammaGammaParams::new(6.0, 4.0, 15.0).unwrap(),
    };
    let options = ScoreOptions {
        horizon_months: 1200,
        ..ScoreOptions::default()
    };
    for (x, t_x, t) in [
        (0.0, 0.0, 0.0),
        (300.0, 700.0, 730.0),
        (1.0, 0.0, 5000.0),
        (500.0, 1.0, 1.0),
    ] {
        let s = model
            .score(&CustomerSummary::new(x, t_x, t, 50.0).unwrap(), &options)
            .unwrap();
        for v in [
            s.probability_alive,
            s.probability_no_purchase,
            s.expected_purchases,
            s.expected_spend,
            s.predicted_value,
        ] {
            assert!(v.is_finite() && v >= 0.0, "{x},{t_x},{t}: {s:?}");
        }
    }
}

#[test]
fn grouped_fit_equals_per_customer_fit() {
    let customers = whole_day_customers(20_000, 10);
    let per_customer = BgNbdFitInput::from_summaries(&customers);
    assert!(
        per_customer.groups().len() < customers.len(),
        "whole days group"
    );
    // The same customers as SQL would return them: grouped rows, reversed order.
    let rows: Vec<_> = per_customer
        .groups()
        .iter()
        .rev()
        .map(|g| (g.x, g.t_x, g.t, g.count))
        .collect();
    let grouped = BgNbdFitInput::from_groups(rows).unwrap();
    let (a, b) = (
        fit_bgnbd(&per_customer, &FitOptions::default()).unwrap(),
        fit_bgnbd(&grouped, &FitOptions::default()).unwrap(),
    );
    assert_eq!(a.report.customers, b.report.customers);
    for (x, y) in [
        (a.params.r(), b.params.r()),
        (a.params.alpha(), b.params.alpha()),
        (a.params.a(), b.params.a()),
        (a.params.b(), b.params.b()),
    ] {
        assert!(relative(x, y) < 1e-9, "{x} vs {y}");
    }
    assert!(relative(a.report.log_likelihood, b.report.log_likelihood) < 1e-12);
    // The grouped likelihood is the sum of the per-customer likelihoods.
    let one_by_one: f64 = customers
        .iter()
        .map(|c| a.params.customer_log_likelihood(c.x(), c.t_x(), c.t()))
        .sum();
    assert!(relative(one_by_one, a.report.log_likelihood) < 1e-10);
    let spend_rows: Vec<_> = customers
        .iter()
        .filter(|c| c.x() > 0.0)
        .map(|c| (c.x(), c.m(), 1))
        .collect();
    let (c, d) = (
        fit_gamma_gamma(
            &GammaGammaFitInput::from_summaries(&customers),
            &FitOptions::default(),
        )
        .unwrap(),
        fit_gamma_gamma(
            &GammaGammaFitInput::from_groups(spend_rows).unwrap(),
            &FitOptions::default(),
        )
        .unwrap(),
    );
    assert!(
        relative(c.params.q(), d.params.q()) < 1e-9
            && relative(c.params.gamma(), d.params.gamma()) < 1e-9
    );
}

#[test]
fn scoring_all_equals_scoring_each() {
    let customers = whole_day_customers(3_000, 11);
    let model = ClvModel {
        purchases: BgNbdParams::new(0.6, 25.0, 0.7, 2.5).unwrap().into(),
        spend: GammaGammaParams::new(6.0, 4.0, 15.0).unwrap(),
    };
    let options = ScoreOptions::default();
    let all = model.score_all(&customers, &options).unwrap();
    for (c, s) in customers.iter().zip(&all).step_by(37) {
        assert_eq!(*s, model.score(c, &options).unwrap());
    }
}

#[test]
fn invalid_grouped_rows_are_rejected_with_the_reason() {
    let err = BgNbdFitInput::from_groups([(1.0, 50.0, 10.0, 3)]).unwrap_err();
    assert!(
        err.to_string().contains("t_x must satisfy 0 <= t_x <= T"),
        "{err}"
    );
}

#[test]
fn spend_model_with_q_at_most_one_refuses_to_score() {
    let model = ClvModel {
        purchases: BgNbdParams::new(0.6, 25.0, 0.7, 2.5).unwrap().into(),
        spend: GammaGammaParams::new(2.0, 0.9, 10.0).unwrap(),
    };
    let err = model
        .score(
            &CustomerSummary::new(1.0, 5.0, 10.0, 30.0).unwrap(),
            &ScoreOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(err, ModelError::SpendUndefined { .. }), "{err:?}");
}

#[test]
fn an_iteration_limit_gives_not_converged_with_the_reason() {
    let input = BgNbdFitInput::from_summaries(&whole_day_customers(5_000, 13));
    let options = FitOptions {
        max_iterations: 1,
        warm_start_above_groups: usize::MAX,
        ..FitOptions::default()
    };
    let err = fit_bgnbd(&input, &options).unwrap_err();
    assert!(matches!(err, ModelError::NotConverged { .. }), "{err:?}");
    assert!(err.to_string().contains("did not converge"), "{err}");
    // Without require_convergence the same fit is returned and says so.
    let fit = fit_bgnbd(
        &input,
        &FitOptions {
            require_convergence: false,
            ..options
        },
    )
    .unwrap();
    assert!(!fit.report.converged);
}

#[test]
fn an_l2_penalty_pulls_log_parameters_towards_zero() {
    let input = BgNbdFitInput::from_summaries(&whole_day_customers(5_000, 14));
    let plain = fit_bgnbd(&input, &FitOptions::default()).unwrap();
    let penalised = fit_bgnbd(
        &input,
        &FitOptions {
            l2_penalty: 0.05,
            ..FitOptions::default()
        },
    )
    .unwrap();
    assert!(penalised.report.converged);
    // The penalty acts on θ = ln(r, α/max T, a, b), the fit's own scale.
    let max_t = input.groups().iter().map(|g| g.t).fold(0.0, f64::max);
    let size = |p: &BgNbdParams| {
        [p.r(), p.alpha() / max_t, p.a(), p.b()]
            .iter()
            .map(|v| v.ln().powi(2))
            .sum::<f64>()
    };
    assert!(size(&penalised.params) < size(&plain.params));
    assert!(penalised.report.log_likelihood < plain.report.log_likelihood);
}

#[test]
fn the_fit_report_counts_customers_and_groups() {
    let customers = whole_day_customers(5_000, 15);
    let fit = fit_bgnbd(
        &BgNbdFitInput::from_summaries(&customers),
        &FitOptions::default(),
    )
    .unwrap();
    assert_eq!(fit.report.customers, 5_000);
    assert!(fit.report.groups > 0 && fit.report.groups <= 5_000);
    assert!(fit.report.converged && fit.report.gradient_norm < 1e-6 && fit.report.iterations > 0);
    assert!(fit.report.log_likelihood < 0.0 && fit.report.duration.as_nanos() > 0);
}

#[test]
fn a_penalty_keeps_an_unidentified_fit_finite() {
    let mut rows: Vec<(f64, f64, f64, u64)> =
        (1..40).map(|t| (0.0, 0.0, t as f64 * 5.0, 10)).collect();
    rows.extend((1..40).map(|t| ((t % 7 + 1) as f64, t as f64 * 5.0, t as f64 * 5.0, 3)));
    rows.extend((1..40).map(|t| ((t % 5 + 1) as f64, t as f64 * 2.0, t as f64 * 5.0, 2)));
    let input = BgNbdFitInput::from_groups(rows).unwrap();
    let fit = fit_bgnbd(
        &input,
        &FitOptions {
            l2_penalty: 0.01,
            ..FitOptions::default()
        },
    )
    .expect("penalised fit");
    let p = fit.params;
    assert!(
        fit.report.converged
            && [p.r(), p.alpha(), p.a(), p.b()]
                .iter()
                .all(|v| v.is_finite() && *v < 1e6),
        "{p:?}"
    );
}
