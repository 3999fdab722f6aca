//! GetLoyaltySummary on a hand-computed fixture, and its bad periods.

use clvd::api::pb;
use tonic::Code;

use crate::{
    feedback::{answer, give_feedback, record_spend, spend},
    helpers::*,
    report_cohorts::{cents, reports},
};

fn february() -> pb::GetLoyaltySummaryRequest {
    pb::GetLoyaltySummaryRequest {
        start_time: Some(timestamp(at(2026, 2, 1, 0, 0))),
        end_time: Some(timestamp(at(2026, 3, 1, 0, 0))),
    }
}

#[tokio::test]
async fn the_loyalty_summary_of_a_month_on_a_hand_computed_fixture() {
    let app = spawn_app().await;
    let mut client = app.ingest().await;
    for t in [
        purchase("a", "p1", at(2026, 1, 5, 0, 0), 10_000),
        purchase("a", "p2", at(2026, 2, 10, 0, 0), 2_000),
        purchase("b", "p1", at(2026, 1, 31, 23, 0), 1_000),
        purchase("b", "p2", at(2026, 3, 1, 0, 0), 3_000),
        purchase("c", "p1", at(2026, 2, 1, 0, 0), 7_000),
        purchase("d", "p1", at(2026, 2, 15, 9, 0), 500),
        purchase("d", "p2", at(2026, 2, 15, 10, 0), 500),
        purchase("e", "p1", at(2026, 3, 5, 0, 0), 9_900),
        purchase("g", "p1", at(2026, 1, 10, 0, 0), 4_000),
        // Refunded in full in February, booked on January 10.
        refund("g", "r1", "p1", at(2026, 2, 2, 0, 0), 4_000),
    ] {
        client.record_transaction(record(t)).await.unwrap();
    }
    record_spend(
        &app,
        spend("jan", at(2026, 1, 1, 0, 0), at(2026, 2, 1, 0, 0), 99_900),
    )
    .await;
    record_spend(
        &app,
        spend("feb", at(2026, 2, 1, 0, 0), at(2026, 3, 1, 0, 0), 5_000),
    )
    .await;
    let f = |customer, id, when, nps, csat, ces| pb::Feedback {
        nps,
        csat,
        ces,
        ..answer(customer, id, when)
    };
    for fb in [
        f("a", "s0", at(2026, 1, 20, 0, 0), Some(0), None, None),
        f("a", "s1", at(2026, 2, 11, 0, 0), Some(10), None, None),
        f("a", "s2", at(2026, 2, 20, 0, 0), Some(3), None, None),
        f("b", "s1", at(2026, 2, 2, 0, 0), Some(5), Some(4), Some(5)),
        f("c", "s1", at(2026, 2, 3, 0, 0), Some(8), Some(5), None),
        f("d", "s1", at(2026, 2, 4, 0, 0), None, Some(3), Some(2)),
        f("e", "s1", at(2026, 3, 6, 0, 0), Some(10), Some(5), Some(1)),
    ] {
        give_feedback(&app, fb).await;
    }

    let s = reports(&app)
        .await
        .get_loyalty_summary(february())
        .await
        .unwrap()
        .into_inner();
    // a, b, g before February; c, d new in it; e comes later.
    assert_eq!(
        (s.customers, s.new_customers, s.active_customers),
        (5, 2, 3)
    );
    // Of a, b and g only a came back.
    assert_eq!(s.retention_rate, Some(1.0 / 3.0));
    assert_eq!(s.churn_rate, Some(1.0 - 1.0 / 3.0));
    // Only a has two occasions before March.
    assert_eq!(s.repeat_purchase_rate, Some(0.2));
    // (120 + 10 + 70 + 10 + 0) / 5.
    assert_eq!(cents(&s.average_historical_clv), 4_200);
    assert_eq!(s.average_predicted_clv, None);
    assert_eq!(s.model_version, 0);
    assert_eq!(cents(&s.acquisition_spend), 5_000);
    assert_eq!(cents(&s.cac), 2_500);
    assert_eq!(s.ltv_to_cac, Some(4_200.0 / 2_500.0));
    // Latest answers in February: a 3 and b 5 detract, c 8 is passive.
    assert_eq!(s.nps, Some(-200.0 / 3.0));
    assert_eq!(s.csat, Some(2.0 / 3.0));
    assert_eq!(s.ces, Some(3.5));
    // February's revenue 100: c's 70 is the top fifth of three customers.
    assert_eq!(cents(&s.revenue), 10_000);
    assert_eq!(s.top_20_percent_revenue_share, Some(0.7));
}

#[tokio::test]
async fn a_period_without_customers_has_no_rates() {
    let app = spawn_app().await;
    let s = reports(&app)
        .await
        .get_loyalty_summary(february())
        .await
        .unwrap()
        .into_inner();
    assert_eq!((s.customers, s.active_customers), (0, 0));
    assert_eq!(
        (
            s.retention_rate,
            s.repeat_purchase_rate,
            s.nps,
            s.csat,
            s.ces
        ),
        (None, None, None, None, None)
    );
    assert_eq!(
        (s.cac, s.ltv_to_cac, s.top_20_percent_revenue_share),
        (None, None, None)
    );
}

#[tokio::test]
async fn a_loyalty_period_must_be_given_and_end_after_it_starts() {
    let app = spawn_app().await;
    let mut client = reports(&app).await;
    let e = client
        .get_loyalty_summary(pb::GetLoyaltySummaryRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&e), ["start_time", "end_time"]);
    // The same business day: an empty period.
    let e = client
        .get_loyalty_summary(pb::GetLoyaltySummaryRequest {
            start_time: Some(timestamp(at(2026, 2, 1, 1, 0))),
            end_time: Some(timestamp(at(2026, 2, 1, 23, 0))),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&e), ["end_time"]);
}
