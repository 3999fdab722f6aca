//! Purchase families over gRPC: FitModel fits every family (or those
//! asked for), reports each as a candidate with its log-likelihood, AIC
//! and BIC, activates one by the selection policy (CLVD_MODEL_SELECTION or
//! the request), reports a family that fails while another activates, and
//! every score names the family that made it.

use std::collections::BTreeSet;

use chrono::{Duration, NaiveDate};
use clv_model::{
    fit_family, fit_gamma_gamma, simulate_process, Acquisition, BgNbdFitInput, BgNbdParams,
    ClvModel, FitOptions, GammaGammaFitInput, GammaGammaParams, ParetoNbdParams, PurchaseFamily,
    PurchaseProcess, ScoreOptions, SimulationConfig, TimeResolution,
};
use clvd::{
    api::pb::{self, scoring_service_client::ScoringServiceClient},
    domain::{Criterion, ModelSelection},
};
use tonic::Code;

use crate::{
    helpers::*,
    models::{fit_request, groups, import, models},
    scoring::{money, summary_now},
};

fn rel(a: f64, b: f64) -> f64 {
    ((a - b) / b).abs()
}

/// A server that chooses the family by `selection`.
async fn app_selecting(selection: ModelSelection) -> TestApp {
    spawn_app_with(|s| s.model_selection = selection).await
}

/// Purchases of 2,000 customers simulated from Pareto/NBD (long-lived,
/// frequent buyers: dropout in calendar time, not per purchase) with
/// Gamma-Gamma spend, starting 2024-01-01, whole days, values in cents.
fn pareto_purchases() -> Vec<pb::Transaction> {
    pareto_purchases_over(365.0, 180.0)
}

/// [`pareto_purchases`] over `days` days, customers acquired in the first
/// `window_days`.
fn pareto_purchases_over(days: f64, window_days: f64) -> Vec<pb::Transaction> {
    let config = SimulationConfig {
        // Replaced by the process below.
        purchases: BgNbdParams::new(1.0, 1.0, 1.0, 1.0).unwrap(),
        spend: Some(GammaGammaParams::new(6.25, 3.74, 15.44).unwrap()),
        customers: 2_000,
        calibration_days: days,
        holdout_days: 0.0,
        acquisition: Acquisition::Uniform { window_days },
        resolution: TimeResolution::WholeDays,
        seed: 21,
        record_occasions: true,
    };
    let truth = ParetoNbdParams::new(3.0, 30.0, 2.0, 150.0).unwrap();
    let customers = simulate_process(&config, PurchaseProcess::ParetoNbd(truth));
    let start = at(2024, 1, 1, 12, 0);
    let mut out = Vec::new();
    for (i, c) in customers.iter().enumerate() {
        for (k, o) in c.occasions.iter().enumerate() {
            out.push(purchase(
                &format!("par-{i}"),
                &format!("o-{k}"),
                start + Duration::days(o.day as i64),
                (o.value * 100.0).round().max(1.0) as i64,
            ));
        }
    }
    out
}

/// Purchases whose summaries are given as (x, t_x, T, customers) groups,
/// as of the end of `as_of_day`: occasions spread evenly over (0, t_x],
/// each worth a customer-specific amount that varies by occasion.
fn purchases_with_groups(
    prefix: &str,
    groups: &[(u32, i64, i64, usize)],
    as_of_day: NaiveDate,
) -> Vec<pb::Transaction> {
    let mut out = Vec::new();
    let mut n = 0usize;
    for &(x, t_x, t, count) in groups {
        for _ in 0..count {
            n += 1;
            let customer = format!("{prefix}-{n}");
            let first = (as_of_day - Duration::days(t))
                .and_hms_opt(12, 0, 0)
                .unwrap()
                .and_utc();
            // Customers' mean spend from $1 to about $17, each occasion
            // within ±40 % of it.
            let base = 100.0 * 1.1f64.powi((n * 7 % 31) as i32);
            for k in 0..=x as i64 {
                let day = if x == 0 { 0 } else { t_x * k / x as i64 };
                let factor = 0.6 + 0.08 * ((k * 7 + n as i64 * 3) % 11) as f64;
                let cents = (base * factor).round() as i64;
                out.push(purchase(
                    &customer,
                    &format!("o-{k}"),
                    first + Duration::days(day),
                    cents,
                ));
            }
        }
    }
    out
}

async fn fit(app: &TestApp, request: pb::FitModelRequest) -> Result<pb::Model, tonic::Status> {
    models(app)
        .await
        .fit_model(request)
        .await
        .map(|r| r.into_inner())
}

fn request(day: NaiveDate, families: &[pb::ModelFamily]) -> pb::FitModelRequest {
    pb::FitModelRequest {
        families: families.iter().map(|&f| f as i32).collect(),
        ..fit_request(day, pb::TimeUnit::Day)
    }
}

fn families_of(model: &pb::Model) -> Vec<i32> {
    model.candidates.iter().map(|c| c.family).collect()
}

#[tokio::test]
async fn bic_picks_pareto_nbd_on_pareto_data_and_every_score_names_it() {
    let app = app_selecting(ModelSelection::Criterion(Criterion::Bic)).await;
    let transactions = pareto_purchases();
    import(&app, &transactions).await;
    let day = NaiveDate::from_ymd_opt(2024, 12, 31).unwrap();
    let model = fit(&app, request(day, &[])).await.expect("fit");

    // Three candidates, in order, each equal to the model core's fit.
    assert_eq!(
        families_of(&model),
        vec![
            pb::ModelFamily::BgNbd as i32,
            pb::ModelFamily::MbgNbd as i32,
            pb::ModelFamily::ParetoNbd as i32
        ]
    );
    let (purchase_groups, spend_groups, _) = groups(&transactions, day);
    let input = BgNbdFitInput::from_groups(purchase_groups.clone()).unwrap();
    let customers: u64 = purchase_groups.iter().map(|g| g.3).sum();
    assert_eq!(model.customers as u64, customers);
    for (candidate, family) in model.candidates.iter().zip(PurchaseFamily::ALL) {
        let ours = fit_family(family, &input, &FitOptions::default()).unwrap();
        assert!(candidate.failure.is_empty(), "{candidate:?}");
        assert!(candidate.converged);
        let ll = ours.report.log_likelihood;
        assert!(rel(candidate.log_likelihood, ll) < 1e-10, "{candidate:?}");
        assert!(candidate.aic.is_finite() && candidate.bic.is_finite());
        assert!((candidate.aic - (8.0 - 2.0 * candidate.log_likelihood)).abs() < 1e-6);
        let bic = 4.0 * (customers as f64).ln() - 2.0 * candidate.log_likelihood;
        assert!((candidate.bic - bic).abs() < 1e-6, "{candidate:?}");
    }
    let best = model
        .candidates
        .iter()
        .min_by(|a, b| a.bic.total_cmp(&b.bic))
        .unwrap();
    assert_eq!(best.family, pb::ModelFamily::ParetoNbd as i32);
    assert!(best.selected);
    assert_eq!(model.candidates.iter().filter(|c| c.selected).count(), 1);

    // The activated family: Pareto/NBD, its parameters and no BG/NBD ones.
    assert_eq!(model.family, pb::ModelFamily::ParetoNbd as i32);
    assert_eq!(model.selection, "bic");
    assert!(model.bgnbd.is_none() && model.mbgnbd.is_none());
    let p = model.pareto_nbd.unwrap();
    assert_eq!(best.pareto_nbd, Some(p));
    assert!(rel(model.log_likelihood, best.log_likelihood) < 1e-12);
    assert!(model.pareto_nbd_standard_errors.is_some());

    // GetModel and ListModels give the same comparison, in weeks too.
    let mut client = models(&app).await;
    let got = client
        .get_model(pb::GetModelRequest {
            version: 0,
            time_unit: pb::TimeUnit::Week as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.family, pb::ModelFamily::ParetoNbd as i32);
    let weeks = got.pareto_nbd.unwrap();
    assert!(rel(weeks.alpha, p.alpha / 7.0) < 1e-12 && rel(weeks.beta, p.beta / 7.0) < 1e-12);
    for (w, d) in got.candidates.iter().zip(&model.candidates) {
        // Differences between candidates do not depend on the unit.
        let shift = w.log_likelihood - d.log_likelihood;
        assert!((w.bic - (d.bic - 2.0 * shift)).abs() < 1e-6);
    }
    let listed = client
        .list_models(pb::ListModelsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.models[0].candidates, model.candidates);

    // Every score names Pareto/NBD and equals the model core with the
    // stored parameters.
    let gg = model.gamma_gamma.unwrap();
    let core = ClvModel {
        purchases: ParetoNbdParams::new(p.r, p.alpha, p.s, p.beta)
            .unwrap()
            .into(),
        spend: GammaGammaParams::new(gg.p, gg.q, gg.gamma).unwrap(),
    };
    let spend = fit_gamma_gamma(
        &GammaGammaFitInput::from_groups(spend_groups).unwrap(),
        &FitOptions::default(),
    )
    .unwrap();
    assert!(rel(gg.q, spend.params.q()) < 1e-8);
    let ids: BTreeSet<&str> = transactions
        .iter()
        .map(|t| t.customer_id.as_str())
        .collect();
    let mut scoring = ScoringServiceClient::new(channel(&app.endpoint()).await.unwrap());
    let close = |got: f64, want: f64| (got - want).abs() <= 1e-9 * want.abs().max(1.0);
    for customer in ids.iter().step_by(97) {
        let want = core
            .score(
                &summary_now(&transactions, customer),
                &ScoreOptions::default(),
            )
            .unwrap();
        let value = scoring
            .get_customer_value(pb::GetCustomerValueRequest {
                customer_id: customer.to_string(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            value.family,
            pb::ModelFamily::ParetoNbd as i32,
            "{customer}"
        );
        assert_eq!(value.model_version, model.version);
        assert!(close(
            value.probability_alive.unwrap(),
            want.probability_alive
        ));
        assert!(close(
            value.probability_no_purchase.unwrap(),
            want.probability_no_purchase
        ));
        assert!(close(
            value.expected_purchases.unwrap(),
            want.expected_purchases
        ));
        assert!(close(money(&value.predicted_value), want.predicted_value));
        let churn = churn_risk(&mut scoring, customer).await;
        assert_eq!(churn.family, pb::ModelFamily::ParetoNbd as i32);
        assert!(close(churn.probability_alive, want.probability_alive));
    }
    let at_risk = scoring
        .list_at_risk_customers(pb::ListAtRiskCustomersRequest {
            min_churn_risk: Some(0.0),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(at_risk.model_version, model.version);
    assert_eq!(at_risk.family, pb::ModelFamily::ParetoNbd as i32);
}

/// (x, t_x, T, customers): one-time buyers of long ago and regular buyers
/// who bought on the last day. BG/NBD fits them; MBG/NBD and Pareto/NBD do
/// not (a dropout parameter runs off to 0).
const ONLY_BGNBD_FITS: &[(u32, i64, i64, usize)] = &[
    (0, 0, 300, 500),
    (1, 300, 300, 50),
    (2, 300, 300, 50),
    (3, 300, 300, 50),
    (4, 300, 300, 50),
    (5, 300, 300, 50),
    (6, 300, 300, 50),
    (7, 300, 300, 50),
    (8, 300, 300, 50),
    (9, 300, 300, 50),
    (10, 300, 300, 50),
];

/// (x, t_x, T, customers) that no family fits: everybody bought again on
/// the last day, so nobody ever drops out.
const NO_FAMILY_FITS: &[(u32, i64, i64, usize)] = &[
    (1, 100, 100, 30),
    (1, 200, 200, 30),
    (1, 300, 300, 30),
    (2, 100, 100, 30),
    (2, 200, 200, 30),
    (2, 300, 300, 30),
    (3, 100, 100, 30),
    (3, 200, 200, 30),
    (3, 300, 300, 30),
];

#[tokio::test]
async fn a_family_that_fails_is_a_failed_candidate_while_another_activates() {
    let app = app_selecting(ModelSelection::Criterion(Criterion::Bic)).await;
    let day = NaiveDate::from_ymd_opt(2025, 6, 30).unwrap();
    import(&app, &purchases_with_groups("b", ONLY_BGNBD_FITS, day)).await;
    let model = fit(&app, request(day, &[])).await.expect("fit");
    assert_eq!(model.state, pb::ModelState::Succeeded as i32);
    assert_eq!(model.family, pb::ModelFamily::BgNbd as i32);
    assert!(model.bgnbd.is_some());
    let [bg, mbg, pareto] = &model.candidates[..] else {
        panic!("three candidates: {model:?}");
    };
    assert!(bg.selected && bg.failure.is_empty() && bg.bgnbd.is_some());
    for (failed, name) in [(mbg, "MBG/NBD"), (pareto, "Pareto/NBD")] {
        assert!(!failed.selected, "{failed:?}");
        assert!(failed.failure.contains(name), "{failed:?}");
        assert!(failed.mbgnbd.is_none() && failed.pareto_nbd.is_none());
    }
    // The failed candidates are stored with the version.
    let got = models(&app)
        .await
        .get_model(pb::GetModelRequest {
            version: model.version,
            time_unit: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.candidates, model.candidates);
}

#[tokio::test]
async fn when_every_family_fails_the_fit_fails_naming_each_reason() {
    let app = app_selecting(ModelSelection::Criterion(Criterion::Bic)).await;
    let day = NaiveDate::from_ymd_opt(2025, 6, 30).unwrap();
    import(&app, &purchases_with_groups("n", NO_FAMILY_FITS, day)).await;
    let status = fit(&app, request(day, &[])).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    for name in ["BG/NBD", "MBG/NBD", "Pareto/NBD"] {
        assert!(status.message().contains(name), "{}", status.message());
    }
    // The failed version lists the three failed families.
    let listed = models(&app)
        .await
        .list_models(pb::ListModelsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let failed = &listed.models[0];
    assert_eq!(failed.state, pb::ModelState::Failed as i32);
    assert_eq!(failed.family, pb::ModelFamily::Unspecified as i32);
    assert_eq!(failed.candidates.len(), 3);
    assert!(failed
        .candidates
        .iter()
        .all(|c| !c.failure.is_empty() && !c.selected));
}

#[tokio::test]
async fn a_pinned_or_requested_family_is_the_one_fitted_and_activated() {
    let day = NaiveDate::from_ymd_opt(2024, 12, 31).unwrap();
    let transactions = pareto_purchases();

    // Pinned by the setting: MBG/NBD alone, although Pareto/NBD fits better.
    let app = app_selecting(ModelSelection::Pinned(PurchaseFamily::MbgNbd)).await;
    import(&app, &transactions).await;
    let pinned = fit(&app, request(day, &[])).await.expect("fit");
    assert_eq!(pinned.family, pb::ModelFamily::MbgNbd as i32);
    assert_eq!(pinned.selection, "pinned");
    assert_eq!(families_of(&pinned), vec![pb::ModelFamily::MbgNbd as i32]);
    assert!(pinned.mbgnbd.is_some() && pinned.bgnbd.is_none() && pinned.pareto_nbd.is_none());
    let (purchase_groups, _, _) = groups(&transactions, day);
    let input = BgNbdFitInput::from_groups(purchase_groups).unwrap();
    let ours = fit_family(PurchaseFamily::MbgNbd, &input, &FitOptions::default()).unwrap();
    let m = pinned.mbgnbd.unwrap();
    for (got, want) in [m.r, m.alpha, m.a, m.b]
        .into_iter()
        .zip(ours.params.values())
    {
        assert!(rel(got, want) < 1e-8, "{got} vs {want}");
    }

    // Requested: one family named is fitted alone and activated.
    let requested = fit(&app, request(day, &[pb::ModelFamily::BgNbd]))
        .await
        .expect("fit");
    assert_eq!(requested.family, pb::ModelFamily::BgNbd as i32);
    assert_eq!(requested.selection, "requested");
    assert_eq!(families_of(&requested), vec![pb::ModelFamily::BgNbd as i32]);
    assert!(requested.bgnbd.is_some());

    // Two families named, by AIC: both fitted, the lower AIC activated.
    let two = fit(
        &app,
        pb::FitModelRequest {
            selection: pb::ModelSelection::Aic as i32,
            ..request(day, &[pb::ModelFamily::ParetoNbd, pb::ModelFamily::BgNbd])
        },
    )
    .await
    .expect("fit");
    assert_eq!(
        families_of(&two),
        vec![
            pb::ModelFamily::BgNbd as i32,
            pb::ModelFamily::ParetoNbd as i32
        ]
    );
    assert_eq!(two.selection, "aic");
    let best = two
        .candidates
        .iter()
        .min_by(|a, b| a.aic.total_cmp(&b.aic))
        .unwrap();
    assert!(best.selected);
    assert_eq!(two.family, best.family);

    // Bad families name the field; nothing is fitted.
    let versions = app.count("SELECT count(*) FROM models").await;
    for families in [vec![0], vec![9], vec![1, 1]] {
        let status = fit(
            &app,
            pb::FitModelRequest {
                families,
                ..fit_request(day, pb::TimeUnit::Day)
            },
        )
        .await
        .unwrap_err();
        assert_invalid_naming(&status, "families");
    }
    let status = fit(
        &app,
        pb::FitModelRequest {
            selection: 7,
            ..fit_request(day, pb::TimeUnit::Day)
        },
    )
    .await
    .unwrap_err();
    assert_invalid_naming(&status, "selection");
    assert_eq!(app.count("SELECT count(*) FROM models").await, versions);
}

#[tokio::test]
async fn versions_stored_before_families_read_as_bgnbd_with_one_candidate() {
    let app = spawn_app().await;
    let transactions = crate::models::simulated_purchases();
    import(&app, &transactions).await;
    let day = NaiveDate::from_ymd_opt(2024, 11, 30).unwrap();
    let model = fit(&app, request(day, &[])).await.expect("fit");
    // As the migration leaves a version stored before it: family bg_nbd,
    // no selection, no candidates.
    sqlx::query("DELETE FROM model_candidates")
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE models SET selected_by = NULL")
        .execute(&app.pool)
        .await
        .unwrap();
    let got = models(&app)
        .await
        .get_model(pb::GetModelRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.family, pb::ModelFamily::BgNbd as i32);
    assert_eq!(got.selection, "");
    assert_eq!(got.bgnbd, model.bgnbd);
    let [only] = &got.candidates[..] else {
        panic!("one candidate: {got:?}");
    };
    assert_eq!(only.family, pb::ModelFamily::BgNbd as i32);
    assert!(only.selected && only.converged && only.failure.is_empty());
    assert_eq!(only.bgnbd, model.bgnbd);
    assert!(rel(only.log_likelihood, model.log_likelihood) < 1e-12);
    let bic = 4.0 * (model.customers as f64).ln() - 2.0 * model.log_likelihood;
    assert!((only.bic - bic).abs() < 1e-6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_fits_the_families_asked_for_and_prints_each_scores_family() {
    let app = app_selecting(ModelSelection::Criterion(Criterion::Bic)).await;
    let day = NaiveDate::from_ymd_opt(2025, 6, 30).unwrap();
    import(&app, &purchases_with_groups("b", ONLY_BGNBD_FITS, day)).await;
    let server = app.endpoint();
    let json = |out: std::process::Output| -> serde_json::Value {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON")
    };
    let args = [
        "fit",
        "--as-of",
        "2025-06-30",
        "--family",
        "mbg_nbd,bg_nbd",
        "--selection",
        "aic",
        "-o",
        "json",
    ];
    let fit = json(crate::cli::clvd_at(&server, &args, &[]).await);
    let got = models(&app)
        .await
        .get_model(pb::GetModelRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fit["family"], "bg_nbd");
    assert_eq!(fit["selection"], "aic");
    assert_eq!(got.selection, "aic");
    let candidates = fit["candidates"].as_array().expect("candidates");
    assert_eq!(candidates.len(), 2);
    assert_eq!(candidates[0]["family"], "bg_nbd");
    assert_eq!(candidates[0]["selected"], true);
    assert_eq!(candidates[0]["aic"].as_f64(), Some(got.candidates[0].aic));
    assert_eq!(candidates[1]["family"], "mbg_nbd");
    assert!(candidates[1]["failure"]
        .as_str()
        .is_some_and(|f| f.contains("MBG/NBD")));

    let listed = json(crate::cli::clvd_at(&server, &["models", "-o", "json"], &[]).await);
    assert_eq!(listed[0]["family"], "bg_nbd");
    let churn = json(crate::cli::clvd_at(&server, &["churn", "b-1", "-o", "json"], &[]).await);
    assert_eq!(churn["family"], "bg_nbd", "{churn}");
    let value = json(crate::cli::clvd_at(&server, &["value", "b-600", "-o", "json"], &[]).await);
    assert_eq!(value["family"], "bg_nbd");
    let bad = crate::cli::clvd_at(&server, &["fit", "--family", "gamma"], &[]).await;
    assert!(!bad.status.success());
    let args = [
        "evaluate",
        "--calibration-end",
        "2025-03-31",
        "--holdout-end",
        "2025-06-30",
        "--family",
        "bg_nbd",
        "-o",
        "json",
    ];
    let evaluation = json(crate::cli::clvd_at(&server, &args, &[]).await);
    let families = evaluation["families"].as_array().expect("families");
    assert_eq!(families.len(), 1);
    assert_eq!(families[0]["family"], "bg_nbd");
    let total = evaluation["by_calibration_repeat_occasions"]
        .as_array()
        .and_then(|rows| rows.last())
        .and_then(|total| total["predicted"].as_f64())
        .expect("the total row");
    let predicted = families[0]["predicted"].as_f64().expect("predicted");
    assert!(rel(predicted, total) < 1e-9, "{predicted} vs {total}");
}

#[tokio::test]
async fn a_version_is_stored_with_its_family_candidates_and_log_parameter_covariance() {
    use clvd::domain::{
        CandidateFit, FamilyCandidate, FitFailure, FittedModels, NewModelVersion,
        PurchaseParameters, SelectedBy, SpendParameters,
    };
    let app = spawn_app().await;
    let params = PurchaseParameters {
        family: PurchaseFamily::ParetoNbd,
        values: [0.55, 74.1, 0.61, 81.7],
    };
    let covariance: [[f64; 4]; 4] =
        std::array::from_fn(|i| std::array::from_fn(|j| 0.01 / (1.0 + (i + j) as f64)));
    let fitted = FittedModels {
        purchases: params,
        purchases_standard_errors: Some(PurchaseParameters {
            family: PurchaseFamily::ParetoNbd,
            values: [0.05, 7.0, 0.06, 8.0],
        }),
        selected_by: Some(SelectedBy::Bic),
        log_parameter_covariance: Some(covariance),
        log_likelihood_days: -1000.5,
        iterations: 31,
        converged: true,
        spend: SpendParameters {
            p: 6.25,
            q: 3.74,
            gamma: 15.44,
        },
        spend_standard_errors: None,
        spend_log_parameter_covariance: Some([
            [0.02, 0.01, -0.003],
            [0.01, 0.03, 0.002],
            [-0.003, 0.002, 0.04],
        ]),
        spend_log_likelihood: -500.25,
        frequency_spend_correlation: 0.1,
    };
    let candidates = vec![
        FamilyCandidate {
            family: PurchaseFamily::BgNbd,
            outcome: Err(FitFailure::new("the data do not identify the BG/NBD model")),
        },
        FamilyCandidate {
            family: PurchaseFamily::ParetoNbd,
            outcome: Ok(CandidateFit {
                params,
                log_likelihood_days: -1000.5,
                aic_days: 2009.0,
                bic_days: 2020.0,
                converged: true,
                iterations: 31,
                holdout: Some(clvd::domain::CandidateHoldout {
                    holdout_days: 91,
                    mean_absolute_error: 0.75,
                    correlation: 0.5,
                }),
            }),
        },
    ];
    let new = NewModelVersion {
        as_of: at(2025, 1, 1, 0, 0),
        outcome: Ok(fitted),
        customers: 100,
        spend_customers: 40,
        repeat_occasions: 70,
        fit_duration: std::time::Duration::from_millis(1500),
        transactions_counter: Some(170),
        candidates,
    };
    let stored = app.storage.insert_model(&new).await.unwrap();
    let read = app
        .storage
        .model(Some(stored.version))
        .await
        .unwrap()
        .expect("the version");
    assert_eq!(read.fit, new);
    assert_eq!(stored.fit, new);
    // The covariance has 16 values or none.
    let wrong = sqlx::query("UPDATE models SET log_parameter_covariance = ARRAY[1.0, 2.0]")
        .execute(&app.pool)
        .await;
    assert!(wrong.is_err());
}

#[tokio::test]
async fn evaluate_model_compares_the_families_asked_for_on_the_holdout() {
    let app = spawn_app().await;
    let transactions = pareto_purchases();
    import(&app, &transactions).await;
    let calibration = NaiveDate::from_ymd_opt(2024, 9, 30).unwrap();
    let holdout = NaiveDate::from_ymd_opt(2024, 12, 31).unwrap();
    let end = |d: NaiveDate| fit_request(d, pb::TimeUnit::Day).as_of;
    let mut client = models(&app).await;
    let e = client
        .evaluate_model(pb::EvaluateModelRequest {
            calibration_end: end(calibration),
            holdout_end: end(holdout),
            time_unit: pb::TimeUnit::Day as i32,
            families: vec![
                pb::ModelFamily::ParetoNbd as i32,
                pb::ModelFamily::BgNbd as i32,
            ],
        })
        .await
        .unwrap()
        .into_inner();
    let [bg, pareto] = &e.families[..] else {
        panic!("two families: {e:?}");
    };
    assert_eq!(bg.family, pb::ModelFamily::BgNbd as i32);
    assert_eq!(pareto.family, pb::ModelFamily::ParetoNbd as i32);
    assert!(bg.failure.is_empty() && pareto.failure.is_empty());
    // BG/NBD's entry is the evaluation's own fit and totals.
    let total = e.total.unwrap();
    assert_eq!(bg.bgnbd, e.bgnbd);
    assert!(rel(bg.predicted, total.predicted) < 1e-9);
    assert_eq!(bg.actual, total.actual);
    assert!(
        rel(
            bg.mean_absolute_error_per_customer,
            e.mean_absolute_error_per_customer
        ) < 1e-9
    );

    // Pareto/NBD's entry, computed here from the raw purchases.
    let mut days: std::collections::BTreeMap<&str, BTreeSet<NaiveDate>> = Default::default();
    for t in &transactions {
        let ts = t.occurred_at.as_ref().unwrap();
        let day = chrono::DateTime::from_timestamp(ts.seconds, 0)
            .unwrap()
            .date_naive();
        days.entry(&t.customer_id).or_default().insert(day);
    }
    let mut customers = Vec::new();
    for d in days.values() {
        let first = *d.iter().next().unwrap();
        if first > calibration {
            continue;
        }
        let before: Vec<NaiveDate> = d.iter().copied().filter(|&x| x <= calibration).collect();
        let after = d
            .iter()
            .filter(|&&x| x > calibration && x <= holdout)
            .count();
        let summary = clv_model::CustomerSummary::new(
            (before.len() - 1) as f64,
            (*before.last().unwrap() - first).num_days() as f64,
            (calibration - first).num_days() as f64,
            0.0,
        )
        .unwrap();
        customers.push((summary, after as f64));
    }
    let summaries: Vec<_> = customers.iter().map(|c| c.0).collect();
    let input = BgNbdFitInput::from_summaries(&summaries);
    let fit = fit_family(PurchaseFamily::ParetoNbd, &input, &FitOptions::default()).unwrap();
    let p = pareto.pareto_nbd.unwrap();
    for (got, want) in [p.r, p.alpha, p.s, p.beta]
        .into_iter()
        .zip(fit.params.values())
    {
        assert!(rel(got, want) < 1e-8, "{got} vs {want}");
    }
    assert!(rel(pareto.log_likelihood, fit.report.log_likelihood) < 1e-10);
    let horizon = (holdout - calibration).num_days() as f64;
    let predicted: Vec<f64> = customers
        .iter()
        .map(|(c, _)| fit.params.expected_purchases(c, horizon))
        .collect();
    let actual: Vec<f64> = customers.iter().map(|c| c.1).collect();
    let n = customers.len() as f64;
    let (sp, sa) = (predicted.iter().sum::<f64>(), actual.iter().sum::<f64>());
    assert!(rel(pareto.predicted, sp) < 1e-9);
    assert_eq!(pareto.actual, sa);
    let mae = predicted
        .iter()
        .zip(&actual)
        .map(|(p, a)| (p - a).abs())
        .sum::<f64>()
        / n;
    assert!(rel(pareto.mean_absolute_error_per_customer, mae) < 1e-9);
    let (mp, ma) = (sp / n, sa / n);
    let cov: f64 = predicted
        .iter()
        .zip(&actual)
        .map(|(p, a)| (p - mp) * (a - ma))
        .sum();
    let vp: f64 = predicted.iter().map(|p| (p - mp).powi(2)).sum();
    let va: f64 = actual.iter().map(|a| (a - ma).powi(2)).sum();
    let correlation = cov / (vp * va).sqrt();
    assert!(correlation > 0.0 && correlation <= 1.0);
    assert!((pareto.correlation - correlation).abs() < 1e-9);

    // A bad family names the field.
    let status = client
        .evaluate_model(pb::EvaluateModelRequest {
            calibration_end: end(calibration),
            holdout_end: end(holdout),
            time_unit: 0,
            families: vec![0],
        })
        .await
        .unwrap_err();
    assert_invalid_naming(&status, "families");
}

/// The `holdout` policy on the Pareto/NBD data: the last quarter of the
/// 365-day span is held out, each family's holdout figures are recorded
/// with its candidate and equal EvaluateModel's over the same periods, and
/// the family with the lowest holdout error, Pareto/NBD (which the data
/// came from), is activated as `holdout`; BIC picks it too.
#[tokio::test]
async fn holdout_picks_the_family_the_data_came_from_and_records_each_familys_figures() {
    let app = app_selecting(ModelSelection::Criterion(Criterion::Holdout)).await;
    let transactions = pareto_purchases();
    import(&app, &transactions).await;
    let day = NaiveDate::from_ymd_opt(2024, 12, 31).unwrap();
    let model = fit(&app, request(day, &[])).await.expect("fit");
    assert_eq!(model.selection, "holdout");
    assert_eq!(model.family, pb::ModelFamily::ParetoNbd as i32);

    // The holdout: a quarter of the span (the largest T), here 91 days.
    let (purchase_groups, _, _) = groups(&transactions, day);
    let span = purchase_groups.iter().map(|g| g.2).fold(0.0, f64::max);
    let holdout_days = (span as i64) / 4;
    assert_eq!(holdout_days, 91, "span {span}");
    let stored = app
        .storage
        .model(Some(model.version))
        .await
        .unwrap()
        .expect("the version");
    let figures: Vec<_> = stored
        .fit
        .candidates
        .iter()
        .map(|c| {
            let fit = c.outcome.as_ref().expect("every family fits");
            (c.family, fit.holdout.expect("holdout figures"))
        })
        .collect();
    assert_eq!(figures.len(), 3);
    assert!(figures.iter().all(|(_, h)| h.holdout_days == holdout_days));
    // FitModel's answer carries the same figures on each candidate.
    for (family, h) in &figures {
        let answered = model
            .candidates
            .iter()
            .find(|c| c.family == pb_family(*family) as i32)
            .and_then(|c| c.holdout)
            .expect("the candidate's holdout figures");
        assert_eq!(answered.holdout_days, h.holdout_days, "{family}");
        assert_eq!(
            answered.mean_absolute_error_per_customer,
            h.mean_absolute_error
        );
        assert_eq!(answered.correlation, h.correlation);
    }

    // The same figures as EvaluateModel over the same two periods.
    let calibration = day - Duration::days(holdout_days);
    let end = |d: NaiveDate| fit_request(d, pb::TimeUnit::Day).as_of;
    let evaluation = models(&app)
        .await
        .evaluate_model(pb::EvaluateModelRequest {
            calibration_end: end(calibration),
            holdout_end: end(day),
            time_unit: pb::TimeUnit::Day as i32,
            families: PurchaseFamily::ALL
                .iter()
                .map(|&f| pb_family(f) as i32)
                .collect(),
        })
        .await
        .unwrap()
        .into_inner();
    for (family, holdout) in &figures {
        let theirs = evaluation
            .families
            .iter()
            .find(|f| f.family == pb_family(*family) as i32)
            .expect("evaluated");
        assert!(
            (holdout.mean_absolute_error - theirs.mean_absolute_error_per_customer).abs() < 1e-9,
            "{family}: {holdout:?} vs {theirs:?}"
        );
        assert!((holdout.correlation - theirs.correlation).abs() < 1e-9);
    }
    // The activated family has the lowest holdout error, clearly.
    let best = figures
        .iter()
        .min_by(|a, b| a.1.mean_absolute_error.total_cmp(&b.1.mean_absolute_error))
        .unwrap();
    assert_eq!(best.0, PurchaseFamily::ParetoNbd, "{figures:?}");
    for (family, h) in &figures {
        if *family != PurchaseFamily::ParetoNbd {
            assert!(
                h.mean_absolute_error > 1.02 * best.1.mean_absolute_error,
                "{figures:?}"
            );
        }
    }

    // BIC (the request's override) picks the same family, recording no
    // holdout figures.
    let bic = fit(
        &app,
        pb::FitModelRequest {
            selection: pb::ModelSelection::Bic as i32,
            ..request(day, &[])
        },
    )
    .await
    .expect("fit");
    assert_eq!(bic.selection, "bic");
    assert_eq!(bic.family, pb::ModelFamily::ParetoNbd as i32);
    assert!(bic.candidates.iter().all(|c| c.holdout.is_none()));
    let stored = app.storage.model(Some(bic.version)).await.unwrap().unwrap();
    assert!(stored
        .fit
        .candidates
        .iter()
        .all(|c| c.outcome.as_ref().unwrap().holdout.is_none()));
}

/// Data spanning less than 112 days allows no 28-day holdout: `holdout`
/// (here asked for by the request) falls back to BIC, says so, and records
/// no holdout figures.
#[tokio::test]
async fn holdout_falls_back_to_bic_when_the_data_is_too_short() {
    let app = spawn_app().await;
    // The Pareto/NBD customers over 100 days (acquired in the first 50).
    let transactions = pareto_purchases_over(100.0, 50.0);
    import(&app, &transactions).await;
    let day = NaiveDate::from_ymd_opt(2024, 4, 9).unwrap();
    let (purchase_groups, _, _) = groups(&transactions, day);
    let span = purchase_groups.iter().map(|g| g.2).fold(0.0, f64::max);
    assert!((90.0..112.0).contains(&span), "span {span}");
    let holdout = pb::FitModelRequest {
        selection: pb::ModelSelection::Holdout as i32,
        ..request(day, &[])
    };
    let model = fit(&app, holdout).await.expect("fit");
    assert_eq!(model.selection, "bic");
    assert!(model.candidates.iter().all(|c| c.holdout.is_none()));
    let best = model
        .candidates
        .iter()
        .filter(|c| c.failure.is_empty())
        .min_by(|a, b| a.bic.total_cmp(&b.bic))
        .unwrap();
    assert!(best.selected);
    let stored = app
        .storage
        .model(Some(model.version))
        .await
        .unwrap()
        .unwrap();
    assert!(stored
        .fit
        .candidates
        .iter()
        .filter_map(|c| c.outcome.as_ref().ok())
        .all(|c| c.holdout.is_none()));
}

/// INVALID_ARGUMENT whose message names `field`.
fn assert_invalid_naming(status: &tonic::Status, field: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains(field), "{}", status.message());
}

fn pb_family(family: PurchaseFamily) -> pb::ModelFamily {
    match family {
        PurchaseFamily::BgNbd => pb::ModelFamily::BgNbd,
        PurchaseFamily::MbgNbd => pb::ModelFamily::MbgNbd,
        PurchaseFamily::ParetoNbd => pb::ModelFamily::ParetoNbd,
    }
}
