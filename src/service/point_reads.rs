//! The scoring fast path's reads: concurrent single-customer reads
//! (GetChurnRisk, GetCustomerValue) share one indexed `= ANY($1)` query per
//! group instead of one round trip each. Alone, a read goes straight
//! through; under load, a group forms while the previous ones run.
//!
//! Smart batching as in [`super::batcher`], without its dispatcher task
//! (issue 15, fourth session): a read queues itself, and whichever waiting
//! read gets one of the `slots` takes the queued reads (its own among them,
//! unless another group already took it) and runs their query in its own
//! task. So a group costs no hand-off to a dispatcher task and no task of
//! its own; only the other reads of the group are woken with their answer.
//! A group whose leading read is dropped unfinished (its caller's task
//! stopped) is moved into a task of its own and runs to its end
//! ([`RunToEnd`]), so the other reads of the group still get their answers.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
};

use tokio::sync::{oneshot, Semaphore};

use super::batcher::{BackendError, Call, ShuttingDown};
use crate::{
    domain::{CustomerId, CustomerSummary, Segmentation},
    run_to_end::RunToEnd,
    storage::Storage,
};

/// Most reads in one group.
const MAX_GROUP: usize = 128;

/// A customer's summary and its segmentation under a model version.
pub type Found = (CustomerSummary, Option<Segmentation>);
type Read = (CustomerId, Option<i64>);
type Answer = Result<Option<Found>, BackendError>;

#[derive(Clone, Debug)]
pub struct PointReads {
    inner: Arc<Inner>,
}

struct Inner {
    storage: Storage,
    /// Reads not yet taken into a group, oldest first.
    queued: Mutex<VecDeque<Call<Read, Answer>>>,
    /// Groups in flight at once.
    slots: Arc<Semaphore>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PointReads")
            .field("slots", &self.slots.available_permits())
            .finish_non_exhaustive()
    }
}

impl PointReads {
    /// `slots`: groups in flight at once. A group forms only while every
    /// slot is busy, so fewer slots make larger groups (less database work
    /// per read) and more slots shorter waits.
    pub fn start(storage: Storage, slots: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                storage,
                queued: Mutex::new(VecDeque::new()),
                slots: Arc::new(Semaphore::new(slots.max(1))),
            }),
        }
    }

    /// The customer's summary (`None`: nothing recorded) with its
    /// segmentation under `version`.
    pub async fn read(&self, id: CustomerId, version: Option<i64>) -> Answer {
        let (reply, mut answer) = oneshot::channel();
        self.inner.queue(Call {
            input: (id, version),
            reply,
        });
        loop {
            let slot = tokio::select! {
                biased;
                answer = &mut answer => return answer.map_err(|_| ShuttingDown)?,
                slot = self.inner.slots.clone().acquire_owned() => {
                    slot.map_err(|_| ShuttingDown)?
                }
            };
            let group = self.inner.take_group();
            if group.is_empty() {
                // Another group took this read: its answer comes from there.
                drop(slot);
                return answer.await.map_err(|_| ShuttingDown)?;
            }
            let storage = self.inner.storage.clone();
            // Polled in this read's task; dropped unfinished, it moves into
            // a task of its own and runs to its end.
            RunToEnd::new(Box::pin(async move {
                read_group(&storage, group).await;
                drop(slot);
            }))
            .await;
        }
    }
}

impl Inner {
    fn queue(&self, call: Call<Read, Answer>) {
        self.queued
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push_back(call);
    }

    /// Up to [`MAX_GROUP`] queued reads, oldest first.
    fn take_group(&self) -> Vec<Call<Read, Answer>> {
        let mut queued = self
            .queued
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let n = queued.len().min(MAX_GROUP);
        queued.drain(..n).collect()
    }
}

async fn read_group(storage: &Storage, group: Vec<Call<Read, Answer>>) {
    // One query per model version asked for: one, except around a refit.
    let mut by_version: HashMap<Option<i64>, Vec<Call<Read, Answer>>> = HashMap::new();
    for call in group {
        by_version.entry(call.input.1).or_default().push(call);
    }
    for (version, calls) in by_version {
        let ids: Vec<CustomerId> = calls.iter().map(|c| c.input.0.clone()).collect();
        match storage.summaries_with_segmentation(&ids, version).await {
            Ok(rows) => {
                let found: HashMap<CustomerId, Found> = rows
                    .into_iter()
                    .map(|row| (row.0.customer_id.clone(), row))
                    .collect();
                for call in calls {
                    let _ = call.reply.send(Ok(found.get(&call.input.0).cloned()));
                }
            }
            Err(e) => {
                let e = BackendError::from(e);
                for call in calls {
                    let _ = call.reply.send(Err(e.clone()));
                }
            }
        }
    }
}
