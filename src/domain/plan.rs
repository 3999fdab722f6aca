//! Planning a batch against what is already stored: which transactions are
//! new, which are duplicates, which clash, and how refunds and per-day
//! rollups change. Pure logic; storage fetches the inputs under the
//! customers' locks and applies the plan in the same database transaction.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};

use super::{Amount, Batch, CustomerId, Transaction, TransactionId, TransactionKind};

/// A transaction as stored, with what has been refunded of it so far.
#[derive(Debug, Clone)]
pub struct StoredTransaction {
    pub transaction: Transaction,
    /// Purchases: the part of `amount` already refunded.
    pub refunded: Amount,
}

/// Why a batch cannot be recorded; `index` is the entry's position in the
/// request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("transaction {index} has the key of a recorded transaction with other content")]
    Conflict { index: usize },
    #[error("transaction {index} refunds a purchase that does not exist for this customer")]
    UnknownRefundTarget { index: usize },
    #[error("transaction {index} refunds a transaction that is itself a refund")]
    RefundOfRefund { index: usize },
    #[error(
        "transaction {index} refunds more than is left of the purchase ({remaining:?} nanos left)"
    )]
    OverRefund { index: usize, remaining: Amount },
}

/// A new row for the transactions table.
#[derive(Debug, Clone)]
pub struct NewRow {
    pub transaction: Transaction,
    pub refunded: Amount,
}

/// The change to one (customer, day) rollup row.
#[derive(Debug, Clone)]
pub struct DayDelta {
    pub customer_id: CustomerId,
    pub day: NaiveDate,
    pub purchases: i32,
    pub refunds: i32,
    pub net: i64,
    pub cost: i64,
    pub uncosted_purchases: i32,
    pub first_purchase_at: DateTime<Utc>,
    pub last_purchase_at: DateTime<Utc>,
}

/// What storage must do for a batch.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub inserts: Vec<NewRow>,
    /// Refunds of already stored purchases: (customer, purchase, amount to add).
    pub refund_updates: Vec<(CustomerId, TransactionId, Amount)>,
    pub day_deltas: Vec<DayDelta>,
    /// Request indexes of entries that were already stored with the same content.
    pub duplicate_indexes: Vec<usize>,
}

impl Plan {
    pub fn is_noop(&self) -> bool {
        self.inserts.is_empty()
    }

    /// Customers whose summary must be recomputed.
    pub fn touched_customers(&self) -> Vec<CustomerId> {
        let mut ids: Vec<CustomerId> = self
            .day_deltas
            .iter()
            .map(|d| d.customer_id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

type Key = (CustomerId, TransactionId);

/// Plans `batch` given the stored transactions among its keys and its
/// refunds' targets. Purchases are applied before refunds, so a refund may
/// name a purchase of the same batch wherever it sits in the batch.
pub fn plan_batch(
    batch: &Batch,
    stored: &HashMap<Key, StoredTransaction>,
) -> Result<Plan, PlanError> {
    let mut plan = Plan::default();
    let mut new_purchase_rows: HashMap<Key, usize> = HashMap::new();
    let mut stored_refund_adds: HashMap<Key, i64> = HashMap::new();
    let mut days: HashMap<(CustomerId, NaiveDate), DayDelta> = HashMap::new();

    let purchases = batch.entries.iter().filter(|e| e.transaction.is_purchase());
    let refunds = batch
        .entries
        .iter()
        .filter(|e| !e.transaction.is_purchase());
    for entry in purchases.chain(refunds) {
        let t = &entry.transaction;
        let key = (t.customer_id.clone(), t.transaction_id.clone());
        if let Some(existing) = stored.get(&key) {
            if existing.transaction != *t {
                return Err(PlanError::Conflict { index: entry.index });
            }
            plan.duplicate_indexes.push(entry.index);
            continue;
        }
        match &t.kind {
            TransactionKind::Purchase => {
                new_purchase_rows.insert(key, plan.inserts.len());
                plan.inserts.push(NewRow {
                    transaction: t.clone(),
                    refunded: Amount::ZERO,
                });
                let day = days
                    .entry((t.customer_id.clone(), t.occasion_day))
                    .or_insert_with(|| DayDelta {
                        customer_id: t.customer_id.clone(),
                        day: t.occasion_day,
                        purchases: 0,
                        refunds: 0,
                        net: 0,
                        cost: 0,
                        uncosted_purchases: 0,
                        first_purchase_at: t.occurred_at,
                        last_purchase_at: t.occurred_at,
                    });
                day.purchases += 1;
                day.net += t.amount.nanos();
                match t.cost {
                    Some(c) => day.cost += c.nanos(),
                    None => day.uncosted_purchases += 1,
                }
                day.first_purchase_at = day.first_purchase_at.min(t.occurred_at);
                day.last_purchase_at = day.last_purchase_at.max(t.occurred_at);
            }
            TransactionKind::Refund { of } => {
                let target_key = (t.customer_id.clone(), of.clone());
                let (target, remaining) = if let Some(&row) = new_purchase_rows.get(&target_key) {
                    let r = &plan.inserts[row];
                    (
                        r.transaction.clone(),
                        r.transaction.amount.nanos() - r.refunded.nanos(),
                    )
                } else if let Some(s) = stored.get(&target_key) {
                    if !s.transaction.is_purchase() {
                        return Err(PlanError::RefundOfRefund { index: entry.index });
                    }
                    let pending = stored_refund_adds.get(&target_key).copied().unwrap_or(0);
                    (
                        s.transaction.clone(),
                        s.transaction.amount.nanos() - s.refunded.nanos() - pending,
                    )
                } else {
                    return Err(PlanError::UnknownRefundTarget { index: entry.index });
                };
                if t.amount.nanos() > remaining {
                    return Err(PlanError::OverRefund {
                        index: entry.index,
                        remaining: Amount::from_nanos(remaining),
                    });
                }
                if let Some(&row) = new_purchase_rows.get(&target_key) {
                    let r = &mut plan.inserts[row];
                    r.refunded = Amount::from_nanos(r.refunded.nanos() + t.amount.nanos());
                } else {
                    *stored_refund_adds.entry(target_key).or_insert(0) += t.amount.nanos();
                }
                plan.inserts.push(NewRow {
                    transaction: t.clone(),
                    refunded: Amount::ZERO,
                });
                let day = days
                    .entry((t.customer_id.clone(), target.occasion_day))
                    .or_insert_with(|| DayDelta {
                        customer_id: t.customer_id.clone(),
                        day: target.occasion_day,
                        purchases: 0,
                        refunds: 0,
                        net: 0,
                        cost: 0,
                        uncosted_purchases: 0,
                        // The target lies inside the stored row's range, so these
                        // leave it unchanged; they only fill the proposed row.
                        first_purchase_at: target.occurred_at,
                        last_purchase_at: target.occurred_at,
                    });
                day.refunds += 1;
                day.net -= t.amount.nanos();
            }
        }
    }
    plan.refund_updates = stored_refund_adds
        .into_iter()
        .map(|((c, t), add)| (c, t, Amount::from_nanos(add)))
        .collect();
    plan.day_deltas = days.into_values().collect();
    // A stable order keeps lock and write order deterministic.
    plan.day_deltas
        .sort_by(|a, b| (&a.customer_id, a.day).cmp(&(&b.customer_id, b.day)));
    plan.refund_updates
        .sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    plan.duplicate_indexes.sort_unstable();
    Ok(plan)
}
