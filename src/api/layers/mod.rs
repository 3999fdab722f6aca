//! Tower layers around every gRPC call, outermost first: [`details`]
//! (every error status leaves with google.rpc.Status details),
//! [`telemetry`] (request id, span, Prometheus counters), [`guard`] (API
//! keys and scopes), [`admission`] (the global concurrency limit and each
//! caller's share of it, shedding the excess at once), [`deadline`] (the
//! caller's grpc-timeout, capped by the configured maximum) and [`detach`]
//! (the handler runs in its own task, to its end, whoever stops waiting).
//! Each sees only the HTTP/2 request: the method's path and headers, never
//! the message.

pub mod admission;
pub mod deadline;
pub mod detach;
pub mod details;
pub mod guard;
pub mod telemetry;

/// A gRPC method as named by the request path `/{service}/{method}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcMethod<'a> {
    pub service: &'a str,
    pub method: &'a str,
}

impl<'a> GrpcMethod<'a> {
    /// Any path that is not `/{service}/{method}` gives empty names (and is
    /// treated as an unknown method).
    pub fn of(path: &'a str) -> Self {
        let (service, method) = path
            .strip_prefix('/')
            .and_then(|p| p.split_once('/'))
            .unwrap_or(("", ""));
        Self { service, method }
    }

    /// The service's own package: the methods the limits apply to. Health
    /// checks and reflection stay answerable under any load, so that
    /// probes do not kill a busy replica.
    pub fn is_clvd(&self) -> bool {
        self.service.starts_with("clv.v1.")
    }

    /// Streaming shape, as the `grpc_type` label of go-grpc-prometheus.
    pub fn grpc_type(&self) -> &'static str {
        match (self.service, self.method) {
            ("clv.v1.IngestService", "ImportTransactions") => "client_stream",
            ("grpc.health.v1.Health", "Watch") => "server_stream",
            (
                "grpc.reflection.v1.ServerReflection" | "grpc.reflection.v1alpha.ServerReflection",
                _,
            ) => "bidi_stream",
            _ => "unary",
        }
    }
}

/// The response for a call refused before it reached its handler: the
/// status's code and message, with their details.
fn refuse(status: tonic::Status) -> http::Response<tonic::body::Body> {
    crate::api::status::error(status.code(), status.message()).into_http()
}
