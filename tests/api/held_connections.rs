//! The connections the hot paths keep between uses (commit groups, groups
//! of point reads): a use that was rolled back or refused never puts one
//! back inside a transaction, and the server still stops.

use std::time::Duration;

use clvd::pb::{self, scoring_service_client::ScoringServiceClient};

use crate::helpers::{at, purchase, record, spawn_app_with};

/// Sessions of the server's database that are open inside a transaction
/// (the test's own query is not one).
async fn sessions_in_transaction(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid()
            AND state LIKE 'idle in transaction%'",
    )
    .fetch_one(pool)
    .await
    .expect("pg_stat_activity")
}

#[tokio::test]
async fn held_connections_are_given_back_at_stop_and_never_kept_in_a_transaction() {
    let app = spawn_app_with(|_| {}).await;
    let mut ingest = app.ingest().await;
    let mut scoring = ScoringServiceClient::connect(app.endpoint())
        .await
        .expect("connect");

    // Concurrent single calls form commit groups; some are sent twice (a
    // group holding a stored key is rolled back and recorded again).
    let mut calls = Vec::new();
    for i in 0..24 {
        let mut ingest = ingest.clone();
        calls.push(tokio::spawn(async move {
            // Calls i and i + 18 are the same call, sent twice.
            let n = i % 18;
            let t = purchase(
                &format!("held-{}", n % 6),
                &format!("t{n}"),
                at(2024, 3, 1 + n as u32, 10, 0),
                1_000 + n as i64,
            );
            ingest.record_transaction(record(t)).await.map(|_| ())
        }));
    }
    for call in calls {
        call.await.expect("call task").expect("recorded");
    }
    let refused = ingest
        .record_transaction(record(purchase("held-0", "t0", at(2024, 3, 1, 10, 0), 999)))
        .await;
    assert!(refused.is_err(), "a changed retry must be refused");

    let mut reads = Vec::new();
    for i in 0..16 {
        let mut scoring = scoring.clone();
        reads.push(tokio::spawn(async move {
            scoring
                .get_churn_risk(pb::GetChurnRiskRequest {
                    customer_id: format!("held-{}", i % 6),
                    ..Default::default()
                })
                .await
                .map(|_| ())
        }));
    }
    for read in reads {
        // No model yet: each read still answers (without a prediction).
        read.await.expect("read task").expect("answered");
    }
    let unknown = scoring
        .get_churn_risk(pb::GetChurnRiskRequest {
            customer_id: "held-nobody".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(
        unknown.expect_err("unknown customer").code(),
        tonic::Code::NotFound
    );

    assert_eq!(
        sessions_in_transaction(&app.pool).await,
        0,
        "a server session was left inside a transaction"
    );
    assert_eq!(app.transactions_stored().await, 18);

    tokio::time::timeout(Duration::from_secs(20), app.stop())
        .await
        .expect("the server did not stop");
}
