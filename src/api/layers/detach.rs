//! A call's work is never dropped half-way: the handler runs in a task of
//! its own, and the response future only awaits it. When the caller goes
//! away (it cancels, its connection closes, or its deadline passes), the
//! response future is dropped but the task runs on to its end and its
//! answer is discarded. So no database call is ever abandoned in the middle
//! of a query, a COPY, an open transaction or a lock wait, which would
//! leave its pooled connection in a state the next call trips over.
//!
//! The call's admission slot ([`CallSlot`]) moves into the task, so a slot
//! is free only once the work has really ended: callers that give up
//! cannot pile up background work beyond the concurrency limit.
//!
//! Long work learns that its caller left from [`CallerGone`] (in the
//! request's extensions), fired when the response future is dropped, and
//! checks it at safe points only: a FitModel still waiting for its turn
//! gives up without starting.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use http::{Request, Response};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};
use tonic::{body::Body, Status};
use tower::{Layer, Service};
use tracing::Instrument;

use super::{admission::CallSlot, refuse};

/// Fired when the caller no longer waits for the answer. Handlers find it
/// in the request's extensions; absent (a handler called directly), it
/// never fires.
#[derive(Debug, Clone, Default)]
pub struct CallerGone(CancellationToken);

impl CallerGone {
    /// The token that long work checks between its steps.
    pub fn token(&self) -> &CancellationToken {
        &self.0
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct DetachLayer;

impl<S> Layer<S> for DetachLayer {
    type Service = Detach<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Detach { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Detach<S> {
    inner: S,
}

impl<S> Service<Request<Body>> for Detach<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Detached<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let gone = CancellationToken::new();
        request.extensions_mut().insert(CallerGone(gone.clone()));
        let slot = request.extensions_mut().remove::<CallSlot>();
        let work = self.inner.call(request);
        // The call's span (entered by the telemetry layer) goes with it.
        let task = tokio::spawn(
            async move {
                let answer = work.await;
                drop(slot);
                answer
            }
            .instrument(tracing::Span::current()),
        );
        Detached {
            task,
            on_drop: Some(gone.drop_guard()),
        }
    }
}

/// The caller's side of a detached call.
pub struct Detached<E> {
    task: JoinHandle<Result<Response<Body>, E>>,
    /// Fires [`CallerGone`] if this future is dropped before the answer.
    on_drop: Option<DropGuard>,
}

impl<E> Future for Detached<E> {
    type Output = Result<Response<Body>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let joined = std::task::ready!(Pin::new(&mut self.task).poll(cx));
        if let Some(guard) = self.on_drop.take() {
            guard.disarm();
        }
        Poll::Ready(joined.unwrap_or_else(|e| {
            tracing::error!(error = %e, "a call's handler panicked");
            Ok(refuse(Status::internal("internal error")))
        }))
    }
}
