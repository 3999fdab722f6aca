//! The reports' range limits hold whatever the defaults: the 60-period cap
//! of GetCohortReport also bounds `periods = 0` ("up to as_of"), and no
//! report answers for a period that has not started.

use chrono::{Duration, Utc};
use clvd::api::pb;
use tonic::Code;

use crate::{helpers::*, report_cohorts::reports};

#[tokio::test]
async fn default_periods_cannot_exceed_the_period_cap() {
    let app = spawn_app().await;
    app.ingest()
        .await
        .record_transaction(record(purchase("a", "p1", at(2000, 1, 5, 10, 0), 1_000)))
        .await
        .unwrap();
    let mut client = reports(&app).await;
    // 22 weekly cohorts in 2000, and periods "up to as_of" (now): well over
    // a thousand weeks each.
    let weekly = pb::GetCohortReportRequest {
        granularity: pb::Granularity::Week as i32,
        first_cohort: Some(timestamp(at(2000, 1, 3, 0, 0))),
        last_cohort: Some(timestamp(at(2000, 6, 1, 0, 0))),
        periods: 0,
        ..Default::default()
    };
    let e = client
        .get_cohort_report(weekly)
        .await
        .expect_err("more than 60 periods per cohort were answered");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&e), ["periods"]);
    assert!(e.message().contains("60"), "{}", e.message());

    // The same range with an explicit number of periods is answered, and a
    // default that stays under the cap still means "up to as_of".
    let r = client
        .get_cohort_report(pb::GetCohortReportRequest {
            periods: 60,
            ..weekly
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.cohorts.len(), 22);
    assert!(r.cohorts.iter().all(|c| c.periods.len() == 60));
    let recent_first = Utc::now() - Duration::weeks(10);
    let r = client
        .get_cohort_report(pb::GetCohortReportRequest {
            first_cohort: Some(timestamp(recent_first)),
            last_cohort: None,
            ..weekly
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.cohorts.len(), 11);
    assert_eq!(r.cohorts[0].periods.len(), 11);
}

#[tokio::test]
async fn a_loyalty_period_that_has_not_started_is_refused() {
    let app = spawn_app().await;
    app.ingest()
        .await
        .record_transaction(record(purchase(
            "a",
            "p1",
            Utc::now() - Duration::days(40),
            1_000,
        )))
        .await
        .unwrap();
    let mut client = reports(&app).await;
    let far = Utc::now() + Duration::days(3_650);
    let e = client
        .get_loyalty_summary(pb::GetLoyaltySummaryRequest {
            start_time: Some(timestamp(far)),
            end_time: Some(timestamp(far + Duration::days(30))),
        })
        .await
        .expect_err("a loyalty summary of a period ten years ahead was answered");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&e), ["start_time"]);
    // Two days ahead is beyond the one-day clock-skew allowance too.
    let e = client
        .get_loyalty_summary(pb::GetLoyaltySummaryRequest {
            start_time: Some(timestamp(Utc::now() + Duration::days(2))),
            end_time: Some(timestamp(Utc::now() + Duration::days(30))),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&e), ["start_time"]);
    // A period that has started (and has not ended) is answered.
    client
        .get_loyalty_summary(pb::GetLoyaltySummaryRequest {
            start_time: Some(timestamp(Utc::now() - Duration::days(60))),
            end_time: Some(timestamp(Utc::now() + Duration::days(30))),
        })
        .await
        .expect("a period that has started");
}
