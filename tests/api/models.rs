//! ModelService: fits over gRPC equal the model core's fits on the same
//! summaries; versions, failures, units and pagination.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate};
use clv_model::{
    fit_bgnbd, fit_gamma_gamma, simulate, Acquisition, BgNbdFitInput, BgNbdParams, FitOptions,
    GammaGammaFitInput, GammaGammaParams, SimulationConfig, TimeResolution,
};
use clvd::api::pb::{self, model_service_client::ModelServiceClient};
use tonic::Code;

use crate::helpers::*;

fn rel(a: f64, b: f64) -> f64 {
    ((a - b) / b).abs()
}

/// Purchases of 1,500 customers simulated from the BG/NBD + Gamma-Gamma
/// story, starting 2024-01-01, whole days, values in cents.
pub fn simulated_purchases() -> Vec<pb::Transaction> {
    let customers = simulate(&SimulationConfig {
        purchases: BgNbdParams::new(0.243, 30.9, 0.793, 2.426).unwrap(),
        spend: Some(GammaGammaParams::new(6.25, 3.74, 15.44).unwrap()),
        customers: 1_500,
        calibration_days: 365.0,
        holdout_days: 0.0,
        acquisition: Acquisition::Uniform { window_days: 180.0 },
        resolution: TimeResolution::WholeDays,
        seed: 11,
        record_occasions: true,
    });
    let start = at(2024, 1, 1, 12, 0);
    let mut out = Vec::new();
    for (i, c) in customers.iter().enumerate() {
        for (k, o) in c.occasions.iter().enumerate() {
            let when = start + Duration::days(o.day as i64);
            out.push(purchase(
                &format!("sim-{i}"),
                &format!("o-{k}"),
                when,
                (o.value * 100.0).round() as i64,
            ));
        }
    }
    out
}

/// Purchase groups (x, t_x, T, count), spend groups (x, m, count) and Σx.
pub type FitGroups = (Vec<(f64, f64, f64, u64)>, Vec<(f64, f64, u64)>, i64);

/// (x, t_x, T, count) and (x, m, count) computed here from the raw
/// purchases, as of the end of `as_of_day`.
pub fn groups(transactions: &[pb::Transaction], as_of_day: NaiveDate) -> FitGroups {
    let mut days: BTreeMap<&str, BTreeMap<NaiveDate, i64>> = BTreeMap::new();
    for t in transactions {
        let ts = t.occurred_at.as_ref().unwrap();
        let day = chrono::DateTime::from_timestamp(ts.seconds, 0)
            .unwrap()
            .date_naive();
        if day <= as_of_day {
            let nanos = t
                .amount
                .as_ref()
                .map(|m| m.units * 1_000_000_000 + i64::from(m.nanos))
                .unwrap();
            *days
                .entry(&t.customer_id)
                .or_default()
                .entry(day)
                .or_default() += nanos;
        }
    }
    let mut purchases: BTreeMap<(i64, i64, i64), u64> = BTreeMap::new();
    let mut spend: BTreeMap<(i64, u64), u64> = BTreeMap::new();
    let mut repeat_occasions = 0;
    for d in days.values() {
        let (first, _) = d.iter().next().unwrap();
        let (last, _) = d.iter().next_back().unwrap();
        let x = d.len() as i64 - 1;
        repeat_occasions += x;
        *purchases
            .entry((
                x,
                (*last - *first).num_days(),
                (as_of_day - *first).num_days(),
            ))
            .or_default() += 1;
        let repeat: i64 = d.values().skip(1).sum();
        if x > 0 && repeat > 0 {
            let m = repeat as f64 / 1e9 / x as f64;
            *spend.entry((x, m.to_bits())).or_default() += 1;
        }
    }
    (
        purchases
            .into_iter()
            .map(|((x, tx, t), n)| (x as f64, tx as f64, t as f64, n))
            .collect(),
        spend
            .into_iter()
            .map(|((x, m), n)| (x as f64, f64::from_bits(m), n))
            .collect(),
        repeat_occasions,
    )
}

pub async fn import(app: &TestApp, transactions: &[pb::Transaction]) {
    let batches: Vec<_> = transactions
        .chunks(1_000)
        .map(|c| pb::ImportTransactionsRequest {
            transactions: c.to_vec(),
        })
        .collect();
    app.ingest()
        .await
        .import_transactions(futures::stream::iter(batches))
        .await
        .unwrap();
}

pub async fn models(app: &TestApp) -> ModelServiceClient<tonic::transport::Channel> {
    ModelServiceClient::new(channel(&app.endpoint()).await.unwrap())
}

pub fn fit_request(day: NaiveDate, unit: pb::TimeUnit) -> pb::FitModelRequest {
    let end = day.and_hms_opt(23, 59, 59).unwrap().and_utc();
    pb::FitModelRequest {
        as_of: Some(timestamp(end)),
        time_unit: unit as i32,
        ..Default::default()
    }
}

/// Fits over everything recorded up to the end of `day` (parameters in
/// days); the fit must succeed.
pub async fn fit_as_of(app: &TestApp, day: NaiveDate) -> pb::Model {
    models(app)
        .await
        .fit_model(fit_request(day, pb::TimeUnit::Day))
        .await
        .expect("fit")
        .into_inner()
}

#[tokio::test]
async fn a_fit_over_grpc_equals_the_model_core_on_the_same_summaries() {
    let app = spawn_app().await;
    let transactions = simulated_purchases();
    import(&app, &transactions).await;
    // As of a day before the end: later purchases must be left out.
    let as_of_day = NaiveDate::from_ymd_opt(2024, 11, 30).unwrap();
    let model = fit_as_of(&app, as_of_day).await;

    let (purchase_groups, spend_groups, repeat_occasions) = groups(&transactions, as_of_day);
    let options = FitOptions::default();
    let bg = fit_bgnbd(
        &BgNbdFitInput::from_groups(purchase_groups.clone()).unwrap(),
        &options,
    )
    .unwrap();
    let gg = fit_gamma_gamma(
        &GammaGammaFitInput::from_groups(spend_groups.clone()).unwrap(),
        &options,
    )
    .unwrap();

    assert_eq!(model.state, pb::ModelState::Succeeded as i32);
    assert!(model.active && model.converged);
    assert_eq!(
        model.customers as u64,
        purchase_groups.iter().map(|g| g.3).sum::<u64>()
    );
    assert_eq!(
        model.spend_customers as u64,
        spend_groups.iter().map(|g| g.2).sum::<u64>()
    );
    let p = model.bgnbd.unwrap();
    for (got, want) in [
        (p.r, bg.params.r()),
        (p.alpha, bg.params.alpha()),
        (p.a, bg.params.a()),
        (p.b, bg.params.b()),
    ] {
        assert!(rel(got, want) < 1e-8, "BG/NBD {got} vs {want}");
    }
    let s = model.gamma_gamma.unwrap();
    for (got, want) in [
        (s.p, gg.params.p()),
        (s.q, gg.params.q()),
        (s.gamma, gg.params.gamma()),
    ] {
        assert!(rel(got, want) < 1e-8, "Gamma-Gamma {got} vs {want}");
    }
    assert!(rel(model.log_likelihood, bg.report.log_likelihood) < 1e-10);

    // The same version in weeks: alpha / 7, LL + Σx·ln 7.
    let weeks = models(&app)
        .await
        .get_model(pb::GetModelRequest {
            version: model.version,
            time_unit: pb::TimeUnit::Week as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(rel(weeks.bgnbd.unwrap().alpha, p.alpha / 7.0) < 1e-12);
    let ll_weeks = bg.report.log_likelihood + repeat_occasions as f64 * 7f64.ln();
    assert!(
        rel(weeks.log_likelihood, ll_weeks) < 1e-10,
        "{} vs {ll_weeks}",
        weeks.log_likelihood
    );
}

#[tokio::test]
async fn before_any_fit_there_is_no_active_model() {
    let app = spawn_app().await;
    let status = models(&app)
        .await
        .get_model(pb::GetModelRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(
        status.message().contains("FitModel"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn a_failed_fit_is_recorded_and_keeps_the_active_model() {
    let app = spawn_app().await;
    let mut client = models(&app).await;
    // Nothing stored: the fit fails and says why.
    let status = client
        .fit_model(pb::FitModelRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let listed = client
        .list_models(pb::ListModelsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.models.len(), 1);
    assert_eq!(listed.models[0].state, pb::ModelState::Failed as i32);
    assert!(!listed.models[0].failure.is_empty());

    import(&app, &simulated_purchases()).await;
    let good = client
        .fit_model(fit_request(
            NaiveDate::from_ymd_opt(2024, 12, 31).unwrap(),
            pb::TimeUnit::Day,
        ))
        .await
        .unwrap()
        .into_inner();
    // Before any purchase: no customers, so the fit fails again.
    let status = client
        .fit_model(fit_request(
            NaiveDate::from_ymd_opt(2023, 6, 1).unwrap(),
            pb::TimeUnit::Day,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let active = client
        .get_model(pb::GetModelRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(active.version, good.version);
    assert!(active.active);
}

#[tokio::test]
async fn list_models_pages_newest_first() {
    let app = spawn_app().await;
    let mut client = models(&app).await;
    for _ in 0..3 {
        let _ = client.fit_model(pb::FitModelRequest::default()).await;
    }
    let first = client
        .list_models(pb::ListModelsRequest {
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        first.models.iter().map(|m| m.version).collect::<Vec<_>>(),
        vec![3, 2]
    );
    assert!(!first.next_page_token.is_empty());
    let second = client
        .list_models(pb::ListModelsRequest {
            page_size: 2,
            page_token: first.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        second.models.iter().map(|m| m.version).collect::<Vec<_>>(),
        vec![1]
    );
    assert!(second.next_page_token.is_empty());
}

#[tokio::test]
async fn bad_model_arguments_name_the_field() {
    let app = spawn_app().await;
    let mut client = models(&app).await;
    let future = pb::FitModelRequest {
        as_of: Some(timestamp(chrono::Utc::now() + Duration::days(2))),
        time_unit: 0,
        ..Default::default()
    };
    let cases: Vec<(tonic::Status, &str)> = vec![
        (client.fit_model(future).await.unwrap_err(), "as_of"),
        (
            client
                .fit_model(pb::FitModelRequest {
                    as_of: None,
                    time_unit: 9,
                    ..Default::default()
                })
                .await
                .unwrap_err(),
            "time_unit",
        ),
        (
            client
                .get_model(pb::GetModelRequest {
                    version: -1,
                    time_unit: 0,
                })
                .await
                .unwrap_err(),
            "version",
        ),
        (
            client
                .list_models(pb::ListModelsRequest {
                    page_size: -1,
                    ..Default::default()
                })
                .await
                .unwrap_err(),
            "page_size",
        ),
        (
            client
                .list_models(pb::ListModelsRequest {
                    page_token: "garbage".into(),
                    ..Default::default()
                })
                .await
                .unwrap_err(),
            "page_token",
        ),
    ];
    for (status, field) in cases {
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        assert_eq!(violated_fields(&status), vec![field.to_owned()]);
    }
    assert_eq!(
        app.count("SELECT count(*) FROM models").await,
        0,
        "nothing was fitted or stored"
    );
    let missing = client
        .get_model(pb::GetModelRequest {
            version: 99,
            time_unit: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

/// Purchases (calibration and holdout) of `customers` simulated customers
/// from known parameters, starting 2024-01-01.
fn simulated_with_holdout(customers: usize, truth: BgNbdParams) -> Vec<pb::Transaction> {
    let simulated = simulate(&SimulationConfig {
        purchases: truth,
        spend: Some(GammaGammaParams::new(6.25, 3.74, 15.44).unwrap()),
        customers,
        calibration_days: 365.0,
        holdout_days: 273.0,
        acquisition: Acquisition::Uniform { window_days: 120.0 },
        resolution: TimeResolution::WholeDays,
        seed: 5,
        record_occasions: true,
    });
    let start = at(2024, 1, 1, 12, 0);
    let mut out = Vec::new();
    for (i, c) in simulated.iter().enumerate() {
        for (k, o) in c.occasions.iter().enumerate() {
            out.push(purchase(
                &format!("h-{i}"),
                &format!("o-{k}"),
                start + Duration::days(o.day as i64),
                1_000,
            ));
        }
    }
    out
}

#[tokio::test]
async fn evaluate_model_recovers_the_simulated_truth_within_sampling_error() {
    let app = spawn_app().await;
    let truth = BgNbdParams::new(0.8, 20.0, 0.9, 3.0).unwrap();
    let transactions = simulated_with_holdout(6_000, truth);
    import(&app, &transactions).await;
    // Calibration: the first 365 days (to 2024-12-30); holdout: 273 more.
    let calibration_end = NaiveDate::from_ymd_opt(2024, 12, 30)
        .unwrap()
        .and_hms_opt(23, 59, 59)
        .unwrap()
        .and_utc();
    let holdout_end = calibration_end + Duration::days(273);
    let evaluation = models(&app)
        .await
        .evaluate_model(pb::EvaluateModelRequest {
            calibration_end: Some(timestamp(calibration_end)),
            holdout_end: Some(timestamp(holdout_end)),
            time_unit: pb::TimeUnit::Day as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(evaluation.customers, 6_000);
    assert_eq!(evaluation.holdout_days, 273.0);
    let p = evaluation.bgnbd.unwrap();
    // Sampling error at 6,000 customers is a few tens of percent at most for
    // these parameters; a broken fit or window is far outside.
    for (name, got, want) in [
        ("r", p.r, 0.8),
        ("alpha", p.alpha, 20.0),
        ("a", p.a, 0.9),
        ("b", p.b, 3.0),
    ] {
        assert!(rel(got, want) < 0.35, "{name}: {got} vs truth {want}");
    }
    let total = evaluation.total.unwrap();
    assert!(
        total.actual > 1_000.0,
        "the holdout has purchases: {}",
        total.actual
    );
    assert!(
        total.percentage_error.abs() < 10.0,
        "predicted {} vs actual {}",
        total.predicted,
        total.actual
    );
    assert_eq!(evaluation.by_calibration_repeat_occasions.len(), 8);
    assert!(evaluation.by_calibration_repeat_occasions[7].and_more);
    let bucket_customers: i64 = evaluation
        .by_calibration_repeat_occasions
        .iter()
        .map(|b| b.customers)
        .sum();
    assert_eq!(bucket_customers, 6_000);
    let bucket_actual: f64 = evaluation
        .by_calibration_repeat_occasions
        .iter()
        .map(|b| b.actual)
        .sum();
    assert!((bucket_actual - total.actual).abs() < 1e-6);
    // Actual holdout occasions, counted here from the raw purchases.
    let mut days = std::collections::BTreeSet::new();
    for t in &transactions {
        let ts = t.occurred_at.as_ref().unwrap();
        let when = chrono::DateTime::from_timestamp(ts.seconds, 0).unwrap();
        if when > calibration_end && when <= holdout_end {
            days.insert((t.customer_id.clone(), when.date_naive()));
        }
    }
    assert_eq!(total.actual, days.len() as f64);
}

#[tokio::test]
async fn evaluate_model_checks_its_window() {
    let app = spawn_app().await;
    let mut client = models(&app).await;
    let t = |d: NaiveDate| Some(timestamp(d.and_hms_opt(0, 0, 0).unwrap().and_utc()));
    let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
    for (request, field) in [
        (
            pb::EvaluateModelRequest {
                calibration_end: None,
                holdout_end: t(day(2025, 1, 1)),
                time_unit: 0,
            },
            "calibration_end",
        ),
        (
            pb::EvaluateModelRequest {
                calibration_end: t(day(2025, 1, 1)),
                holdout_end: t(day(2024, 1, 1)),
                time_unit: 0,
            },
            "holdout_end",
        ),
        (
            pb::EvaluateModelRequest {
                calibration_end: t(day(2025, 1, 1)),
                holdout_end: t(day(2099, 1, 1)),
                time_unit: 0,
            },
            "holdout_end",
        ),
    ] {
        let status = client.evaluate_model(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        assert_eq!(violated_fields(&status), vec![field.to_owned()]);
    }
    let empty = pb::EvaluateModelRequest {
        calibration_end: t(day(2025, 1, 1)),
        holdout_end: t(day(2025, 6, 1)),
        time_unit: 0,
    };
    assert_eq!(
        client.evaluate_model(empty).await.unwrap_err().code(),
        Code::FailedPrecondition
    );
}

/// Issue 12: after a failed fit, and with no successful model, every note
/// and error that needs a model still said "no model has been fitted yet".
/// Each must say that the last fit failed, its version and why.
#[tokio::test]
async fn after_a_failed_fit_every_note_says_that_the_last_fit_failed_and_why() {
    use clvd::api::pb::{
        report_service_client::ReportServiceClient, scoring_service_client::ScoringServiceClient,
    };
    let app = spawn_app().await;
    // As of the end of 2025-12-31 nobody had bought yet: the fit fails.
    let purchase_day = at(2026, 1, 5, 10, 0);
    app.ingest()
        .await
        .record_transaction(record(purchase("c1", "t1", purchase_day, 1_000)))
        .await
        .unwrap();
    let mut client = models(&app).await;
    let status = client
        .fit_model(fit_request(
            NaiveDate::from_ymd_opt(2025, 12, 31).unwrap(),
            pb::TimeUnit::Day,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let failed = client
        .list_models(pb::ListModelsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .models
        .remove(0);
    assert_eq!(failed.state, pb::ModelState::Failed as i32);
    assert!(!failed.failure.is_empty());
    let says_why = |text: &str| {
        assert!(
            text.contains("last fit")
                && text.contains(&format!("version {}", failed.version))
                && text.contains(&failed.failure)
                && !text.contains("no model has been fitted yet"),
            "{text:?} does not say that version {} failed: {}",
            failed.version,
            failed.failure
        );
    };

    let channel = channel(&app.endpoint()).await.unwrap();
    let mut scoring = ScoringServiceClient::new(channel.clone());
    let value = scoring
        .get_customer_value(pb::GetCustomerValueRequest {
            customer_id: "c1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!value.prediction_available);
    says_why(&value.prediction_note);
    let risk = scoring
        .get_churn_risk(pb::GetChurnRiskRequest {
            customer_id: "c1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    says_why(&risk.prediction_note);
    let batch = scoring
        .batch_get_customer_values(pb::BatchGetCustomerValuesRequest {
            customer_ids: vec!["c1".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    says_why(&batch.values[0].prediction_note);
    let status = scoring
        .list_at_risk_customers(pb::ListAtRiskCustomersRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    says_why(status.message());

    let status = client
        .get_model(pb::GetModelRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    says_why(status.message());

    let mut reports = ReportServiceClient::new(channel);
    let status = reports
        .get_segment_report(pb::GetSegmentReportRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    says_why(status.message());
    let cohorts = reports
        .get_cohort_report(pb::GetCohortReportRequest {
            granularity: pb::Granularity::Month as i32,
            first_cohort: Some(timestamp(purchase_day)),
            as_of: Some(timestamp(at(2026, 2, 10, 0, 0))),
            periods: 4,
            include_forecast: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    says_why(&cohorts.forecast_note);
}
