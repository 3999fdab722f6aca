//! Per-customer reads and erasure.

use chrono::{DateTime, NaiveDate, Utc};

use super::{error::required, money::total, Storage, StorageError};
use crate::domain::{CustomerId, CustomerSummary};

/// What an erasure removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletedCustomer {
    pub transactions: u64,
    pub existed: bool,
}

/// The columns of a [`SummaryRow`] from `customers` aliased `c`, money as
/// exact text (see [`super::money`]). A macro so that statements built
/// with `concat!` stay `&'static str` (prepared once per connection).
macro_rules! summary_columns {
    () => {
        "c.customer_id, c.first_purchase_day, c.last_purchase_day, c.first_purchase_at,
         c.last_purchase_at, c.purchase_occasions, c.purchase_count, c.refund_count,
         c.net_revenue_nanos::text AS net_revenue, c.repeat_value_nanos::text AS repeat_value,
         c.cost_nanos::text AS cost, c.uncosted_purchases"
    };
}
pub(super) use summary_columns;

/// `SELECT` [`summary_columns!`] `FROM customers c`, then `$tail`.
macro_rules! select_summaries {
    ($tail:literal) => {
        concat!("SELECT ", summary_columns!(), " FROM customers c ", $tail)
    };
}
pub(super) use select_summaries;

/// A `customers` row as [`summary_columns!`] reads it.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct SummaryRow {
    customer_id: String,
    first_purchase_day: Option<NaiveDate>,
    last_purchase_day: Option<NaiveDate>,
    first_purchase_at: Option<DateTime<Utc>>,
    last_purchase_at: Option<DateTime<Utc>>,
    purchase_occasions: i32,
    purchase_count: i32,
    refund_count: i32,
    net_revenue: Option<String>,
    repeat_value: Option<String>,
    cost: Option<String>,
    uncosted_purchases: i32,
}

impl SummaryRow {
    /// The customer, and their summary: `None` for the zeroed placeholder
    /// row that ingest creates to lock a new customer.
    pub(super) fn decode(self) -> Result<(CustomerId, Option<CustomerSummary>), StorageError> {
        let customer_id = stored_customer_id(&self.customer_id)?;
        if self.purchase_occasions <= 0 {
            return Ok((customer_id, None));
        }
        let summary = CustomerSummary {
            customer_id: customer_id.clone(),
            first_purchase_day: required("first_purchase_day", self.first_purchase_day)?,
            last_purchase_day: required("last_purchase_day", self.last_purchase_day)?,
            first_purchase_at: required("first_purchase_at", self.first_purchase_at)?,
            last_purchase_at: required("last_purchase_at", self.last_purchase_at)?,
            purchase_occasions: self.purchase_occasions,
            purchase_count: self.purchase_count,
            refund_count: self.refund_count,
            net_revenue: total("net_revenue_nanos", self.net_revenue.as_deref())?,
            repeat_value: total("repeat_value_nanos", self.repeat_value.as_deref())?,
            cost: total("cost_nanos", self.cost.as_deref())?,
            uncosted_purchases: self.uncosted_purchases,
        };
        Ok((customer_id, Some(summary)))
    }

    /// The summary of a row read with `purchase_occasions > 0`.
    pub(super) fn into_summary(self) -> Result<CustomerSummary, StorageError> {
        self.decode()?
            .1
            .ok_or_else(|| StorageError::corrupt("purchase_occasions", "0 where it was above 0"))
    }
}

/// A stored customer id, which this service validated before writing it.
pub(super) fn stored_customer_id(raw: &str) -> Result<CustomerId, StorageError> {
    CustomerId::from_stored(raw).map_err(|e| StorageError::corrupt("customer_id", e))
}

impl Storage {
    pub async fn customer_summary(
        &self,
        id: &CustomerId,
    ) -> Result<Option<CustomerSummary>, StorageError> {
        let row: Option<SummaryRow> = sqlx::query_as(select_summaries!(
            "WHERE c.customer_id = $1 AND c.purchase_occasions > 0"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.reads)
        .await?;
        row.map(SummaryRow::into_summary).transpose()
    }

    /// Erases every row of the customer under the customer's row lock (the
    /// one ingest takes), so no batch of theirs is half-applied around it.
    pub async fn delete_customer(&self, id: &CustomerId) -> Result<DeletedCustomer, StorageError> {
        let mut tx = self.pool.begin().await?;
        let customers = sqlx::query("DELETE FROM customers WHERE customer_id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let transactions = sqlx::query("DELETE FROM transactions WHERE customer_id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM customer_days WHERE customer_id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        Storage::forget_contribution(&mut tx, id).await?;
        sqlx::query("DELETE FROM report_dirty WHERE customer_id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        let answers = sqlx::query("DELETE FROM feedback WHERE customer_id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(DeletedCustomer {
            transactions,
            existed: transactions > 0 || customers > 0 || answers > 0,
        })
    }
}
