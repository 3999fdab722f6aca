//! Per call: a request id (the caller's `x-request-id`, else a new UUID,
//! echoed in the response headers), a tracing span carrying it so that
//! every log line of the call names it, one log line when the call ends
//! (method, code, milliseconds: ids only, never message contents; `debug`
//! unless the service failed the call), and the go-grpc-prometheus counters
//! and histogram in [`Metrics`].
//!
//! A call's status is in the response headers when it failed before any
//! message (trailers-only), else in the trailers at the end of the body; the
//! body is wrapped to see them. A call whose response is dropped unfinished
//! (the caller went away) counts as CANCELLED.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::Frame;
use tonic::{body::Body, Code};
use tower::{Layer, Service};
use tracing::{instrument::Instrumented, Instrument, Span};

use crate::grpc_method::GrpcMethod;
use crate::metrics::Metrics;

const REQUEST_ID: &str = "x-request-id";

#[derive(Clone)]
pub struct TelemetryLayer {
    metrics: Metrics,
}

impl TelemetryLayer {
    pub fn new(metrics: Metrics) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for TelemetryLayer {
    type Service = Telemetry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Telemetry {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Telemetry<S> {
    inner: S,
    metrics: Metrics,
}

impl<S> Service<Request<Body>> for Telemetry<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Traced<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let request_id = request_id(request.headers());
        let path = request.uri().path().to_owned();
        let method = GrpcMethod::of(&path);
        let span = tracing::info_span!(
            "grpc",
            request_id = request_id.to_str().unwrap_or_default(),
            service = method.service,
            method = method.method,
        );
        self.metrics.call_started(method);
        let inner = span.in_scope(|| self.inner.call(request));
        Traced {
            inner: Box::pin(inner.instrument(span.clone())),
            call: Some(Call {
                metrics: self.metrics.clone(),
                path,
                started: Instant::now(),
                span,
                request_id,
            }),
        }
    }
}

/// The caller's request id when it is a sensible header value, else a new one.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(REQUEST_ID)
        .filter(|v| {
            !v.is_empty() && v.len() <= 128 && v.as_bytes().iter().all(u8::is_ascii_graphic)
        })
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).expect("a UUID is ASCII")
        })
}

/// A call in progress, finished exactly once.
struct Call {
    metrics: Metrics,
    path: String,
    started: Instant,
    span: Span,
    request_id: HeaderValue,
}

impl Call {
    /// Counts the call and logs its end: at `info` when the service
    /// failed it (a fault to look into), else at `debug` (an access log
    /// for thousands of calls a second is opt-in: the metrics count them).
    fn finish(self, code: Code) {
        let elapsed = self.started.elapsed();
        self.metrics
            .call_handled(GrpcMethod::of(&self.path), code, elapsed);
        let elapsed_ms = elapsed.as_secs_f64() * 1e3;
        let fault = matches!(
            code,
            Code::Unknown
                | Code::Internal
                | Code::Unavailable
                | Code::DataLoss
                | Code::DeadlineExceeded
        );
        if fault {
            tracing::info!(parent: &self.span, grpc_code = ?code, elapsed_ms, "call failed");
        } else {
            tracing::debug!(parent: &self.span, grpc_code = ?code, elapsed_ms, "call finished");
        }
    }
}

fn status_of(headers: &HeaderMap) -> Option<Code> {
    headers
        .get("grpc-status")
        .map(|v| Code::from_bytes(v.as_bytes()))
}

pub struct Traced<F> {
    inner: Pin<Box<Instrumented<F>>>,
    call: Option<Call>,
}

impl<F, E> Future for Traced<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let result = std::task::ready!(self.inner.as_mut().poll(cx));
        let Some(call) = self.call.take() else {
            return Poll::Ready(result);
        };
        Poll::Ready(match result {
            Ok(mut response) => {
                response
                    .headers_mut()
                    .insert(REQUEST_ID, call.request_id.clone());
                match status_of(response.headers()) {
                    Some(code) => {
                        call.finish(code);
                        Ok(response)
                    }
                    None => Ok(response.map(|body| {
                        Body::new(Observed {
                            inner: body,
                            call: Some(call),
                        })
                    })),
                }
            }
            Err(e) => {
                call.finish(Code::Unknown);
                Err(e)
            }
        })
    }
}

impl<F> Drop for Traced<F> {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            call.finish(Code::Cancelled);
        }
    }
}

/// A response body that finishes its call at the trailers.
struct Observed {
    inner: Body,
    call: Option<Call>,
}

impl http_body::Body for Observed {
    type Data = tonic::codegen::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let frame = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        let code = match &frame {
            Some(Ok(f)) => f
                .trailers_ref()
                .map(|t| status_of(t).unwrap_or(Code::Unknown)),
            Some(Err(status)) => Some(status.code()),
            None => Some(Code::Unknown),
        };
        if let Some(code) = code {
            if let Some(call) = self.call.take() {
                call.finish(code);
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Observed {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            call.finish(Code::Cancelled);
        }
    }
}
