//! Deadlines: a call ends at the caller's `grpc-timeout` or at the
//! configured maximum, whichever is sooner, with DEADLINE_EXCEEDED. The
//! answer is sent at that moment; the handler's work is not dropped with
//! it: it runs in its own task (see [`detach`](super::detach)), learns
//! that its caller left, and either finishes (short calls, a fit already
//! started) or gives up at a safe point (a fit still waiting for its
//! turn). No database call is abandoned half-way. As everywhere in gRPC,
//! DEADLINE_EXCEEDED does not say the work was not done (a batch already
//! handed to a commit may still commit); a retry with the same transaction
//! ids is a duplicate, never a double.
//!
//! tonic itself also applies `grpc-timeout`, but answers CANCELLED; this
//! layer's deadline is taken first (inside tonic's call), so it fires
//! first and the caller sees the code gRPC specifies.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use http::{HeaderMap, Request, Response};
use tokio::time::{Instant, Sleep};
use tonic::{body::Body, Status};
use tower::{Layer, Service};

use super::refuse;

#[derive(Debug, Clone, Copy)]
pub struct DeadlineLayer {
    /// The longest any call may run; `None`: only the caller's deadline.
    max: Option<Duration>,
}

impl DeadlineLayer {
    pub fn new(max: Option<Duration>) -> Self {
        Self { max }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Deadline {
            inner,
            max: self.max,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
    max: Option<Duration>,
}

impl<S> Service<Request<Body>> for Deadline<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = WithDeadline<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let timeout = match (grpc_timeout(request.headers()), self.max) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // The instant is fixed now, not at the first poll, so that it is
        // never later than tonic's own timer for the same header.
        let sleep = timeout.map(|t| Box::pin(tokio::time::sleep_until(Instant::now() + t)));
        WithDeadline {
            inner: Box::pin(self.inner.call(request)),
            sleep,
        }
    }
}

pub struct WithDeadline<F> {
    inner: Pin<Box<F>>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<F, E> Future for WithDeadline<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(sleep) = self.sleep.as_mut() {
            if sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(refuse(Status::deadline_exceeded(
                    "the call's deadline passed before it finished",
                ))));
            }
        }
        self.inner.as_mut().poll(cx)
    }
}

/// The `grpc-timeout` header: up to 8 digits and a unit (H M S m u n).
fn grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let split = value.len().checked_sub(1)?;
    let (digits, unit) = value.split_at(split);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_units_and_malformed_values() {
        let parse = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("grpc-timeout", v.parse().unwrap());
            grpc_timeout(&h)
        };
        assert_eq!(parse("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse("9n"), Some(Duration::from_nanos(9)));
        for bad in ["", "S", "123456789S", "5x", "-5S", "5"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        assert_eq!(grpc_timeout(&HeaderMap::new()), None);
    }
}
