//! Group commit for single-transaction calls: concurrent RecordTransaction
//! calls are recorded together, in one database transaction per group, with
//! each call's outcome (recorded, duplicate, rejected) kept separate.
//! The groups come from [`Batcher`](super::batcher::Batcher). Calls whose
//! keys repeat within a group wait for a later round of the same group, so
//! each round holds distinct keys.

use std::collections::HashSet;

use super::batcher::{same_kind, Batcher, Call};
use crate::{
    domain::{Atomicity, Batch, BatchEntry, EntryOutcome, PlanError, Transaction},
    storage::{RecordError, Storage, StorageError},
};

/// One call's result.
pub type Outcome = Result<EntryOutcome, StorageError>;

#[derive(Clone, Debug)]
pub struct GroupCommit {
    batcher: Batcher<Transaction, Outcome>,
}

impl GroupCommit {
    /// Starts the dispatcher; it stops when the last handle is dropped.
    pub fn start(storage: Storage, max_in_flight: usize, max_group: usize) -> Self {
        let batcher = Batcher::start(max_in_flight, max_group, move |group| {
            let storage = storage.clone();
            async move { record_group(&storage, group).await }
        });
        Self { batcher }
    }

    /// Records one transaction as part of the next group.
    pub async fn record(&self, transaction: Transaction) -> Outcome {
        self.batcher
            .call(transaction)
            .await
            .unwrap_or(Err(StorageError::Unavailable(sqlx::Error::PoolClosed)))
    }
}

async fn record_group(storage: &Storage, mut pending: Vec<Call<Transaction, Outcome>>) {
    while !pending.is_empty() {
        // This round: the first call of each key; repeats wait a round.
        let mut keys = HashSet::new();
        let (round, later): (Vec<_>, Vec<_>) = pending.into_iter().partition(|c| {
            keys.insert((c.input.customer_id.clone(), c.input.transaction_id.clone()))
        });
        pending = later;
        let batch = Batch {
            entries: round
                .iter()
                .enumerate()
                .map(|(index, c)| BatchEntry {
                    index,
                    transaction: c.input.clone(),
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
            PlanError::TotalOutOfRange { what, .. } => {
                PlanError::TotalOutOfRange { index: 0, what }
            }
        }),
        other => other,
    }
}
