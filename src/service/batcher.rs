//! Smart batching of concurrent calls: a dispatcher takes whatever calls
//! are waiting, up to `max_group`, as soon as one of `max_in_flight` slots
//! is free, and hands them to one database round as a group. One call alone
//! goes straight through (no timer, no added delay); under load, groups
//! grow by themselves. Group commit (writes) and the scoring reads use it.

use std::{future::Future, sync::Arc};

use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::storage::StorageError;

/// The dispatcher is gone: the service is shutting down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the service is shutting down")]
pub struct ShuttingDown;

/// What went wrong below a use-case that batches its calls (ingest,
/// scoring). A group's failure is the same for every call of the group,
/// so it is `Clone`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    /// The dispatcher is gone (UNAVAILABLE).
    #[error(transparent)]
    ShuttingDown(#[from] ShuttingDown),
    /// Storage failed (shared: `StorageError` is not `Clone`).
    #[error(transparent)]
    Storage(Arc<StorageError>),
    /// Storage answered against its own contract (INTERNAL; logged, not
    /// sent).
    #[error("{0}")]
    Internal(String),
}

impl From<StorageError> for BackendError {
    fn from(e: StorageError) -> Self {
        BackendError::Storage(Arc::new(e))
    }
}

/// A call waiting in a group: its input, and where its answer goes.
pub struct Call<I, O> {
    pub input: I,
    pub reply: oneshot::Sender<O>,
}

/// The handle callers share; the dispatcher stops when the last is dropped.
pub struct Batcher<I, O> {
    calls: mpsc::Sender<Call<I, O>>,
}

impl<I, O> Clone for Batcher<I, O> {
    fn clone(&self) -> Self {
        Self {
            calls: self.calls.clone(),
        }
    }
}

impl<I, O> std::fmt::Debug for Batcher<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// Starts the dispatcher. `run` handles one group and answers each of
    /// its calls; at most `max_in_flight` groups run at once.
    pub fn start<F, Fut>(max_in_flight: usize, max_group: usize, run: F) -> Self
    where
        F: Fn(Vec<Call<I, O>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (calls, rx) = mpsc::channel(max_group * max_in_flight * 4);
        tokio::spawn(dispatch(
            rx,
            Arc::new(Semaphore::new(max_in_flight.max(1))),
            max_group,
            run,
        ));
        Self { calls }
    }

    /// Queues `input` for the next group and waits for its answer;
    /// [`ShuttingDown`] when the dispatcher is gone.
    pub async fn call(&self, input: I) -> Result<O, ShuttingDown> {
        let (reply, answer) = oneshot::channel();
        self.calls
            .send(Call { input, reply })
            .await
            .map_err(|_| ShuttingDown)?;
        answer.await.map_err(|_| ShuttingDown)
    }
}

async fn dispatch<I, O, F, Fut>(
    mut rx: mpsc::Receiver<Call<I, O>>,
    slots: Arc<Semaphore>,
    max_group: usize,
    run: F,
) where
    F: Fn(Vec<Call<I, O>>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    while let Some(first) = rx.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut group = vec![first];
        while group.len() < max_group {
            match rx.try_recv() {
                Ok(call) => group.push(call),
                Err(_) => break,
            }
        }
        let round = run(group);
        tokio::spawn(async move {
            round.await;
            drop(slot);
        });
    }
}
