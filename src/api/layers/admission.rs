//! The global concurrency limit: at most N clvd calls run at once across
//! all connections, and a call beyond that is refused at once with
//! RESOURCE_EXHAUSTED (load shedding) instead of waiting in a queue that
//! grows with the overload. Health checks and reflection are not counted.
//!
//! tower's `ConcurrencyLimit` + `LoadShed` decide in `poll_ready`, before the
//! request (and so its path) is seen; a semaphore tried in `call` lets the
//! limit apply to clvd's own methods only.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use futures::future::{ready, Either, Ready};
use http::{Request, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::{body::Body, Status};
use tower::{Layer, Service};

use super::{refuse, GrpcMethod};

#[derive(Debug, Clone)]
pub struct AdmissionLayer {
    /// `None`: no limit.
    slots: Option<Arc<Semaphore>>,
    limit: usize,
}

impl AdmissionLayer {
    /// `limit` calls at once; 0 means no limit.
    pub fn new(limit: usize) -> Self {
        Self {
            slots: (limit > 0).then(|| Arc::new(Semaphore::new(limit))),
            limit,
        }
    }
}

impl<S> Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Admission {
            inner,
            slots: self.slots.clone(),
            limit: self.limit,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Admission<S> {
    inner: S,
    slots: Option<Arc<Semaphore>>,
    limit: usize,
}

impl<S> Service<Request<Body>> for Admission<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response<Body>, S::Error>>, Admitted<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let permit = match &self.slots {
            Some(slots) if GrpcMethod::of(request.uri().path()).is_clvd() => {
                match slots.clone().try_acquire_owned() {
                    Ok(permit) => Some(permit),
                    Err(_) => {
                        return Either::Left(ready(Ok(refuse(Status::resource_exhausted(
                            format!(
                                "clvd is at its limit of {} concurrent calls; retry with backoff",
                                self.limit
                            ),
                        )))))
                    }
                }
            }
            _ => None,
        };
        Either::Right(Admitted {
            inner: Box::pin(self.inner.call(request)),
            _permit: permit,
        })
    }
}

/// A running call holding its slot until the handler has answered.
pub struct Admitted<F> {
    inner: Pin<Box<F>>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl<F: Future> Future for Admitted<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}
