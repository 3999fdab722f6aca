//! `clvd healthcheck`, the probe of the compose file: exit 0 and `SERVING`
//! only when the server at CLVD_LISTEN_ADDR says SERVING; otherwise a
//! failure with one line saying why.

use std::{process::Command, time::Duration};

use clvd::{config::Settings, startup::Application};

use crate::helpers::*;

/// `clvd healthcheck ARGS` with CLVD_LISTEN_ADDR set to `listen`.
async fn healthcheck(listen: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clvd"));
    cmd.arg("healthcheck")
        .args(args)
        .env("CLVD_LISTEN_ADDR", listen)
        .env_remove("CLVD_TLS_CERT")
        .env_remove("CLVD_TLS_KEY")
        .env_remove("CLVD_TLS_CLIENT_CA")
        .env("RUST_BACKTRACE", "0");
    tokio::task::spawn_blocking(move || cmd.output().expect("run clvd healthcheck"))
        .await
        .expect("healthcheck thread")
}

#[tokio::test]
async fn a_serving_server_passes_as_listened_on_or_as_0_0_0_0() {
    let app = spawn_app().await;
    let port = app.addr.port();
    for listen in [app.addr.to_string(), format!("0.0.0.0:{port}")] {
        for args in [&[][..], &["--health-service", "liveness"]] {
            let out = healthcheck(&listen, args).await;
            assert!(
                out.status.success(),
                "{listen} {args:?}: {}",
                failure_line(&out)
            );
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "SERVING");
        }
    }
    // A service the server does not know is no success.
    let out = healthcheck(&app.addr.to_string(), &["--health-service", "nope"]).await;
    assert!(!out.status.success());
    app.stop().await;
}

#[tokio::test]
async fn not_serving_and_nobody_listening_fail_with_the_reason() {
    // Readiness follows the database: with none, NOT_SERVING, while the
    // liveness service still says SERVING.
    let mut settings =
        Settings::for_database("postgresql:///clvd?host=/nonexistent-clvd&port=5999&user=x".into());
    settings.db_acquire_timeout_seconds = 1;
    let app = Application::build(settings).await.unwrap();
    let listen = app.local_addr().to_string();
    let server = tokio::spawn(app.run_until_stopped(std::future::pending()));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let out = healthcheck(&listen, &[]).await;
    assert!(!out.status.success());
    let line = failure_line(&out);
    assert!(line.contains("NOT_SERVING"), "{line}");
    let out = healthcheck(&listen, &["--health-service", "liveness"]).await;
    assert!(out.status.success(), "{}", failure_line(&out));
    server.abort();

    let out = healthcheck(&format!("127.0.0.1:{}", free_port()), &[]).await;
    assert!(!out.status.success());
    let line = failure_line(&out);
    assert!(line.contains("cannot connect"), "{line}");
}
