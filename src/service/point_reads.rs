//! The scoring fast path's reads: concurrent single-customer reads
//! (GetChurnRisk, GetCustomerValue) share one indexed `= ANY($1)` query per
//! group instead of one round trip each. Alone, a read goes straight
//! through; under load, a group forms while the previous ones run.

use std::collections::HashMap;

use super::batcher::{BackendError, Batcher, Call};
use crate::{
    domain::{CustomerId, CustomerSummary, Segmentation},
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
    batcher: Batcher<Read, Answer>,
}

impl PointReads {
    /// `slots`: groups in flight at once. A group forms only while every
    /// slot is busy, so fewer slots make larger groups (less database work
    /// per read) and more slots shorter waits.
    pub fn start(storage: Storage, slots: usize) -> Self {
        let batcher = Batcher::start(slots, MAX_GROUP, move |group| {
            let storage = storage.clone();
            async move { read_group(&storage, group).await }
        });
        Self { batcher }
    }

    /// The customer's summary (`None`: nothing recorded) with its
    /// segmentation under `version`.
    pub async fn read(&self, id: CustomerId, version: Option<i64>) -> Answer {
        self.batcher.call((id, version)).await?
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
