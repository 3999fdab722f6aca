//! Any real history (issue 12): timestamps before 1970 (negative epoch
//! seconds) and in 1901 go through ingest, summaries, fit, scores and the
//! cohort report with the values the model core and plain counting give;
//! the earliest accepted time is a setting, and a refusal names the field
//! and the configured floor.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use clv_model::{
    fit_bgnbd, fit_gamma_gamma, BgNbdFitInput, BgNbdParams, ClvModel, CustomerSummary, FitOptions,
    GammaGammaFitInput, GammaGammaParams, ScoreOptions,
};
use clvd::api::pb::{self, scoring_service_client::ScoringServiceClient};
use tonic::Code;

use crate::{
    feedback::{answer, spend},
    helpers::*,
    models::{fit_as_of, groups, import, simulated_purchases},
    report_cohorts::reports,
};

fn rel(a: f64, b: f64) -> f64 {
    ((a - b) / b).abs()
}

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn instant(seconds: i64, nanos: i32) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos }
}

fn money(m: &Option<pb::Money>) -> f64 {
    let m = m.as_ref().expect("money");
    m.units as f64 + f64::from(m.nanos) / 1e9
}

/// The UTC day of a protobuf timestamp, flooring negative seconds.
fn utc_day(ts: &prost_types::Timestamp) -> NaiveDate {
    DateTime::from_timestamp(ts.seconds, 0)
        .unwrap()
        .date_naive()
}

/// The simulated purchases of `models`, moved from 2024 to 1901 by whole
/// days (so their days and gaps are unchanged).
fn purchases_in_1901() -> Vec<pb::Transaction> {
    let shift = (day(2024, 1, 1) - day(1901, 1, 1)).num_days();
    simulated_purchases()
        .into_iter()
        .map(|mut t| {
            let ts = t.occurred_at.as_mut().unwrap();
            ts.seconds -= shift * 86_400;
            t
        })
        .collect()
}

/// (x, t_x, T, m) of a customer as of `today`, counted here from the raw
/// purchases (UTC days, no refunds in this data).
fn summary(transactions: &[pb::Transaction], customer: &str, today: NaiveDate) -> CustomerSummary {
    let mut days = BTreeMap::<NaiveDate, i64>::new();
    for t in transactions.iter().filter(|t| t.customer_id == customer) {
        let a = t.amount.as_ref().unwrap();
        *days
            .entry(utc_day(t.occurred_at.as_ref().unwrap()))
            .or_default() += a.units * 1_000_000_000 + i64::from(a.nanos);
    }
    let first = *days.keys().next().unwrap();
    let last = *days.keys().next_back().unwrap();
    let x = days.len() as f64 - 1.0;
    let repeat: i64 = days.values().skip(1).sum();
    let m = if x > 0.0 {
        repeat as f64 / 1e9 / x
    } else {
        0.0
    };
    CustomerSummary::new(
        x,
        (last - first).num_days() as f64,
        (today - first).num_days() as f64,
        m,
    )
    .unwrap()
}

/// Three purchase occasions around the epoch: half a second before it
/// (seconds = -1, nanos = 5e8), a quarter second after it, and 4 days on.
fn around_the_epoch() -> Vec<pb::Transaction> {
    let mut first = purchase("edge", "e1", at(2000, 1, 1, 0, 0), 1_000);
    first.occurred_at = Some(instant(-1, 500_000_000));
    let mut second = purchase("edge", "e2", at(2000, 1, 1, 0, 0), 2_000);
    second.occurred_at = Some(instant(0, 250_000_000));
    let third = purchase("edge", "e3", at(1970, 1, 5, 9, 30), 3_000);
    vec![first, second, third]
}

#[tokio::test]
async fn history_before_1970_and_in_1901_goes_through_ingest_summaries_fit_scores_and_cohorts() {
    let app = spawn_app().await;
    let old = purchases_in_1901();
    let edge = around_the_epoch();
    import(&app, &old).await;
    import(&app, &edge).await;
    assert_eq!(app.transactions_stored().await, (old.len() + 3) as i64);

    // Summaries: the negative-second instant is kept exactly, on its day.
    let s = app.summary("edge").await.expect("edge summary");
    assert_eq!(s.first_purchase_day, day(1969, 12, 31));
    assert_eq!(s.last_purchase_day, day(1970, 1, 5));
    assert_eq!(
        s.first_purchase_at,
        DateTime::from_timestamp(-1, 500_000_000).unwrap()
    );
    assert_eq!(s.purchase_occasions, 3);

    // A fit as of the end of 1901-11-30 equals the model core's fit on the
    // summaries counted here (the 1970 customer is after as_of).
    let as_of_day = day(1901, 11, 30);
    let model = fit_as_of(&app, as_of_day).await;
    let (purchase_groups, spend_groups, _) = groups(&old, as_of_day);
    let options = FitOptions::default();
    let bg = fit_bgnbd(
        &BgNbdFitInput::from_groups(purchase_groups.clone()).unwrap(),
        &options,
    )
    .unwrap();
    let gg = fit_gamma_gamma(
        &GammaGammaFitInput::from_groups(spend_groups).unwrap(),
        &options,
    )
    .unwrap();
    assert_eq!(model.state, pb::ModelState::Succeeded as i32);
    assert_eq!(
        model.customers as u64,
        purchase_groups.iter().map(|g| g.3).sum::<u64>()
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
    let g = model.gamma_gamma.unwrap();
    for (got, want) in [
        (g.p, gg.params.p()),
        (g.q, gg.params.q()),
        (g.gamma, gg.params.gamma()),
    ] {
        assert!(rel(got, want) < 1e-8, "Gamma-Gamma {got} vs {want}");
    }
    assert_eq!(
        model.as_of,
        Some(timestamp(at(1901, 11, 30, 23, 59) + Duration::seconds(59)))
    );

    // Scores (as of now) equal the model core's for the summaries.
    let core = ClvModel {
        purchases: BgNbdParams::new(p.r, p.alpha, p.a, p.b).unwrap().into(),
        spend: GammaGammaParams::new(g.p, g.q, g.gamma).unwrap(),
    };
    let mut scoring = ScoringServiceClient::new(channel(&app.endpoint()).await.unwrap());
    let customers: BTreeSet<&str> = old.iter().map(|t| t.customer_id.as_str()).collect();
    let everyone: Vec<_> = old.iter().chain(&edge).cloned().collect();
    for customer in std::iter::once("edge").chain(customers.iter().step_by(97).copied()) {
        let got = scoring
            .get_customer_value(pb::GetCustomerValueRequest {
                customer_id: customer.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let today = Utc::now().date_naive();
        let want = core
            .score(
                &summary(&everyone, customer, today),
                &ScoreOptions::default(),
            )
            .unwrap();
        assert!(
            got.prediction_available,
            "{customer}: {}",
            got.prediction_note
        );
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(1.0);
        assert!(
            close(got.probability_alive.unwrap(), want.probability_alive),
            "{customer}"
        );
        assert!(
            close(got.expected_purchases.unwrap(), want.expected_purchases),
            "{customer}"
        );
        // Money carries nanos: within half a nano.
        assert!(
            (money(&got.expected_average_order_value) - want.expected_spend).abs() <= 1e-9,
            "{customer}: {:?} vs {}",
            got.expected_average_order_value,
            want.expected_spend
        );
        if customer == "edge" {
            assert_eq!(got.first_purchase_time, Some(instant(-1, 500_000_000)));
            assert_eq!(got.purchase_occasions, 3);
            assert!((money(&got.historical_value) - 60.0).abs() < 1e-9);
        }
    }

    // The cohort report over 1901: monthly cohort sizes equal the customers
    // counted here, and the periods after as_of are the model's forecast.
    let mut first_day: BTreeMap<&str, NaiveDate> = BTreeMap::new();
    for t in &old {
        let d = utc_day(t.occurred_at.as_ref().unwrap());
        first_day
            .entry(t.customer_id.as_str())
            .and_modify(|f| *f = (*f).min(d))
            .or_insert(d);
    }
    let report = reports(&app)
        .await
        .get_cohort_report(pb::GetCohortReportRequest {
            granularity: pb::Granularity::Month as i32,
            first_cohort: Some(timestamp(at(1901, 1, 1, 0, 0))),
            as_of: Some(timestamp(at(1901, 6, 30, 23, 59))),
            periods: 9,
            include_forecast: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(report.forecast_note, "");
    assert_eq!(report.model_version, model.version);
    assert_eq!(report.cohorts.len(), 6);
    for (m, cohort) in (1..=6).zip(&report.cohorts) {
        let want = first_day
            .values()
            .filter(|d| **d >= day(1901, m, 1) && **d < day(1901, m + 1, 1))
            .count() as u64;
        assert!(want > 0);
        assert_eq!(cohort.size, want, "cohort 1901-{m:02}");
        assert_eq!(
            cohort.period_start,
            Some(timestamp(at(1901, m, 1, 0, 0))),
            "cohort 1901-{m:02}"
        );
        let p0 = &cohort.periods[0];
        assert_eq!(p0.active_customers, want, "everyone buys in period 0");
        // Periods starting after June 1901 are forecast, the others not.
        for p in &cohort.periods {
            let start = p.period_start.as_ref().unwrap();
            let after = utc_day(start) > day(1901, 6, 30);
            assert_eq!(p.forecast, after, "cohort 1901-{m:02} period {}", p.k);
            if after {
                assert!(p.expected_purchases.unwrap() > 0.0);
            }
        }
        assert!(cohort.periods.iter().any(|p| p.forecast));
    }
}

/// (field, description) of each BadRequest violation.
fn violations(status: &tonic::Status) -> Vec<(String, String)> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|b| {
            b.field_violations
                .into_iter()
                .map(|v| (v.field, v.description))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn the_default_floor_is_1900_and_a_refusal_names_the_field_and_the_floor() {
    let app = spawn_app().await;
    let mut ingest = app.ingest().await;
    let too_early = purchase(
        "c",
        "t1",
        at(1900, 1, 1, 0, 0) - Duration::seconds(1),
        1_000,
    );
    let status = ingest
        .record_transaction(record(too_early))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let v = violations(&status);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].0, "transaction.occurred_at");
    assert!(v[0].1.contains("1900-01-01T00:00:00Z"), "{}", v[0].1);
    assert_eq!(app.transactions_stored().await, 0);

    ingest
        .record_transaction(record(purchase("c", "t2", at(1900, 1, 1, 0, 0), 1_000)))
        .await
        .expect("the floor itself is accepted");
    assert_eq!(app.transactions_stored().await, 1);
}

#[tokio::test]
async fn a_configured_floor_refuses_earlier_transactions_feedback_and_spend_naming_the_field() {
    let floor: DateTime<Utc> = "1990-01-01T00:00:00Z".parse().unwrap();
    let app = spawn_app_with(|s| s.earliest_transaction_time = floor).await;
    let before = floor - Duration::microseconds(1);
    let mut ingest = app.ingest().await;

    let status = ingest
        .record_transaction(record(purchase("c", "t1", before, 1_000)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let v = violations(&status);
    assert_eq!(v[0].0, "transaction.occurred_at", "{v:?}");
    assert!(v[0].1.contains("1990-01-01T00:00:00Z"), "{}", v[0].1);

    let status = ingest
        .record_feedback(pb::RecordFeedbackRequest {
            feedback: Some(pb::Feedback {
                nps: Some(9),
                ..answer("c", "f1", before)
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let v = violations(&status);
    assert_eq!(v[0].0, "feedback.occurred_at", "{v:?}");
    assert!(v[0].1.contains("1990-01-01T00:00:00Z"), "{}", v[0].1);

    let status = ingest
        .record_acquisition_spend(pb::RecordAcquisitionSpendRequest {
            spend: Some(spend("s1", before, floor + Duration::days(30), 50_000)),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let v = violations(&status);
    assert_eq!(v[0].0, "spend.start_time", "{v:?}");
    assert!(v[0].1.contains("1990-01-01T00:00:00Z"), "{}", v[0].1);

    assert_eq!(app.transactions_stored().await, 0);
    assert_eq!(app.count("SELECT count(*) FROM feedback").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM acquisition_spend").await, 0);

    // A 1990s history from the floor on is accepted.
    ingest
        .record_transaction(record(purchase("c", "t2", floor, 1_000)))
        .await
        .expect("the floor itself is accepted");
    assert_eq!(app.transactions_stored().await, 1);
}
