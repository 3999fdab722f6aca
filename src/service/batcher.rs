//! Smart batching of concurrent calls: a dispatcher takes whatever calls
//! are waiting, up to `max_group`, as soon as one of `max_in_flight` slots
//! is free, and hands them to one database round as a group. One call alone
//! goes straight through (no timer, no added delay); under load, groups
//! grow by themselves. Group commit (writes) uses it; the scoring reads
//! share its [`Call`] and errors but form their groups without a
//! dispatcher task (`point_reads`).
//!
//! Slots beyond the first may be held back by a patience
//! ([`Batcher::start`]): a group then starts on a second slot only
//! when the call at its head has waited that long for the first. Under
//! steady load that keeps one group in flight at a time (larger groups,
//! less database work per call), and a group stuck behind a lock still
//! holds back the next one for no longer than the patience.

use std::{future::Future, sync::Arc, time::Duration};

use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

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
    /// its calls; at most `max_in_flight` groups run at once, and a group
    /// takes a slot other than the first only once the call at its head has
    /// waited `patience` for the first slot (at once with `Duration::ZERO`).
    pub fn start<F, Fut>(max_in_flight: usize, patience: Duration, max_group: usize, run: F) -> Self
    where
        F: Fn(Vec<Call<I, O>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let max_in_flight = max_in_flight.max(1);
        let (calls, rx) = mpsc::channel(max_group * max_in_flight * 4);
        let slots = Slots {
            first: Arc::new(Semaphore::new(1)),
            others: Arc::new(Semaphore::new(max_in_flight - 1)),
            patience,
        };
        tokio::spawn(dispatch(rx, slots, max_group, run));
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

/// The slots groups run in: the first, and the others that a group takes
/// only after `patience`.
struct Slots {
    first: Arc<Semaphore>,
    others: Arc<Semaphore>,
    patience: Duration,
}

impl Slots {
    /// Waits for a slot; `None` if the semaphores were closed (never).
    async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        let other = async {
            if !self.patience.is_zero() {
                tokio::time::sleep(self.patience).await;
            }
            self.others.clone().acquire_owned().await
        };
        tokio::select! {
            biased;
            first = self.first.clone().acquire_owned() => first.ok(),
            other = other => other.ok(),
        }
    }
}

async fn dispatch<I, O, F, Fut>(
    mut rx: mpsc::Receiver<Call<I, O>>,
    slots: Slots,
    max_group: usize,
    run: F,
) where
    F: Fn(Vec<Call<I, O>>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    while let Some(first) = rx.recv().await {
        let Some(slot) = slots.acquire().await else {
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::sync::Notify;

    use super::*;

    /// A batcher whose group holding call 0 waits for `release`; every
    /// call is answered with the instant its group started.
    fn batcher(slots: usize, patience: Duration, release: Arc<Notify>) -> Batcher<u32, Instant> {
        Batcher::start(slots, patience, 8, move |group: Vec<Call<u32, Instant>>| {
            let release = release.clone();
            async move {
                let started = Instant::now();
                if group.iter().any(|c| c.input == 0) {
                    release.notified().await;
                }
                for call in group {
                    let _ = call.reply.send(started);
                }
            }
        })
    }

    /// How long call 1 waits for its group to start while call 0's group
    /// is stuck.
    async fn held_back(slots: usize, patience: Duration) -> Duration {
        let release = Arc::new(Notify::new());
        let b = batcher(slots, patience, release.clone());
        let stuck = tokio::spawn({
            let b = b.clone();
            async move { b.call(0).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let asked = Instant::now();
        let started = b.call(1).await.expect("answered");
        release.notify_one();
        stuck.await.expect("joined").expect("answered");
        started.duration_since(asked)
    }

    #[tokio::test]
    async fn a_second_slot_waits_for_the_patience() {
        let waited = held_back(2, Duration::from_millis(300)).await;
        assert!(waited >= Duration::from_millis(290), "{waited:?}");
        assert!(waited < Duration::from_secs(3), "{waited:?}");
    }

    #[tokio::test]
    async fn without_patience_a_second_slot_is_taken_at_once() {
        let waited = held_back(2, Duration::ZERO).await;
        assert!(waited < Duration::from_millis(250), "{waited:?}");
    }
}
