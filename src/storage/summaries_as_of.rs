//! Customer summaries as of a past instant, for point-in-time scores:
//! computed from the raw `transactions` table (the `customers` row is
//! the summary as of now only).
//!
//! The definitions are the live ones (docs/definitions.md#customer-summary),
//! restricted to what had occurred by the instant: the purchases with
//! `occurred_at <= as_of`, grouped into occasions by their stored business
//! day (`occasion_day`, so the time zone is the one ingest used), and the
//! refunds with `occurred_at <= as_of` of those purchases, each booked on
//! its purchase's day as ingest books it. Erased customers have no rows
//! left, so they stay erased.

use chrono::{DateTime, Utc};

use super::{
    customers::{summary_columns, SummaryRow},
    Storage, StorageError,
};
use crate::domain::{CustomerId, CustomerSummary};

/// The summaries of `$1` (customer ids) as of `$2` (an instant), in the
/// shape of a `customers` row aliased `c`, read with [`summary_columns!`].
const SUMMARIES_AS_OF: &str = concat!(
    "WITH purchases AS (
         SELECT p.customer_id, p.transaction_id, p.occasion_day, p.occurred_at,
                p.amount_nanos, p.cost_nanos
           FROM transactions p
          WHERE p.customer_id = ANY($1::text[]) AND p.kind = 1 AND p.occurred_at <= $2
     ),
     refunds AS (
         SELECT p.customer_id, p.occasion_day, r.amount_nanos
           FROM transactions r
           JOIN purchases p
             ON p.customer_id = r.customer_id AND p.transaction_id = r.refunded_transaction_id
          WHERE r.customer_id = ANY($1::text[]) AND r.kind = 2 AND r.occurred_at <= $2
     ),
     days AS (
         SELECT d.customer_id, d.day, d.first_at, d.last_at, d.purchases, d.cost_nanos,
                d.uncosted, coalesce(f.refunds, 0) AS refunds,
                d.gross_nanos - coalesce(f.refunded_nanos, 0) AS net_nanos
           FROM (SELECT customer_id, occasion_day AS day, min(occurred_at) AS first_at,
                        max(occurred_at) AS last_at, count(*) AS purchases,
                        coalesce(sum(cost_nanos), 0) AS cost_nanos,
                        count(*) FILTER (WHERE cost_nanos IS NULL) AS uncosted,
                        sum(amount_nanos) AS gross_nanos
                   FROM purchases GROUP BY customer_id, occasion_day) d
           LEFT JOIN (SELECT customer_id, occasion_day AS day, count(*) AS refunds,
                             sum(amount_nanos) AS refunded_nanos
                        FROM refunds GROUP BY customer_id, occasion_day) f
             ON f.customer_id = d.customer_id AND f.day = d.day
     )
     SELECT ",
    summary_columns!(),
    " FROM (SELECT customer_id, min(day) AS first_purchase_day, max(day) AS last_purchase_day,
                  min(first_at) AS first_purchase_at, max(last_at) AS last_purchase_at,
                  count(*)::int AS purchase_occasions, sum(purchases)::int AS purchase_count,
                  sum(refunds)::int AS refund_count, sum(net_nanos) AS net_revenue_nanos,
                  sum(net_nanos) - (array_agg(net_nanos ORDER BY day))[1] AS repeat_value_nanos,
                  sum(cost_nanos) AS cost_nanos, sum(uncosted)::int AS uncosted_purchases
             FROM days GROUP BY customer_id) c"
);

impl Storage {
    /// The summaries of `ids` as of `as_of`, for those with a purchase by
    /// then (in no particular order): one statement for the whole batch,
    /// on the transactions' primary key.
    pub async fn summaries_as_of(
        &self,
        ids: &[CustomerId],
        as_of: DateTime<Utc>,
    ) -> Result<Vec<CustomerSummary>, StorageError> {
        let customer_ids: Vec<&str> = ids.iter().map(CustomerId::as_str).collect();
        let rows: Vec<SummaryRow> = sqlx::query_as(SUMMARIES_AS_OF)
            .bind(&customer_ids)
            .bind(as_of)
            .fetch_all(&self.reads)
            .await?;
        rows.into_iter().map(SummaryRow::into_summary).collect()
    }
}
