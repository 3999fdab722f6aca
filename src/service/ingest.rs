//! Recording transactions and erasing customers.

use super::group_commit::GroupCommit;
use crate::{
    domain::{
        dedupe_batch, AcquisitionSpend, Atomicity, CustomerId, EntryOutcome, Feedback,
        FieldViolation, IngestRules, PlanError, Transaction,
    },
    storage::{DeletedCustomer, RecordError, Storage, StorageError, Written},
};

/// Most single calls recorded in one database transaction.
const MAX_GROUP: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Input that can never be recorded (INVALID_ARGUMENT). Field paths are
    /// relative to the batch: `transactions[3].amount`.
    #[error("invalid input: {}", .0.iter().map(|v| format!("{}: {}", v.field, v.description)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldViolation>),
    /// The key of entry `index` is taken by other content (ALREADY_EXISTS).
    #[error("transaction {index} ({key}) was already recorded with other content")]
    AlreadyExists { index: usize, key: String },
    /// A feedback answer or spend record whose key is taken by other
    /// content (ALREADY_EXISTS); `what` names it for the caller.
    #[error("{what} was already recorded with other content")]
    KeyTaken { what: String },
    #[error(transparent)]
    Storage(#[from] StorageError),
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
            EntryOutcome::Rejected(p) => Err(rejected(p, std::slice::from_ref(&key))),
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
        let batch = dedupe_batch(transactions).map_err(|(index, first)| {
            IngestError::Invalid(vec![FieldViolation::new(
                format!("transactions[{index}]"),
                format!("repeats the key of transactions[{first}] with other content"),
            )])
        })?;
        let repeats = batch.repeats;
        let outcome = self
            .storage
            .record_batch(&batch, Atomicity::AllOrNothing)
            .await
            .map_err(|e| match e {
                RecordError::Storage(s) => IngestError::Storage(s),
                RecordError::Rejected(p) => rejected(p, &keys),
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
        Written::Conflict => Err(IngestError::KeyTaken { what: what() }),
    }
}

fn rejected(p: PlanError, keys: &[String]) -> IngestError {
    let at = |i: usize, field: &str, d: String| {
        IngestError::Invalid(vec![FieldViolation::new(
            format!("transactions[{i}].{field}"),
            d,
        )])
    };
    match p {
        PlanError::Conflict { index } => IngestError::AlreadyExists {
            index,
            key: keys[index].clone(),
        },
        PlanError::UnknownRefundTarget { index } => at(
            index,
            "refunded_transaction_id",
            "names no recorded purchase of this customer".into(),
        ),
        PlanError::RefundOfRefund { index } => at(
            index,
            "refunded_transaction_id",
            "names a refund, not a purchase".into(),
        ),
        PlanError::OverRefund { index, remaining } => {
            let (u, n) = remaining.units_nanos();
            at(
                index,
                "amount",
                format!("exceeds what is left of the purchase ({u}.{:09})", n.abs()),
            )
        }
        PlanError::TotalOutOfRange { index, what } => at(
            index,
            "amount",
            format!("would take the customer's {what} past its limit; nothing was recorded"),
        ),
    }
}
