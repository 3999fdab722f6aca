//! Limits: the global concurrency limit sheds the excess at once, deadlines
//! end calls with DEADLINE_EXCEEDED, messages over the size limit are
//! refused.

use std::time::Duration;

use clvd::api::pb::{self, ingest_service_client::IngestServiceClient};
use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Code, Request};
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};

use crate::helpers::*;

const LIMIT: usize = 4;

fn batch(customer: &str, n: usize) -> pb::ImportTransactionsRequest {
    pb::ImportTransactionsRequest {
        transactions: (0..n)
            .map(|i| purchase(customer, &format!("t{i}"), at(2026, 1, 5, 10, 0), 500))
            .collect(),
    }
}

/// An ImportTransactions call that sends one batch and then holds its
/// stream open until `release` turns true: a call that stays in flight for
/// as long as the test wants, whatever the machine's speed.
async fn held_import(
    mut client: IngestServiceClient<tonic::transport::Channel>,
    customer: String,
    mut release: watch::Receiver<bool>,
) -> Result<pb::ImportTransactionsResponse, tonic::Status> {
    let (tx, rx) = mpsc::unbounded_channel();
    tx.send(batch(&customer, 3)).unwrap();
    tokio::spawn(async move {
        let _ = release.wait_for(|r| *r).await;
        drop(tx);
    });
    client
        .import_transactions(UnboundedReceiverStream::new(rx))
        .await
        .map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_ten_times_the_limit_sheds_the_excess_at_once_and_the_rest_succeed() {
    // One connection makes every call: its share is the whole limit here
    // (the share is tested in admission.rs).
    let app = spawn_app_with(|s| {
        s.max_concurrent_calls = LIMIT;
        s.max_caller_share_percent = 100;
    })
    .await;
    let channel = channel(&app.endpoint()).await.unwrap();
    let (release, released) = watch::channel(false);

    let mut calls = futures::stream::FuturesUnordered::new();
    for i in 0..LIMIT * 10 {
        let call = held_import(
            IngestServiceClient::new(channel.clone()),
            format!("c{i}"),
            released.clone(),
        );
        calls.push(tokio::spawn(call));
    }

    // The excess is refused while the admitted calls are still running:
    // nothing queues behind them (the held calls end only on release).
    let mut shed = 0;
    while shed < LIMIT * 9 {
        let outcome = tokio::time::timeout(Duration::from_secs(30), calls.next())
            .await
            .expect("the excess calls were not refused while the admitted ones ran")
            .expect("a call")
            .expect("call task");
        let status = outcome.expect_err("a call succeeded before any was released");
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        shed += 1;
    }
    // Health checks are not counted against the limit.
    let health = HealthClient::new(channel.clone())
        .check(HealthCheckRequest::default())
        .await
        .unwrap();
    assert_eq!(health.into_inner().status, ServingStatus::Serving as i32);

    release.send(true).unwrap();
    let mut succeeded = 0;
    while let Some(outcome) = calls.next().await {
        let totals = outcome.expect("call task").expect("an admitted call");
        assert_eq!((totals.batches, totals.recorded), (1, 3));
        succeeded += 1;
    }
    assert_eq!(succeeded, LIMIT);
    assert_eq!(app.transactions_stored().await, (LIMIT * 3) as i64);

    // The slots are free again.
    IngestServiceClient::new(channel)
        .record_transaction(record(purchase("after", "t", at(2026, 1, 6, 0, 0), 1)))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_call_past_the_callers_deadline_is_ended_on_the_server_while_its_stream_is_open() {
    let app = spawn_app_with(|s| s.metrics_addr = Some(([127, 0, 0, 1], 0).into())).await;
    let (tx, rx) = mpsc::unbounded_channel();
    tx.send(batch("c", 2)).unwrap();
    let mut request = Request::new(UnboundedReceiverStream::new(rx));
    request.set_timeout(Duration::from_secs(3));
    let mut client = app.ingest().await;
    let call = tokio::spawn(async move { client.import_transactions(request).await });
    // The first batch commits; the stream then stays open past the deadline.
    while app.transactions_stored().await < 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // tonic's client enforces the same deadline itself (CANCELLED when its
    // timer wins the race with the server's answer, and then the server
    // sees the call cancelled); the server's side is read from its metrics:
    // the call ended there, while the caller's stream was still open.
    let err = call.await.unwrap().unwrap_err();
    assert!(
        matches!(err.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{err:?}"
    );
    let ended = |code| {
        let app = &app;
        async move {
            sample(
                &scrape(app.metrics_addr.expect("metrics endpoint")).await,
                "grpc_server_handled_total",
                &[("grpc_method", "ImportTransactions"), ("grpc_code", code)],
            )
        }
    };
    let mut waited = 0;
    while ended("DeadlineExceeded").await + ended("Canceled").await < 1.0 && waited < 100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    assert_eq!(
        ended("DeadlineExceeded").await + ended("Canceled").await,
        1.0
    );
    assert_eq!(ended("OK").await, 0.0);
    // Committed batches stay; the call was ended, not left waiting.
    assert_eq!(app.transactions_stored().await, 2);
    drop(tx);
}

#[tokio::test]
async fn the_configured_maximum_call_time_applies_without_a_caller_deadline() {
    let app = spawn_app_with(|s| s.max_call_seconds = 1).await;
    let (tx, rx) = mpsc::unbounded_channel();
    tx.send(batch("c", 1)).unwrap();
    let err = app
        .ingest()
        .await
        .import_transactions(UnboundedReceiverStream::new(rx))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    drop(tx);
}

#[tokio::test]
async fn a_message_over_the_size_limit_is_refused_and_nothing_is_stored() {
    let app = spawn_app_with(|s| s.max_decoding_message_bytes = 4 * 1024).await;
    let mut client = app.ingest().await;
    let err = client
        .import_transactions(futures::stream::iter([batch("c", 200)]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert_eq!(app.transactions_stored().await, 0);
    // A message under the limit passes.
    client
        .import_transactions(futures::stream::iter([batch("c", 5)]))
        .await
        .unwrap();
    assert_eq!(app.transactions_stored().await, 5);
}
