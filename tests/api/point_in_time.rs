//! Point-in-time scores (`as_of`, `model_version`) end to end: a history
//! with refunds and several purchases on one day, models fitted at two
//! instants, and answers as of instants before, between and after them,
//! checked against the model core on summaries computed here from the raw
//! transactions as of each instant.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use clv_model::{BgNbdParams, ClvModel, CustomerSummary, GammaGammaParams, ScoreOptions};
use clvd::api::pb::{self, scoring_service_client::ScoringServiceClient};
use tonic::Code;

use crate::{
    helpers::*,
    models::{fit_as_of, fit_request, import, models, simulated_purchases},
    oracle::{self, money_nanos},
};

type Client = ScoringServiceClient<tonic::transport::Channel>;

async fn scoring(app: &TestApp) -> Client {
    ScoringServiceClient::new(channel(&app.endpoint()).await.unwrap())
}

fn time(t: &pb::Transaction) -> DateTime<Utc> {
    let ts = t.occurred_at.as_ref().expect("timestamp");
    DateTime::from_timestamp(ts.seconds, ts.nanos as u32).expect("valid")
}

fn is_purchase(t: &pb::Transaction) -> bool {
    t.kind == pb::TransactionKind::Purchase as i32
}

fn money(m: &Option<pb::Money>) -> f64 {
    money_nanos(m) as f64 / 1e9
}

fn close(got: f64, want: f64, tolerance: f64) -> bool {
    (got - want).abs() <= tolerance * want.abs().max(1.0)
}

/// The simulated history, with a second purchase on the first occasion's
/// day for every 7th customer, refunds of first purchases (every 11th
/// customer) and of second occasions (every 13th) spread over the year,
/// and one customer who first buys in December.
fn history() -> Vec<pb::Transaction> {
    let mut all = simulated_purchases();
    let mut extra = Vec::new();
    for t in all.iter().filter(|t| is_purchase(t)) {
        let i: i64 = t.customer_id["sim-".len()..].parse().unwrap();
        let cents = (money_nanos(&t.amount) / 10_000_000) as i64;
        if t.transaction_id == "o-0" && i % 7 == 0 {
            extra.push(purchase(
                &t.customer_id,
                "same-day",
                time(t) + Duration::hours(3),
                500 + i,
            ));
        }
        if t.transaction_id == "o-0" && i % 11 == 0 && cents >= 2 {
            extra.push(refund(
                &t.customer_id,
                "refund-first",
                "o-0",
                time(t) + Duration::days(i % 300) + Duration::minutes(7),
                cents / 2,
            ));
        }
        if t.transaction_id == "o-1" && i % 13 == 0 && cents >= 1 {
            extra.push(refund(
                &t.customer_id,
                "refund-second",
                "o-1",
                time(t) + Duration::days(20 + i % 90),
                cents,
            ));
        }
    }
    all.extend(extra);
    all.push(purchase("late", "l-1", at(2024, 12, 5, 12, 0), 4_200));
    all
}

/// The transactions that had occurred by `as_of`: purchases up to it, and
/// refunds up to it of purchases up to it.
fn as_of_history(all: &[pb::Transaction], as_of: DateTime<Utc>) -> Vec<pb::Transaction> {
    let purchased: HashMap<(&str, &str), DateTime<Utc>> = all
        .iter()
        .filter(|t| is_purchase(t))
        .map(|t| ((t.customer_id.as_str(), t.transaction_id.as_str()), time(t)))
        .collect();
    all.iter()
        .filter(|t| time(t) <= as_of)
        .filter(|t| {
            is_purchase(t)
                || purchased
                    .get(&(t.customer_id.as_str(), t.refunded_transaction_id.as_str()))
                    .is_some_and(|p| *p <= as_of)
        })
        .cloned()
        .collect()
}

/// The model core's summary of an expected history as of `as_of` (UTC).
fn model_summary(e: &oracle::Expected, as_of: DateTime<Utc>) -> CustomerSummary {
    let x = f64::from(e.purchase_occasions - 1);
    let m = if x > 0.0 {
        e.repeat_value_nanos as f64 / 1e9 / x
    } else {
        0.0
    };
    CustomerSummary::new(
        x,
        (e.last_purchase_day - e.first_purchase_day).num_days() as f64,
        (as_of.date_naive() - e.first_purchase_day).num_days() as f64,
        m,
    )
    .unwrap()
}

fn core(model: &pb::Model) -> ClvModel {
    let (bg, gg) = (
        model.bgnbd.as_ref().unwrap(),
        model.gamma_gamma.as_ref().unwrap(),
    );
    ClvModel {
        purchases: BgNbdParams::new(bg.r, bg.alpha, bg.a, bg.b).unwrap().into(),
        spend: GammaGammaParams::new(gg.p, gg.q, gg.gamma).unwrap(),
    }
}

const OPTIONS: ScoreOptions = ScoreOptions {
    horizon_months: 24,
    annual_discount_rate: 0.08,
    no_purchase_window_days: 90.0,
};

fn value_request(
    customer: &str,
    as_of: DateTime<Utc>,
    version: i64,
) -> pb::GetCustomerValueRequest {
    pb::GetCustomerValueRequest {
        customer_id: customer.to_owned(),
        horizon_months: Some(OPTIONS.horizon_months as i32),
        annual_discount_rate: Some(OPTIONS.annual_discount_rate),
        as_of: Some(timestamp(as_of)),
        model_version: version,
        interval_level: None,
    }
}

fn risk_request(customer: &str, as_of: DateTime<Utc>, version: i64) -> pb::GetChurnRiskRequest {
    pb::GetChurnRiskRequest {
        customer_id: customer.to_owned(),
        as_of: Some(timestamp(as_of)),
        model_version: version,
        interval_level: None,
    }
}

/// Checks a point-in-time value and churn risk against the summary
/// computed here and the model core with `model`'s parameters.
fn check(
    customer: &str,
    as_of: DateTime<Utc>,
    expected: &oracle::Expected,
    model: &pb::Model,
    got: &pb::CustomerValue,
    risk: &pb::ChurnRisk,
) {
    let context = format!("{customer} as of {as_of}");
    // The history as of the instant, exactly.
    assert_eq!(got.as_of, Some(timestamp(as_of)), "{context}");
    assert_eq!(
        got.purchase_occasions, expected.purchase_occasions,
        "{context}"
    );
    assert_eq!(
        got.transaction_count,
        expected.purchase_count + expected.refund_count,
        "{context}"
    );
    assert_eq!(
        money_nanos(&got.historical_value),
        expected.net_revenue_nanos,
        "{context}"
    );
    assert_eq!(
        got.first_purchase_time,
        Some(timestamp(expected.first_purchase_at)),
        "{context}"
    );
    assert_eq!(
        got.last_purchase_time,
        Some(timestamp(expected.last_purchase_at)),
        "{context}"
    );
    assert_eq!(
        got.cohort,
        expected.first_purchase_day.format("%Y-%m").to_string(),
        "{context}"
    );
    // Segments and tiers are relative to the whole base at a fit: not
    // served for a past instant.
    assert!(got.rfm.is_none() && got.segment.is_empty(), "{context}");
    assert!(got.value_tier.is_empty() && risk.value_tier.is_empty());

    // The predictions: the model core on that summary, with that model.
    let want = core(model)
        .score(&model_summary(expected, as_of), &OPTIONS)
        .unwrap();
    assert!(
        got.prediction_available,
        "{context}: {}",
        got.prediction_note
    );
    assert_eq!(got.model_version, model.version, "{context}");
    // BG/NBD holds a one-time buyer alive by assumption, and says so.
    for note in [&got.prediction_note, &risk.prediction_note] {
        assert_eq!(
            note.contains("by the model's assumption"),
            expected.purchase_occasions == 1,
            "{context}: {note}"
        );
    }
    let p_alive = got.probability_alive.unwrap();
    assert!(close(p_alive, want.probability_alive, 1e-12), "{context}");
    assert!(
        close(got.churn_risk.unwrap(), 1.0 - want.probability_alive, 1e-12),
        "{context}"
    );
    assert!(
        close(
            got.probability_no_purchase.unwrap(),
            want.probability_no_purchase,
            1e-12
        ),
        "{context}"
    );
    assert!(
        close(
            got.expected_purchases.unwrap(),
            want.expected_purchases,
            1e-12
        ),
        "{context}"
    );
    assert!(
        close(
            money(&got.expected_average_order_value),
            want.expected_spend,
            1e-9
        ),
        "{context}"
    );
    assert!(
        close(money(&got.predicted_value), want.predicted_value, 1e-9),
        "{context}"
    );
    let total = expected.net_revenue_nanos as f64 / 1e9 + want.predicted_value;
    assert!(close(money(&got.total_value), total, 1e-9), "{context}");

    // GetChurnRisk: the same model on the same summary (default horizon).
    assert!(
        risk.prediction_available,
        "{context}: {}",
        risk.prediction_note
    );
    assert_eq!(risk.model_version, model.version, "{context}");
    assert!(close(risk.probability_alive, want.probability_alive, 1e-12));
    assert!(close(
        risk.probability_no_purchase,
        want.probability_no_purchase,
        1e-12
    ));
    let default_value = core(model)
        .score(
            &model_summary(expected, as_of),
            &ScoreOptions {
                no_purchase_window_days: 90.0,
                ..ScoreOptions::default()
            },
        )
        .unwrap()
        .predicted_value;
    assert!(close(money(&risk.predicted_value), default_value, 1e-9));
}

/// Both calls for one customer as of an instant, with a version (0: the
/// one active then).
async fn ask(
    client: &mut Client,
    customer: &str,
    as_of: DateTime<Utc>,
    version: i64,
) -> (pb::CustomerValue, pb::ChurnRisk) {
    let value = client
        .get_customer_value(value_request(customer, as_of, version))
        .await
        .unwrap_or_else(|s| panic!("{customer} as of {as_of}: {s:?}"))
        .into_inner();
    let risk = client
        .get_churn_risk(risk_request(customer, as_of, version))
        .await
        .unwrap_or_else(|s| panic!("{customer} as of {as_of}: {s:?}"))
        .into_inner();
    (value, risk)
}

#[tokio::test]
async fn point_in_time_scores_equal_the_model_core_on_the_summaries_as_of_that_instant() {
    let app = spawn_app().await;
    let all = history();
    import(&app, &all).await;
    let first = fit_as_of(&app, NaiveDate::from_ymd_opt(2024, 8, 31).unwrap()).await;
    let second = fit_as_of(&app, NaiveDate::from_ymd_opt(2024, 10, 31).unwrap()).await;
    assert!(second.version > first.version);
    let mut client = scoring(&app).await;

    // Customers touched by every kind of change, and a spread of others.
    let customers: BTreeSet<String> = all
        .iter()
        .filter(|t| t.customer_id.starts_with("sim-"))
        .map(|t| t.customer_id.clone())
        .collect();
    let sample: Vec<String> = customers
        .iter()
        .filter(|c| {
            let i: usize = c["sim-".len()..].parse().unwrap();
            i % 17 == 0 || i % 91 == 0 || i % 143 == 0
        })
        .cloned()
        .collect();

    // Mid-morning, so that the day's noon purchases have not happened yet.
    let between = at(2024, 9, 15, 6, 0);
    let after = at(2024, 11, 20, 18, 0);
    for (as_of, model) in [(between, &first), (after, &second)] {
        let expected = oracle::expected(&as_of_history(&all, as_of));
        for customer in &sample {
            let (value, risk) = ask(&mut client, customer, as_of, 0).await;
            check(customer, as_of, &expected[customer], model, &value, &risk);
        }
    }
    // The refunds and same-day purchases did shape the sample's answers.
    let early = oracle::expected(&as_of_history(&all, between));
    let late = oracle::expected(&as_of_history(&all, after));
    assert!(sample
        .iter()
        .any(|c| early[c].net_revenue_nanos != late[c].net_revenue_nanos
            && early[c].purchase_occasions == late[c].purchase_occasions));
    assert!(sample
        .iter()
        .any(|c| early[c].purchase_count > early[c].purchase_occasions));

    // A named version pins the model: the earlier one after the later fit,
    // and the later one before it (allowed, but the note says it saw
    // later data).
    let pinned = &sample[3];
    let (value, risk) = ask(&mut client, pinned, after, first.version).await;
    check(pinned, after, &late[pinned], &first, &value, &risk);
    // No look-ahead to tell; only BG/NBD's caveat for a one-time buyer.
    assert!(!value.prediction_note.contains("after as_of"));
    assert_eq!(
        value.prediction_note.is_empty(),
        late[pinned].purchase_occasions > 1,
        "{}",
        value.prediction_note
    );
    let (value, risk) = ask(&mut client, pinned, between, second.version).await;
    check(pinned, between, &early[pinned], &second, &value, &risk);
    for note in [&value.prediction_note, &risk.prediction_note] {
        assert!(
            note.contains(&second.version.to_string()) && note.contains("after as_of"),
            "{note}"
        );
    }
}

#[tokio::test]
async fn before_any_fit_as_of_it_there_is_no_prediction_and_the_note_says_what_to_do() {
    let app = spawn_app().await;
    let all = history();
    import(&app, &all).await;
    let fitted = fit_as_of(&app, NaiveDate::from_ymd_opt(2024, 10, 31).unwrap()).await;
    let mut client = scoring(&app).await;
    let before = at(2024, 7, 15, 0, 0);
    let (value, risk) = ask(&mut client, "sim-17", before, 0).await;
    let expected = &oracle::expected(&as_of_history(&all, before))["sim-17"];
    assert_eq!(value.purchase_occasions, expected.purchase_occasions);
    assert_eq!(
        money_nanos(&value.historical_value),
        expected.net_revenue_nanos
    );
    assert_eq!(money_nanos(&value.total_value), expected.net_revenue_nanos);
    for (available, version, note) in [
        (
            value.prediction_available,
            value.model_version,
            &value.prediction_note,
        ),
        (
            risk.prediction_available,
            risk.model_version,
            &risk.prediction_note,
        ),
    ] {
        assert!(!available);
        assert_eq!(version, 0);
        assert!(
            note.contains("FitModel") && note.contains("model_version"),
            "{note}"
        );
    }
    assert!(value.probability_alive.is_none() && value.predicted_value.is_none());
    // The later model, named, answers (saying it saw later data).
    let (value, _) = ask(&mut client, "sim-17", before, fitted.version).await;
    assert!(value.prediction_available);
    assert_eq!(value.model_version, fitted.version);
    assert!(value.prediction_note.contains("after as_of"));
}

#[tokio::test]
async fn batch_answers_equal_single_answers_and_list_customers_unknown_then() {
    let app = spawn_app().await;
    let all = history();
    import(&app, &all).await;
    fit_as_of(&app, NaiveDate::from_ymd_opt(2024, 8, 31).unwrap()).await;
    let mut client = scoring(&app).await;
    let as_of = at(2024, 9, 15, 6, 0);
    let ids: Vec<String> = ["sim-44", "late", "sim-0", "nobody", "sim-77", "sim-44"]
        .map(String::from)
        .to_vec();
    let batch = client
        .batch_get_customer_values(pb::BatchGetCustomerValuesRequest {
            customer_ids: ids.clone(),
            horizon_months: Some(OPTIONS.horizon_months as i32),
            annual_discount_rate: Some(OPTIONS.annual_discount_rate),
            as_of: Some(timestamp(as_of)),
            model_version: 0,
            interval_level: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(batch.unknown_customer_ids, ["late", "nobody"]);
    let answered: Vec<&str> = batch
        .values
        .iter()
        .map(|v| v.customer_id.as_str())
        .collect();
    assert_eq!(answered, ["sim-44", "sim-0", "sim-77"]);
    for value in &batch.values {
        let single = client
            .get_customer_value(value_request(&value.customer_id, as_of, 0))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(*value, single);
        assert!(value.prediction_available);
    }

    // A customer whose first purchase came after as_of is unknown then.
    let status = client
        .get_customer_value(value_request("late", as_of, 0))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = client
        .get_churn_risk(risk_request("late", as_of, 0))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    // ... and known once it had.
    let (value, _) = ask(&mut client, "late", at(2024, 12, 6, 0, 0), 0).await;
    assert_eq!(value.purchase_occasions, 1);
}

#[tokio::test]
async fn later_transactions_do_not_change_an_as_of_answer_but_do_change_the_live_one() {
    let app = spawn_app().await;
    let all = history();
    import(&app, &all).await;
    let fitted = fit_as_of(&app, NaiveDate::from_ymd_opt(2024, 10, 31).unwrap()).await;
    let mut client = scoring(&app).await;
    let as_of = at(2024, 11, 20, 18, 0);
    // Every 7th customer bought twice on their first day ("same-day").
    let customer = "sim-28";
    let before = ask(&mut client, customer, as_of, 0).await;
    let live = |customer: &str| pb::GetCustomerValueRequest {
        customer_id: customer.to_owned(),
        ..Default::default()
    };
    let live_before = client
        .get_customer_value(live(customer))
        .await
        .unwrap()
        .into_inner();
    // The live answer: the whole history, the active model, its segment.
    let everything = &oracle::expected(&all)[customer];
    assert_eq!(
        live_before.purchase_occasions,
        everything.purchase_occasions
    );
    assert_eq!(live_before.model_version, fitted.version);
    assert!(live_before.rfm.is_some() && !live_before.segment.is_empty());

    // A purchase today, and a refund today of a purchase made before
    // as_of.
    let now = Utc::now() - Duration::minutes(5);
    let mut ingest = app.ingest().await;
    ingest
        .record_transaction(record(purchase(customer, "today", now, 1_999)))
        .await
        .unwrap();
    ingest
        .record_transaction(record(refund(customer, "refund-today", "same-day", now, 1)))
        .await
        .unwrap();

    assert_eq!(ask(&mut client, customer, as_of, 0).await, before);
    let live_after = client
        .get_customer_value(live(customer))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        live_after.transaction_count,
        live_before.transaction_count + 2
    );
    assert_eq!(
        money_nanos(&live_after.historical_value),
        money_nanos(&live_before.historical_value) + i128::from(nanos(1_998))
    );
}

#[tokio::test]
async fn bad_point_in_time_arguments_name_the_field_and_unusable_versions_say_why() {
    let app = spawn_app().await;
    import(&app, &history()).await;
    let good = fit_as_of(&app, NaiveDate::from_ymd_opt(2024, 10, 31).unwrap()).await;
    // Before any purchase: the fit fails, and its version is recorded.
    let failed = models(&app)
        .await
        .fit_model(fit_request(
            NaiveDate::from_ymd_opt(2023, 6, 1).unwrap(),
            pb::TimeUnit::Day,
        ))
        .await
        .unwrap_err();
    assert_eq!(failed.code(), Code::FailedPrecondition, "{failed:?}");
    let failed_version = good.version + 1;
    let mut client = scoring(&app).await;
    let past = at(2024, 11, 1, 0, 0);

    // A future instant (beyond the clock-skew allowance) names as_of.
    let future = Utc::now() + Duration::days(3);
    let status = client
        .get_customer_value(value_request("sim-0", future, 0))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(violated_fields(&status), ["as_of"]);
    let status = client
        .get_churn_risk(risk_request("sim-0", future, 0))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["as_of"]);
    let status = client
        .batch_get_customer_values(pb::BatchGetCustomerValuesRequest {
            customer_ids: vec!["sim-0".into()],
            as_of: Some(timestamp(future)),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["as_of"]);

    // A negative version names model_version.
    let status = client
        .get_customer_value(value_request("sim-0", past, -1))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["model_version"]);

    // A version that does not exist, and one whose fit failed.
    let status = client
        .get_churn_risk(risk_request("sim-0", past, 999))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().contains("999"), "{status:?}");
    let status = client
        .get_customer_value(value_request("sim-0", past, failed_version))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().contains(&failed_version.to_string())
            && status.message().contains("failed"),
        "{status:?}"
    );

    // A named version without as_of: now, with that version.
    let value = client
        .get_customer_value(pb::GetCustomerValueRequest {
            customer_id: "sim-0".into(),
            model_version: good.version,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(value.model_version, good.version);
    assert!(value.prediction_available);
}

#[tokio::test]
async fn occasions_as_of_are_business_days_and_erased_customers_stay_erased() {
    let app = spawn_app_with(|s| s.time_zone = chrono_tz::America::New_York).await;
    let mut ingest = app.ingest().await;
    // 02:00 UTC on 1 March is 29 February in New York: two occasions
    // there, one in UTC. The refund, dated later, does not count before.
    for t in [
        purchase("ny", "p1", at(2024, 3, 1, 2, 0), 1_000),
        purchase("ny", "p2", at(2024, 3, 1, 20, 0), 3_000),
        purchase("ny", "p3", at(2024, 5, 2, 16, 0), 2_000),
        refund("ny", "r1", "p2", at(2024, 6, 1, 9, 0), 500),
    ] {
        ingest.record_transaction(record(t)).await.unwrap();
    }
    let mut client = scoring(&app).await;
    let (value, risk) = ask(&mut client, "ny", at(2024, 5, 31, 0, 0), 0).await;
    assert_eq!(value.purchase_occasions, 3);
    assert_eq!(value.transaction_count, 3);
    assert_eq!(
        money_nanos(&value.historical_value),
        i128::from(nanos(6_000))
    );
    assert_eq!(value.cohort, "2024-02");
    // No model at all: the history, and a note saying what to do.
    assert!(!value.prediction_available && !risk.prediction_available);
    assert!(value.prediction_note.contains("FitModel"));
    let (value, _) = ask(&mut client, "ny", at(2024, 6, 1, 9, 0), 0).await;
    assert_eq!(value.transaction_count, 4);
    assert_eq!(
        money_nanos(&value.historical_value),
        i128::from(nanos(5_500))
    );
    // The live summary agrees once everything has happened.
    let live = client
        .get_customer_value(pb::GetCustomerValueRequest {
            customer_id: "ny".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            live.purchase_occasions,
            live.transaction_count,
            live.historical_value
        ),
        (
            value.purchase_occasions,
            value.transaction_count,
            value.historical_value
        )
    );

    ingest
        .delete_customer(pb::DeleteCustomerRequest {
            customer_id: "ny".into(),
        })
        .await
        .unwrap();
    let status = client
        .get_customer_value(value_request("ny", at(2024, 6, 1, 9, 0), 0))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
}
