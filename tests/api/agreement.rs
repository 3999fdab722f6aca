//! Scores that agree with each other (issue 14): on the example data set,
//! the at-risk list, the churn band and flag, the segments and the value at
//! risk tell one story for every customer.
//!
//! - The at-risk list is exactly the customers GetChurnRisk flags `at_risk`
//!   (the HIGH band and P(alive) at least CLVD_AT_RISK_MIN_PROBABILITY_ALIVE),
//!   ordered by value at risk, which is churn risk × predicted value and so
//!   never exceeds the predicted value.
//! - No customer in the HIGH band is in an engaged segment (champions,
//!   loyal, potential loyalists, new, promising, needs attention), so every
//!   engaged segment's average churn risk is below the HIGH threshold.
//! - A one-time buyer, whom BG/NBD holds alive by assumption, is told so.
//!
//! Both under BG/NBD (pinned, as the harness does) and under the family the
//! default selection (BIC) activates.

use std::collections::{HashMap, HashSet};

use clvd::api::pb::{
    self, report_service_client::ReportServiceClient, scoring_service_client::ScoringServiceClient,
};
use tonic::transport::Channel;

use crate::{example_data::example_with_model, helpers::*};

/// The HIGH band's churn risk and the at-risk floor on P(alive), the
/// settings' defaults.
const HIGH: f64 = 0.6;
const MIN_ALIVE: f64 = 0.05;

/// The engaged segments: the grid's recent customers.
const ENGAGED: [&str; 6] = [
    "champions",
    "loyal",
    "potential_loyalists",
    "new",
    "promising",
    "needs_attention",
];

fn money(m: &Option<pb::Money>) -> f64 {
    let m = m.as_ref().expect("an amount");
    m.units as f64 + f64::from(m.nanos) / 1e9
}

async fn every_at_risk(scoring: &mut ScoringServiceClient<Channel>) -> Vec<pb::AtRiskCustomer> {
    let (mut all, mut token) = (Vec::new(), String::new());
    loop {
        let page = scoring
            .list_at_risk_customers(pb::ListAtRiskCustomersRequest {
                page_size: 1_000,
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("the at-risk list")
            .into_inner();
        all.extend(page.customers);
        if page.next_page_token.is_empty() {
            return all;
        }
        token = page.next_page_token;
    }
}

async fn every_value(
    scoring: &mut ScoringServiceClient<Channel>,
    ids: &[String],
) -> Vec<pb::CustomerValue> {
    let mut all = Vec::new();
    for chunk in ids.chunks(1_000) {
        let answer = scoring
            .batch_get_customer_values(pb::BatchGetCustomerValuesRequest {
                customer_ids: chunk.to_vec(),
                ..Default::default()
            })
            .await
            .expect("the batch")
            .into_inner();
        assert!(answer.unknown_customer_ids.is_empty(), "{answer:?}");
        all.extend(answer.values);
    }
    all
}

#[tokio::test]
async fn under_bgnbd_the_scores_agree_and_one_time_buyers_are_told_they_are_alive_by_assumption() {
    // The harness pins BG/NBD.
    let app = spawn_app().await;
    let model = example_with_model(&app).await;
    assert_eq!(model.family, pb::ModelFamily::BgNbd as i32, "{model:?}");
    scores_agree(&app, &model).await;
}

#[tokio::test]
async fn under_the_family_chosen_by_bic_the_scores_agree() {
    let app = spawn_app_with(|s| s.model_selection = Default::default()).await;
    let model = example_with_model(&app).await;
    assert_eq!(model.candidates.len(), 3, "{model:?}");
    scores_agree(&app, &model).await;
}

async fn scores_agree(app: &TestApp, model: &pb::Model) {
    assert_eq!(model.state, pb::ModelState::Succeeded as i32, "{model:?}");
    let bgnbd = model.family == pb::ModelFamily::BgNbd as i32;
    let channel = channel(&app.endpoint()).await.unwrap();
    let mut scoring = ScoringServiceClient::new(channel.clone());

    // The list: reachable, in the HIGH band, value at risk = churn risk ×
    // predicted value (to the nano of the Money), highest first.
    let listed = every_at_risk(&mut scoring).await;
    assert!(listed.len() >= 20, "{} customers at risk", listed.len());
    for c in &listed {
        let (predicted, at_risk) = (money(&c.predicted_value), money(&c.value_at_risk));
        assert!(
            c.churn_risk >= HIGH && c.probability_alive >= MIN_ALIVE,
            "{c:?}"
        );
        assert!(
            at_risk <= predicted + 1e-9,
            "{c:?}: more at risk than predicted"
        );
        assert!(
            (at_risk - c.churn_risk * predicted).abs() <= 1e-9 + 1e-12 * predicted,
            "{c:?}: value at risk is not churn risk × predicted value"
        );
    }
    for pair in listed.windows(2) {
        assert!(
            money(&pair[0].value_at_risk) >= money(&pair[1].value_at_risk),
            "out of order: {pair:?}"
        );
    }

    // Every customer, scored live: the list is exactly those flagged at
    // risk, and no HIGH-band customer is in an engaged segment.
    let ids: Vec<String> =
        sqlx::query_scalar::<_, String>("SELECT customer_id FROM customers ORDER BY customer_id")
            .fetch_all(&app.pool)
            .await
            .expect("customer ids");
    let values = every_value(&mut scoring, &ids).await;
    assert_eq!(values.len(), ids.len());
    let mut flagged = HashSet::new();
    let mut one_time_buyers = 0;
    for v in &values {
        let churn = v.churn_risk.expect("a prediction");
        let alive = v.probability_alive.expect("a prediction");
        let band = pb::ChurnRiskBand::try_from(v.churn_risk_band).expect("a band");
        if band == pb::ChurnRiskBand::High {
            assert!(
                !ENGAGED.contains(&v.segment.as_str()),
                "{}: churn risk {churn} (HIGH) in segment {}",
                v.customer_id,
                v.segment
            );
            if alive >= MIN_ALIVE {
                flagged.insert(v.customer_id.clone());
            }
        }
        if v.purchase_occasions == 1 && bgnbd {
            one_time_buyers += 1;
            assert_eq!(alive, 1.0, "{v:?}");
            assert!(
                v.prediction_note.contains("BG/NBD")
                    && v.prediction_note.contains("by the model's assumption"),
                "{}: a one-time buyer alive by assumption without saying so: {:?}",
                v.customer_id,
                v.prediction_note
            );
        } else {
            assert!(
                !v.prediction_note.contains("by the model's assumption"),
                "{v:?}"
            );
        }
    }
    // Under BG/NBD every one-time buyer is told; under another family none
    // is alive by assumption.
    assert!(
        !bgnbd || one_time_buyers > 100,
        "{one_time_buyers} one-time buyers"
    );
    let listed_ids: HashSet<String> = listed.iter().map(|c| c.customer_id.clone()).collect();
    assert_eq!(listed_ids, flagged, "the list and the band disagree");

    // GetChurnRisk's flag is the list's rule.
    let by_id: HashMap<&str, &pb::CustomerValue> =
        values.iter().map(|v| (v.customer_id.as_str(), v)).collect();
    for id in ids.iter().step_by(37) {
        let churn = scoring
            .get_churn_risk(pb::GetChurnRiskRequest {
                customer_id: id.clone(),
                ..Default::default()
            })
            .await
            .expect("churn risk")
            .into_inner();
        assert_eq!(churn.at_risk, listed_ids.contains(id), "{churn:?}");
        assert_eq!(
            churn.prediction_note,
            by_id[id.as_str()].prediction_note,
            "{id}: the two answers' notes differ"
        );
    }

    // The segment report: engaged segments average below the HIGH band.
    let report = ReportServiceClient::new(channel)
        .get_segment_report(pb::GetSegmentReportRequest {})
        .await
        .expect("the segment report")
        .into_inner();
    for row in &report.segments {
        if ENGAGED.contains(&row.name.as_str()) {
            assert!(row.average_churn_risk < HIGH, "{row:?}");
        }
    }
    let at_risk_row = report
        .segments
        .iter()
        .find(|r| r.name == "at_risk")
        .expect("an at_risk segment");
    assert!(
        at_risk_row.average_churn_risk >= HIGH / 2.0,
        "{at_risk_row:?}"
    );
}
