//! The real binary: the embedded default, SIGTERM, and a clear line when
//! PostgreSQL is missing.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::helpers::*;

fn clvd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clvd"));
    cmd.env_remove("DATABASE_URL")
        .env("CLVD_AUTH", "off")
        .env("RUST_LOG", "warn")
        .env("RUST_BACKTRACE", "0");
    cmd
}

#[tokio::test]
async fn without_postgres_binaries_it_says_what_to_install_in_one_line() {
    let out = clvd()
        // Only the error: not the warning that authentication is off.
        .env("RUST_LOG", "error")
        .args(["--pg-bin-dir", "/nonexistent", "--data-dir"])
        .arg(std::env::temp_dir().join("clvd-no-binaries"))
        .output()
        .unwrap();
    let line = failure_line(&out);
    assert!(line.contains("apt-get install postgresql"), "{line}");
}

#[tokio::test]
async fn the_embedded_default_serves_and_sigterm_stops_everything_with_exit_0() {
    let dir = std::env::temp_dir().join(format!("clvd-embedded-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let port = free_port();
    let mut child = clvd()
        .arg("--data-dir")
        .arg(&dir)
        .args([
            "--listen-addr",
            &format!("127.0.0.1:{port}"),
            "--shutdown-grace-seconds",
            "5",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    wait_serving(&endpoint).await;

    let mut client = clvd::api::pb::ingest_service_client::IngestServiceClient::new(
        channel(&endpoint).await.unwrap(),
    );
    client
        .record_transaction(record(purchase("c", "t", at(2026, 1, 1, 0, 0), 100)))
        .await
        .unwrap();
    assert!(
        dir.join("PG_VERSION").exists(),
        "the cluster lives in the data directory"
    );
    assert!(dir.join("postmaster.pid").exists(), "postgres is running");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "clvd did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}");
    assert!(
        !dir.join("postmaster.pid").exists(),
        "postgres was stopped with clvd"
    );

    // The data stays: a second start finds the transaction again (a resend
    // is a duplicate).
    let mut child = clvd()
        .arg("--data-dir")
        .arg(&dir)
        .args(["--listen-addr", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_serving(&endpoint).await;
    let mut client = clvd::api::pb::ingest_service_client::IngestServiceClient::new(
        channel(&endpoint).await.unwrap(),
    );
    let again = client
        .record_transaction(record(purchase("c", "t", at(2026, 1, 1, 0, 0), 100)))
        .await
        .unwrap();
    assert!(again.into_inner().duplicate);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A call the server never took: it began after the server's graceful
/// GOAWAY (NO_ERROR), above the last stream id the server said it would
/// process, so h2 fails it locally (RFC 9113, section 6.8: such streams
/// were not processed). tonic 0.14 reports that as INTERNAL "h2 protocol
/// error ... GoAway(NO_ERROR)" rather than UNAVAILABLE.
fn refused_by_goaway(e: &tonic::Status) -> bool {
    e.code() == tonic::Code::Internal
        && e.message().contains("h2 protocol error")
        && format!("{e:?}").contains("GoAway")
        && format!("{e:?}").contains("NO_ERROR")
}

/// One RecordTransaction after another until the server refuses; every
/// outcome must be OK, or a call that never reached the server: UNAVAILABLE
/// (the listener closed) or CANCELLED by the client as its connection
/// closed before the request went out. Whether those were stored is
/// checked against the database by the caller.
async fn steady_load(endpoint: String, worker: usize) -> Vec<String> {
    let mut acknowledged = Vec::new();
    let Ok(channel) = channel(&endpoint).await else {
        return acknowledged;
    };
    let mut client = clvd::api::pb::ingest_service_client::IngestServiceClient::new(channel);
    for i in 0..20_000 {
        let id = format!("w{worker}-{i}");
        match client
            .record_transaction(record(purchase("load", &id, at(2026, 1, 1, 0, 0), 100)))
            .await
        {
            Ok(_) => acknowledged.push(id),
            Err(e) => {
                assert!(
                    matches!(e.code(), tonic::Code::Unavailable | tonic::Code::Cancelled)
                        || refused_by_goaway(&e),
                    "{e:?}"
                );
                break;
            }
        }
    }
    acknowledged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_reports_not_serving_finishes_in_flight_calls_and_exits_0() {
    use clvd::api::pb;
    use tonic_health::pb::{
        health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
    };

    const GRACE_SECONDS: u64 = 10;
    const DRAIN_SECONDS: u64 = 2;
    let (database_url, pool) = fresh_database().await;
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_clvd"))
        .env("DATABASE_URL", &database_url)
        .env("CLVD_AUTH", "off")
        .env("RUST_LOG", "warn")
        .args([
            "--listen-addr",
            &format!("127.0.0.1:{port}"),
            "--shutdown-grace-seconds",
            &GRACE_SECONDS.to_string(),
            "--shutdown-drain-seconds",
            &DRAIN_SECONDS.to_string(),
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    wait_serving(&endpoint).await;

    let mut watch = HealthClient::new(channel(&endpoint).await.unwrap())
        .watch(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        watch.message().await.unwrap().unwrap().status,
        ServingStatus::Serving as i32
    );

    // A call surely in flight across the signal: an import that has sent
    // its first batch and sends its second only after NOT_SERVING.
    let (batches, rx) = tokio::sync::mpsc::unbounded_channel();
    let batch = |n: usize| pb::ImportTransactionsRequest {
        transactions: (0..3)
            .map(|i| purchase("held", &format!("b{n}-{i}"), at(2026, 1, 2, 0, 0), 100))
            .collect(),
    };
    batches.send(batch(0)).unwrap();
    let mut importer =
        pb::ingest_service_client::IngestServiceClient::new(channel(&endpoint).await.unwrap());
    let held = tokio::spawn(async move {
        importer
            .import_transactions(tokio_stream::wrappers::UnboundedReceiverStream::new(rx))
            .await
    });

    let workers: Vec<_> = (0..4)
        .map(|w| tokio::spawn(steady_load(endpoint.clone(), w)))
        .collect();
    let load_count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM transactions WHERE customer_id = 'load'")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    while load_count().await < 200 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let signalled = Instant::now();

    // Health says NOT_SERVING first, while the server still runs and, for
    // the drain, still takes new calls.
    let next = watch.message().await.unwrap().expect("a health update");
    assert_eq!(next.status, ServingStatus::NotServing as i32);
    assert!(
        child.try_wait().unwrap().is_none(),
        "exited before NOT_SERVING"
    );
    drop(watch);
    pb::ingest_service_client::IngestServiceClient::new(channel(&endpoint).await.unwrap())
        .record_transaction(record(purchase("late", "t", at(2026, 1, 3, 0, 0), 100)))
        .await
        .expect("a new call during the drain");

    // The in-flight import finishes, with both batches.
    batches.send(batch(1)).unwrap();
    drop(batches);
    let totals = held
        .await
        .unwrap()
        .expect("the in-flight import finished OK")
        .into_inner();
    assert_eq!((totals.batches, totals.recorded), (2, 6));

    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(DRAIN_SECONDS + GRACE_SECONDS),
            "clvd did not exit within its drain and grace"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "exit status {status}");

    // Every acknowledged call is stored, and nothing else.
    let mut acknowledged = Vec::new();
    for w in workers {
        acknowledged.extend(w.await.unwrap());
    }
    assert!(acknowledged.len() >= 200);
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT transaction_id FROM transactions WHERE customer_id = 'load' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    acknowledged.sort();
    assert_eq!(stored, acknowledged);
}
