//! A call's work is never dropped half-way: the response future polls the
//! handler where it is (on the call's own HTTP/2 stream task, with no
//! hand-off to another task on the way), and when the caller goes away (it
//! cancels, its connection closes, or its deadline passes) and the response
//! future is dropped unfinished, the rest of the handler moves into a task
//! of its own, which runs it to its end and discards the answer
//! ([`RunToEnd`]). So no
//! database call is ever abandoned in the middle of a query, a COPY, an
//! open transaction or a lock wait, which would leave its pooled connection
//! in a state the next call trips over. (Until issue 15 every call's handler
//! was spawned up front: one more task and wakeup per call, for the rare
//! call whose caller leaves.)
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
    any::Any,
    future::Future,
    panic::AssertUnwindSafe,
    pin::Pin,
    task::{Context, Poll},
};

use futures::FutureExt;
use http::{Request, Response};
use tokio_util::sync::{CancellationToken, DropGuard};
use tonic::{body::Body, Status};
use tower::{Layer, Service};
use tracing::Span;

use super::{admission::CallSlot, refuse};
use crate::run_to_end::RunToEnd;

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
        let work = async move {
            let answer = work.await;
            drop(slot);
            answer
        };
        let work: Work<S::Error> = Box::pin(AssertUnwindSafe(work).catch_unwind());
        Detached {
            on_drop: Some(gone.drop_guard()),
            work: Some(
                RunToEnd::new(work)
                    .on_leftover(after_caller_left::<S::Error>)
                    // The call's span (entered by the telemetry layer), for
                    // the rest of the work if it has to move to a task of
                    // its own.
                    .in_span_when_moved(Span::current()),
            ),
        }
    }
}

/// A handler's work; a panic in it is caught (INTERNAL, logged).
type Work<E> =
    Pin<Box<dyn Future<Output = Result<Result<Response<Body>, E>, Box<dyn Any + Send>>> + Send>>;

/// The caller's side of a detached call: the handler polled in place,
/// moved into a task of its own by [`RunToEnd`] if dropped unfinished.
pub struct Detached<E: Send + 'static> {
    /// Fires [`CallerGone`] if this future is dropped before the answer.
    /// Declared before `work`, so that it fires before the rest of the work
    /// moves into its task.
    on_drop: Option<DropGuard>,
    /// `None` once finished.
    work: Option<RunToEnd<Work<E>>>,
}

impl<E: Send + 'static> Future for Detached<E> {
    type Output = Result<Response<Body>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(work) = self.work.as_mut() else {
            return Poll::Ready(Ok(refuse(Status::internal("internal error"))));
        };
        let answer = std::task::ready!(Pin::new(work).poll(cx));
        self.work = None;
        if let Some(guard) = self.on_drop.take() {
            guard.disarm();
        }
        Poll::Ready(answer.unwrap_or_else(|panic| {
            tracing::error!(panic = panic_message(&panic), "a call's handler panicked");
            Ok(refuse(Status::internal("internal error")))
        }))
    }
}

/// The output of a handler that ended after its caller left.
fn after_caller_left<E>(answer: Result<Result<Response<Body>, E>, Box<dyn Any + Send>>) {
    if let Err(panic) = answer {
        tracing::error!(
            panic = panic_message(&panic),
            "a call's handler panicked after its caller left"
        );
    }
}

/// A panic's message, when it is text.
fn panic_message(panic: &Box<dyn Any + Send>) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(not text)")
}

#[cfg(test)]
mod tests {
    use std::{convert::Infallible, sync::Arc, time::Duration};

    use tokio::sync::{mpsc, Notify};

    use super::*;

    /// The detach layer's answer to one request, `handler` behind it.
    async fn answer<S>(handler: S) -> Response<Body>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Send + 'static,
        S::Future: Send + 'static,
    {
        DetachLayer
            .layer(handler)
            .call(Request::new(Body::empty()))
            .await
            .expect("infallible")
    }

    /// A handler whose caller stops waiting (the response future is
    /// dropped while the handler waits) still runs to its end, and learns
    /// that its caller left.
    #[tokio::test]
    async fn a_call_whose_caller_left_runs_to_its_end_and_sees_caller_gone() {
        let release = Arc::new(Notify::new());
        let (started, mut started_rx) = mpsc::unbounded_channel();
        let (done, mut done_rx) = mpsc::unbounded_channel();
        let handler = tower::service_fn({
            let release = release.clone();
            move |request: Request<Body>| {
                let gone = request.extensions().get::<CallerGone>().cloned();
                let (release, started, done) = (release.clone(), started.clone(), done.clone());
                async move {
                    let _ = started.send(());
                    release.notified().await;
                    let _ = done.send(gone.map(|g| g.token().is_cancelled()));
                    Ok::<_, Infallible>(Response::new(Body::empty()))
                }
            }
        });
        let mut detach = DetachLayer.layer(handler);
        let call = detach.call(Request::new(Body::empty()));
        let waited = tokio::time::timeout(Duration::from_millis(50), call).await;
        assert!(waited.is_err(), "the handler answered before its release");
        assert_eq!(
            started_rx.recv().await,
            Some(()),
            "the handler never started"
        );
        release.notify_one();
        let finished = tokio::time::timeout(Duration::from_secs(5), done_rx.recv()).await;
        assert_eq!(
            finished.expect("the handler did not run to its end after its caller left"),
            Some(Some(true)),
            "the handler ran to its end but did not see CallerGone fired"
        );
    }

    /// A call answered while its caller waits is answered as the handler
    /// answered, and CallerGone never fires for it.
    #[tokio::test]
    async fn a_call_answered_in_time_keeps_its_answer_and_caller_gone_stays_unfired() {
        let (seen, mut seen_rx) = mpsc::unbounded_channel();
        let handler = tower::service_fn(move |request: Request<Body>| {
            let gone = request.extensions().get::<CallerGone>().cloned();
            let seen = seen.clone();
            async move {
                tokio::task::yield_now().await;
                let _ = seen.send(gone);
                let mut response = Response::new(Body::empty());
                response
                    .headers_mut()
                    .insert("x-answer", http::HeaderValue::from_static("handler"));
                Ok::<_, Infallible>(response)
            }
        });
        let response = answer(handler).await;
        assert_eq!(
            response.headers().get("x-answer").map(|v| v.as_bytes()),
            Some(&b"handler"[..])
        );
        let gone = seen_rx.recv().await.flatten().expect("CallerGone is added");
        assert!(
            !gone.token().is_cancelled(),
            "CallerGone fired for an answered call"
        );
    }

    /// A handler that panics while its caller waits is answered INTERNAL.
    #[tokio::test]
    async fn a_handler_that_panics_is_answered_internal() {
        let handler = tower::service_fn(|_: Request<Body>| async {
            let fail = true;
            if fail {
                panic!("a handler's bug");
            }
            Ok::<_, Infallible>(Response::new(Body::empty()))
        });
        let response = answer(handler).await;
        assert_eq!(
            response.headers().get("grpc-status").map(|v| v.as_bytes()),
            Some(&b"13"[..])
        );
    }
}
