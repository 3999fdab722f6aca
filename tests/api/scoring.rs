//! ScoringService end to end: scores equal the model core's values for the
//! customers' summaries, reflect new transactions at once, and say so when
//! no model exists.

use std::collections::BTreeSet;

use chrono::{NaiveDate, Utc};
use clv_model::{BgNbdParams, ClvModel, CustomerSummary, GammaGammaParams, ScoreOptions};
use clvd::api::pb::{self, scoring_service_client::ScoringServiceClient};
use tonic::Code;

use crate::{helpers::*, models::*};

async fn scoring(app: &TestApp) -> ScoringServiceClient<tonic::transport::Channel> {
    ScoringServiceClient::new(channel(&app.endpoint()).await.unwrap())
}

pub fn money(m: &Option<pb::Money>) -> f64 {
    let m = m.as_ref().expect("money");
    m.units as f64 + f64::from(m.nanos) / 1e9
}

/// The customer's (x, t_x, T, m) as of today, computed here from the raw
/// purchases (UTC days, no refunds in this data).
pub fn summary_now(transactions: &[pb::Transaction], customer: &str) -> CustomerSummary {
    let mut days = std::collections::BTreeMap::<NaiveDate, i64>::new();
    for t in transactions.iter().filter(|t| t.customer_id == customer) {
        let ts = t.occurred_at.as_ref().unwrap();
        let day = chrono::DateTime::from_timestamp(ts.seconds, 0)
            .unwrap()
            .date_naive();
        *days.entry(day).or_default() += t
            .amount
            .as_ref()
            .map(|m| m.units * 1_000_000_000 + i64::from(m.nanos))
            .unwrap();
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
    let today = Utc::now().date_naive();
    CustomerSummary::new(
        x,
        (last - first).num_days() as f64,
        (today - first).num_days() as f64,
        m,
    )
    .unwrap()
}

fn close(got: f64, want: f64, tolerance: f64) -> bool {
    (got - want).abs() <= tolerance * want.abs().max(1.0)
}

#[tokio::test]
async fn scores_equal_the_model_core_for_the_customers_summaries() {
    let app = spawn_app().await;
    let transactions = simulated_purchases();
    import(&app, &transactions).await;
    let fitted = fit_as_of(&app, NaiveDate::from_ymd_opt(2024, 10, 31).unwrap()).await;
    let (bg, gg) = (fitted.bgnbd.unwrap(), fitted.gamma_gamma.unwrap());
    let model = ClvModel {
        purchases: BgNbdParams::new(bg.r, bg.alpha, bg.a, bg.b).unwrap().into(),
        spend: GammaGammaParams::new(gg.p, gg.q, gg.gamma).unwrap(),
    };
    let customers: BTreeSet<&str> = transactions
        .iter()
        .map(|t| t.customer_id.as_str())
        .collect();
    let mut client = scoring(&app).await;
    let mut bands = BTreeSet::new();
    for customer in customers.iter().step_by(37) {
        let options = ScoreOptions {
            horizon_months: 24,
            annual_discount_rate: 0.08,
            ..ScoreOptions::default()
        };
        let want = model
            .score(&summary_now(&transactions, customer), &options)
            .unwrap();
        let got = client
            .get_customer_value(pb::GetCustomerValueRequest {
                customer_id: customer.to_string(),
                horizon_months: Some(24),
                annual_discount_rate: Some(0.08),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(got.prediction_available, "{customer}");
        assert_eq!(got.model_version, fitted.version);
        assert!(
            close(
                got.probability_alive.unwrap(),
                want.probability_alive,
                1e-12
            ),
            "{customer}"
        );
        assert!(
            close(got.churn_risk.unwrap(), 1.0 - want.probability_alive, 1e-12),
            "{customer}"
        );
        assert!(
            close(
                got.probability_no_purchase.unwrap(),
                want.probability_no_purchase,
                1e-12
            ),
            "{customer}"
        );
        assert!(
            close(
                got.expected_purchases.unwrap(),
                want.expected_purchases,
                1e-12
            ),
            "{customer}"
        );
        assert!(
            close(
                money(&got.expected_average_order_value),
                want.expected_spend,
                1e-9
            ),
            "{customer}"
        );
        assert!(
            close(money(&got.predicted_value), want.predicted_value, 1e-9),
            "{customer}"
        );
        let total = money(&got.historical_value) + want.predicted_value;
        assert!(close(money(&got.total_value), total, 1e-9), "{customer}");

        let risk = churn_risk(&mut client, customer).await;
        assert!(close(risk.probability_alive, want.probability_alive, 1e-12));
        let expected_band = match 1.0 - want.probability_alive {
            c if c >= 0.6 => pb::ChurnRiskBand::High,
            c if c >= 0.3 => pb::ChurnRiskBand::Medium,
            _ => pb::ChurnRiskBand::Low,
        };
        assert_eq!(risk.churn_risk_band, expected_band as i32, "{customer}");
        // At risk: the HIGH band, still reachable (P(alive) at least the
        // CLVD_AT_RISK_MIN_PROBABILITY_ALIVE default, 0.05).
        assert_eq!(
            risk.at_risk,
            expected_band == pb::ChurnRiskBand::High && want.probability_alive >= 0.05
        );
        bands.insert(risk.churn_risk_band);
    }
    assert!(bands.len() >= 2, "the sample should span bands: {bands:?}");
}

#[tokio::test]
async fn a_new_transaction_shows_in_the_next_score() {
    let app = spawn_app().await;
    let transactions = simulated_purchases();
    import(&app, &transactions).await;
    fit_as_of(&app, NaiveDate::from_ymd_opt(2024, 12, 31).unwrap()).await;
    let mut client = scoring(&app).await;
    let ask = || pb::GetCustomerValueRequest {
        customer_id: "sim-3".into(),
        ..Default::default()
    };
    let before = client.get_customer_value(ask()).await.unwrap().into_inner();
    let yesterday = Utc::now() - chrono::Duration::days(1);
    app.ingest()
        .await
        .record_transaction(record(purchase("sim-3", "fresh", yesterday, 12_345)))
        .await
        .unwrap();
    let after = client.get_customer_value(ask()).await.unwrap().into_inner();
    assert_eq!(after.purchase_occasions, before.purchase_occasions + 1);
    assert!(close(
        money(&after.historical_value),
        money(&before.historical_value) + 123.45,
        1e-12
    ));
    // x and t_x changed, so the model's view of the customer did too.
    assert_ne!(after.probability_alive, before.probability_alive);
    assert_ne!(after.expected_purchases, before.expected_purchases);
}

#[tokio::test]
async fn before_the_first_model_scores_carry_history_and_say_why_predictions_are_missing() {
    let app = spawn_app().await;
    let mut ingest = app.ingest().await;
    ingest
        .record_transaction(record(purchase("c1", "a", at(2026, 1, 1, 0, 0), 1_000)))
        .await
        .unwrap();
    ingest
        .record_transaction(record(purchase("c1", "b", at(2026, 2, 1, 0, 0), 3_000)))
        .await
        .unwrap();
    let value = scoring(&app)
        .await
        .get_customer_value(pb::GetCustomerValueRequest {
            customer_id: "c1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!value.prediction_available);
    assert!(
        value.prediction_note.contains("FitModel"),
        "{}",
        value.prediction_note
    );
    assert_eq!(value.model_version, 0);
    assert!(
        value.probability_alive.is_none()
            && value.expected_purchases.is_none()
            && value.predicted_value.is_none()
    );
    assert_eq!(value.purchase_occasions, 2);
    assert!(close(money(&value.historical_value), 40.0, 1e-12));
    assert!(close(money(&value.average_order_value), 20.0, 1e-12));
    assert!(close(money(&value.total_value), 40.0, 1e-12));
    let risk = scoring(&app)
        .await
        .get_churn_risk(pb::GetChurnRiskRequest {
            customer_id: "c1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!risk.prediction_available && !risk.at_risk);
}

#[tokio::test]
async fn unknown_customers_are_not_found_and_bad_arguments_name_the_field() {
    let app = spawn_app().await;
    let mut client = scoring(&app).await;
    let missing = client
        .get_churn_risk(pb::GetChurnRiskRequest {
            customer_id: "nobody".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let request =
        |customer: &str, horizon: Option<i32>, rate: Option<f64>| pb::GetCustomerValueRequest {
            customer_id: customer.into(),
            horizon_months: horizon,
            annual_discount_rate: rate,
            ..Default::default()
        };
    for (r, field) in [
        (request("", None, None), "customer_id"),
        (request("c", Some(0), None), "horizon_months"),
        (request("c", Some(121), None), "horizon_months"),
        (request("c", None, Some(1.5)), "annual_discount_rate"),
        (request("c", None, Some(-0.1)), "annual_discount_rate"),
    ] {
        let status = client.get_customer_value(r).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        assert_eq!(violated_fields(&status), vec![field.to_owned()]);
    }
    let status = client
        .get_churn_risk(pb::GetChurnRiskRequest {
            customer_id: String::new(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec!["customer_id"]);
}

#[tokio::test]
async fn batch_get_answers_known_ids_in_order_and_lists_unknown_ones() {
    let app = spawn_app().await;
    let transactions = simulated_purchases();
    import(&app, &transactions).await;
    fit_as_of(&app, NaiveDate::from_ymd_opt(2024, 12, 31).unwrap()).await;
    let mut client = scoring(&app).await;
    let ids = ["sim-5", "nobody", "sim-2", "sim-5", "ghost"];
    let batch = client
        .batch_get_customer_values(pb::BatchGetCustomerValuesRequest {
            customer_ids: ids.iter().map(|s| s.to_string()).collect(),
            horizon_months: Some(6),
            annual_discount_rate: None,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        batch
            .values
            .iter()
            .map(|v| v.customer_id.as_str())
            .collect::<Vec<_>>(),
        ["sim-5", "sim-2"]
    );
    assert_eq!(batch.unknown_customer_ids, ["nobody", "ghost"]);
    for v in &batch.values {
        let single = client
            .get_customer_value(pb::GetCustomerValueRequest {
                customer_id: v.customer_id.clone(),
                horizon_months: Some(6),
                annual_discount_rate: None,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(v.predicted_value, single.predicted_value);
        assert_eq!(v.probability_alive, single.probability_alive);
        assert_eq!(v.horizon_months, 6);
    }
    let too_many = pb::BatchGetCustomerValuesRequest {
        customer_ids: (0..1_001).map(|i| format!("c{i}")).collect(),
        ..Default::default()
    };
    let status = client
        .batch_get_customer_values(too_many)
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec!["customer_ids"]);
    let bad_id = pb::BatchGetCustomerValuesRequest {
        customer_ids: vec!["ok".into(), String::new()],
        ..Default::default()
    };
    let status = client.batch_get_customer_values(bad_id).await.unwrap_err();
    assert_eq!(violated_fields(&status), vec!["customer_ids[1]"]);
}

async fn all_pages(
    client: &mut ScoringServiceClient<tonic::transport::Channel>,
    min_churn_risk: Option<f64>,
    page_size: i32,
    between_pages: &mut impl FnMut(usize) -> Option<pb::Transaction>,
    app: &TestApp,
) -> Vec<pb::AtRiskCustomer> {
    let mut out = Vec::new();
    let mut token = String::new();
    for page in 0.. {
        let r = client
            .list_at_risk_customers(pb::ListAtRiskCustomersRequest {
                page_size,
                page_token: token.clone(),
                min_churn_risk,
                min_predicted_value: None,
            })
            .await
            .unwrap()
            .into_inner();
        out.extend(r.customers);
        if r.next_page_token.is_empty() {
            break;
        }
        token = r.next_page_token;
        if let Some(t) = between_pages(page) {
            app.ingest()
                .await
                .record_transaction(record(t))
                .await
                .unwrap();
        }
    }
    out
}

#[tokio::test]
async fn at_risk_customers_page_by_value_at_risk_and_stay_stable_under_new_transactions() {
    // No floor on P(alive), so that min_churn_risk 0 lists everyone.
    let app = spawn_app_with(|s| s.at_risk_min_probability_alive = 0.0).await;
    let transactions = simulated_purchases();
    import(&app, &transactions).await;
    let mut client = scoring(&app).await;
    let before_fit = client
        .list_at_risk_customers(pb::ListAtRiskCustomersRequest::default())
        .await
        .unwrap_err();
    assert_eq!(before_fit.code(), Code::FailedPrecondition);
    fit_as_of(&app, NaiveDate::from_ymd_opt(2024, 12, 31).unwrap()).await;

    // Everyone (min churn risk 0), 97 to a page, while purchases arrive for
    // customers between pages.
    let customers: BTreeSet<&str> = transactions
        .iter()
        .map(|t| t.customer_id.as_str())
        .collect();
    let reference = all_pages(&mut client, Some(0.0), 1_000, &mut |_| None, &app).await;
    assert_eq!(reference.len(), customers.len());
    let yesterday = Utc::now() - chrono::Duration::days(1);
    let mut arrivals = |page: usize| {
        Some(purchase(
            &format!("sim-{}", page * 7),
            &format!("late-{page}"),
            yesterday,
            5_000,
        ))
    };
    let paged = all_pages(&mut client, Some(0.0), 97, &mut arrivals, &app).await;
    let ids =
        |v: &[pb::AtRiskCustomer]| v.iter().map(|c| c.customer_id.clone()).collect::<Vec<_>>();
    assert_eq!(
        ids(&paged),
        ids(&reference),
        "pages are stable while transactions arrive"
    );
    let value = |c: &pb::AtRiskCustomer| money(&c.value_at_risk);
    assert!(
        paged.windows(2).all(|w| value(&w[0]) >= value(&w[1])),
        "ordered by value at risk"
    );

    // Tiers and RFM over the whole base.
    let top1 = paged
        .iter()
        .filter(|c| c.value_tier == "top_1_percent")
        .count();
    let top20 = paged
        .iter()
        .filter(|c| c.value_tier == "top_20_percent")
        .count();
    assert_eq!(top1, customers.len().div_ceil(100));
    assert_eq!(top1 + top20, customers.len().div_ceil(5));
    assert!(paged.iter().all(|c| c
        .rfm
        .as_ref()
        .is_some_and(|r| (1..=5).contains(&r.recency) && (1..=5).contains(&r.frequency))));
    assert!(
        paged
            .iter()
            .map(|c| c.segment.as_str())
            .collect::<BTreeSet<_>>()
            .len()
            >= 3
    );

    // The default filter is the HIGH band.
    let at_risk = all_pages(&mut client, None, 200, &mut |_| None, &app).await;
    assert!(!at_risk.is_empty() && at_risk.len() < paged.len());
    assert!(at_risk.iter().all(|c| c.churn_risk >= 0.6));
    assert_eq!(
        at_risk.len(),
        paged.iter().filter(|c| c.churn_risk >= 0.6).count()
    );

    // GetCustomerValue and GetChurnRisk carry the same segmentation.
    for listed in paged.iter().step_by(101) {
        let request = pb::GetCustomerValueRequest {
            customer_id: listed.customer_id.clone(),
            ..Default::default()
        };
        let value = client
            .get_customer_value(request)
            .await
            .unwrap()
            .into_inner();
        assert_eq!(value.segment, listed.segment);
        assert_eq!(value.value_tier, listed.value_tier);
        assert_eq!(value.rfm, listed.rfm);
        let first = value.first_purchase_time.unwrap();
        let month = chrono::DateTime::from_timestamp(first.seconds, 0)
            .unwrap()
            .format("%Y-%m")
            .to_string();
        assert_eq!(value.cohort, month);
        let risk = churn_risk(&mut client, &listed.customer_id).await;
        assert_eq!(risk.value_tier, listed.value_tier);
    }
    // A customer first seen after the fit has no segmentation yet.
    app.ingest()
        .await
        .record_transaction(record(purchase("newcomer", "n1", yesterday, 1_000)))
        .await
        .unwrap();
    let newcomer = client
        .get_customer_value(pb::GetCustomerValueRequest {
            customer_id: "newcomer".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(newcomer.prediction_available && newcomer.segment.is_empty() && newcomer.rfm.is_none());

    // Tokens continue only the listing they came from.
    let first = client
        .list_at_risk_customers(pb::ListAtRiskCustomersRequest {
            page_size: 5,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let other_filter = pb::ListAtRiskCustomersRequest {
        page_size: 5,
        page_token: first.next_page_token.clone(),
        min_churn_risk: Some(0.1),
        min_predicted_value: None,
    };
    let status = client
        .list_at_risk_customers(other_filter)
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec!["page_token"]);
    let garbage = pb::ListAtRiskCustomersRequest {
        page_token: "nope".into(),
        ..Default::default()
    };
    assert_eq!(
        violated_fields(&client.list_at_risk_customers(garbage).await.unwrap_err()),
        vec!["page_token"]
    );
}

/// Concurrent single calls share database reads; each must still get its
/// own customer's answer (or NOT_FOUND), equal to the batch call's.
#[tokio::test]
async fn concurrent_single_calls_each_get_their_own_customers_answer() {
    // All 600 calls at once, over one connection: above the default
    // concurrency limit and a connection's default share of it.
    let app = spawn_app_with(|s| {
        s.max_concurrent_calls = 1_000;
        s.max_caller_share_percent = 100;
    })
    .await;
    let transactions = simulated_purchases();
    import(&app, &transactions).await;
    fit_as_of(&app, NaiveDate::from_ymd_opt(2024, 12, 31).unwrap()).await;
    let known: Vec<String> = transactions
        .iter()
        .map(|t| t.customer_id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .take(300)
        .collect();
    let mut client = scoring(&app).await;
    let batch = client
        .batch_get_customer_values(pb::BatchGetCustomerValuesRequest {
            customer_ids: known.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(batch.values.len(), known.len());
    // Known and unknown ids interleaved, all in flight at once.
    let asked: Vec<String> = known
        .iter()
        .enumerate()
        .flat_map(|(i, id)| [id.clone(), format!("ghost-{i}")])
        .collect();
    let calls = asked.iter().map(|id| {
        let mut client = client.clone();
        let id = id.clone();
        async move {
            let risk = client
                .get_churn_risk(pb::GetChurnRiskRequest {
                    customer_id: id.clone(),
                    ..Default::default()
                })
                .await;
            (id, risk)
        }
    });
    let answers = futures::future::join_all(calls).await;
    for ((id, answer), want) in answers.iter().step_by(2).zip(&batch.values) {
        let risk = answer.as_ref().expect("a known customer").get_ref();
        assert_eq!(&risk.customer_id, id);
        assert_eq!(&want.customer_id, id);
        assert_eq!(Some(risk.probability_alive), want.probability_alive);
        assert_eq!(risk.predicted_value, want.predicted_value);
    }
    for (id, answer) in answers.iter().skip(1).step_by(2) {
        assert_eq!(
            answer.as_ref().map(|_| ()).unwrap_err().code(),
            Code::NotFound,
            "{id}"
        );
    }
}

/// Every customer gets its population scores at a fit, whatever its id
/// holds (the scores are written with COPY, where `\` is special).
#[tokio::test]
async fn a_fit_scores_every_customer_including_ids_with_special_characters() {
    let app = spawn_app().await;
    let mut transactions = simulated_purchases();
    let odd = [
        r"back\slash",
        r"\N",
        "quote'\"",
        "naïve café",
        "comma,semi;",
    ];
    for (i, id) in odd.iter().enumerate() {
        transactions.push(purchase(id, "first", at(2024, 3, 1, 12, 0), 1_000));
        transactions.push(purchase(
            id,
            "again",
            at(2024, 6, 1 + i as u32, 12, 0),
            2_500,
        ));
    }
    import(&app, &transactions).await;
    fit_as_of(&app, NaiveDate::from_ymd_opt(2024, 12, 31).unwrap()).await;
    let customers = transactions
        .iter()
        .map(|t| t.customer_id.as_str())
        .collect::<BTreeSet<_>>();
    let scored: Vec<String> = sqlx::query_scalar("SELECT customer_id FROM customer_scores")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        scored.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        customers
    );
    assert_eq!(scored.len(), customers.len());
    let mut client = scoring(&app).await;
    for id in odd {
        let value = client
            .get_customer_value(pb::GetCustomerValueRequest {
                customer_id: id.to_owned(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(!value.segment.is_empty(), "{id}: no segmentation");
        assert_eq!(value.purchase_occasions, 2, "{id}");
    }
}
