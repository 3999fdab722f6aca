//! Group commit for single-transaction calls: concurrent RecordTransaction
//! calls are recorded together, in one database transaction per group, with
//! each call's outcome (recorded, duplicate, rejected) kept separate.
//! The groups come from [`Batcher`](super::batcher::Batcher). Calls whose
//! keys repeat within a group wait for a later round of the same group, so
//! each round holds distinct keys. A group takes the second of its slots
//! only after [`PATIENCE`].

use std::{collections::HashSet, time::Duration};

use super::batcher::{BackendError, Batcher, Call};
use crate::{
    domain::{Atomicity, Batch, BatchEntry, EntryOutcome, Transaction},
    storage::{RecordError, Storage},
};

/// How long the call at the head of the next group waits for the first
/// slot before the group takes another. Under steady load a group's round
/// takes about 4 ms, so groups run one at a time and grow (PostgreSQL's CPU
/// per call fell from about 125 to 90 µs, clvd's from 82 to 71 µs, medians
/// of alternating small ingest bench runs; docs/benchmarks.md, issue 15,
/// fourth session); a group stuck behind a customer's lock (an import
/// batch's) holds the next one back for no longer than this.
const PATIENCE: Duration = Duration::from_millis(10);

/// One call's result. A rejection's index is the entry's place in its
/// group: the caller, whose only transaction it is, ignores it.
pub type Outcome = Result<EntryOutcome, BackendError>;

#[derive(Clone, Debug)]
pub struct GroupCommit {
    batcher: Batcher<Transaction, Outcome>,
}

impl GroupCommit {
    /// Starts the dispatcher; it stops when the last handle is dropped.
    /// Slots beyond the first are taken only after [`PATIENCE`].
    pub fn start(storage: Storage, max_in_flight: usize, max_group: usize) -> Self {
        let batcher = Batcher::start(max_in_flight, PATIENCE, max_group, move |group| {
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
        // This round: the first call of each key; repeats wait a round. The
        // inputs move into the batch (not copied); the replies stay in entry
        // order.
        let mut keys = HashSet::with_capacity(pending.len());
        let mut later = Vec::new();
        let mut entries = Vec::with_capacity(pending.len());
        let mut replies = Vec::with_capacity(pending.len());
        for call in pending {
            let key = (
                call.input.customer_id.clone(),
                call.input.transaction_id.clone(),
            );
            if !keys.insert(key) {
                later.push(call);
                continue;
            }
            entries.push(BatchEntry {
                index: entries.len(),
                transaction: call.input,
            });
            replies.push(call.reply);
        }
        pending = later;
        let batch = Batch {
            entries,
            repeats: 0,
        };
        match storage.record_batch(&batch, Atomicity::EachOnItsOwn).await {
            // One outcome per entry, in entry order.
            Ok(done) => {
                for (reply, (_, outcome)) in replies.into_iter().zip(done.outcomes) {
                    let _ = reply.send(Ok(outcome));
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
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}
