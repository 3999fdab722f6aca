//! A future that is polled where it is and, if it is dropped unfinished,
//! moves into a task of its own and runs to its end there.
//!
//! Two places need this: the detach layer (a call's handler keeps running
//! when its caller leaves, [`crate::api::layers::detach`]) and the scoring
//! point reads (a group's query keeps running when the read that leads it
//! is dropped, [`crate::service::point_reads`]). Polling in place costs no
//! task and no wake-up in the common case where the future is awaited to
//! its end; only the rare unfinished drop pays for a spawned task. Neither
//! tokio nor `futures` has this (tokio's `spawn` always makes a task; a
//! future's drop can only cancel it), hence this small type.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use tracing::{Instrument, Span};

/// See the module documentation. `Output` is what the future answers when
/// awaited to its end; when it ended in a task of its own, its output goes
/// to the `leftover` function instead (by default it is discarded).
///
/// `F` is `Unpin` (typically `Pin<Box<...>>`, which the caller boxes once)
/// so that the rest can move into a task when dropped.
pub struct RunToEnd<F>
where
    F: Future + Unpin + Send + 'static,
    F::Output: Send + 'static,
{
    /// `None` once finished.
    run: Option<F>,
    /// Where the output goes when the rest ran in a task of its own.
    leftover: fn(F::Output),
    /// The span the rest runs in, in a task of its own.
    span: Span,
}

impl<F> RunToEnd<F>
where
    F: Future + Unpin + Send + 'static,
    F::Output: Send + 'static,
{
    /// `run`, to be polled in place; dropped unfinished, its rest runs in a
    /// task of its own and its output is discarded.
    pub fn new(run: F) -> Self {
        Self {
            run: Some(run),
            leftover: drop,
            span: Span::none(),
        }
    }

    /// What is done with the output when the rest ran in a task of its own
    /// (for example, logging a caught panic).
    pub fn on_leftover(mut self, leftover: fn(F::Output)) -> Self {
        self.leftover = leftover;
        self
    }

    /// The span the rest runs in when it moves into a task of its own (it
    /// is polled in place in whatever span its owner is polled in).
    pub fn in_span_when_moved(mut self, span: Span) -> Self {
        self.span = span;
        self
    }

    /// Whether it has run to its end in place.
    pub fn is_finished(&self) -> bool {
        self.run.is_none()
    }
}

impl<F> Future for RunToEnd<F>
where
    F: Future + Unpin + Send + 'static,
    F::Output: Send + 'static,
{
    type Output = F::Output;

    /// # Panics
    /// When polled again after it answered, as `async` blocks do.
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let Some(run) = self.run.as_mut() else {
            panic!("RunToEnd polled after it answered");
        };
        let answer = std::task::ready!(Pin::new(run).poll(cx));
        self.run = None;
        Poll::Ready(answer)
    }
}

impl<F> Drop for RunToEnd<F>
where
    F: Future + Unpin + Send + 'static,
    F::Output: Send + 'static,
{
    fn drop(&mut self) {
        let Some(run) = self.run.take() else {
            return;
        };
        let leftover = self.leftover;
        let rest = async move { leftover(run.await) }.instrument(self.span.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(rest);
            }
            // Only outside any runtime (the process is ending): nothing
            // can run the rest any more.
            Err(_) => tracing::warn!("unfinished work was dropped: no runtime to finish it"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{
            atomic::{AtomicUsize, Ordering},
            Arc,
        },
        time::Duration,
    };

    use tokio::sync::oneshot;

    use super::RunToEnd;

    static LEFTOVERS: AtomicUsize = AtomicUsize::new(0);

    /// Dropped after it started and before its end, the rest still runs,
    /// and its output goes to the leftover function.
    #[tokio::test]
    async fn dropped_unfinished_it_runs_to_its_end_and_hands_over_its_output() {
        let (go, wait) = oneshot::channel::<()>();
        let (done, finished) = oneshot::channel::<&str>();
        let mut run = RunToEnd::new(Box::pin(async move {
            let _ = wait.await;
            let _ = done.send("answered");
            7usize
        }))
        .on_leftover(|n| {
            LEFTOVERS.fetch_add(n, Ordering::SeqCst);
        });
        let polled = tokio::time::timeout(Duration::from_millis(20), &mut run).await;
        assert!(polled.is_err(), "the run finished before it was let go");
        assert!(!run.is_finished());
        drop(run);
        go.send(()).expect("the moved run still waits");
        let answer = tokio::time::timeout(Duration::from_secs(5), finished)
            .await
            .expect("the moved run ended")
            .expect("the moved run answered");
        assert_eq!(answer, "answered");
        for _ in 0..500 {
            if LEFTOVERS.load(Ordering::SeqCst) == 7 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the leftover function never got the output");
    }

    /// Awaited to its end, it answers in place and is not run again when
    /// dropped.
    #[tokio::test]
    async fn awaited_to_its_end_it_answers_in_place_and_runs_once() {
        let runs = Arc::new(AtomicUsize::new(0));
        let run = RunToEnd::new(Box::pin({
            let runs = runs.clone();
            async move { runs.fetch_add(1, Ordering::SeqCst) + 41 }
        }));
        assert_eq!(run.await, 41);
        tokio::task::yield_now().await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
