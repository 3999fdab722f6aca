//! The database's statement timeout (`CLVD_DB_STATEMENT_TIMEOUT_SECONDS`)
//! as callers see it, and the cohort report over a past as_of on a base of
//! thousands of customers staying well within it.
//!
//! `clvd report html` once failed with `Internal: internal error` on a
//! 20,000-customer base: GetCohortReport with as_of joined two CTEs whose
//! row estimate PostgreSQL cannot know (one row for the cohorts' members),
//! planned as a nested loop over every (customer, day) pair, and ran into
//! the statement timeout, which reached the caller as INTERNAL.

use std::time::Duration;

use clvd::api::pb;
use tonic::Code;

use crate::{helpers::*, report_cohorts::reports};

/// A cohort report over a past as_of.
fn as_of_report(first: chrono::DateTime<chrono::Utc>) -> pb::GetCohortReportRequest {
    pb::GetCohortReportRequest {
        granularity: pb::Granularity::Month as i32,
        first_cohort: Some(timestamp(first)),
        last_cohort: Some(timestamp(at(2025, 6, 1, 0, 0))),
        as_of: Some(timestamp(at(2026, 1, 1, 0, 0))),
        periods: 6,
        include_forecast: false,
    }
}

#[tokio::test]
async fn a_statement_past_the_timeout_is_deadline_exceeded_naming_the_setting() {
    let app = spawn_app_with(|s| s.db_statement_timeout_seconds = 1).await;
    app.ingest()
        .await
        .record_transaction(record(purchase("a", "p1", at(2025, 1, 5, 10, 0), 1_000)))
        .await
        .expect("recorded");
    // A transaction of the test's own holds the transactions table, so the
    // report's statement waits on it until the server's timeout cancels it.
    let mut lock = app.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE transactions IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let mut client = reports(&app).await;
    let status = tokio::time::timeout(
        Duration::from_secs(30),
        client.get_cohort_report(as_of_report(at(2025, 1, 1, 0, 0))),
    )
    .await
    .expect("the statement timeout ends the call")
    .expect_err("the report's statement is cancelled");
    lock.rollback().await.unwrap();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        status
            .message()
            .contains("CLVD_DB_STATEMENT_TIMEOUT_SECONDS")
            && status.message().contains("longer than"),
        "{}",
        status.message()
    );
    // Once the table is free again the same call succeeds.
    let report = client
        .get_cohort_report(as_of_report(at(2025, 1, 1, 0, 0)))
        .await
        .expect("the report once the lock is gone")
        .into_inner();
    assert_eq!(report.cohorts[0].size, 1);
}

/// 5,000 customers with 6 purchase occasions each (30,000 days), imported
/// over gRPC: the as_of report must finish within a 3 s statement timeout
/// (the old plan compared every customer with every day: 1.5e8 pairs) and
/// equal the report read from the aggregates.
#[tokio::test]
async fn the_as_of_cohort_report_on_thousands_of_customers_finishes_and_matches_the_aggregates() {
    let app = spawn_app_with(|s| s.db_statement_timeout_seconds = 3).await;
    let mut ingest = app.ingest().await;
    let customers = 5_000i64;
    let mut all = Vec::new();
    for c in 0..customers {
        let first = at(2025, 1, 1, 9, 0) + chrono::Duration::days(c % 180);
        for k in 0..6i64 {
            all.push(purchase(
                &format!("c{c}"),
                &format!("t{k}"),
                first + chrono::Duration::days(k * (3 + c % 11)),
                500 + (c * 37 + k * 101) % 20_000,
            ));
        }
    }
    let batches: Vec<pb::ImportTransactionsRequest> = all
        .chunks(10_000)
        .map(|b| pb::ImportTransactionsRequest {
            transactions: b.to_vec(),
        })
        .collect();
    let imported = ingest
        .import_transactions(futures::stream::iter(batches))
        .await
        .expect("imported")
        .into_inner();
    assert_eq!(imported.recorded, 30_000);

    let mut client = reports(&app).await;
    let past = client
        .get_cohort_report(as_of_report(at(2025, 1, 1, 0, 0)))
        .await
        .expect("the as_of report within the statement timeout")
        .into_inner();
    let latest = client
        .get_cohort_report(pb::GetCohortReportRequest {
            as_of: None,
            ..as_of_report(at(2025, 1, 1, 0, 0))
        })
        .await
        .expect("the report from the aggregates")
        .into_inner();
    let members: u64 = past.cohorts.iter().map(|c| c.size).sum();
    // Cohorts January to June 2025: the customers first seen in 180 days.
    assert_eq!(members, 5_000);
    assert_eq!(past.cohorts, latest.cohorts);
}
