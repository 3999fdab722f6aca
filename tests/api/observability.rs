//! Prometheus metrics over HTTP after real calls, request ids echoed, and
//! JSON logs that carry them.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use chrono::NaiveDate;
use clvd::api::pb;
use tonic::{Code, Request};

use crate::{helpers::*, models::*};

#[tokio::test]
async fn metrics_count_calls_by_method_and_code_and_ingest_by_outcome() {
    let app = spawn_app_with(|s| s.metrics_addr = Some(([127, 0, 0, 1], 0).into())).await;
    let addr = app.metrics_addr.expect("metrics endpoint");
    let before = scrape(addr).await;
    let record_calls = |code| {
        [
            ("grpc_service", "clv.v1.IngestService"),
            ("grpc_method", "RecordTransaction"),
            ("grpc_type", "unary"),
            ("grpc_code", code),
        ]
    };
    assert_eq!(
        sample(&before, "grpc_server_handled_total", &record_calls("OK")),
        0.0
    );

    let mut ingest = app.ingest().await;
    let t = purchase("c1", "t1", at(2026, 1, 5, 10, 0), 1_000);
    ingest.record_transaction(record(t.clone())).await.unwrap();
    assert!(
        ingest
            .record_transaction(record(t))
            .await
            .unwrap()
            .into_inner()
            .duplicate
    );
    let invalid = ingest
        .record_transaction(record(purchase("", "t2", at(2026, 1, 5, 10, 0), 1_000)))
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
    import(&app, &simulated_purchases()).await;
    let imported = simulated_purchases().len() as f64;
    let mut models = models(&app).await;
    let day = NaiveDate::from_ymd_opt(2024, 12, 31).unwrap();
    let fitted = models
        .fit_model(fit_request(day, pb::TimeUnit::Day))
        .await
        .unwrap()
        .into_inner();

    let after = scrape(addr).await;
    let started = |m: &str| {
        sample(
            &after,
            "grpc_server_started_total",
            &[("grpc_service", "clv.v1.IngestService"), ("grpc_method", m)],
        )
    };
    assert_eq!(started("RecordTransaction"), 3.0);
    assert_eq!(
        sample(&after, "grpc_server_handled_total", &record_calls("OK")),
        2.0
    );
    assert_eq!(
        sample(
            &after,
            "grpc_server_handled_total",
            &record_calls("InvalidArgument")
        ),
        1.0
    );
    assert_eq!(
        sample(
            &after,
            "grpc_server_handled_total",
            &[
                ("grpc_method", "ImportTransactions"),
                ("grpc_type", "client_stream"),
                ("grpc_code", "OK"),
            ]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &after,
            "grpc_server_handling_seconds_count",
            &[("grpc_method", "RecordTransaction")]
        ),
        3.0
    );
    assert_eq!(
        sample(
            &after,
            "grpc_server_handled_total",
            &[("grpc_method", "FitModel"), ("grpc_code", "OK")]
        ),
        1.0
    );
    // A made-up path is refused and counted under one `unknown` series,
    // so that callers cannot grow the label set.
    let mut raw = tonic::client::Grpc::new(channel(&app.endpoint()).await.unwrap());
    raw.ready().await.unwrap();
    let made_up: Result<tonic::Response<pb::DeleteCustomerResponse>, _> = raw
        .unary(
            Request::new(pb::DeleteCustomerRequest::default()),
            "/clv.v1.IngestService/MadeUp123".parse().unwrap(),
            tonic_prost::ProstCodec::default(),
        )
        .await;
    assert_eq!(made_up.unwrap_err().code(), Code::Unimplemented);
    let after = scrape(addr).await;
    assert!(!after.contains("MadeUp123"), "{after}");
    assert_eq!(
        sample(
            &after,
            "grpc_server_handled_total",
            &[("grpc_method", "unknown"), ("grpc_code", "Unimplemented")]
        ),
        1.0
    );

    let ingested = |outcome| {
        sample(
            &after,
            "clvd_ingest_transactions_total",
            &[("outcome", outcome)],
        )
    };
    assert_eq!(ingested("recorded"), 1.0 + imported);
    assert_eq!(ingested("duplicate"), 1.0);
    assert_eq!(ingested("rejected"), 1.0);

    let version = fitted.version.to_string();
    let age = sample(
        &after,
        "clvd_active_model_age_seconds",
        &[("version", &version)],
    );
    assert!((0.0..60.0).contains(&age), "age {age}");
    assert!(after.contains(&format!(
        "clvd_active_model_age_seconds{{version=\"{version}\"}}"
    )));
    let fit_seconds = fitted.fit_duration.expect("fit duration");
    let fit_seconds = fit_seconds.seconds as f64 + fit_seconds.nanos as f64 / 1e9;
    let exported = sample(
        &after,
        "clvd_last_fit_duration_seconds",
        &[("version", &version)],
    );
    assert!(
        (exported - fit_seconds).abs() < 1e-3,
        "{exported} vs {fit_seconds}"
    );
}

#[tokio::test]
async fn a_request_id_is_echoed_or_made() {
    let app = spawn_app().await;
    let mut ingest = app.ingest().await;
    let call = |id: Option<&str>| {
        let mut request = Request::new(record(purchase("c", "t", at(2026, 1, 5, 10, 0), 100)));
        if let Some(id) = id {
            request
                .metadata_mut()
                .insert("x-request-id", id.parse().unwrap());
        }
        request
    };
    let echoed = ingest
        .record_transaction(call(Some("req-7f3a")))
        .await
        .unwrap();
    assert_eq!(echoed.metadata().get("x-request-id").unwrap(), "req-7f3a");

    // Also on a refused call.
    let refused = ingest
        .record_transaction(Request::new(pb::RecordTransactionRequest::default()))
        .await
        .unwrap_err();
    let made = refused.metadata().get("x-request-id").expect("an id");
    let made = made.to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&made).is_ok(), "{made}");
    let again = ingest.record_transaction(call(None)).await.unwrap();
    let other = again
        .metadata()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap();
    assert_ne!(made, other, "each call gets its own id");
}

#[tokio::test]
async fn json_logs_name_each_call_by_its_request_id_and_hold_no_message_contents() {
    let (database_url, _pool) = fresh_database().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_clvd"))
        .env("DATABASE_URL", &database_url)
        .env("CLVD_AUTH", "off")
        .env("CLVD_LOG_FORMAT", "json")
        // The access log (a line per call) is at debug.
        .env(
            "RUST_LOG",
            "info,sqlx=warn,clvd::api::layers::telemetry=debug",
        )
        .args(["--listen-addr", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    wait_serving(&endpoint).await;
    let mut ingest =
        pb::ingest_service_client::IngestServiceClient::new(channel(&endpoint).await.unwrap());
    let mut request = Request::new(record(purchase(
        "cust-42",
        "order-9",
        at(2026, 1, 5, 10, 0),
        987_654_321,
    )));
    request
        .metadata_mut()
        .insert("x-request-id", "req-json-1".parse().unwrap());
    ingest.record_transaction(request).await.unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines: Vec<String> = tokio::task::spawn_blocking(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect()
    })
    .await
    .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("clvd exits after SIGTERM");
    assert!(status.success());

    let records: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let call = records
        .iter()
        .find(|r| r["span"]["request_id"] == "req-json-1")
        .unwrap_or_else(|| panic!("no log line names the request id: {lines:#?}"));
    assert_eq!(call["fields"]["message"], "call finished");
    assert_eq!(call["fields"]["grpc_code"], "Ok");
    assert_eq!(call["span"]["service"], "clv.v1.IngestService");
    assert_eq!(call["span"]["method"], "RecordTransaction");
    // Nothing of the message: no amount, no transaction id.
    let all = lines.join("\n");
    assert!(
        !all.contains("9876543") && !all.contains("987654321"),
        "{all}"
    );
    assert!(!all.contains("order-9"), "{all}");
}
