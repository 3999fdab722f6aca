//! A validated purchase or refund, and batches of them.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};

use super::{Amount, CustomerId, TransactionId};

/// What a transaction is. A refund names the purchase (same customer) it
/// gives money back on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactionKind {
    Purchase,
    Refund { of: TransactionId },
}

/// A transaction that passed every field check. Whether a refund's purchase
/// exists and has enough left is checked against storage, under the
/// customer's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub customer_id: CustomerId,
    pub transaction_id: TransactionId,
    pub occurred_at: DateTime<Utc>,
    /// The business calendar day of `occurred_at`: the purchase occasion.
    pub occasion_day: NaiveDate,
    pub kind: TransactionKind,
    pub amount: Amount,
    /// Purchases only.
    pub cost: Option<Amount>,
}

impl Transaction {
    pub fn key(&self) -> (&CustomerId, &TransactionId) {
        (&self.customer_id, &self.transaction_id)
    }

    pub fn is_purchase(&self) -> bool {
        self.kind == TransactionKind::Purchase
    }
}

/// Input as the caller sent it, in plain Rust types, before any check.
#[derive(Debug, Clone, Default)]
pub struct UncheckedTransaction {
    pub customer_id: String,
    pub transaction_id: String,
    /// Seconds and nanos since the Unix epoch; `None` when absent.
    pub occurred_at: Option<(i64, i32)>,
    pub kind: UncheckedKind,
    pub amount: Option<UncheckedMoney>,
    pub cost: Option<UncheckedMoney>,
    pub refunded_transaction_id: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UncheckedKind {
    #[default]
    Unspecified,
    Purchase,
    Refund,
    Unknown(i32),
}

#[derive(Debug, Clone, Default)]
pub struct UncheckedMoney {
    pub currency_code: String,
    pub units: i64,
    pub nanos: i32,
}

/// One entry of a batch: where it sat in the request, and the transaction.
#[derive(Debug, Clone)]
pub struct BatchEntry {
    pub index: usize,
    pub transaction: Transaction,
}

/// A batch ready for storage: distinct keys only. `repeats` counts entries
/// that repeated an earlier entry of the same batch with the same content
/// (they are duplicates, reported as such, and stored once).
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub entries: Vec<BatchEntry>,
    pub repeats: usize,
}

/// Folds repeated keys within one batch: the same content again is a
/// duplicate; other content under the same key is a conflict, returned as
/// the index of the second entry and the index it clashes with.
pub fn dedupe_batch(transactions: Vec<Transaction>) -> Result<Batch, (usize, usize)> {
    let mut seen: HashMap<(CustomerId, TransactionId), usize> =
        HashMap::with_capacity(transactions.len());
    let mut batch = Batch {
        entries: Vec::with_capacity(transactions.len()),
        repeats: 0,
    };
    for (index, transaction) in transactions.into_iter().enumerate() {
        let key = (
            transaction.customer_id.clone(),
            transaction.transaction_id.clone(),
        );
        match seen.get(&key) {
            Some(&slot) => {
                let first = &batch.entries[slot];
                if first.transaction != transaction {
                    return Err((index, first.index));
                }
                batch.repeats += 1;
            }
            None => {
                seen.insert(key, batch.entries.len());
                batch.entries.push(BatchEntry { index, transaction });
            }
        }
    }
    Ok(batch)
}
