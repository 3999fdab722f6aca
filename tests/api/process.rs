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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("apt-get install postgresql"), "{stderr}");
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
