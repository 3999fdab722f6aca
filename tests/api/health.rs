//! grpc.health.v1 follows the database; shutdown is graceful.

use std::time::Duration;

use clvd::{api::pb, config::Settings, startup::Application};
use tonic::Code;
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};

use crate::helpers::*;

async fn status(endpoint: &str, service: &str) -> i32 {
    let mut health = HealthClient::new(channel(endpoint).await.unwrap());
    health
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
}

#[tokio::test]
async fn an_unreachable_database_is_not_serving_and_calls_fail_unavailable() {
    // Nothing listens on this socket directory.
    let mut settings =
        Settings::for_database("postgresql:///clvd?host=/nonexistent-clvd&port=5999&user=x".into());
    settings.db_acquire_timeout_seconds = 1;
    let app = Application::build(settings).await.unwrap();
    let endpoint = format!("http://{}", app.local_addr());
    let server = tokio::spawn(app.run_until_stopped(std::future::pending()));
    tokio::time::sleep(Duration::from_millis(300)).await;

    for service in ["", "clv.v1.IngestService", "clv.v1.ReportService"] {
        assert_eq!(
            status(&endpoint, service).await,
            ServingStatus::NotServing as i32,
            "{service:?}"
        );
    }
    // The process itself is alive: liveness probes must not restart it.
    assert_eq!(
        status(&endpoint, clvd::startup::LIVENESS).await,
        ServingStatus::Serving as i32
    );
    let mut client =
        pb::ingest_service_client::IngestServiceClient::new(channel(&endpoint).await.unwrap());
    let started = std::time::Instant::now();
    let err = client
        .record_transaction(record(purchase("c", "t", at(2026, 1, 1, 0, 0), 100)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "failed slowly: {:?}",
        started.elapsed()
    );
    server.abort();
}

#[tokio::test]
async fn a_healthy_server_is_serving_and_stops_cleanly() {
    let app = spawn_app().await;
    let endpoint = app.endpoint();
    assert_eq!(
        status(&endpoint, "clv.v1.IngestService").await,
        ServingStatus::Serving as i32
    );
    app.stop().await;
    assert!(
        channel(&endpoint).await.is_err(),
        "the listener is closed after shutdown"
    );
}
