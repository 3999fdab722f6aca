//! Fair admission: one caller's idle streams cannot take every slot of the
//! concurrency limit. A caller (an API key; without authentication, a
//! connection) holds at most its share of the slots, idle client streams
//! end after the idle limit, and health says NOT_SERVING while every slot
//! is held and no call finishes.

use std::time::Duration;

use clvd::api::pb::{self, ingest_service_client::IngestServiceClient};
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
    for _ in 0..400 {
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
