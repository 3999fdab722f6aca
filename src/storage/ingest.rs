//! Recording batches of transactions exactly once.
//!
//! One database transaction per batch, in three statements:
//! 1. lock the batch's customers by upserting their summary rows in sorted
//!    order (a new customer gets a zeroed row), which also returns the
//!    current summaries (a batch of many customers locks the existing ones
//!    without writing them and reads their summaries in a second
//!    statement: see [`lock_customers`]);
//! 2. read, for existing customers only, the stored rows among its refunds'
//!    targets, and the stored occasions on those purchase days that the
//!    summary cannot answer for (see [`occasion_known`]); skipped when there
//!    is nothing to read;
//! 3. plan the batch in the domain ([`plan_batch`]): duplicates, conflicts,
//!    refund limits, per-day deltas and each customer's new summary;
//! 4. one statement ([`write`]) writes it all: new transactions, refunds booked on their
//!    purchases, per-day rollups, summaries, drops placeholders of customers
//!    left without a purchase, and queues the changed customers for the
//!    report aggregates (`report_dirty`, append-only: no lock waits).
//!
//! The row locks serialise batches of the same customer and nothing else,
//! so arrival order and concurrency cannot change a summary.
//!
//! Duplicates are found by the primary key. The first attempt does not
//! look up the batch's own keys: it plans them as new and inserts them with
//! a plain `INSERT`. If one was stored already (a retried call or batch),
//! the `transactions` primary key refuses the statement (SQLSTATE 23505),
//! the database transaction rolls back with nothing written, and the batch
//! is recorded again with every key looked up ([`Lookup::AllKeys`]), which
//! plans duplicates and conflicts exactly as before. A first attempt whose
//! plan rejects an entry is redone the same way, since a stored duplicate
//! planned as new can make a refund exceed its purchase or a total pass
//! its limit. So a first delivery costs no key lookups and a retried one
//! costs one extra rolled-back attempt; [`plan_batch`] stays the one place
//! that decides outcomes.

mod write;

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{Connection, Postgres, QueryBuilder, Transaction as PgTx};

use super::{
    columns::{columns, push_unnest},
    customers::{stored_customer_id, summary_columns, SummaryRow},
    error::required,
    RecordError, Storage, StorageError,
};
use crate::domain::{
    plan_batch, Amount, Atomicity, Batch, CustomerId, CustomerSummary, EntryOutcome, StoredState,
    StoredTransaction, Transaction, TransactionId, TransactionKind,
};

/// `transactions.kind` of a purchase.
const KIND_PURCHASE: i16 = 1;
/// `transactions.kind` of a refund.
const KIND_REFUND: i16 = 2;
/// Sorted lock order rules out deadlocks between batches, but a
/// rolled-back attempt is always safe to retry, so a few retries are cheap
/// insurance.
const MAX_ATTEMPTS: usize = 5;

/// Starts a batch's database transaction (one round trip, as a plain
/// `BEGIN`) with only index probes and nested loops for its statements,
/// planned once per session. Every statement of a batch reaches its rows
/// by key: it joins the batch's column arrays to a table on its primary
/// key, or inserts.
/// - Hash and merge joins off: planned with a batch's real arrays, a batch
///   of thousands of rows was joined by scanning the whole table
///   (`transactions` for the key read, `customers` for the summary
///   update), a cost that grows with the table.
/// - Sequential scans off and `force_generic_plan`: the plans no longer
///   depend on the batch's length or on how large the tables were when a
///   plan was made, so one generic plan per statement and session serves
///   every batch. Planning each group's statements afresh was about a
///   third of PostgreSQL's work for RecordTransaction. Generic plans
///   without `enable_seqscan = off` were tried first and grew slower with
///   the tables, as a plan that scans a table would (a generic plan made
///   while a table is small may choose to scan it; not confirmed).
///
/// Measured in docs/benchmarks.md (ingest, 2026-11-30 afternoon);
/// `tests/api/ingest_fast_paths.rs` checks that no batch scans
/// `transactions` or `customers`.
const BEGIN_PROBING: &str =
    "BEGIN; SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; \
     SET LOCAL enable_seqscan = off; SET LOCAL plan_cache_mode = force_generic_plan";

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
        let mut lookup = Lookup::RefundTargets;
        loop {
            attempt += 1;
            match self.try_record_batch(batch, atomicity, lookup).await {
                Ok(Some(outcome)) => return Ok(outcome),
                Ok(None) => {
                    tracing::debug!("recording the batch again with every key looked up");
                    lookup = Lookup::AllKeys;
                }
                Err(RecordError::Storage(e))
                    if e.is_retryable_conflict() && attempt < MAX_ATTEMPTS =>
                {
                    tracing::debug!(attempt, error = %e, "retrying batch after a transient conflict");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One attempt in one database transaction. `Ok(None)`: the attempt
    /// planned the batch's keys as new ([`Lookup::RefundTargets`]) and that
    /// may have been wrong (the primary key refused a key, or the plan
    /// rejected an entry, which a stored duplicate can cause); it was
    /// rolled back and the batch must be recorded with [`Lookup::AllKeys`].
    async fn try_record_batch(
        &self,
        batch: &Batch,
        atomicity: Atomicity,
        lookup: Lookup,
    ) -> Result<Option<BatchOutcome>, RecordError> {
        let planned_as_new = lookup == Lookup::RefundTargets;
        let mut conn = self.held_writes.take().await.map_err(StorageError::from)?;
        let mut tx = conn
            .begin_with(BEGIN_PROBING)
            .await
            .map_err(StorageError::from)?;
        let summaries = lock_customers(&mut tx, batch).await?;
        let state = fetch_stored(&mut tx, batch, summaries, lookup).await?;
        let plan = match plan_batch(batch, state, atomicity) {
            Err(_) if planned_as_new => return Ok(None),
            Ok(plan)
                if planned_as_new
                    && plan
                        .outcomes
                        .iter()
                        .any(|(_, o)| matches!(o, EntryOutcome::Rejected(_))) =>
            {
                return Ok(None)
            }
            other => other?,
        };
        match write::apply(&mut tx, &plan).await {
            Err(e) if planned_as_new && e.is_unique_violation() => return Ok(None),
            other => other?,
        }
        tx.commit().await.map_err(StorageError::from)?;
        self.held_writes.put_back(conn);
        Ok(Some(BatchOutcome {
            outcomes: plan.outcomes,
        }))
    }
}

/// Which stored transactions an attempt reads before planning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lookup {
    /// Only the targets of the batch's refunds: the batch's own keys are
    /// planned as new, and the `transactions` primary key refuses the write
    /// if one is stored.
    RefundTargets,
    /// The batch's own keys too, so that the plan sees duplicates and
    /// conflicts.
    AllKeys,
}

/// Whether `customer` has a purchase occasion on `day`, when its summary
/// answers that without a read: the summary's first and last purchase
/// days are occasions, and no day outside them is. `None`: a day strictly
/// between them, which only `customer_days` can answer.
fn occasion_known(summary: &CustomerSummary, day: NaiveDate) -> Option<bool> {
    if day == summary.first_purchase_day || day == summary.last_purchase_day {
        Some(true)
    } else if day < summary.first_purchase_day || day > summary.last_purchase_day {
        Some(false)
    } else {
        None
    }
}

/// From how many distinct customers a batch locks the existing ones
/// without writing them ([`lock_customers`]). Below it (the groups of
/// single calls) one statement does it all: the second statement would be
/// one more round trip per group, for little (most of a group's customers
/// are new).
const LOCK_WITHOUT_WRITE_FROM: usize = 256;

/// Locks every customer of the batch (creating zeroed rows for new ones)
/// and returns their summaries: `None` for a customer with nothing stored.
///
/// A batch of fewer than [`LOCK_WITHOUT_WRITE_FROM`] customers upserts
/// them all with `DO UPDATE SET customer_id = excluded.customer_id`, which
/// locks an existing row by writing a new version of it and returns its
/// latest committed summary in the same statement.
///
/// A larger batch (an import batch) locks them without that write, in two
/// statements: an upsert `... DO UPDATE ... WHERE false` inserts the new
/// customers (returning them) and locks every existing row without writing
/// it (PostgreSQL locks the conflicting rows of `ON CONFLICT DO UPDATE`
/// whether or not its `WHERE` passes); then a plain `SELECT` reads the
/// locked customers' summaries. It must be a second statement: under READ
/// COMMITTED a statement's snapshot is taken before it waits for a lock,
/// so a read inside the upsert would miss a batch of the same customer
/// committed during the wait (`tests/api/ingest_lock_paths.rs`). Only
/// statements Citus runs across shards are used (no `SELECT ... FOR
/// UPDATE` over many customers). The summary update then writes each
/// existing customer's row once instead of twice.
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
    if customers.len() < LOCK_WITHOUT_WRITE_FROM {
        return upsert_customers(tx, &customers).await;
    }
    let created: Vec<String> = sqlx::query_scalar(
        "INSERT INTO customers AS c (customer_id)
         SELECT u.customer_id FROM unnest($1::text[]) AS u(customer_id)
         ON CONFLICT (customer_id) DO UPDATE SET customer_id = excluded.customer_id WHERE false
         RETURNING c.customer_id",
    )
    .bind(&customers)
    .fetch_all(&mut **tx)
    .await?;
    let mut summaries = HashMap::with_capacity(customers.len());
    for raw in &created {
        summaries.insert(stored_customer_id(raw)?, None);
    }
    let existing: Vec<&str> = if created.is_empty() {
        customers
    } else {
        let created: HashSet<&str> = created.iter().map(String::as_str).collect();
        customers
            .into_iter()
            .filter(|c| !created.contains(c))
            .collect()
    };
    if existing.is_empty() {
        return Ok(summaries);
    }
    let rows: Vec<SummaryRow> = sqlx::query_as(concat!(
        "SELECT ",
        summary_columns!(),
        " FROM unnest($1::text[]) AS u(customer_id)
          JOIN customers c ON c.customer_id = u.customer_id"
    ))
    .bind(&existing)
    .fetch_all(&mut **tx)
    .await?;
    for row in rows {
        let (customer, summary) = row.decode()?;
        summaries.insert(customer, summary);
    }
    if summaries.len() < existing.len() + created.len() {
        // Every row the upsert did not insert, it locked; a locked row
        // cannot go away. Should one be missing anyway, the one-statement
        // upsert creates or locks it and reads it.
        let missing: Vec<&str> = existing
            .into_iter()
            .filter(|c| CustomerId::from_stored(c).map_or(true, |id| !summaries.contains_key(&id)))
            .collect();
        summaries.extend(upsert_customers(tx, &missing).await?);
    }
    Ok(summaries)
}

/// Upserts `customers` (sorted, distinct) with a write that locks each
/// existing row, returning every summary; see [`lock_customers`].
async fn upsert_customers(
    tx: &mut PgTx<'_, Postgres>,
    customers: &[&str],
) -> Result<HashMap<CustomerId, Option<CustomerSummary>>, StorageError> {
    let rows: Vec<SummaryRow> = sqlx::query_as(concat!(
        "INSERT INTO customers AS c (customer_id)
         SELECT u.customer_id FROM unnest($1::text[]) AS u(customer_id)
         ON CONFLICT (customer_id) DO UPDATE SET customer_id = excluded.customer_id
         RETURNING ",
        summary_columns!()
    ))
    .bind(customers)
    .fetch_all(&mut **tx)
    .await?;
    rows.into_iter().map(SummaryRow::decode).collect()
}

columns! {
    /// Keys of stored transactions to read: the batch's own and its
    /// refunds' targets.
    struct KeyColumns<'a> {
        customer_id: Vec<&'a str> as "::text[]",
        transaction_id: Vec<&'a str> as "::text[]",
    }
}

columns! {
    /// (customer, day) of the batch's purchases: stored occasions to read.
    struct OccasionColumns<'a> {
        customer_id: Vec<&'a str> as "::text[]",
        day: Vec<NaiveDate> as "::date[]",
    }
}

/// Reads what the plan depends on: stored transactions among the refund
/// targets (and, with [`Lookup::AllKeys`], the batch's keys), and stored
/// occasions on its purchase days, where the summary does not answer. New
/// customers have nothing stored, so only existing ones are looked up.
async fn fetch_stored(
    tx: &mut PgTx<'_, Postgres>,
    batch: &Batch,
    summaries: HashMap<CustomerId, Option<CustomerSummary>>,
    lookup: Lookup,
) -> Result<StoredState, StorageError> {
    let mut keys = KeyColumns {
        customer_id: Vec::new(),
        transaction_id: Vec::new(),
    };
    let mut occasions = OccasionColumns {
        customer_id: Vec::new(),
        day: Vec::new(),
    };
    let mut known_occasions = HashSet::new();
    for t in batch.entries.iter().map(|e| &e.transaction) {
        let Some(Some(summary)) = summaries.get(&t.customer_id) else {
            continue;
        };
        if lookup == Lookup::AllKeys {
            keys.customer_id.push(t.customer_id.as_str());
            keys.transaction_id.push(t.transaction_id.as_str());
        }
        match &t.kind {
            TransactionKind::Refund { of } => {
                keys.customer_id.push(t.customer_id.as_str());
                keys.transaction_id.push(of.as_str());
            }
            TransactionKind::Purchase => match occasion_known(summary, t.occasion_day) {
                Some(true) => {
                    known_occasions.insert((t.customer_id.clone(), t.occasion_day));
                }
                Some(false) => {}
                None => {
                    occasions.customer_id.push(t.customer_id.as_str());
                    occasions.day.push(t.occasion_day);
                }
            },
        }
    }
    let mut state = StoredState {
        summaries,
        occasions: known_occasions,
        ..StoredState::default()
    };
    let (read_keys, read_occasions) = (
        !keys.customer_id.is_empty(),
        !occasions.customer_id.is_empty(),
    );
    if !read_keys && !read_occasions {
        return Ok(state);
    }
    // Each part only when it has something to read: a join to an empty
    // array may still be planned as a scan of the whole table.
    // Occasion rows come back with a NULL transaction_id.
    let mut q = QueryBuilder::new("");
    if read_keys {
        q.push(
            "SELECT t.customer_id, t.transaction_id, t.kind, t.occurred_at, t.occasion_day,
                    t.amount_nanos, t.cost_nanos, t.refunded_transaction_id, t.refunded_nanos
               FROM transactions t
               JOIN (SELECT DISTINCT customer_id, transaction_id FROM ",
        );
        push_unnest(&mut q, keys, "k");
        q.push(") k ON t.customer_id = k.customer_id AND t.transaction_id = k.transaction_id");
    }
    if read_keys && read_occasions {
        q.push(" UNION ALL ");
    }
    if read_occasions {
        q.push(
            "SELECT d.customer_id, NULL AS transaction_id, NULL::int2 AS kind,
                    NULL::timestamptz AS occurred_at, d.day AS occasion_day,
                    NULL::int8 AS amount_nanos, NULL::int8 AS cost_nanos,
                    NULL AS refunded_transaction_id, NULL::int8 AS refunded_nanos
               FROM customer_days d
               JOIN (SELECT DISTINCT customer_id, day FROM ",
        );
        push_unnest(&mut q, occasions, "k");
        q.push(") k ON d.customer_id = k.customer_id AND d.day = k.day");
    }
    let rows: Vec<StoredRow> = q.build_query_as().fetch_all(&mut **tx).await?;
    for row in rows {
        match row.decode()? {
            Stored::Occasion(customer, day) => {
                state.occasions.insert((customer, day));
            }
            Stored::Transaction(t) => {
                let key = (
                    t.transaction.customer_id.clone(),
                    t.transaction.transaction_id.clone(),
                );
                state.transactions.insert(key, t);
            }
        }
    }
    Ok(state)
}

/// A row of [`fetch_stored`]'s read: a stored transaction, or (every
/// column but the customer and the day NULL) a stored purchase occasion.
#[derive(Debug, sqlx::FromRow)]
struct StoredRow {
    customer_id: String,
    transaction_id: Option<String>,
    kind: Option<i16>,
    occurred_at: Option<DateTime<Utc>>,
    occasion_day: NaiveDate,
    amount_nanos: Option<i64>,
    cost_nanos: Option<i64>,
    refunded_transaction_id: Option<String>,
    refunded_nanos: Option<i64>,
}

enum Stored {
    Occasion(CustomerId, NaiveDate),
    Transaction(StoredTransaction),
}

impl StoredRow {
    fn decode(self) -> Result<Stored, StorageError> {
        let customer_id = stored_customer_id(&self.customer_id)?;
        let Some(transaction_id) = self.transaction_id else {
            return Ok(Stored::Occasion(customer_id, self.occasion_day));
        };
        let id = |column: &str, raw: &str| {
            TransactionId::from_stored(raw).map_err(|e| StorageError::corrupt(column, e))
        };
        let kind = match required("kind", self.kind)? {
            KIND_REFUND => {
                let column = "refunded_transaction_id";
                let of = required(column, self.refunded_transaction_id.as_deref())?;
                TransactionKind::Refund {
                    of: id(column, of)?,
                }
            }
            _ => TransactionKind::Purchase,
        };
        Ok(Stored::Transaction(StoredTransaction {
            transaction: Transaction {
                customer_id,
                transaction_id: id("transaction_id", &transaction_id)?,
                occurred_at: required("occurred_at", self.occurred_at)?,
                occasion_day: self.occasion_day,
                kind,
                amount: Amount::from_nanos(required("amount_nanos", self.amount_nanos)?),
                cost: self.cost_nanos.map(Amount::from_nanos),
            },
            refunded: Amount::from_nanos(required("refunded_nanos", self.refunded_nanos)?),
        }))
    }
}
