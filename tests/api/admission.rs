//! Fair admission: one caller's idle streams cannot take every slot of the
//! concurrency limit. A caller (an API key; without authentication, a
//! connection) holds at most its share of the slots, idle client streams
//! end after the idle limit, and health says NOT_SERVING while every slot
//! is held and no call finishes.

use std::time::Duration;

use clvd::{
    api::pb::{self, ingest_service_client::IngestServiceClient},
    auth::hash_key,
    config::AuthMode,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{transport::Channel, Code, Request};

use crate::helpers::*;

const SLOTS: usize = 8;

fn batch(customer: &str, n: usize) -> pb::ImportTransactionsRequest {
    pb::ImportTransactionsRequest {
        transactions: (0..n)
            .map(|i| purchase(customer, &format!("t{i}"), at(2026, 1, 5, 10, 0), 500))
            .collect(),
    }
}

/// An import stream that sends one batch of three and then stays open,
/// silent, until the returned sender is dropped.
fn idle_import(
    channel: Channel,
    customer: String,
    key: Option<&str>,
) -> (
    mpsc::UnboundedSender<pb::ImportTransactionsRequest>,
    tokio::task::JoinHandle<Result<pb::ImportTransactionsResponse, tonic::Status>>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    tx.send(batch(&customer, 3)).unwrap();
    let mut request = Request::new(UnboundedReceiverStream::new(rx));
    if let Some(key) = key {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {key}").parse().unwrap());
    }
    let call = tokio::spawn(async move {
        IngestServiceClient::new(channel)
            .import_transactions(request)
            .await
            .map(|r| r.into_inner())
    });
    (tx, call)
}

/// Waits until the server has seen `n` ImportTransactions calls start and
/// committed `transactions` transactions.
async fn wait_started(app: &TestApp, n: f64, transactions: i64) {
    let addr = app.metrics_addr.expect("metrics endpoint");
    for _ in 0..1_200 {
        let started = sample(
            &scrape(addr).await,
            "grpc_server_started_total",
            &[("grpc_method", "ImportTransactions")],
        );
        if started >= n && app.transactions_stored().await >= transactions {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the server never saw {n} import streams start");
}

fn with_metrics(s: &mut clvd::config::Settings) {
    s.metrics_addr = Some(([127, 0, 0, 1], 0).into());
    s.max_concurrent_calls = SLOTS;
}

#[tokio::test]
async fn idle_streams_of_one_connection_cannot_take_every_slot_and_other_callers_are_served() {
    let app = spawn_app_with(with_metrics).await;
    let greedy = channel(&app.endpoint()).await.unwrap();
    let mut held = Vec::new();
    for i in 0..SLOTS {
        held.push(idle_import(greedy.clone(), format!("greedy{i}"), None));
    }
    wait_started(&app, SLOTS as f64, (SLOTS / 2 * 3) as i64).await;

    // Another connection is served.
    let other = channel(&app.endpoint()).await.unwrap();
    IngestServiceClient::new(other)
        .record_transaction(record(purchase("other", "t", at(2026, 1, 6, 0, 0), 100)))
        .await
        .expect("another caller must be admitted while one holds idle streams");

    // The greedy connection got its share (half the slots) and no more:
    // the rest were refused at once, saying why.
    let mut refused = 0;
    let mut admitted = 0;
    let calls: Vec<_> = held.into_iter().map(|(_tx, call)| call).collect();
    for call in calls {
        match call.await.unwrap() {
            Ok(totals) => {
                assert_eq!((totals.batches, totals.recorded), (1, 3));
                admitted += 1;
            }
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                assert!(status.message().contains("share"), "{status:?}");
                refused += 1;
            }
        }
    }
    assert_eq!((refused, admitted), (SLOTS / 2, SLOTS / 2));
    assert_eq!(app.transactions_stored().await, (SLOTS / 2 * 3) as i64 + 1);
}

const GREEDY_KEY: &str = "greedy-key-0c1d2e3f";
const OTHER_KEY: &str = "other-key-4a5b6c7d";

#[tokio::test]
async fn with_authentication_one_keys_streams_over_several_connections_hold_only_its_share() {
    let app = spawn_app_with(|s| {
        with_metrics(s);
        s.auth = AuthMode::On;
        s.api_keys = [GREEDY_KEY, OTHER_KEY]
            .iter()
            .map(|k| format!("{}:ingest", hash_key(k)).parse().unwrap())
            .collect();
    })
    .await;
    // The greedy key spreads its streams over two connections.
    let connections = [
        channel(&app.endpoint()).await.unwrap(),
        channel(&app.endpoint()).await.unwrap(),
    ];
    let mut held = Vec::new();
    for i in 0..SLOTS {
        held.push(idle_import(
            connections[i % 2].clone(),
            format!("greedy{i}"),
            Some(GREEDY_KEY),
        ));
    }
    wait_started(&app, SLOTS as f64, (SLOTS / 2 * 3) as i64).await;

    // The other key is admitted, even over one of the greedy connections.
    let mut request = Request::new(record(purchase("other", "t", at(2026, 1, 6, 0, 0), 100)));
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {OTHER_KEY}").parse().unwrap(),
    );
    IngestServiceClient::new(connections[0].clone())
        .record_transaction(request)
        .await
        .expect("another key must be admitted while one holds its share");

    let mut codes = Vec::new();
    for (tx, call) in held {
        drop(tx);
        codes.push(
            call.await
                .unwrap()
                .map(|_| Code::Ok)
                .unwrap_or_else(|s| s.code()),
        );
    }
    let refused = codes
        .iter()
        .filter(|c| **c == Code::ResourceExhausted)
        .count();
    let admitted = codes.iter().filter(|c| **c == Code::Ok).count();
    assert_eq!((refused, admitted), (SLOTS / 2, SLOTS / 2), "{codes:?}");
}

#[tokio::test]
async fn an_idle_stream_ends_after_the_idle_limit_saying_what_was_committed() {
    let app = spawn_app_with(|s| s.stream_idle_seconds = 1).await;
    let (tx, call) = idle_import(channel(&app.endpoint()).await.unwrap(), "slow".into(), None);
    let status = tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .expect("the idle stream was never ended")
        .unwrap()
        .expect_err("an idle stream is ended");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        status.message().contains("stream idle limit")
            && status
                .message()
                .contains("batches committed before it: 1 (3 transactions: 3 recorded"),
        "{status:?}"
    );
    // The batch sent before the silence stays committed.
    assert_eq!(app.transactions_stored().await, 3);
    drop(tx);
}

#[tokio::test]
async fn health_is_not_serving_while_every_slot_is_held_and_none_is_freed() {
    use tonic_health::pb::{
        health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
    };
    let app = spawn_app_with(|s| {
        with_metrics(s);
        s.max_caller_share_percent = 100;
        s.admission_stall_seconds = 1;
        s.health_interval_seconds = 1;
    })
    .await;
    let status = |service: &'static str| {
        let endpoint = app.endpoint();
        async move {
            HealthClient::new(channel(&endpoint).await.unwrap())
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .unwrap()
                .into_inner()
                .status
        }
    };
    let wait_for = |service: &'static str, want: ServingStatus| {
        let status = &status;
        async move {
            for _ in 0..300 {
                if status(service).await == want as i32 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("{service:?} never became {want:?}");
        }
    };

    let greedy = channel(&app.endpoint()).await.unwrap();
    let held: Vec<_> = (0..SLOTS)
        .map(|i| idle_import(greedy.clone(), format!("g{i}"), None))
        .collect();
    wait_started(&app, SLOTS as f64, (SLOTS * 3) as i64).await;
    wait_for("clv.v1.IngestService", ServingStatus::NotServing).await;
    assert_eq!(status("").await, ServingStatus::NotServing as i32);
    // Liveness does not follow: the process itself is fine.
    assert_eq!(
        status(clvd::startup::LIVENESS).await,
        ServingStatus::Serving as i32
    );

    // Once calls end, it serves again.
    for (tx, call) in held {
        drop(tx);
        call.await.unwrap().expect("held stream");
    }
    wait_for("clv.v1.IngestService", ServingStatus::Serving).await;
}
