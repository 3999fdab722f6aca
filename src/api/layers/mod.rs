//! Tower layers around every gRPC call, outermost first: [`details`]
//! (every error status leaves with google.rpc.Status details),
//! [`telemetry`] (request id, span, Prometheus counters), [`guard`] (API
//! keys and scopes), [`admission`] (the global concurrency limit and each
//! caller's share of it, shedding the excess at once), [`deadline`] (the
//! caller's grpc-timeout, capped by the configured maximum) and [`detach`]
//! (the handler runs to its end, whoever stops waiting: in a task of its
//! own once its caller has left).
//! Each sees only the HTTP/2 request: the method's path and headers, never
//! the message.

pub mod admission;
pub mod deadline;
pub mod detach;
pub mod details;
pub mod guard;
pub mod telemetry;

/// The response for a call refused before it reached its handler: the
/// status's code and message, with their details.
fn refuse(status: tonic::Status) -> http::Response<tonic::body::Body> {
    crate::api::status::error(status.code(), status.message()).into_http()
}
