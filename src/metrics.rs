//! Prometheus metrics, served as text on a port of their own (`GET
//! /metrics`), apart from gRPC so that scrapers need neither HTTP/2 nor an
//! API key. Per-method call metrics carry the names and labels of
//! go-grpc-prometheus (`grpc_server_started_total`,
//! `grpc_server_handled_total`, `grpc_server_handling_seconds`), so existing
//! dashboards and alerts work unchanged. Each [`Metrics`] has its own
//! registry (no global state: several servers in one test process keep
//! apart).

use std::{collections::HashSet, net::SocketAddr, sync::Arc, time::Duration};

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};
use tokio::net::TcpListener;

use crate::{
    grpc_method::{served_methods, GrpcMethod},
    storage::Storage,
};

/// How long a scrape waits for the database for the model gauges.
const MODEL_READ_TIMEOUT: Duration = Duration::from_secs(2);

const CALL_LABELS: &[&str] = &["grpc_type", "grpc_service", "grpc_method"];

/// The label of every path that is not a served method: paths come from
/// callers, and one series per made-up path would grow without bound.
const UNKNOWN: GrpcMethod<'static> = GrpcMethod {
    service: "unknown",
    method: "unknown",
};

/// Every metric clvd exports. Cheap to clone (the collectors are shared).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `service/method` of every method served, from the descriptor sets.
    served: Arc<HashSet<String>>,
    started: IntCounterVec,
    handled: IntCounterVec,
    handling_seconds: HistogramVec,
    ingested: IntCounterVec,
    active_model_age: GaugeVec,
    last_fit_duration: GaugeVec,
    fit_stage_seconds: HistogramVec,
}

/// What became of transactions sent to IngestService.
#[derive(Debug, Clone, Copy)]
pub enum IngestOutcome {
    Recorded,
    Duplicate,
    /// In a call or batch that was refused (invalid, conflicting).
    Rejected,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let started = IntCounterVec::new(
            Opts::new("grpc_server_started_total", "RPCs started on the server."),
            CALL_LABELS,
        )
        .expect("valid metric");
        let handled = IntCounterVec::new(
            Opts::new(
                "grpc_server_handled_total",
                "RPCs completed on the server, whatever their status.",
            ),
            &["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
        )
        .expect("valid metric");
        let handling_seconds = HistogramVec::new(
            HistogramOpts::new(
                "grpc_server_handling_seconds",
                "Time from the start of an RPC to its status.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            CALL_LABELS,
        )
        .expect("valid metric");
        let ingested = IntCounterVec::new(
            Opts::new(
                "clvd_ingest_transactions_total",
                "Transactions received by IngestService, by outcome.",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let active_model_age = GaugeVec::new(
            Opts::new(
                "clvd_active_model_age_seconds",
                "Seconds since the active model version was fitted.",
            ),
            &["version"],
        )
        .expect("valid metric");
        let last_fit_duration = GaugeVec::new(
            Opts::new(
                "clvd_last_fit_duration_seconds",
                "Duration of the newest fit attempt (successful or not).",
            ),
            &["version"],
        )
        .expect("valid metric");
        let fit_stage_seconds = HistogramVec::new(
            HistogramOpts::new(
                "clvd_fit_stage_seconds",
                "Duration of each stage of a fit (prepare, read_groups, fit, store_version, \
                 read_summaries, score, write_scores, activate).",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ]),
            &["stage"],
        )
        .expect("valid metric");
        for c in [&started, &handled, &ingested] {
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
        }
        for h in [&handling_seconds, &fit_stage_seconds] {
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric");
        }
        for g in [&active_model_age, &last_fit_duration] {
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
        }
        Self {
            registry,
            served: Arc::new(served_methods()),
            started,
            handled,
            handling_seconds,
            ingested,
            active_model_age,
            last_fit_duration,
            fit_stage_seconds,
        }
    }

    /// The histogram of fit stage durations, for the fits to observe.
    pub fn fit_stage_seconds(&self) -> HistogramVec {
        self.fit_stage_seconds.clone()
    }

    /// The method itself when it is served, else [`UNKNOWN`].
    fn labelled<'a>(&self, method: GrpcMethod<'a>) -> GrpcMethod<'a> {
        if self
            .served
            .contains(&format!("{}/{}", method.service, method.method))
        {
            method
        } else {
            UNKNOWN
        }
    }

    pub fn call_started(&self, method: GrpcMethod<'_>) {
        let method = self.labelled(method);
        self.started
            .with_label_values(&[method.grpc_type(), method.service, method.method])
            .inc();
    }

    pub fn call_handled(&self, method: GrpcMethod<'_>, code: tonic::Code, elapsed: Duration) {
        let method = self.labelled(method);
        let (kind, service, name) = (method.grpc_type(), method.service, method.method);
        self.handled
            .with_label_values(&[kind, service, name, code_name(code)])
            .inc();
        self.handling_seconds
            .with_label_values(&[kind, service, name])
            .observe(elapsed.as_secs_f64());
    }

    pub fn ingested(&self, outcome: IngestOutcome, transactions: u64) {
        let label = match outcome {
            IngestOutcome::Recorded => "recorded",
            IngestOutcome::Duplicate => "duplicate",
            IngestOutcome::Rejected => "rejected",
        };
        self.ingested
            .with_label_values(&[label])
            .inc_by(transactions);
    }

    /// The text exposition, with the model gauges read from the database
    /// at this moment (a scrape every few seconds is two indexed reads).
    /// While the database does not answer within [`MODEL_READ_TIMEOUT`],
    /// the model gauges are left out and the rest is served.
    pub async fn render(&self, storage: &Storage) -> String {
        let now = chrono::Utc::now();
        self.active_model_age.reset();
        self.last_fit_duration.reset();
        let active = tokio::time::timeout(MODEL_READ_TIMEOUT, storage.model(None));
        match active.await.unwrap_or(Ok(None)) {
            Ok(Some(active)) => self
                .active_model_age
                .with_label_values(&[&active.version.to_string()])
                .set((now - active.created_at).num_milliseconds() as f64 / 1e3),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "metrics: cannot read the active model"),
        }
        let latest = tokio::time::timeout(MODEL_READ_TIMEOUT, storage.latest_model());
        match latest.await.unwrap_or(Ok(None)) {
            Ok(Some(latest)) => self
                .last_fit_duration
                .with_label_values(&[&latest.version.to_string()])
                .set(latest.fit.fit_duration.as_secs_f64()),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "metrics: cannot read the latest model"),
        }
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "metrics: cannot encode");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// A status code as grpc-go spells it (`OK`, `Canceled`, ...), which is
/// what go-grpc-prometheus puts in `grpc_code`.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Binds the metrics port (port 0 picks a free one).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    use anyhow::Context;
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for metrics on {addr}"))
}

/// Serves `GET /metrics` until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    storage: Storage,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use axum::{routing::get, Router};
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let (metrics, storage) = (metrics.clone(), storage.clone());
            async move {
                (
                    [(
                        http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    metrics.render(&storage).await,
                )
            }
        }),
    );
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "metrics server failed");
    }
}
