//! Recording batches of transactions exactly once.
//!
//! One database transaction per batch:
//! 1. take a transaction-scoped advisory lock per customer of the batch, in
//!    sorted order (concurrent batches of the same customer serialise;
//!    different customers never wait on each other);
//! 2. read the stored rows among the batch's keys and its refunds' targets;
//! 3. plan the batch in the domain ([`plan_batch`]): duplicates, conflicts,
//!    refund limits, per-day deltas;
//! 4. insert the new transactions, book refunds on their purchases, upsert
//!    the per-day rollups and recompute the touched customers' summaries
//!    from their rollups.
//!
//! Because every summary is recomputed from the complete per-day rows under
//! the customer's lock, arrival order and concurrency cannot change it.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{Postgres, Row, Transaction as PgTx};

use super::{RecordError, Storage, StorageError};
use crate::domain::{
    plan_batch, Amount, Batch, CustomerId, Plan, StoredTransaction, Transaction, TransactionId,
    TransactionKind,
};

const KIND_PURCHASE: i16 = 1;
const KIND_REFUND: i16 = 2;
/// Deadlocks cannot happen with sorted lock order, but a rolled-back
/// attempt is always safe to retry, so a few retries cost nothing.
const MAX_ATTEMPTS: usize = 5;

/// What a committed batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub recorded: usize,
    /// Request indexes of transactions that were stored before (same content).
    pub duplicate_indexes: Vec<usize>,
}

impl Storage {
    /// Records a batch atomically: everything or (on any error) nothing.
    pub async fn record_batch(&self, batch: &Batch) -> Result<BatchOutcome, RecordError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_record_batch(batch).await {
                Err(RecordError::Storage(e))
                    if e.is_retryable_conflict() && attempt < MAX_ATTEMPTS =>
                {
                    tracing::debug!(attempt, error = %e, "retrying batch after a transient conflict");
                }
                other => return other,
            }
        }
    }

    async fn try_record_batch(&self, batch: &Batch) -> Result<BatchOutcome, RecordError> {
        let mut tx = self.pool.begin().await.map_err(StorageError::from)?;
        lock_customers(&mut tx, batch).await?;
        let stored = fetch_stored(&mut tx, batch).await?;
        let plan = plan_batch(batch, &stored)?;
        if !plan.is_noop() {
            apply(&mut tx, &plan).await?;
        }
        tx.commit().await.map_err(StorageError::from)?;
        Ok(BatchOutcome {
            recorded: plan.inserts.len(),
            duplicate_indexes: plan.duplicate_indexes,
        })
    }
}

async fn lock_customers(tx: &mut PgTx<'_, Postgres>, batch: &Batch) -> Result<(), StorageError> {
    let customers: Vec<&str> = batch
        .entries
        .iter()
        .map(|e| e.transaction.customer_id.as_str())
        .collect();
    sqlx::query(
        "SELECT pg_advisory_xact_lock(k)
           FROM (SELECT DISTINCT hashtextextended(c, 0) AS k FROM unnest($1::text[]) AS c) AS keys
          ORDER BY k",
    )
    .bind(&customers)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn fetch_stored(
    tx: &mut PgTx<'_, Postgres>,
    batch: &Batch,
) -> Result<HashMap<(CustomerId, TransactionId), StoredTransaction>, RecordError> {
    let mut customers = Vec::with_capacity(batch.entries.len());
    let mut ids = Vec::with_capacity(batch.entries.len());
    for e in &batch.entries {
        let t = &e.transaction;
        customers.push(t.customer_id.as_str());
        ids.push(t.transaction_id.as_str());
        if let TransactionKind::Refund { of } = &t.kind {
            customers.push(t.customer_id.as_str());
            ids.push(of.as_str());
        }
    }
    let rows = sqlx::query(
        "SELECT t.customer_id, t.transaction_id, t.kind, t.occurred_at, t.occasion_day, t.amount_nanos,
                t.cost_nanos, t.refunded_transaction_id, t.refunded_nanos
           FROM transactions t
           JOIN (SELECT DISTINCT c, i FROM unnest($1::text[], $2::text[]) AS k(c, i)) k
             ON t.customer_id = k.c AND t.transaction_id = k.i",
    )
    .bind(&customers)
    .bind(&ids)
    .fetch_all(&mut **tx)
    .await
    .map_err(StorageError::from)?;

    let mut stored = HashMap::with_capacity(rows.len());
    for row in rows {
        let t = stored_from_row(&row).map_err(StorageError::from)?;
        stored.insert(
            (
                t.transaction.customer_id.clone(),
                t.transaction.transaction_id.clone(),
            ),
            t,
        );
    }
    Ok(stored)
}

fn stored_from_row(row: &sqlx::postgres::PgRow) -> Result<StoredTransaction, sqlx::Error> {
    let decode = |what: &str, e: String| sqlx::Error::Decode(format!("stored {what}: {e}").into());
    let customer_id =
        CustomerId::parse(row.try_get("customer_id")?).map_err(|e| decode("customer_id", e))?;
    let transaction_id = TransactionId::parse(row.try_get("transaction_id")?)
        .map_err(|e| decode("transaction_id", e))?;
    let kind = match row.try_get::<i16, _>("kind")? {
        KIND_REFUND => {
            let of: String = row.try_get("refunded_transaction_id")?;
            TransactionKind::Refund {
                of: TransactionId::parse(&of).map_err(|e| decode("refund target", e))?,
            }
        }
        _ => TransactionKind::Purchase,
    };
    Ok(StoredTransaction {
        transaction: Transaction {
            customer_id,
            transaction_id,
            occurred_at: row.try_get("occurred_at")?,
            occasion_day: row.try_get("occasion_day")?,
            kind,
            amount: Amount::from_nanos(row.try_get("amount_nanos")?),
            cost: row
                .try_get::<Option<i64>, _>("cost_nanos")?
                .map(Amount::from_nanos),
        },
        refunded: Amount::from_nanos(row.try_get("refunded_nanos")?),
    })
}

async fn apply(tx: &mut PgTx<'_, Postgres>, plan: &Plan) -> Result<(), StorageError> {
    insert_transactions(tx, plan).await?;
    if !plan.refund_updates.is_empty() {
        let (customers, ids, adds): (Vec<&str>, Vec<&str>, Vec<i64>) = plan
            .refund_updates
            .iter()
            .map(|(c, t, a)| (c.as_str(), t.as_str(), a.nanos()))
            .fold((vec![], vec![], vec![]), |mut acc, (c, t, a)| {
                acc.0.push(c);
                acc.1.push(t);
                acc.2.push(a);
                acc
            });
        sqlx::query(
            "UPDATE transactions t SET refunded_nanos = t.refunded_nanos + u.add
               FROM unnest($1::text[], $2::text[], $3::int8[]) AS u(c, i, add)
              WHERE t.customer_id = u.c AND t.transaction_id = u.i",
        )
        .bind(&customers)
        .bind(&ids)
        .bind(&adds)
        .execute(&mut **tx)
        .await?;
    }
    upsert_days(tx, plan).await?;
    recompute_summaries(tx, &plan.touched_customers()).await
}

async fn insert_transactions(tx: &mut PgTx<'_, Postgres>, plan: &Plan) -> Result<(), StorageError> {
    let n = plan.inserts.len();
    let mut customers = Vec::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    let mut kinds = Vec::with_capacity(n);
    let mut occurred: Vec<DateTime<Utc>> = Vec::with_capacity(n);
    let mut days: Vec<NaiveDate> = Vec::with_capacity(n);
    let mut amounts = Vec::with_capacity(n);
    let mut costs: Vec<Option<i64>> = Vec::with_capacity(n);
    let mut targets: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut refunded = Vec::with_capacity(n);
    for row in &plan.inserts {
        let t = &row.transaction;
        customers.push(t.customer_id.as_str());
        ids.push(t.transaction_id.as_str());
        let (kind, target) = match &t.kind {
            TransactionKind::Purchase => (KIND_PURCHASE, None),
            TransactionKind::Refund { of } => (KIND_REFUND, Some(of.as_str())),
        };
        kinds.push(kind);
        targets.push(target);
        occurred.push(t.occurred_at);
        days.push(t.occasion_day);
        amounts.push(t.amount.nanos());
        costs.push(t.cost.map(Amount::nanos));
        refunded.push(row.refunded.nanos());
    }
    sqlx::query(
        "INSERT INTO transactions (customer_id, transaction_id, kind, occurred_at, occasion_day,
                                   amount_nanos, cost_nanos, refunded_transaction_id, refunded_nanos)
         SELECT * FROM unnest($1::text[], $2::text[], $3::int2[], $4::timestamptz[], $5::date[],
                              $6::int8[], $7::int8[], $8::text[], $9::int8[])",
    )
    .bind(&customers)
    .bind(&ids)
    .bind(&kinds)
    .bind(&occurred)
    .bind(&days)
    .bind(&amounts)
    .bind(&costs)
    .bind(&targets)
    .bind(&refunded)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn upsert_days(tx: &mut PgTx<'_, Postgres>, plan: &Plan) -> Result<(), StorageError> {
    let d = &plan.day_deltas;
    let customers: Vec<&str> = d.iter().map(|x| x.customer_id.as_str()).collect();
    let days: Vec<NaiveDate> = d.iter().map(|x| x.day).collect();
    let purchases: Vec<i32> = d.iter().map(|x| x.purchases).collect();
    let refunds: Vec<i32> = d.iter().map(|x| x.refunds).collect();
    let net: Vec<i64> = d.iter().map(|x| x.net).collect();
    let cost: Vec<i64> = d.iter().map(|x| x.cost).collect();
    let uncosted: Vec<i32> = d.iter().map(|x| x.uncosted_purchases).collect();
    let first: Vec<DateTime<Utc>> = d.iter().map(|x| x.first_purchase_at).collect();
    let last: Vec<DateTime<Utc>> = d.iter().map(|x| x.last_purchase_at).collect();
    sqlx::query(
        "INSERT INTO customer_days AS d (customer_id, day, purchases, refunds, net_nanos, cost_nanos,
                                         uncosted_purchases, first_purchase_at, last_purchase_at)
         SELECT * FROM unnest($1::text[], $2::date[], $3::int4[], $4::int4[], $5::int8[], $6::int8[],
                              $7::int4[], $8::timestamptz[], $9::timestamptz[])
         ON CONFLICT (customer_id, day) DO UPDATE SET
             purchases = d.purchases + excluded.purchases,
             refunds = d.refunds + excluded.refunds,
             net_nanos = d.net_nanos + excluded.net_nanos,
             cost_nanos = d.cost_nanos + excluded.cost_nanos,
             uncosted_purchases = d.uncosted_purchases + excluded.uncosted_purchases,
             first_purchase_at = least(d.first_purchase_at, excluded.first_purchase_at),
             last_purchase_at = greatest(d.last_purchase_at, excluded.last_purchase_at)",
    )
    .bind(&customers)
    .bind(&days)
    .bind(&purchases)
    .bind(&refunds)
    .bind(&net)
    .bind(&cost)
    .bind(&uncosted)
    .bind(&first)
    .bind(&last)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn recompute_summaries(
    tx: &mut PgTx<'_, Postgres>,
    customers: &[CustomerId],
) -> Result<(), StorageError> {
    let ids: Vec<&str> = customers.iter().map(CustomerId::as_str).collect();
    sqlx::query(
        "INSERT INTO customers AS c (customer_id, first_purchase_day, last_purchase_day, first_purchase_at,
                                     last_purchase_at, purchase_occasions, purchase_count, refund_count,
                                     net_revenue_nanos, repeat_value_nanos, cost_nanos, uncosted_purchases)
         SELECT customer_id, min(day), max(day), min(first_purchase_at), max(last_purchase_at), count(*),
                sum(purchases), sum(refunds), sum(net_nanos),
                sum(net_nanos) - (array_agg(net_nanos ORDER BY day))[1],
                sum(cost_nanos), sum(uncosted_purchases)
           FROM customer_days
          WHERE customer_id = ANY($1::text[])
          GROUP BY customer_id
         ON CONFLICT (customer_id) DO UPDATE SET
             first_purchase_day = excluded.first_purchase_day,
             last_purchase_day = excluded.last_purchase_day,
             first_purchase_at = excluded.first_purchase_at,
             last_purchase_at = excluded.last_purchase_at,
             purchase_occasions = excluded.purchase_occasions,
             purchase_count = excluded.purchase_count,
             refund_count = excluded.refund_count,
             net_revenue_nanos = excluded.net_revenue_nanos,
             repeat_value_nanos = excluded.repeat_value_nanos,
             cost_nanos = excluded.cost_nanos,
             uncosted_purchases = excluded.uncosted_purchases,
             updated_at = now()",
    )
    .bind(&ids)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
