//! GetCohortReport on small hand-computed fixtures: refunds on the
//! purchase's day, a customer acquired at a period's last instant, empty
//! cohorts and cells, partial periods, a past as_of, spend, NPS, and a New
//! York week boundary.

use clvd::api::pb::{self, report_service_client::ReportServiceClient};
use tonic::Code;

use crate::{
    feedback::{answer, give_feedback, record_spend, spend},
    helpers::*,
};

pub async fn reports(app: &TestApp) -> ReportServiceClient<tonic::transport::Channel> {
    ReportServiceClient::new(channel(&app.endpoint()).await.unwrap())
}

/// Cents of a Money, which must be present and whole cents.
pub fn cents(m: &Option<pb::Money>) -> i64 {
    let m = m.as_ref().expect("money present");
    let nanos = m.units * 1_000_000_000 + i64::from(m.nanos);
    assert_eq!(nanos % 10_000_000, 0, "{m:?} is not whole cents");
    nanos / 10_000_000
}

fn with_cost(mut t: pb::Transaction, cost_cents: i64) -> pb::Transaction {
    t.cost = Some(usd_cents(cost_cents));
    t
}

pub fn monthly(first: chrono::DateTime<chrono::Utc>, periods: u32) -> pb::GetCohortReportRequest {
    pb::GetCohortReportRequest {
        granularity: pb::Granularity::Month as i32,
        first_cohort: Some(timestamp(first)),
        periods,
        ..Default::default()
    }
}

/// Customers a and b join in January (b at its last instant), c and d in
/// February, nobody in March.
async fn fixture(app: &TestApp) {
    let mut client = app.ingest().await;
    for t in [
        with_cost(purchase("a", "p1", at(2026, 1, 5, 10, 0), 10_000), 4_000),
        with_cost(purchase("a", "p2", at(2026, 1, 20, 10, 0), 5_000), 1_000),
        // Booked on January 5, the purchase's day.
        refund("a", "r1", "p1", at(2026, 2, 3, 10, 0), 3_000),
        with_cost(purchase("a", "p3", at(2026, 2, 10, 10, 0), 2_000), 500),
        refund("a", "r2", "p2", at(2026, 2, 20, 10, 0), 1_000),
        with_cost(
            purchase(
                "b",
                "p1",
                at(2026, 1, 31, 23, 59) + chrono::Duration::seconds(59),
                1_000,
            ),
            100,
        ),
        purchase("b", "p2", at(2026, 3, 1, 0, 0), 3_000),
        purchase("c", "p1", at(2026, 2, 1, 0, 0), 7_000),
        purchase("d", "p1", at(2026, 2, 15, 9, 0), 500),
        purchase("d", "p2", at(2026, 2, 15, 18, 0), 500),
    ] {
        client.record_transaction(record(t)).await.unwrap();
    }
    record_spend(
        app,
        spend("jan", at(2026, 1, 1, 0, 0), at(2026, 2, 1, 0, 0), 30_000),
    )
    .await;
    record_spend(
        app,
        spend(
            "jan-late",
            at(2026, 1, 31, 12, 0),
            at(2026, 2, 1, 12, 0),
            10_000,
        ),
    )
    .await;
    record_spend(
        app,
        spend("feb", at(2026, 2, 1, 0, 0), at(2026, 3, 1, 0, 0), 5_000),
    )
    .await;
    for (customer, id, when, nps) in [
        ("a", "s1", at(2026, 1, 6, 0, 0), 10),
        ("a", "s2", at(2026, 2, 11, 0, 0), 3),
        ("b", "s1", at(2026, 2, 1, 0, 0), 9),
        ("c", "s1", at(2026, 2, 2, 0, 0), 10),
    ] {
        give_feedback(
            app,
            pb::Feedback {
                nps: Some(nps),
                ..answer(customer, id, when)
            },
        )
        .await;
    }
}

fn column<T>(c: &pb::Cohort, f: impl Fn(&pb::CohortPeriod) -> T) -> Vec<T> {
    c.periods.iter().map(f).collect()
}

#[tokio::test]
async fn monthly_cohorts_count_revenue_net_of_refunds_on_the_purchase_day() {
    let app = spawn_app().await;
    fixture(&app).await;
    let r = reports(&app)
        .await
        .get_cohort_report(pb::GetCohortReportRequest {
            last_cohort: Some(timestamp(at(2026, 3, 10, 0, 0))),
            ..monthly(at(2026, 1, 15, 0, 0), 3)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.time_zone, "UTC");
    let labels: Vec<_> = r.cohorts.iter().map(|c| c.period_label.as_str()).collect();
    assert_eq!(labels, ["2026-01-01", "2026-02-01", "2026-03-01"]);
    let [jan, feb, mar] = &r.cohorts[..] else {
        panic!()
    };

    assert_eq!(jan.size, 2);
    assert_eq!(jan.period_start, Some(timestamp(at(2026, 1, 1, 0, 0))));
    assert_eq!(column(jan, |p| p.active_customers), [2, 1, 1]);
    assert_eq!(
        column(jan, |p| p.retention_rate),
        [Some(1.0), Some(0.5), Some(0.5)]
    );
    // a: 100 - 30 + 50 - 10 = 110 and b's 10 in January.
    assert_eq!(column(jan, |p| cents(&p.revenue)), [12_000, 2_000, 3_000]);
    assert_eq!(
        column(jan, |p| cents(&p.revenue_per_customer)),
        [6_000, 1_000, 1_500]
    );
    assert_eq!(
        column(jan, |p| cents(&p.cumulative_revenue_per_customer)),
        [6_000, 7_000, 8_500]
    );
    assert_eq!(column(jan, |p| p.orders), [3, 1, 1]);
    // Margin is known while every purchase has a cost: b's March one has none.
    assert_eq!(
        column(jan, |p| p.margin.as_ref().map(|_| cents(&p.margin))),
        [Some(12_000 - 5_100), Some(1_500), None]
    );
    assert_eq!(column(jan, |p| p.partial), [false, false, false]);
    assert_eq!(jan.repeat_purchase_rate, Some(1.0));
    assert_eq!(cents(&jan.acquisition_spend), 40_000);
    assert_eq!(cents(&jan.cac), 20_000);
    assert_eq!(jan.payback_period, None);
    assert_eq!(jan.ltv_to_cac, Some(8_500.0 / 20_000.0));
    // a's latest answer is a detractor's, b is a promoter.
    assert_eq!((jan.nps, jan.nps_respondents), (Some(0.0), 2));

    assert_eq!(feb.size, 2);
    assert_eq!(column(feb, |p| p.active_customers), [2, 0, 0]);
    // d's two orders on one day are two orders, one occasion.
    assert_eq!(column(feb, |p| p.orders), [3, 0, 0]);
    assert_eq!(column(feb, |p| cents(&p.revenue)), [8_000, 0, 0]);
    assert_eq!(
        column(feb, |p| p.retention_rate),
        [Some(1.0), Some(0.0), Some(0.0)]
    );
    assert_eq!(feb.repeat_purchase_rate, Some(0.0));
    assert_eq!(cents(&feb.cac), 2_500);
    assert_eq!(feb.payback_period, Some(0));
    assert_eq!((feb.nps, feb.nps_respondents), (Some(100.0), 1));

    assert_eq!(mar.size, 0);
    assert_eq!(mar.periods.len(), 3);
    assert!(mar.periods.iter().all(|p| p.retention_rate.is_none()
        && p.revenue_per_customer.is_none()
        && p.active_customers == 0));
    assert_eq!(mar.repeat_purchase_rate, None);
    assert_eq!(mar.acquisition_spend, None);
}

#[tokio::test]
async fn a_past_as_of_leaves_out_later_transactions_and_marks_the_current_period_partial() {
    let app = spawn_app().await;
    fixture(&app).await;
    let as_of = at(2026, 2, 10, 12, 0);
    let r = reports(&app)
        .await
        .get_cohort_report(pb::GetCohortReportRequest {
            as_of: Some(timestamp(as_of)),
            ..monthly(at(2026, 1, 1, 0, 0), 0)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.as_of, Some(timestamp(as_of)));
    let [jan, feb] = &r.cohorts[..] else {
        panic!("{:?}", r.cohorts)
    };
    // The February 20 refund had not happened; the February 3 one had.
    assert_eq!(column(jan, |p| cents(&p.revenue)), [13_000, 2_000]);
    assert_eq!(column(jan, |p| p.partial), [false, true]);
    // d's first purchase (February 15) is after as_of.
    assert_eq!(feb.size, 1);
    assert_eq!(column(feb, |p| cents(&p.revenue)), [7_000]);
    assert_eq!(column(feb, |p| p.partial), [true]);
    // a's February 11 answer came after as_of: still a promoter then.
    assert_eq!(jan.nps, Some(100.0));
}

#[tokio::test]
async fn weeks_follow_the_new_york_calendar() {
    let app = spawn_app_with(|s| s.time_zone = "America/New_York".parse().unwrap()).await;
    let mut client = app.ingest().await;
    for t in [
        // Sunday 2026-03-01 23:30 EST: the week of Monday February 23.
        purchase("e", "p1", at(2026, 3, 2, 4, 30), 1_000),
        // Monday 2026-03-02 00:00 EST: the next week.
        purchase("f", "p1", at(2026, 3, 2, 5, 0), 2_000),
        // Sunday 2026-03-08 23:59 EDT (clocks went forward that morning).
        purchase("e", "p2", at(2026, 3, 9, 3, 59), 4_000),
        // Monday 2026-03-09 00:00 EDT.
        purchase("f", "p2", at(2026, 3, 9, 4, 0), 8_000),
    ] {
        client.record_transaction(record(t)).await.unwrap();
    }
    // Sunday 23:59 EST: spend of the week of February 23.
    record_spend(
        &app,
        spend("w", at(2026, 3, 2, 4, 59), at(2026, 3, 3, 0, 0), 500),
    )
    .await;
    let r = reports(&app)
        .await
        .get_cohort_report(pb::GetCohortReportRequest {
            granularity: pb::Granularity::Week as i32,
            first_cohort: Some(timestamp(at(2026, 2, 24, 12, 0))),
            last_cohort: Some(timestamp(at(2026, 3, 3, 12, 0))),
            as_of: Some(timestamp(at(2026, 3, 20, 0, 0))),
            periods: 3,
            include_forecast: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.time_zone, "America/New_York");
    let [w1, w2] = &r.cohorts[..] else {
        panic!("{:?}", r.cohorts)
    };
    assert_eq!((w1.period_label.as_str(), w1.size), ("2026-02-23", 1));
    assert_eq!(w1.period_start, Some(timestamp(at(2026, 2, 23, 5, 0))));
    assert_eq!(column(w1, |p| cents(&p.revenue)), [1_000, 4_000, 0]);
    assert_eq!(cents(&w1.acquisition_spend), 500);
    assert_eq!((w2.period_label.as_str(), w2.size), ("2026-03-02", 1));
    assert_eq!(column(w2, |p| cents(&p.revenue)), [2_000, 8_000, 0]);
    // The week of March 9 starts at midnight EDT, 04:00 UTC.
    assert_eq!(
        w2.periods[1].period_start,
        Some(timestamp(at(2026, 3, 9, 4, 0)))
    );
    assert_eq!(w2.acquisition_spend, None);
}

#[tokio::test]
async fn bad_cohort_requests_name_every_offending_field() {
    let app = spawn_app().await;
    let mut client = reports(&app).await;
    let fields = |r: Result<tonic::Response<pb::CohortReport>, tonic::Status>| {
        let e = r.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        violated_fields(&e)
    };
    let unknown = client
        .get_cohort_report(pb::GetCohortReportRequest {
            granularity: 7,
            first_cohort: None,
            periods: 61,
            ..Default::default()
        })
        .await;
    assert_eq!(fields(unknown), ["first_cohort", "granularity", "periods"]);
    let unspecified = client
        .get_cohort_report(pb::GetCohortReportRequest {
            granularity: 0,
            ..monthly(at(2026, 1, 1, 0, 0), 1)
        })
        .await;
    assert_eq!(fields(unspecified), ["granularity"]);
    let reversed = client
        .get_cohort_report(pb::GetCohortReportRequest {
            last_cohort: Some(timestamp(at(2025, 12, 31, 0, 0))),
            ..monthly(at(2026, 1, 1, 0, 0), 1)
        })
        .await;
    assert_eq!(fields(reversed), ["first_cohort"]);
    // 61 monthly cohorts.
    let too_many = client
        .get_cohort_report(pb::GetCohortReportRequest {
            last_cohort: Some(timestamp(at(2026, 1, 1, 0, 0))),
            ..monthly(at(2021, 1, 1, 0, 0), 1)
        })
        .await;
    assert_eq!(fields(too_many), ["last_cohort"]);
    let future = client
        .get_cohort_report(pb::GetCohortReportRequest {
            as_of: Some(timestamp(chrono::Utc::now() + chrono::Duration::days(2))),
            first_cohort: Some(pb_bad_nanos()),
            ..monthly(at(2026, 1, 1, 0, 0), 1)
        })
        .await;
    assert_eq!(fields(future), ["as_of", "first_cohort.nanos"]);
}

fn pb_bad_nanos() -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at(2026, 1, 1, 0, 0).timestamp(),
        nanos: -1,
    }
}

fn sizes(r: &pb::CohortReport) -> Vec<u64> {
    r.cohorts.iter().map(|c| c.size).collect()
}

#[tokio::test]
async fn a_backdated_purchase_moves_the_customer_and_all_their_revenue_to_the_earlier_cohort() {
    let app = spawn_app().await;
    let mut client = app.ingest().await;
    for t in [
        purchase("late", "p1", at(2026, 3, 5, 0, 0), 1_000),
        purchase("late", "p2", at(2026, 4, 5, 0, 0), 2_000),
        purchase("other", "p1", at(2026, 3, 9, 0, 0), 500),
    ] {
        client.record_transaction(record(t)).await.unwrap();
    }
    let request = pb::GetCohortReportRequest {
        last_cohort: Some(timestamp(at(2026, 4, 1, 0, 0))),
        ..monthly(at(2026, 1, 1, 0, 0), 4)
    };
    let mut client_reports = reports(&app).await;
    let before = client_reports
        .get_cohort_report(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sizes(&before), [0, 0, 2, 0]);
    assert_eq!(
        column(&before.cohorts[2], |p| cents(&p.revenue)),
        [1_500, 2_000, 0, 0]
    );

    client
        .record_transaction(record(purchase("late", "p0", at(2026, 1, 20, 0, 0), 4_000)))
        .await
        .unwrap();
    let after = client_reports
        .get_cohort_report(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sizes(&after), [1, 0, 1, 0]);
    let jan = &after.cohorts[0];
    assert_eq!(column(jan, |p| cents(&p.revenue)), [4_000, 0, 1_000, 2_000]);
    assert_eq!(column(jan, |p| p.active_customers), [1, 0, 1, 1]);
    assert_eq!(jan.repeat_purchase_rate, Some(1.0));
    assert_eq!(
        column(&after.cohorts[2], |p| cents(&p.revenue)),
        [500, 0, 0, 0]
    );
}

#[tokio::test]
async fn an_erased_customer_leaves_the_cohorts_at_once() {
    let app = spawn_app().await;
    let mut client = app.ingest().await;
    for t in [
        purchase("gone", "p1", at(2026, 3, 5, 0, 0), 1_000),
        purchase("kept", "p1", at(2026, 3, 9, 0, 0), 500),
    ] {
        client.record_transaction(record(t)).await.unwrap();
    }
    let request = monthly(at(2026, 3, 1, 0, 0), 1);
    let mut client_reports = reports(&app).await;
    let before = client_reports
        .get_cohort_report(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(before.cohorts[0].size, 2);
    client
        .delete_customer(pb::DeleteCustomerRequest {
            customer_id: "gone".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        app.count("SELECT count(*) FROM customer_periods WHERE customer_id = 'gone'")
            .await,
        0
    );
    let after = client_reports
        .get_cohort_report(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.cohorts[0].size, 1);
    assert_eq!(cents(&after.cohorts[0].periods[0].revenue), 500);
}
