//! Score intervals and time to the next purchase over gRPC: a fitted
//! model's scores carry intervals that contain the point estimates, widen
//! with the level, and equal the model core's own computation with the
//! stored covariances; the family is named; levels outside (0, 1) are
//! refused naming the field; versions without the stored covariances
//! answer without the intervals they cannot give.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use clv_model::{
    ClvModel, CustomerSummary, GammaGammaParams, Interval, ModelUncertainty, PurchaseParams,
    ScoreOptions,
};
use clvd::api::pb::{self, scoring_service_client::ScoringServiceClient};
use tonic::{transport::Channel, Code};

use crate::{
    helpers::*,
    models::{fit_as_of, import, simulated_purchases},
    scoring::{money, summary_now},
};

async fn scoring(app: &TestApp) -> ScoringServiceClient<Channel> {
    ScoringServiceClient::new(channel(&app.endpoint()).await.unwrap())
}

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-9 * want.abs().max(1.0)
}

fn assert_interval(got: &Option<pb::Interval>, want: Interval, level: f64, what: &str) {
    let got = got
        .as_ref()
        .unwrap_or_else(|| panic!("{what}: no interval"));
    assert!(
        close(got.lower, want.lower) && close(got.upper, want.upper),
        "{what}: served {got:?}, model core {want:?}"
    );
    assert_eq!(got.level, level, "{what}");
}

fn assert_money_interval(got: &Option<pb::MoneyInterval>, want: Interval, level: f64, what: &str) {
    let got = got
        .as_ref()
        .unwrap_or_else(|| panic!("{what}: no interval"));
    let (lower, upper) = (money(&got.lower), money(&got.upper));
    assert!(
        close(lower, want.lower) && close(upper, want.upper),
        "{what}: served [{lower}, {upper}], model core {want:?}"
    );
    assert_eq!(got.level, level, "{what}");
}

fn contains(i: &Option<pb::Interval>, v: f64) -> bool {
    i.as_ref().is_some_and(|i| i.lower <= v && v <= i.upper)
}

fn contains_money(i: &Option<pb::MoneyInterval>, v: f64) -> bool {
    i.as_ref()
        .is_some_and(|i| money(&i.lower) <= v && v <= money(&i.upper))
}

/// Whether `wide` holds `narrow`.
fn holds(wide: &Option<pb::Interval>, narrow: &Option<pb::Interval>) -> bool {
    match (wide, narrow) {
        (Some(w), Some(n)) => w.lower <= n.lower && n.upper <= w.upper,
        _ => false,
    }
}

fn value_request(customer: &str, level: Option<f64>) -> pb::GetCustomerValueRequest {
    pb::GetCustomerValueRequest {
        customer_id: customer.to_owned(),
        interval_level: level,
        ..Default::default()
    }
}

/// The stored version's model and covariances, as the service reads them.
async fn stored_model(app: &TestApp, version: i64) -> (ClvModel, ModelUncertainty) {
    let stored = app
        .storage
        .model(Some(version))
        .await
        .unwrap()
        .expect("the version");
    let f = stored.fitted().expect("a successful fit");
    let model = ClvModel {
        purchases: PurchaseParams::from_values(f.purchases.family, f.purchases.values).unwrap(),
        spend: GammaGammaParams::new(f.spend.p, f.spend.q, f.spend.gamma).unwrap(),
    };
    let uncertainty = ModelUncertainty {
        purchases: f
            .log_parameter_covariance
            .expect("the purchase covariance is stored"),
        spend: f
            .spend_log_parameter_covariance
            .expect("the Gamma-Gamma covariance is stored"),
    };
    (model, uncertainty)
}

/// What the served figures must equal for one customer at `level`.
fn assert_served_as_core(
    v: &pb::CustomerValue,
    (model, uncertainty): (&ClvModel, &ModelUncertainty),
    summary: &CustomerSummary,
    level: f64,
) {
    let options = ScoreOptions::default();
    let core = model
        .score_intervals(uncertainty, summary, &options, level)
        .unwrap();
    let who = &v.customer_id;
    assert_interval(
        &v.probability_alive_interval,
        core.probability_alive,
        level,
        &format!("{who} P(alive)"),
    );
    assert_interval(
        &v.expected_purchases_mean_interval,
        core.expected_purchases,
        level,
        &format!("{who} mean purchases"),
    );
    // The count's own interval, widened to hold the mean's.
    let (low, high) = core.purchase_count;
    let count = Interval {
        lower: (low as f64).min(core.expected_purchases.lower),
        upper: (high as f64).max(core.expected_purchases.upper),
    };
    assert_interval(
        &v.expected_purchases_interval,
        count,
        level,
        &format!("{who} purchases"),
    );
    assert_money_interval(
        &v.expected_average_order_value_interval,
        core.expected_spend,
        level,
        &format!("{who} spend"),
    );
    assert_money_interval(
        &v.predicted_value_interval,
        core.predicted_value,
        level,
        &format!("{who} value"),
    );
    // Each interval holds its point estimate.
    assert!(contains(
        &v.probability_alive_interval,
        v.probability_alive.unwrap()
    ));
    for i in [
        &v.expected_purchases_interval,
        &v.expected_purchases_mean_interval,
    ] {
        assert!(contains(i, v.expected_purchases.unwrap()), "{who} {i:?}");
    }
    assert!(contains_money(
        &v.expected_average_order_value_interval,
        money(&v.expected_average_order_value)
    ));
    assert!(contains_money(
        &v.predicted_value_interval,
        money(&v.predicted_value)
    ));
    // The count interval holds at least `level` of the count's law.
    assert!(core.purchase_count_probability >= level);
}

#[tokio::test]
async fn scores_carry_intervals_and_next_purchase_equal_to_the_model_core() {
    let app = spawn_app().await;
    let transactions = simulated_purchases();
    import(&app, &transactions).await;
    let fitted = fit_as_of(&app, NaiveDate::from_ymd_opt(2024, 10, 31).unwrap()).await;
    let (model, uncertainty) = stored_model(&app, fitted.version).await;
    let family = clvd::api::convert::family(model.purchases.family()) as i32;
    assert_eq!(fitted.family, family);
    let customers: BTreeSet<&str> = transactions
        .iter()
        .map(|t| t.customer_id.as_str())
        .collect();
    let mut client = scoring(&app).await;
    let mut wider = 0;
    let mut checked = 0;
    for customer in customers.iter().step_by(41) {
        let summary = summary_now(&transactions, customer);
        // The service's level (CLVD_INTERVAL_LEVEL, 0.9 by default).
        let at_90 = client
            .get_customer_value(value_request(customer, None))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(at_90.family, family, "{customer}");
        assert_served_as_core(&at_90, (&model, &uncertainty), &summary, 0.9);
        let at_99 = client
            .get_customer_value(value_request(customer, Some(0.99)))
            .await
            .unwrap()
            .into_inner();
        assert_served_as_core(&at_99, (&model, &uncertainty), &summary, 0.99);
        // A higher level never narrows an interval.
        assert!(holds(
            &at_99.probability_alive_interval,
            &at_90.probability_alive_interval
        ));
        assert!(holds(
            &at_99.expected_purchases_interval,
            &at_90.expected_purchases_interval
        ));
        let width = |i: &Option<pb::Interval>| i.as_ref().map_or(0.0, |i| i.upper - i.lower);
        if width(&at_99.expected_purchases_mean_interval)
            > width(&at_90.expected_purchases_mean_interval)
        {
            wider += 1;
        }
        // Time to the next purchase, within the churn window (90 days).
        let want = model.purchases.next_purchase(&summary, 90.0);
        let next = at_90.next_purchase.as_ref().expect("next purchase");
        assert_eq!(next.window_days, 90);
        assert_eq!(at_90.no_purchase_window_days, 90);
        assert!(close(next.median_days_if_alive, want.median_days_if_alive));
        match next.mean_days_if_alive {
            Some(mean) => assert!(close(mean, want.mean_days_if_alive)),
            None => assert_eq!(want.mean_days_if_alive, f64::INFINITY),
        }
        assert!(close(
            next.probability_within_window,
            want.probability_within_window
        ));
        assert!(close(
            next.probability_within_window,
            1.0 - at_90.probability_no_purchase.unwrap()
        ));
        // The churn-risk answer carries the same P(alive) interval.
        let churn = churn_risk(&mut client, customer).await;
        assert_eq!(churn.family, family);
        assert_eq!(
            churn.probability_alive_interval,
            at_90.probability_alive_interval
        );
        let (alive, risk) = (
            churn.probability_alive_interval.unwrap(),
            churn.churn_risk_interval.unwrap(),
        );
        assert_eq!(
            (risk.lower, risk.upper),
            (1.0 - alive.upper, 1.0 - alive.lower)
        );
        assert!(risk.lower <= churn.churn_risk && churn.churn_risk <= risk.upper);
        checked += 1;
    }
    assert!(checked >= 30, "{checked} customers checked");
    assert!(wider > checked / 2, "99 % wider than 90 % for {wider} only");

    // The batch call answers the same, at the level it asks for.
    let ids: Vec<String> = customers.iter().take(5).map(|c| c.to_string()).collect();
    let batch = client
        .batch_get_customer_values(pb::BatchGetCustomerValuesRequest {
            customer_ids: ids.clone(),
            interval_level: Some(0.5),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    for v in &batch.values {
        let summary = summary_now(&transactions, &v.customer_id);
        assert_served_as_core(v, (&model, &uncertainty), &summary, 0.5);
    }
    assert_eq!(batch.values.len(), ids.len());
}

#[tokio::test]
async fn interval_levels_outside_zero_and_one_are_refused_naming_the_field() {
    let app = spawn_app().await;
    import(
        &app,
        &[purchase("c-1", "o-1", at(2025, 1, 2, 12, 0), 1_000)],
    )
    .await;
    let mut client = scoring(&app).await;
    for level in [0.0, 1.0, -0.1, 1.5, f64::NAN, f64::INFINITY] {
        let single = client
            .get_customer_value(value_request("c-1", Some(level)))
            .await
            .unwrap_err();
        assert_eq!(single.code(), Code::InvalidArgument, "{level}");
        assert_eq!(violated_fields(&single), ["interval_level"], "{level}");
        let batch = client
            .batch_get_customer_values(pb::BatchGetCustomerValuesRequest {
                customer_ids: vec!["c-1".into()],
                interval_level: Some(level),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&batch), ["interval_level"], "{level}");
        let churn = client
            .get_churn_risk(pb::GetChurnRiskRequest {
                customer_id: "c-1".into(),
                interval_level: Some(level),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&churn), ["interval_level"], "{level}");
    }
    // Accepted levels: the answer is served (no model yet: no intervals).
    let ok = client
        .get_customer_value(value_request("c-1", Some(0.5)))
        .await
        .unwrap()
        .into_inner();
    assert!(!ok.prediction_available);
    assert!(ok.probability_alive_interval.is_none() && ok.next_purchase.is_none());
}

#[tokio::test]
async fn the_configured_level_applies_and_versions_without_covariances_say_so_by_absence() {
    let app = spawn_app_with(|s| s.interval_level = 0.8).await;
    let transactions = simulated_purchases();
    import(&app, &transactions).await;
    let fitted = fit_as_of(&app, NaiveDate::from_ymd_opt(2024, 10, 31).unwrap()).await;
    let (model, uncertainty) = stored_model(&app, fitted.version).await;
    let customer = "sim-7";
    let summary = summary_now(&transactions, customer);
    let mut client = scoring(&app).await;
    let live = client
        .get_customer_value(value_request(customer, None))
        .await
        .unwrap()
        .into_inner();
    assert_served_as_core(&live, (&model, &uncertainty), &summary, 0.8);

    // A covariance of the wrong size is refused by the database.
    let wrong = sqlx::query("UPDATE models SET spend_log_parameter_covariance = ARRAY[1.0]")
        .execute(&app.pool)
        .await;
    assert!(wrong.is_err());

    // A version stored before the Gamma-Gamma covariance was kept: P(alive)
    // and purchase intervals, none on spend or value. Named by version, so
    // the stored row is read now (no cache).
    sqlx::query("UPDATE models SET spend_log_parameter_covariance = NULL")
        .execute(&app.pool)
        .await
        .unwrap();
    let named = pb::GetCustomerValueRequest {
        model_version: fitted.version,
        ..value_request(customer, None)
    };
    let old = client
        .get_customer_value(named.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(old.prediction_available);
    assert_eq!(
        old.probability_alive_interval,
        live.probability_alive_interval
    );
    assert_eq!(
        old.expected_purchases_interval,
        live.expected_purchases_interval
    );
    assert!(old.expected_average_order_value_interval.is_none());
    assert!(old.predicted_value_interval.is_none());
    assert_eq!(old.next_purchase, live.next_purchase);

    // Without the purchase covariance either: no interval at all, the
    // scores and the next purchase still served.
    sqlx::query("UPDATE models SET log_parameter_covariance = NULL")
        .execute(&app.pool)
        .await
        .unwrap();
    let bare = client.get_customer_value(named).await.unwrap().into_inner();
    assert!(bare.prediction_available);
    assert_eq!(bare.probability_alive, live.probability_alive);
    assert!(bare.probability_alive_interval.is_none());
    assert!(bare.expected_purchases_interval.is_none());
    assert!(bare.expected_purchases_mean_interval.is_none());
    assert!(bare.predicted_value_interval.is_none());
    assert_eq!(bare.next_purchase, live.next_purchase);
}
