//! The one statement that writes a planned batch: new transactions,
//! refunds booked on their purchases, per-day rollups (new rows inserted,
//! stored ones added to), summaries, dropped
//! placeholders, the ingest counter and the report queue.
//!
//! One statement (not one per table) is a measured speed choice: see the
//! ingest section of docs/benchmarks.md. A batch of many new transactions
//! (an import batch) writes them with binary `COPY` just before it
//! ([`copy_transactions`]), and its new day rows likewise. Its parameters are column arrays
//! for `unnest`, one struct per table part (declared with [`columns!`]):
//! each field is named for the column it fills, and the statement is
//! built around those declarations, so no parameter number is written by
//! hand.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{Postgres, QueryBuilder, Transaction as PgTx};

use super::{KIND_PURCHASE, KIND_REFUND};
use crate::{
    domain::{Amount, CustomerId, CustomerSummary, DayDelta, NewRow, Plan, TransactionKind},
    storage::{
        columns::{columns, push_insert_rows, push_unnest},
        copy_binary::BinaryRows,
        money::Numeric,
        StorageError,
    },
};

columns! {
    /// New `transactions` rows.
    struct TransactionColumns<'a> of TransactionRow {
        customer_id: &'a str as "::text[]",
        transaction_id: &'a str as "::text[]",
        kind: i16 as "::int2[]",
        occurred_at: DateTime<Utc> as "::timestamptz[]",
        occasion_day: NaiveDate as "::date[]",
        amount_nanos: i64 as "::int8[]",
        cost_nanos: Option<i64> as "::int8[]",
        refunded_transaction_id: Option<&'a str> as "::text[]",
        refunded_nanos: i64 as "::int8[]",
    }
}

columns! {
    /// Amounts to add to the `refunded_nanos` of stored purchases.
    struct RefundColumns<'a> of RefundRow {
        customer_id: &'a str as "::text[]",
        transaction_id: &'a str as "::text[]",
        refunded_nanos: i64 as "::int8[]",
    }
}

columns! {
    /// Changes to `customer_days` rows (added to a stored row, or a new one).
    struct DayColumns<'a> of DayRow {
        customer_id: &'a str as "::text[]",
        day: NaiveDate as "::date[]",
        purchases: i32 as "::int4[]",
        refunds: i32 as "::int4[]",
        net_nanos: Numeric as "::numeric[]",
        cost_nanos: Numeric as "::numeric[]",
        uncosted_purchases: i32 as "::int4[]",
        first_purchase_at: DateTime<Utc> as "::timestamptz[]",
        last_purchase_at: DateTime<Utc> as "::timestamptz[]",
    }
}

columns! {
    /// The new `customers` summaries of the customers the batch changes.
    struct SummaryColumns<'a> of SummaryRow {
        customer_id: &'a str as "::text[]",
        first_purchase_day: NaiveDate as "::date[]",
        last_purchase_day: NaiveDate as "::date[]",
        first_purchase_at: DateTime<Utc> as "::timestamptz[]",
        last_purchase_at: DateTime<Utc> as "::timestamptz[]",
        purchase_occasions: i32 as "::int4[]",
        purchase_count: i32 as "::int4[]",
        refund_count: i32 as "::int4[]",
        net_revenue_nanos: Numeric as "::numeric[]",
        repeat_value_nanos: Numeric as "::numeric[]",
        cost_nanos: Numeric as "::numeric[]",
        uncosted_purchases: i32 as "::int4[]",
    }
}

columns! {
    /// Customers to queue in `report_dirty` (for the report aggregates).
    struct QueueColumns<'a> of QueueRow {
        customer_id: &'a str as "::text[]",
    }
}

/// One of the 64 `ingest_counters` rows, picked so that concurrent batches
/// seldom share one (the clock's nanoseconds are random enough for that).
fn counter_slot() -> i16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    ((nanos >> 10) % 64) as i16
}

fn transaction_row(row: &NewRow) -> TransactionRow<'_> {
    let t = &row.transaction;
    let (kind, refunded_transaction_id) = match &t.kind {
        TransactionKind::Purchase => (KIND_PURCHASE, None),
        TransactionKind::Refund { of } => (KIND_REFUND, Some(of.as_str())),
    };
    TransactionRow {
        customer_id: t.customer_id.as_str(),
        transaction_id: t.transaction_id.as_str(),
        kind,
        occurred_at: t.occurred_at,
        occasion_day: t.occasion_day,
        amount_nanos: t.amount.nanos(),
        cost_nanos: t.cost.map(Amount::nanos),
        refunded_transaction_id,
        refunded_nanos: row.refunded.nanos(),
    }
}

fn day_row(d: &DayDelta) -> DayRow<'_> {
    DayRow {
        customer_id: d.customer_id.as_str(),
        day: d.day,
        purchases: d.purchases,
        refunds: d.refunds,
        net_nanos: Numeric(d.net),
        cost_nanos: Numeric(d.cost),
        uncosted_purchases: d.uncosted_purchases,
        first_purchase_at: d.first_purchase_at,
        last_purchase_at: d.last_purchase_at,
    }
}

fn summary_row(s: &CustomerSummary) -> SummaryRow<'_> {
    SummaryRow {
        customer_id: s.customer_id.as_str(),
        first_purchase_day: s.first_purchase_day,
        last_purchase_day: s.last_purchase_day,
        first_purchase_at: s.first_purchase_at,
        last_purchase_at: s.last_purchase_at,
        purchase_occasions: s.purchase_occasions,
        purchase_count: s.purchase_count,
        refund_count: s.refund_count,
        net_revenue_nanos: Numeric(s.net_revenue),
        repeat_value_nanos: Numeric(s.repeat_value),
        cost_nanos: Numeric(s.cost),
        uncosted_purchases: s.uncosted_purchases,
    }
}

/// From how many new transactions a batch writes them with binary `COPY`
/// ([`copy_transactions`]) rather than in the statement's `INSERT ...
/// unnest` part. `COPY` inserts rows a page at a time (one WAL record per
/// page of rows rather than per row) but is one more round trip: worth it
/// for import batches, not for the groups of single calls.
const COPY_TRANSACTIONS_FROM: usize = 256;

/// Writes `rows` into `transactions` with binary `COPY`, in the batch's
/// database transaction. The primary key refuses a stored key with SQLSTATE
/// 23505 as the `INSERT` would, so the caller's fallback applies alike.
async fn copy_transactions(
    tx: &mut PgTx<'_, Postgres>,
    rows: &[NewRow],
) -> Result<(), StorageError> {
    let mut copy = tx
        .copy_in_raw(
            "COPY transactions (customer_id, transaction_id, kind, occurred_at, occasion_day,
                 amount_nanos, cost_nanos, refunded_transaction_id, refunded_nanos)
             FROM STDIN WITH (FORMAT binary)",
        )
        .await?;
    let mut out = BinaryRows::new(rows.len() * 120);
    for row in rows {
        let r = transaction_row(row);
        out.row(9);
        out.text(r.customer_id);
        out.text(r.transaction_id);
        out.int2(r.kind);
        out.timestamptz(r.occurred_at);
        out.date(r.occasion_day);
        out.int8(r.amount_nanos);
        match r.cost_nanos {
            Some(c) => out.int8(c),
            None => out.null(),
        }
        match r.refunded_transaction_id {
            Some(of) => out.text(of),
            None => out.null(),
        }
        out.int8(r.refunded_nanos);
    }
    out.finish();
    copy.send(out.take()).await?;
    copy.finish().await?;
    Ok(())
}

/// Writes `days` (new rows) into `customer_days` with binary `COPY`; see
/// [`copy_transactions`].
async fn copy_new_days(
    tx: &mut PgTx<'_, Postgres>,
    days: &[&DayDelta],
) -> Result<(), StorageError> {
    let mut copy = tx
        .copy_in_raw(
            "COPY customer_days (customer_id, day, purchases, refunds, net_nanos, cost_nanos,
                 uncosted_purchases, first_purchase_at, last_purchase_at)
             FROM STDIN WITH (FORMAT binary)",
        )
        .await?;
    let mut out = BinaryRows::new(days.len() * 100);
    for d in days {
        out.row(9);
        out.text(d.customer_id.as_str());
        out.date(d.day);
        out.int4(d.purchases);
        out.int4(d.refunds);
        out.numeric_integer(d.net.nanos());
        out.numeric_integer(d.cost.nanos());
        out.int4(d.uncosted_purchases);
        out.timestamptz(d.first_purchase_at);
        out.timestamptz(d.last_purchase_at);
    }
    out.finish();
    copy.send(out.take()).await?;
    copy.finish().await?;
    Ok(())
}

/// Writes the whole plan in one statement (a large batch's new
/// transactions and day rows first, by [`copy_transactions`] and
/// [`copy_new_days`]): the parts touch
/// different rows and none reads another's result.
pub(super) async fn apply(tx: &mut PgTx<'_, Postgres>, plan: &Plan) -> Result<(), StorageError> {
    if plan.inserts.is_empty() && plan.placeholders_to_drop.is_empty() {
        return Ok(());
    }
    let transactions: TransactionColumns = if plan.inserts.len() >= COPY_TRANSACTIONS_FROM {
        copy_transactions(tx, &plan.inserts).await?;
        std::iter::empty().collect()
    } else {
        plan.inserts.iter().map(transaction_row).collect()
    };
    let refunds: RefundColumns = plan
        .refund_updates
        .iter()
        .map(|(customer, purchase, add)| RefundRow {
            customer_id: customer.as_str(),
            transaction_id: purchase.as_str(),
            refunded_nanos: add.nanos(),
        })
        .collect();
    // Stored rows get an UPDATE, new ones a plain INSERT: an upsert would
    // probe the primary key once more per row (measured in the ingest
    // section of docs/benchmarks.md).
    let (stored_days, new_days): (Vec<&DayDelta>, Vec<&DayDelta>) =
        plan.day_deltas.iter().partition(|d| d.stored);
    let days_to_add = stored_days.len() as i64;
    let new_days: DayColumns = if new_days.len() >= COPY_TRANSACTIONS_FROM {
        copy_new_days(tx, &new_days).await?;
        std::iter::empty().collect()
    } else {
        new_days.into_iter().map(day_row).collect()
    };
    let stored_days: DayColumns = stored_days.into_iter().map(day_row).collect();
    let placeholders: Vec<&str> = plan
        .placeholders_to_drop
        .iter()
        .map(CustomerId::as_str)
        .collect();
    let queue: QueueColumns = plan
        .summaries
        .iter()
        .map(|s| QueueRow {
            customer_id: s.customer_id.as_str(),
        })
        .collect();
    let summaries: SummaryColumns = plan.summaries.iter().map(summary_row).collect();

    let mut q = QueryBuilder::new("WITH new_transactions AS (INSERT INTO transactions ");
    push_insert_rows(&mut q, transactions);
    q.push(
        "), refunded AS (
             UPDATE transactions t SET refunded_nanos = t.refunded_nanos + u.refunded_nanos
               FROM ",
    );
    push_unnest(&mut q, refunds, "u");
    q.push(
        " WHERE t.customer_id = u.customer_id AND t.transaction_id = u.transaction_id
         ), new_days AS (INSERT INTO customer_days ",
    );
    push_insert_rows(&mut q, new_days);
    q.push(
        "), days_added AS (
             UPDATE customer_days d SET
                 purchases = d.purchases + u.purchases,
                 refunds = d.refunds + u.refunds,
                 net_nanos = d.net_nanos + u.net_nanos,
                 cost_nanos = d.cost_nanos + u.cost_nanos,
                 uncosted_purchases = d.uncosted_purchases + u.uncosted_purchases,
                 first_purchase_at = least(d.first_purchase_at, u.first_purchase_at),
                 last_purchase_at = greatest(d.last_purchase_at, u.last_purchase_at)
               FROM ",
    );
    push_unnest(&mut q, stored_days, "u");
    q.push(
        " WHERE d.customer_id = u.customer_id AND d.day = u.day
             RETURNING 1
         ), dropped AS (
             DELETE FROM customers WHERE customer_id = ANY(",
    );
    q.push_bind(placeholders);
    q.push(
        "::text[])
         ), counted AS (
             UPDATE ingest_counters SET transactions = transactions + ",
    );
    q.push_bind(plan.inserts.len() as i64);
    q.push(" WHERE slot = ");
    q.push_bind(counter_slot());
    q.push("), queued AS (INSERT INTO report_dirty ");
    push_insert_rows(&mut q, queue);
    q.push(
        "), summarised AS (
         UPDATE customers c SET
             first_purchase_day = u.first_purchase_day, last_purchase_day = u.last_purchase_day,
             first_purchase_at = u.first_purchase_at, last_purchase_at = u.last_purchase_at,
             purchase_occasions = u.purchase_occasions,
             purchase_count = u.purchase_count, refund_count = u.refund_count,
             net_revenue_nanos = u.net_revenue_nanos, repeat_value_nanos = u.repeat_value_nanos,
             cost_nanos = u.cost_nanos, uncosted_purchases = u.uncosted_purchases,
             updated_at = now()
           FROM ",
    );
    push_unnest(&mut q, summaries, "u");
    q.push(
        " WHERE c.customer_id = u.customer_id
         ) SELECT count(*) FROM days_added",
    );
    let added: i64 = q.build_query_scalar().fetch_one(&mut **tx).await?;
    // The plan read every stored row it adds to under the customers' locks;
    // a row missing here would lose its delta, so the batch fails instead.
    if added != days_to_add {
        return Err(StorageError::corrupt(
            "customer_days",
            format!("{added} of the {days_to_add} day rows the plan adds to are stored"),
        ));
    }
    Ok(())
}
