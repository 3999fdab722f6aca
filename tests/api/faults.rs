//! Faults: PostgreSQL stopping and starting again under a steady ingest
//! load, and the server killed in the middle of an import stream. Nothing
//! acknowledged is lost, nothing failed is half-stored, and nothing resent
//! is counted twice.

use std::{
    collections::{BTreeMap, HashSet},
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use clvd::{
    api::pb,
    embedded_postgres::{EmbeddedOptions, EmbeddedPostgres},
    storage::Storage,
};
use sqlx::{postgres::PgPoolOptions, PgPool};
use tokio::sync::Mutex;
use tonic::Code;
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};

use crate::helpers::*;

/// What one writer saw: the calls acknowledged, and the calls that failed
/// (a unary call is a batch of one), with their codes.
#[derive(Default)]
struct Outcomes {
    acknowledged: Vec<pb::Transaction>,
    failed: Vec<(Vec<pb::Transaction>, Code)>,
}

fn transaction(writer: usize, seq: usize) -> pb::Transaction {
    purchase(
        &format!("w{writer}-c{}", seq % 13),
        &format!("w{writer}-t{seq}"),
        at(2026, 3, 1 + (seq % 28) as u32, 9, 0),
        100 + seq as i64,
    )
}

/// Sends one call at a time until `stop`: writers 0-3 unary calls, writer
/// 4 batches of 50 in single-message import streams.
async fn write_until(
    endpoint: String,
    writer: usize,
    stop: Arc<AtomicBool>,
    outcomes: Arc<Mutex<Outcomes>>,
) {
    let mut client = pb::ingest_service_client::IngestServiceClient::new(
        channel(&endpoint).await.expect("connect"),
    );
    let mut seq = 0;
    while !stop.load(Ordering::SeqCst) {
        let calls: Vec<pb::Transaction> = if writer == 4 {
            (seq..seq + 50).map(|s| transaction(writer, s)).collect()
        } else {
            vec![transaction(writer, seq)]
        };
        seq += calls.len();
        let result = if writer == 4 {
            client
                .import_transactions(futures::stream::iter([pb::ImportTransactionsRequest {
                    transactions: calls.clone(),
                }]))
                .await
                .map(|_| ())
        } else {
            client
                .record_transaction(pb::RecordTransactionRequest {
                    transaction: Some(calls[0].clone()),
                })
                .await
                .map(|_| ())
        };
        let mut o = outcomes.lock().await;
        match result {
            Ok(()) => o.acknowledged.extend(calls),
            Err(status) => {
                o.failed.push((calls, status.code()));
                drop(o);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn health(endpoint: &str) -> Option<i32> {
    let mut client = HealthClient::new(channel(endpoint).await.ok()?);
    let r = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .ok()?;
    Some(r.into_inner().status)
}

async fn wait_health(endpoint: &str, want: ServingStatus, limit: Duration) -> Duration {
    let started = Instant::now();
    while health(endpoint).await != Some(want as i32) {
        assert!(
            started.elapsed() < limit,
            "health did not become {want:?} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

async fn stored_ids(pool: &PgPool) -> HashSet<String> {
    sqlx::query_scalar::<_, String>("SELECT transaction_id FROM transactions")
        .fetch_all(pool)
        .await
        .expect("read stored ids")
        .into_iter()
        .collect()
}

/// Per customer: (purchases, net revenue in nanos), from the summaries
/// the service keeps, and from the transactions it should hold.
async fn stored_totals(pool: &PgPool) -> BTreeMap<String, (i64, i64)> {
    sqlx::query_as::<_, (String, i32, i64)>(
        "SELECT customer_id, purchase_count, net_revenue_nanos::int8 FROM customers",
    )
    .fetch_all(pool)
    .await
    .expect("read summaries")
    .into_iter()
    .map(|(c, n, v)| (c, (i64::from(n), v)))
    .collect()
}

fn expected_totals<'a>(
    transactions: impl Iterator<Item = &'a pb::Transaction>,
) -> BTreeMap<String, (i64, i64)> {
    let mut totals = BTreeMap::<String, (i64, i64)>::new();
    for t in transactions {
        let m = t.amount.as_ref().unwrap();
        let e = totals.entry(t.customer_id.clone()).or_default();
        e.0 += 1;
        e.1 += m.units * 1_000_000_000 + i64::from(m.nanos);
    }
    totals
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarting_under_load_loses_nothing_acknowledged_and_serving_resumes() {
    let dir = std::env::temp_dir().join(format!("clvd-faults-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let options = EmbeddedOptions {
        data_dir: dir.clone(),
        bin_dir: None,
        unsafe_fast: true,
    };
    let pg = EmbeddedPostgres::start(&options).await.expect("start");
    pg.ensure_database("faults").await.expect("database");
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_lazy_with(pg.connect_options("faults"));
    Storage::from_pool(pool.clone())
        .migrate()
        .await
        .expect("migrate");
    let app = spawn_app_at(pg.url("faults"), pool.clone(), |s| {
        s.health_interval_seconds = 1;
        s.db_acquire_timeout_seconds = 1;
    })
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let writers: Vec<_> = (0..5)
        .map(|w| {
            tokio::spawn(write_until(
                app.endpoint(),
                w,
                stop.clone(),
                outcomes.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before_outage = outcomes.lock().await.acknowledged.len();
    assert!(before_outage > 0, "the load should be running");

    // PostgreSQL goes away in the middle of the load ...
    pg.stop();
    wait_health(
        &app.endpoint(),
        ServingStatus::NotServing,
        Duration::from_secs(10),
    )
    .await;
    let failed_before = outcomes.lock().await.failed.len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    {
        // ... and calls fail at once, as retryable, instead of hanging.
        let o = outcomes.lock().await;
        assert!(
            o.failed.len() > failed_before,
            "calls should keep failing fast during the outage"
        );
        for (calls, code) in &o.failed {
            assert_eq!(*code, Code::Unavailable, "{}", calls[0].transaction_id);
        }
    }

    // It comes back, and the same server process serves again by itself.
    let pg = EmbeddedPostgres::start(&options).await.expect("restart");
    let recovered = wait_health(
        &app.endpoint(),
        ServingStatus::Serving,
        Duration::from_secs(20),
    )
    .await;
    let after_restart = outcomes.lock().await.acknowledged.len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.expect("writer");
    }
    let Outcomes {
        acknowledged,
        failed,
    } = std::mem::take(&mut *outcomes.lock().await);
    assert!(
        acknowledged.len() > after_restart,
        "writes should succeed again after the restart (serving after {recovered:?})"
    );
    assert!(!failed.is_empty(), "the outage should have failed calls");

    // Every acknowledged transaction is stored; each failed call is stored
    // entirely (its commit happened but the answer was lost) or not at all.
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(pg.connect_options("faults"))
        .await
        .expect("reconnect");
    let stored = stored_ids(&pool).await;
    for t in &acknowledged {
        assert!(stored.contains(&t.transaction_id), "{}", t.transaction_id);
    }
    for (calls, _) in &failed {
        let kept = calls
            .iter()
            .filter(|t| stored.contains(&t.transaction_id))
            .count();
        assert!(
            kept == 0 || kept == calls.len(),
            "a failed call was half-stored: {kept} of {} from {}",
            calls.len(),
            calls[0].transaction_id
        );
    }

    // The clients retry what failed: exact totals, nothing counted twice.
    let mut client = app.ingest().await;
    for (calls, _) in &failed {
        client
            .import_transactions(futures::stream::iter([pb::ImportTransactionsRequest {
                transactions: calls.clone(),
            }]))
            .await
            .expect("retry after the restart");
    }
    let everything: Vec<&pb::Transaction> = acknowledged
        .iter()
        .chain(failed.iter().flat_map(|(calls, _)| calls))
        .collect();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM transactions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored as usize, everything.len());
    assert_eq!(
        stored_totals(&pool).await,
        expected_totals(everything.into_iter())
    );
    app.stop().await;
    pool.close().await;
    pg.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

fn start_server(database_url: &str, port: u16) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_clvd"))
        .env("DATABASE_URL", database_url)
        .env("CLVD_AUTH", "off")
        .env("RUST_LOG", "warn")
        .args([
            "--listen-addr",
            &format!("127.0.0.1:{port}"),
            "--refit-interval-seconds",
            "0",
            "--refit-min-new-transactions",
            "0",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("start clvd")
}

fn import_batch(b: usize) -> pb::ImportTransactionsRequest {
    pb::ImportTransactionsRequest {
        transactions: (0..1_000)
            .map(|i| {
                let seq = b * 1_000 + i;
                purchase(
                    &format!("k{}", seq % 257),
                    &format!("k-t{seq}"),
                    at(2026, 2, 1 + (seq % 28) as u32, 10, 0),
                    100 + (seq % 1_000) as i64,
                )
            })
            .collect(),
    }
}

#[tokio::test]
async fn a_server_killed_mid_import_leaves_whole_batches_and_a_resend_is_exact() {
    const BATCHES: usize = 40;
    let (database_url, pool) = fresh_database().await;
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut server = start_server(&database_url, port);
    wait_serving(&endpoint).await;

    // A stream that pauses after 10 batches until the server is killed.
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::ImportTransactionsRequest>(1);
    let mut client =
        pb::ingest_service_client::IngestServiceClient::new(channel(&endpoint).await.unwrap());
    let call = tokio::spawn(async move {
        client
            .import_transactions(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    for b in 0..10 {
        tx.send(import_batch(b)).await.unwrap();
    }
    // Wait until some batches are committed, then SIGKILL mid-stream.
    let started = Instant::now();
    while count(&pool, "SELECT count(*) FROM transactions").await < 3_000 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "import stalled"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill().expect("SIGKILL");
    server.wait().unwrap();
    let _ = tx.send(import_batch(10)).await;
    drop(tx);
    // (The client sees a transport error: the server is gone.)
    call.await.unwrap().expect_err("the stream was cut");

    // Whatever was committed is whole batches.
    let per_batch: Vec<i64> = sqlx::query_scalar(
        "SELECT count(*) FROM transactions GROUP BY substring(transaction_id from 4)::int / 1000",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(!per_batch.is_empty());
    assert!(per_batch.iter().all(|&n| n == 1_000), "{per_batch:?}");
    let committed = per_batch.len() as u64;

    // A new process takes the whole stream again: exact totals.
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut server = start_server(&database_url, port);
    wait_serving(&endpoint).await;
    let mut client =
        pb::ingest_service_client::IngestServiceClient::new(channel(&endpoint).await.unwrap());
    let done = client
        .import_transactions(futures::stream::iter((0..BATCHES).map(import_batch)))
        .await
        .expect("resend")
        .into_inner();
    assert_eq!(done.batches, BATCHES as u64);
    assert_eq!(done.duplicates, committed * 1_000);
    assert_eq!(done.recorded, (BATCHES as u64 - committed) * 1_000);
    let all: Vec<pb::Transaction> = (0..BATCHES)
        .flat_map(|b| import_batch(b).transactions)
        .collect();
    assert_eq!(
        count(&pool, "SELECT count(*) FROM transactions").await,
        all.len() as i64
    );
    assert_eq!(stored_totals(&pool).await, expected_totals(all.iter()));
    server.kill().unwrap();
    server.wait().unwrap();
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}
