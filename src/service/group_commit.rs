//! Group commit for single-transaction calls: concurrent RecordTransaction
//! calls are recorded together, in one database transaction per group, with
//! each call's outcome (recorded, duplicate, rejected) kept separate.
//! The groups come from [`Batcher`](super::batcher::Batcher). Calls whose
//! keys repeat within a group wait for a later round of the same group, so
//! each round holds distinct keys.

use std::collections::HashSet;

use super::batcher::{BackendError, Batcher, Call};
use crate::{
    domain::{Atomicity, Batch, BatchEntry, EntryOutcome, Transaction},
    storage::{RecordError, Storage},
};

/// One call's result. A rejection's index is the entry's place in its
/// group: the caller, whose only transaction it is, ignores it.
pub type Outcome = Result<EntryOutcome, BackendError>;

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
        self.batcher.call(transaction).await?
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
                    let _ = call.reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                let e = match e {
                    RecordError::Storage(e) => BackendError::from(e),
                    // EachOnItsOwn reports rejections per entry instead.
                    RecordError::Rejected(p) => BackendError::Internal(format!(
                        "a group recorded entry by entry was rejected as a whole: {p}"
                    )),
                };
                for call in round {
                    let _ = call.reply.send(Err(e.clone()));
                }
            }
        }
    }
}
