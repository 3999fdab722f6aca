//! Group commit for single-transaction calls: concurrent RecordTransaction
//! calls are recorded together, in one database transaction per group, with
//! each call's outcome (recorded, duplicate, rejected) kept separate.
//!
//! A dispatcher takes whatever calls are waiting, up to `max_group`, as soon
//! as one of `max_in_flight` database slots is free: one call alone goes
//! straight through (no added delay); under load, groups grow by
//! themselves. Calls whose keys repeat within a group wait for a later round
//! of the same group, so each round holds distinct keys.

use std::{collections::HashSet, sync::Arc};

use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::{
    domain::{Atomicity, Batch, BatchEntry, EntryOutcome, PlanError, Transaction},
    storage::{RecordError, Storage, StorageError},
};

/// One call's result.
pub type Outcome = Result<EntryOutcome, StorageError>;

struct Call {
    transaction: Transaction,
    reply: oneshot::Sender<Outcome>,
}

#[derive(Clone, Debug)]
pub struct GroupCommit {
    calls: mpsc::Sender<Call>,
}

impl GroupCommit {
    /// Starts the dispatcher; it stops when the last handle is dropped.
    pub fn start(storage: Storage, max_in_flight: usize, max_group: usize) -> Self {
        let (calls, rx) = mpsc::channel(max_group * max_in_flight * 4);
        tokio::spawn(dispatch(
            storage,
            rx,
            Arc::new(Semaphore::new(max_in_flight)),
            max_group,
        ));
        Self { calls }
    }

    /// Records one transaction as part of the next group.
    pub async fn record(&self, transaction: Transaction) -> Outcome {
        let (reply, outcome) = oneshot::channel();
        if self.calls.send(Call { transaction, reply }).await.is_err() {
            return Err(StorageError::Unavailable(sqlx::Error::PoolClosed));
        }
        outcome
            .await
            .unwrap_or(Err(StorageError::Unavailable(sqlx::Error::PoolClosed)))
    }
}

async fn dispatch(
    storage: Storage,
    mut rx: mpsc::Receiver<Call>,
    slots: Arc<Semaphore>,
    max_group: usize,
) {
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
        let storage = storage.clone();
        tokio::spawn(async move {
            record_group(&storage, group).await;
            drop(slot);
        });
    }
}

async fn record_group(storage: &Storage, mut pending: Vec<Call>) {
    while !pending.is_empty() {
        // This round: the first call of each key; repeats wait a round.
        let mut keys = HashSet::new();
        let (round, later): (Vec<Call>, Vec<Call>) = pending.into_iter().partition(|c| {
            keys.insert((
                c.transaction.customer_id.clone(),
                c.transaction.transaction_id.clone(),
            ))
        });
        pending = later;
        let batch = Batch {
            entries: round
                .iter()
                .enumerate()
                .map(|(index, c)| BatchEntry {
                    index,
                    transaction: c.transaction.clone(),
                })
                .collect(),
            repeats: 0,
        };
        match storage.record_batch(&batch, Atomicity::EachOnItsOwn).await {
            // One outcome per entry, in entry order.
            Ok(done) => {
                for (call, (_, outcome)) in round.into_iter().zip(done.outcomes) {
                    let _ = call.reply.send(Ok(renumber(outcome)));
                }
            }
            Err(e) => {
                let e = match e {
                    RecordError::Storage(e) => e,
                    // EachOnItsOwn reports rejections per entry instead.
                    RecordError::Rejected(p) => {
                        StorageError::Database(sqlx::Error::Protocol(p.to_string()))
                    }
                };
                for call in round {
                    let _ = call.reply.send(Err(same_kind(&e)));
                }
            }
        }
    }
}

/// A rejection names the call's own (only) transaction: index 0.
fn renumber(outcome: EntryOutcome) -> EntryOutcome {
    match outcome {
        EntryOutcome::Rejected(e) => EntryOutcome::Rejected(match e {
            PlanError::Conflict { .. } => PlanError::Conflict { index: 0 },
            PlanError::UnknownRefundTarget { .. } => PlanError::UnknownRefundTarget { index: 0 },
            PlanError::RefundOfRefund { .. } => PlanError::RefundOfRefund { index: 0 },
            PlanError::OverRefund { remaining, .. } => PlanError::OverRefund {
                index: 0,
                remaining,
            },
        }),
        other => other,
    }
}

/// Every call of a failed group gets an error of the same kind (the
/// status it maps to is what matters; the cause was logged once).
fn same_kind(e: &StorageError) -> StorageError {
    match e {
        StorageError::Unavailable(cause) => StorageError::Unavailable(sqlx::Error::Protocol(
            format!("database unavailable: {cause}"),
        )),
        other => StorageError::Database(sqlx::Error::Protocol(other.to_string())),
    }
}
