//! Per-customer reads and erasure.

use sqlx::{postgres::PgRow, Row};

use super::{money::total, Storage, StorageError};
use crate::domain::{CustomerId, CustomerSummary};

/// What an erasure removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletedCustomer {
    pub transactions: u64,
    pub existed: bool,
}

/// A `customers` row as a summary: every column, plus the money columns
/// as text (`net_revenue_text`, `repeat_value_text`, `cost_text`; see
/// [`super::money`]).
pub(super) fn summary_from_row(row: &PgRow) -> Result<CustomerSummary, StorageError> {
    Ok(CustomerSummary {
        customer_id: CustomerId::from_stored(row.try_get("customer_id")?).map_err(|e| {
            StorageError::Database(sqlx::Error::Decode(
                format!("stored customer_id: {e}").into(),
            ))
        })?,
        first_purchase_day: row.try_get("first_purchase_day")?,
        last_purchase_day: row.try_get("last_purchase_day")?,
        first_purchase_at: row.try_get("first_purchase_at")?,
        last_purchase_at: row.try_get("last_purchase_at")?,
        purchase_occasions: row.try_get("purchase_occasions")?,
        purchase_count: row.try_get("purchase_count")?,
        refund_count: row.try_get("refund_count")?,
        net_revenue: total(row, "net_revenue_text")?,
        repeat_value: total(row, "repeat_value_text")?,
        cost: total(row, "cost_text")?,
        uncosted_purchases: row.try_get("uncosted_purchases")?,
    })
}

impl Storage {
    pub async fn customer_summary(
        &self,
        id: &CustomerId,
    ) -> Result<Option<CustomerSummary>, StorageError> {
        let row = sqlx::query(
            "SELECT *, net_revenue_nanos::text AS net_revenue_text,
                    repeat_value_nanos::text AS repeat_value_text, cost_nanos::text AS cost_text
               FROM customers WHERE customer_id = $1 AND purchase_occasions > 0",
        )
        .bind(id.as_str())
        .fetch_optional(&self.reads)
        .await?;
        row.as_ref().map(summary_from_row).transpose()
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
