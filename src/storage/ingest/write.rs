//! The one statement that writes a planned batch: new transactions,
//! refunds booked on their purchases, per-day rollups, summaries, dropped
//! placeholders, the ingest counter and the report queue.
//!
//! One statement (not one per table) is a measured speed choice: see the
//! ingest section of docs/benchmarks.md. Its parameters are column arrays
//! for `unnest`, one struct per table part (declared with [`columns!`]):
//! each field is named for the column it fills, and the statement is
//! built around those declarations, so no parameter number is written by
//! hand.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{Postgres, QueryBuilder, Transaction as PgTx};

use super::{KIND_PURCHASE, KIND_REFUND};
use crate::{
    domain::{Amount, CustomerId, Plan, TransactionKind},
    storage::{
        columns::{columns, push_insert_rows, push_unnest},
        money::texts,
        StorageError,
    },
};

columns! {
    #[derive(Default)]
    /// New `transactions` rows.
    struct TransactionColumns<'a> {
        customer_id: Vec<&'a str> as "::text[]",
        transaction_id: Vec<&'a str> as "::text[]",
        kind: Vec<i16> as "::int2[]",
        occurred_at: Vec<DateTime<Utc>> as "::timestamptz[]",
        occasion_day: Vec<NaiveDate> as "::date[]",
        amount_nanos: Vec<i64> as "::int8[]",
        cost_nanos: Vec<Option<i64>> as "::int8[]",
        refunded_transaction_id: Vec<Option<&'a str>> as "::text[]",
        refunded_nanos: Vec<i64> as "::int8[]",
    }
}

columns! {
    #[derive(Default)]
    /// Amounts to add to the `refunded_nanos` of stored purchases.
    struct RefundColumns<'a> {
        customer_id: Vec<&'a str> as "::text[]",
        transaction_id: Vec<&'a str> as "::text[]",
        refunded_nanos: Vec<i64> as "::int8[]",
    }
}

columns! {
    #[derive(Default)]
    /// Changes to `customer_days` rows (added to a stored row, or a new one).
    struct DayColumns<'a> {
        customer_id: Vec<&'a str> as "::text[]",
        day: Vec<NaiveDate> as "::date[]",
        purchases: Vec<i32> as "::int4[]",
        refunds: Vec<i32> as "::int4[]",
        net_nanos: Vec<String> as "::text[]::numeric[]",
        cost_nanos: Vec<String> as "::text[]::numeric[]",
        uncosted_purchases: Vec<i32> as "::int4[]",
        first_purchase_at: Vec<DateTime<Utc>> as "::timestamptz[]",
        last_purchase_at: Vec<DateTime<Utc>> as "::timestamptz[]",
    }
}

columns! {
    #[derive(Default)]
    /// The new `customers` summaries of the customers the batch changes.
    struct SummaryColumns<'a> {
        customer_id: Vec<&'a str> as "::text[]",
        first_purchase_day: Vec<NaiveDate> as "::date[]",
        last_purchase_day: Vec<NaiveDate> as "::date[]",
        first_purchase_at: Vec<DateTime<Utc>> as "::timestamptz[]",
        last_purchase_at: Vec<DateTime<Utc>> as "::timestamptz[]",
        purchase_occasions: Vec<i32> as "::int4[]",
        purchase_count: Vec<i32> as "::int4[]",
        refund_count: Vec<i32> as "::int4[]",
        net_revenue_nanos: Vec<String> as "::text[]::numeric[]",
        repeat_value_nanos: Vec<String> as "::text[]::numeric[]",
        cost_nanos: Vec<String> as "::text[]::numeric[]",
        uncosted_purchases: Vec<i32> as "::int4[]",
    }
}

columns! {
    #[derive(Default)]
    /// Customers to queue in `report_dirty` (for the report aggregates).
    struct QueueColumns<'a> {
        customer_id: Vec<&'a str> as "::text[]",
    }
}

impl<'a> TransactionColumns<'a> {
    fn new(plan: &'a Plan) -> Self {
        let mut c = Self::default();
        for row in &plan.inserts {
            let t = &row.transaction;
            let (kind, target) = match &t.kind {
                TransactionKind::Purchase => (KIND_PURCHASE, None),
                TransactionKind::Refund { of } => (KIND_REFUND, Some(of.as_str())),
            };
            c.customer_id.push(t.customer_id.as_str());
            c.transaction_id.push(t.transaction_id.as_str());
            c.kind.push(kind);
            c.occurred_at.push(t.occurred_at);
            c.occasion_day.push(t.occasion_day);
            c.amount_nanos.push(t.amount.nanos());
            c.cost_nanos.push(t.cost.map(Amount::nanos));
            c.refunded_transaction_id.push(target);
            c.refunded_nanos.push(row.refunded.nanos());
        }
        c
    }
}

impl<'a> RefundColumns<'a> {
    fn new(plan: &'a Plan) -> Self {
        let mut c = Self::default();
        for (customer, purchase, add) in &plan.refund_updates {
            c.customer_id.push(customer.as_str());
            c.transaction_id.push(purchase.as_str());
            c.refunded_nanos.push(add.nanos());
        }
        c
    }
}

impl<'a> DayColumns<'a> {
    fn new(plan: &'a Plan) -> Self {
        let d = &plan.day_deltas;
        Self {
            customer_id: d.iter().map(|x| x.customer_id.as_str()).collect(),
            day: d.iter().map(|x| x.day).collect(),
            purchases: d.iter().map(|x| x.purchases).collect(),
            refunds: d.iter().map(|x| x.refunds).collect(),
            net_nanos: texts(d.iter().map(|x| x.net)),
            cost_nanos: texts(d.iter().map(|x| x.cost)),
            uncosted_purchases: d.iter().map(|x| x.uncosted_purchases).collect(),
            first_purchase_at: d.iter().map(|x| x.first_purchase_at).collect(),
            last_purchase_at: d.iter().map(|x| x.last_purchase_at).collect(),
        }
    }
}

impl<'a> SummaryColumns<'a> {
    fn new(plan: &'a Plan) -> Self {
        let s = &plan.summaries;
        Self {
            customer_id: s.iter().map(|x| x.customer_id.as_str()).collect(),
            first_purchase_day: s.iter().map(|x| x.first_purchase_day).collect(),
            last_purchase_day: s.iter().map(|x| x.last_purchase_day).collect(),
            first_purchase_at: s.iter().map(|x| x.first_purchase_at).collect(),
            last_purchase_at: s.iter().map(|x| x.last_purchase_at).collect(),
            purchase_occasions: s.iter().map(|x| x.purchase_occasions).collect(),
            purchase_count: s.iter().map(|x| x.purchase_count).collect(),
            refund_count: s.iter().map(|x| x.refund_count).collect(),
            net_revenue_nanos: texts(s.iter().map(|x| x.net_revenue)),
            repeat_value_nanos: texts(s.iter().map(|x| x.repeat_value)),
            cost_nanos: texts(s.iter().map(|x| x.cost)),
            uncosted_purchases: s.iter().map(|x| x.uncosted_purchases).collect(),
        }
    }
}

impl<'a> QueueColumns<'a> {
    /// The customers whose summary the batch changes.
    fn new(plan: &'a Plan) -> Self {
        Self {
            customer_id: plan
                .summaries
                .iter()
                .map(|s| s.customer_id.as_str())
                .collect(),
        }
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

/// Writes the whole plan in one statement: the parts touch different rows
/// and none reads another's result.
pub(super) async fn apply(tx: &mut PgTx<'_, Postgres>, plan: &Plan) -> Result<(), StorageError> {
    if plan.inserts.is_empty() && plan.placeholders_to_drop.is_empty() {
        return Ok(());
    }
    let mut q = QueryBuilder::new("WITH new_transactions AS (INSERT INTO transactions ");
    push_insert_rows(&mut q, TransactionColumns::new(plan));
    q.push(
        "), refunded AS (
             UPDATE transactions t SET refunded_nanos = t.refunded_nanos + u.refunded_nanos
               FROM ",
    );
    push_unnest(&mut q, RefundColumns::new(plan), "u");
    q.push(
        " WHERE t.customer_id = u.customer_id AND t.transaction_id = u.transaction_id
         ), days AS (INSERT INTO customer_days AS d ",
    );
    push_insert_rows(&mut q, DayColumns::new(plan));
    q.push(
        " ON CONFLICT (customer_id, day) DO UPDATE SET
                 purchases = d.purchases + excluded.purchases,
                 refunds = d.refunds + excluded.refunds,
                 net_nanos = d.net_nanos + excluded.net_nanos,
                 cost_nanos = d.cost_nanos + excluded.cost_nanos,
                 uncosted_purchases = d.uncosted_purchases + excluded.uncosted_purchases,
                 first_purchase_at = least(d.first_purchase_at, excluded.first_purchase_at),
                 last_purchase_at = greatest(d.last_purchase_at, excluded.last_purchase_at)
         ), dropped AS (
             DELETE FROM customers WHERE customer_id = ANY(",
    );
    let placeholders: Vec<&str> = plan
        .placeholders_to_drop
        .iter()
        .map(CustomerId::as_str)
        .collect();
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
    push_insert_rows(&mut q, QueueColumns::new(plan));
    q.push(
        ")
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
    push_unnest(&mut q, SummaryColumns::new(plan), "u");
    q.push(" WHERE c.customer_id = u.customer_id");
    q.build().execute(&mut **tx).await?;
    Ok(())
}
