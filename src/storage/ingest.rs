//! Recording batches of transactions exactly once.
//!
//! One database transaction per batch, in three statements:
//! 1. lock the batch's customers by upserting their summary rows in sorted
//!    order (a new customer gets a zeroed row), which also returns the
//!    current summaries;
//! 2. read, for existing customers only, the stored rows among the batch's
//!    keys and its refunds' targets, and the stored occasions on its
//!    purchase days;
//! 3. plan the batch in the domain ([`plan_batch`]): duplicates, conflicts,
//!    refund limits, per-day deltas and each customer's new summary;
//! 4. one statement writes it all: new transactions, refunds booked on their
//!    purchases, per-day rollups, summaries, drops placeholders of customers
//!    left without a purchase, and queues the changed customers for the
//!    report aggregates (`report_dirty`, append-only: no lock waits).
//!
//! The row locks serialise batches of the same customer and nothing else,
//! so arrival order and concurrency cannot change a summary.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{Postgres, Row, Transaction as PgTx};

use super::{customers::summary_from_row, money::texts, RecordError, Storage, StorageError};
use crate::domain::{
    plan_batch, Amount, Atomicity, Batch, CustomerId, CustomerSummary, EntryOutcome, Plan,
    StoredState, StoredTransaction, Transaction, TransactionId, TransactionKind,
};

const KIND_PURCHASE: i16 = 1;
const KIND_REFUND: i16 = 2;
/// Sorted lock order rules out deadlocks between batches, but a
/// rolled-back attempt is always safe to retry, so a few retries are cheap
/// insurance.
const MAX_ATTEMPTS: usize = 5;

/// What a committed batch did, per entry (request index, outcome).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub outcomes: Vec<(usize, EntryOutcome)>,
}

impl BatchOutcome {
    pub fn recorded(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|(_, o)| *o == EntryOutcome::Recorded)
            .count()
    }

    pub fn duplicates(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|(_, o)| *o == EntryOutcome::Duplicate)
            .count()
    }
}

impl Storage {
    /// Records a batch. With [`Atomicity::AllOrNothing`] any rejected entry
    /// rejects the batch and nothing is stored; with
    /// [`Atomicity::EachOnItsOwn`] rejected entries are reported in the
    /// outcome and the rest commit.
    pub async fn record_batch(
        &self,
        batch: &Batch,
        atomicity: Atomicity,
    ) -> Result<BatchOutcome, RecordError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_record_batch(batch, atomicity).await {
                Err(RecordError::Storage(e))
                    if e.is_retryable_conflict() && attempt < MAX_ATTEMPTS =>
                {
                    tracing::debug!(attempt, error = %e, "retrying batch after a transient conflict");
                }
                other => return other,
            }
        }
    }

    async fn try_record_batch(
        &self,
        batch: &Batch,
        atomicity: Atomicity,
    ) -> Result<BatchOutcome, RecordError> {
        let mut tx = self.pool.begin().await.map_err(StorageError::from)?;
        let summaries = lock_customers(&mut tx, batch).await?;
        let state = fetch_stored(&mut tx, batch, summaries).await?;
        let plan = plan_batch(batch, state, atomicity)?;
        apply(&mut tx, &plan).await?;
        tx.commit().await.map_err(StorageError::from)?;
        Ok(BatchOutcome {
            outcomes: plan.outcomes,
        })
    }
}

/// Locks every customer of the batch (creating zeroed rows for new ones)
/// and returns their summaries: `None` for a customer with nothing stored.
async fn lock_customers(
    tx: &mut PgTx<'_, Postgres>,
    batch: &Batch,
) -> Result<HashMap<CustomerId, Option<CustomerSummary>>, StorageError> {
    let mut customers: Vec<&str> = batch
        .entries
        .iter()
        .map(|e| e.transaction.customer_id.as_str())
        .collect();
    customers.sort_unstable();
    customers.dedup();
    let rows = sqlx::query(
        "INSERT INTO customers AS c (customer_id) SELECT * FROM unnest($1::text[])
         ON CONFLICT (customer_id) DO UPDATE SET customer_id = excluded.customer_id
         RETURNING c.*, c.net_revenue_nanos::text AS net_revenue_text,
                   c.repeat_value_nanos::text AS repeat_value_text, c.cost_nanos::text AS cost_text",
    )
    .bind(&customers)
    .fetch_all(&mut **tx)
    .await?;
    let mut out = HashMap::with_capacity(rows.len());
    for row in rows {
        let id = CustomerId::from_stored(row.try_get("customer_id")?)
            .map_err(|e| StorageError::Database(sqlx::Error::Decode(e.into())))?;
        let occasions: i32 = row.try_get("purchase_occasions")?;
        let summary = if occasions > 0 {
            Some(summary_from_row(&row)?)
        } else {
            None
        };
        out.insert(id, summary);
    }
    Ok(out)
}

/// Reads what the plan depends on: stored transactions among the batch's
/// keys and refund targets, and stored occasions on its purchase days. New
/// customers have nothing stored, so only existing ones are looked up.
async fn fetch_stored(
    tx: &mut PgTx<'_, Postgres>,
    batch: &Batch,
    summaries: HashMap<CustomerId, Option<CustomerSummary>>,
) -> Result<StoredState, RecordError> {
    let existing = |c: &CustomerId| matches!(summaries.get(c), Some(Some(_)));
    let (mut customers, mut ids) = (Vec::new(), Vec::new());
    let (mut day_customers, mut days) = (Vec::new(), Vec::new());
    for t in batch
        .entries
        .iter()
        .map(|e| &e.transaction)
        .filter(|t| existing(&t.customer_id))
    {
        customers.push(t.customer_id.as_str());
        ids.push(t.transaction_id.as_str());
        match &t.kind {
            TransactionKind::Refund { of } => {
                customers.push(t.customer_id.as_str());
                ids.push(of.as_str());
            }
            TransactionKind::Purchase => {
                day_customers.push(t.customer_id.as_str());
                days.push(t.occasion_day);
            }
        }
    }
    let mut state = StoredState {
        summaries,
        ..StoredState::default()
    };
    if customers.is_empty() {
        return Ok(state);
    }
    // Occasion rows come back with a NULL transaction_id.
    let rows = sqlx::query(
        "SELECT t.customer_id, t.transaction_id, t.kind, t.occurred_at, t.occasion_day, t.amount_nanos,
                t.cost_nanos, t.refunded_transaction_id, t.refunded_nanos
           FROM transactions t
           JOIN (SELECT DISTINCT c, i FROM unnest($1::text[], $2::text[]) AS k(c, i)) k
             ON t.customer_id = k.c AND t.transaction_id = k.i
         UNION ALL
         SELECT d.customer_id, NULL, NULL, NULL, d.day, NULL, NULL, NULL, NULL
           FROM customer_days d
           JOIN (SELECT DISTINCT c, day FROM unnest($3::text[], $4::date[]) AS k(c, day)) k
             ON d.customer_id = k.c AND d.day = k.day",
    )
    .bind(&customers)
    .bind(&ids)
    .bind(&day_customers)
    .bind(&days)
    .fetch_all(&mut **tx)
    .await
    .map_err(StorageError::from)?;
    for row in rows {
        if row
            .try_get::<Option<String>, _>("transaction_id")
            .map_err(StorageError::from)?
            .is_none()
        {
            let customer =
                CustomerId::from_stored(row.try_get("customer_id").map_err(StorageError::from)?)
                    .map_err(|e| StorageError::Database(sqlx::Error::Decode(e.into())))?;
            state.occasions.insert((
                customer,
                row.try_get("occasion_day").map_err(StorageError::from)?,
            ));
            continue;
        }
        let t = stored_from_row(&row).map_err(StorageError::from)?;
        state.transactions.insert(
            (
                t.transaction.customer_id.clone(),
                t.transaction.transaction_id.clone(),
            ),
            t,
        );
    }
    Ok(state)
}

fn stored_from_row(row: &sqlx::postgres::PgRow) -> Result<StoredTransaction, sqlx::Error> {
    let decode = |what: &str, e: String| sqlx::Error::Decode(format!("stored {what}: {e}").into());
    let customer_id = CustomerId::from_stored(row.try_get("customer_id")?)
        .map_err(|e| decode("customer_id", e))?;
    let transaction_id = TransactionId::from_stored(row.try_get("transaction_id")?)
        .map_err(|e| decode("transaction_id", e))?;
    let kind = match row.try_get::<i16, _>("kind")? {
        KIND_REFUND => {
            let of: String = row.try_get("refunded_transaction_id")?;
            TransactionKind::Refund {
                of: TransactionId::from_stored(&of).map_err(|e| decode("refund target", e))?,
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

/// One of the 64 `ingest_counters` rows, picked so that concurrent batches
/// seldom share one (the clock's nanoseconds are random enough for that).
fn counter_slot() -> i16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    ((nanos >> 10) % 64) as i16
}

/// Column arrays for `unnest`, one Vec per column.
#[derive(Default)]
struct Columns<'a> {
    customers: Vec<&'a str>,
    ids: Vec<&'a str>,
    kinds: Vec<i16>,
    occurred: Vec<DateTime<Utc>>,
    days: Vec<NaiveDate>,
    amounts: Vec<i64>,
    costs: Vec<Option<i64>>,
    targets: Vec<Option<&'a str>>,
    refunded: Vec<i64>,
}

/// Writes the whole plan in one statement: the parts touch different rows
/// and none reads another's result.
async fn apply(tx: &mut PgTx<'_, Postgres>, plan: &Plan) -> Result<(), StorageError> {
    if plan.inserts.is_empty() && plan.placeholders_to_drop.is_empty() {
        return Ok(());
    }
    let mut t = Columns::default();
    for row in &plan.inserts {
        let x = &row.transaction;
        t.customers.push(x.customer_id.as_str());
        t.ids.push(x.transaction_id.as_str());
        let (kind, target) = match &x.kind {
            TransactionKind::Purchase => (KIND_PURCHASE, None),
            TransactionKind::Refund { of } => (KIND_REFUND, Some(of.as_str())),
        };
        t.kinds.push(kind);
        t.targets.push(target);
        t.occurred.push(x.occurred_at);
        t.days.push(x.occasion_day);
        t.amounts.push(x.amount.nanos());
        t.costs.push(x.cost.map(Amount::nanos));
        t.refunded.push(row.refunded.nanos());
    }
    let r = &plan.refund_updates;
    let d = &plan.day_deltas;
    let s = &plan.summaries;
    let drop: Vec<&str> = plan
        .placeholders_to_drop
        .iter()
        .map(CustomerId::as_str)
        .collect();
    sqlx::query(
        "WITH new_transactions AS (
             INSERT INTO transactions (customer_id, transaction_id, kind, occurred_at, occasion_day,
                                       amount_nanos, cost_nanos, refunded_transaction_id, refunded_nanos)
             SELECT * FROM unnest($1::text[], $2::text[], $3::int2[], $4::timestamptz[], $5::date[],
                                  $6::int8[], $7::int8[], $8::text[], $9::int8[])
         ), refunded AS (
             UPDATE transactions t SET refunded_nanos = t.refunded_nanos + u.add
               FROM unnest($10::text[], $11::text[], $12::int8[]) AS u(c, i, add)
              WHERE t.customer_id = u.c AND t.transaction_id = u.i
         ), days AS (
             INSERT INTO customer_days AS d (customer_id, day, purchases, refunds, net_nanos, cost_nanos,
                                             uncosted_purchases, first_purchase_at, last_purchase_at)
             SELECT * FROM unnest($13::text[], $14::date[], $15::int4[], $16::int4[],
                                  $17::text[]::numeric[], $18::text[]::numeric[],
                                  $19::int4[], $20::timestamptz[], $21::timestamptz[])
             ON CONFLICT (customer_id, day) DO UPDATE SET
                 purchases = d.purchases + excluded.purchases,
                 refunds = d.refunds + excluded.refunds,
                 net_nanos = d.net_nanos + excluded.net_nanos,
                 cost_nanos = d.cost_nanos + excluded.cost_nanos,
                 uncosted_purchases = d.uncosted_purchases + excluded.uncosted_purchases,
                 first_purchase_at = least(d.first_purchase_at, excluded.first_purchase_at),
                 last_purchase_at = greatest(d.last_purchase_at, excluded.last_purchase_at)
         ), dropped AS (
             DELETE FROM customers WHERE customer_id = ANY($22::text[])
         ), counted AS (
             UPDATE ingest_counters SET transactions = transactions + $35 WHERE slot = $36
         ), queued AS (
             INSERT INTO report_dirty (customer_id) SELECT * FROM unnest($23::text[])
         )
         UPDATE customers c SET
             first_purchase_day = u.first_day, last_purchase_day = u.last_day,
             first_purchase_at = u.first_at, last_purchase_at = u.last_at,
             purchase_occasions = u.occasions,
             purchase_count = u.purchases, refund_count = u.refunds,
             net_revenue_nanos = u.net, repeat_value_nanos = u.repeat,
             cost_nanos = u.cost, uncosted_purchases = u.uncosted, updated_at = now()
           FROM unnest($23::text[], $24::date[], $25::date[], $26::timestamptz[], $27::timestamptz[], $28::int4[],
                       $29::int4[], $30::int4[], $31::text[]::numeric[], $32::text[]::numeric[],
                       $33::text[]::numeric[], $34::int4[])
                AS u(customer_id, first_day, last_day, first_at, last_at, occasions,
                     purchases, refunds, net, repeat, cost, uncosted)
          WHERE c.customer_id = u.customer_id",
    )
    .bind(&t.customers)
    .bind(&t.ids)
    .bind(&t.kinds)
    .bind(&t.occurred)
    .bind(&t.days)
    .bind(&t.amounts)
    .bind(&t.costs)
    .bind(&t.targets)
    .bind(&t.refunded)
    .bind(r.iter().map(|x| x.0.as_str()).collect::<Vec<_>>())
    .bind(r.iter().map(|x| x.1.as_str()).collect::<Vec<_>>())
    .bind(r.iter().map(|x| x.2.nanos()).collect::<Vec<_>>())
    .bind(d.iter().map(|x| x.customer_id.as_str()).collect::<Vec<_>>())
    .bind(d.iter().map(|x| x.day).collect::<Vec<_>>())
    .bind(d.iter().map(|x| x.purchases).collect::<Vec<_>>())
    .bind(d.iter().map(|x| x.refunds).collect::<Vec<_>>())
    .bind(texts(d.iter().map(|x| x.net)))
    .bind(texts(d.iter().map(|x| x.cost)))
    .bind(d.iter().map(|x| x.uncosted_purchases).collect::<Vec<_>>())
    .bind(d.iter().map(|x| x.first_purchase_at).collect::<Vec<_>>())
    .bind(d.iter().map(|x| x.last_purchase_at).collect::<Vec<_>>())
    .bind(&drop)
    .bind(s.iter().map(|x| x.customer_id.as_str()).collect::<Vec<_>>())
    .bind(s.iter().map(|x| x.first_purchase_day).collect::<Vec<_>>())
    .bind(s.iter().map(|x| x.last_purchase_day).collect::<Vec<_>>())
    .bind(s.iter().map(|x| x.first_purchase_at).collect::<Vec<_>>())
    .bind(s.iter().map(|x| x.last_purchase_at).collect::<Vec<_>>())
    .bind(s.iter().map(|x| x.purchase_occasions).collect::<Vec<_>>())
    .bind(s.iter().map(|x| x.purchase_count).collect::<Vec<_>>())
    .bind(s.iter().map(|x| x.refund_count).collect::<Vec<_>>())
    .bind(texts(s.iter().map(|x| x.net_revenue)))
    .bind(texts(s.iter().map(|x| x.repeat_value)))
    .bind(texts(s.iter().map(|x| x.cost)))
    .bind(s.iter().map(|x| x.uncosted_purchases).collect::<Vec<_>>())
    .bind(plan.inserts.len() as i64)
    .bind(counter_slot())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
