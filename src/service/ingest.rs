//! Recording transactions and erasing customers.

use super::{batcher::BackendError, group_commit::GroupCommit};
use crate::{
    domain::{
        dedupe_batch, AcquisitionSpend, Atomicity, CustomerId, EntryOutcome, Feedback,
        FieldViolation, IngestRules, PlanError, Transaction,
    },
    storage::{DeletedCustomer, RecordError, Storage, StorageError, Written},
};

/// Most single calls recorded in one database transaction.
const MAX_GROUP: usize = 256;

/// Which transaction of a call an error is about: `None` for the call's
/// only one (RecordTransaction), `Some(i)` for entry `i` of a batch. The
/// API turns it into the request's field path, in one place.
pub type Entry = Option<usize>;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// A transaction that can never be recorded (INVALID_ARGUMENT); the
    /// violation's field is relative to the transaction (`amount`, or
    /// empty for the transaction as a whole).
    #[error("transaction {entry:?}: {}: {}", violation.field, violation.description)]
    Rejected {
        entry: Entry,
        violation: FieldViolation,
    },
    /// A key taken by other content (ALREADY_EXISTS): a transaction's
    /// (`customer/transaction`; `entry` says which), a feedback answer's or
    /// a spend record's (`entry` is `None`). `what` names it for the caller.
    #[error("{what} was already recorded with other content")]
    AlreadyExists { entry: Entry, what: String },
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl From<StorageError> for IngestError {
    fn from(e: StorageError) -> Self {
        IngestError::Backend(e.into())
    }
}

/// What recording one transaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    pub duplicate: bool,
}

/// What recording a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRecorded {
    pub recorded: usize,
    /// Already recorded with the same content, or repeated within the batch.
    pub duplicates: usize,
}

/// The ingest use-case: validated transactions in, exactly-once storage.
#[derive(Clone, Debug)]
pub struct Ingest {
    storage: Storage,
    rules: IngestRules,
    group_commit: GroupCommit,
}

impl Ingest {
    /// `group_commit_slots`: database transactions that grouped single
    /// calls may hold at once.
    pub fn new(storage: Storage, rules: IngestRules, group_commit_slots: usize) -> Self {
        let group_commit =
            GroupCommit::start(storage.clone(), group_commit_slots.max(1), MAX_GROUP);
        Self {
            storage,
            rules,
            group_commit,
        }
    }

    pub fn rules(&self) -> &IngestRules {
        &self.rules
    }

    /// Records one transaction, grouped with concurrent calls into one
    /// commit; its outcome is its own.
    pub async fn record(&self, transaction: Transaction) -> Result<Recorded, IngestError> {
        let key = format!("{}/{}", transaction.customer_id, transaction.transaction_id);
        match self.group_commit.record(transaction).await? {
            EntryOutcome::Recorded => Ok(Recorded { duplicate: false }),
            EntryOutcome::Duplicate => Ok(Recorded { duplicate: true }),
            // Its index is its place in the group, not in the call.
            EntryOutcome::Rejected(p) => Err(rejected(p, None, |_| key.clone())),
        }
    }

    /// Records one batch atomically. Errors name entries by their index.
    pub async fn record_batch(
        &self,
        transactions: Vec<Transaction>,
    ) -> Result<BatchRecorded, IngestError> {
        let keys: Vec<String> = transactions
            .iter()
            .map(|t| format!("{}/{}", t.customer_id, t.transaction_id))
            .collect();
        let batch = dedupe_batch(transactions).map_err(|(index, first)| IngestError::Rejected {
            entry: Some(index),
            violation: FieldViolation::new(
                "",
                format!("repeats the key of transactions[{first}] with other content"),
            ),
        })?;
        let repeats = batch.repeats;
        let outcome = self
            .storage
            .record_batch(&batch, Atomicity::AllOrNothing)
            .await
            .map_err(|e| match e {
                RecordError::Storage(s) => s.into(),
                RecordError::Rejected(p) => {
                    let index = p.index();
                    rejected(p, Some(index), |i| keys.get(i).cloned().unwrap_or_default())
                }
            })?;
        Ok(BatchRecorded {
            recorded: outcome.recorded(),
            duplicates: outcome.duplicates() + repeats,
        })
    }

    /// Records a survey answer once per (customer, feedback_id).
    pub async fn record_feedback(&self, feedback: &Feedback) -> Result<Recorded, IngestError> {
        let what = || format!("feedback {}/{}", feedback.customer_id, feedback.feedback_id);
        idempotent(self.storage.record_feedback(feedback).await?, what)
    }

    /// Records an acquisition spend record once per spend_id.
    pub async fn record_spend(&self, spend: &AcquisitionSpend) -> Result<Recorded, IngestError> {
        let what = || format!("acquisition spend {}", spend.spend_id);
        idempotent(self.storage.record_spend(spend).await?, what)
    }

    pub async fn delete_customer(&self, id: &CustomerId) -> Result<DeletedCustomer, IngestError> {
        Ok(self.storage.delete_customer(id).await?)
    }
}

fn idempotent(written: Written, what: impl FnOnce() -> String) -> Result<Recorded, IngestError> {
    match written {
        Written::Recorded => Ok(Recorded { duplicate: false }),
        Written::Duplicate => Ok(Recorded { duplicate: true }),
        Written::Conflict => Err(IngestError::AlreadyExists {
            entry: None,
            what: what(),
        }),
    }
}

/// The error of a transaction the plan rejected, about `entry` of the
/// call; `key` gives the key of the transaction at the plan's index.
fn rejected(p: PlanError, entry: Entry, key: impl Fn(usize) -> String) -> IngestError {
    let at = |field: &str, description: String| IngestError::Rejected {
        entry,
        violation: FieldViolation::new(field, description),
    };
    match p {
        PlanError::Conflict { index } => IngestError::AlreadyExists {
            entry,
            what: key(index),
        },
        PlanError::UnknownRefundTarget { .. } => at(
            "refunded_transaction_id",
            "names no recorded purchase of this customer".into(),
        ),
        PlanError::RefundOfRefund { .. } => at(
            "refunded_transaction_id",
            "names a refund, not a purchase".into(),
        ),
        PlanError::OverRefund { remaining, .. } => {
            let (u, n) = remaining.units_nanos();
            at(
                "amount",
                format!("exceeds what is left of the purchase ({u}.{:09})", n.abs()),
            )
        }
        PlanError::TotalOutOfRange { what, .. } => at(
            "amount",
            format!("would take the customer's {what} past its limit; nothing was recorded"),
        ),
    }
}
