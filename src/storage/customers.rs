//! Per-customer reads and erasure.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::Row;

use super::{Storage, StorageError};
use crate::domain::{Amount, CustomerId};

/// A customer's purchase summary, as kept current at ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerSummary {
    pub customer_id: CustomerId,
    pub first_purchase_day: NaiveDate,
    pub last_purchase_day: NaiveDate,
    pub first_purchase_at: DateTime<Utc>,
    pub last_purchase_at: DateTime<Utc>,
    pub purchase_occasions: i32,
    pub purchase_count: i32,
    pub refund_count: i32,
    pub net_revenue: Amount,
    /// Net value of every occasion but the first.
    pub repeat_value: Amount,
    /// Total cost of the purchases that carried one.
    pub cost: Amount,
    /// Purchases recorded without a cost (margin is known only when 0).
    pub uncosted_purchases: i32,
}

/// What an erasure removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletedCustomer {
    pub transactions: u64,
    pub existed: bool,
}

impl Storage {
    pub async fn customer_summary(
        &self,
        id: &CustomerId,
    ) -> Result<Option<CustomerSummary>, StorageError> {
        let row = sqlx::query(
            "SELECT customer_id, first_purchase_day, last_purchase_day, first_purchase_at, last_purchase_at,
                    purchase_occasions, purchase_count, refund_count, net_revenue_nanos, repeat_value_nanos,
                    cost_nanos, uncosted_purchases
               FROM customers WHERE customer_id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(CustomerSummary {
            customer_id: id.clone(),
            first_purchase_day: row.try_get("first_purchase_day")?,
            last_purchase_day: row.try_get("last_purchase_day")?,
            first_purchase_at: row.try_get("first_purchase_at")?,
            last_purchase_at: row.try_get("last_purchase_at")?,
            purchase_occasions: row.try_get("purchase_occasions")?,
            purchase_count: row.try_get("purchase_count")?,
            refund_count: row.try_get("refund_count")?,
            net_revenue: Amount::from_nanos(row.try_get("net_revenue_nanos")?),
            repeat_value: Amount::from_nanos(row.try_get("repeat_value_nanos")?),
            cost: Amount::from_nanos(row.try_get("cost_nanos")?),
            uncosted_purchases: row.try_get("uncosted_purchases")?,
        }))
    }

    /// Erases every row of the customer, under the same lock that ingest
    /// takes, so no batch of theirs is half-applied around it.
    pub async fn delete_customer(&self, id: &CustomerId) -> Result<DeletedCustomer, StorageError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        let transactions = sqlx::query("DELETE FROM transactions WHERE customer_id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM customer_days WHERE customer_id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        let customers = sqlx::query("DELETE FROM customers WHERE customer_id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(DeletedCustomer {
            transactions,
            existed: transactions > 0 || customers > 0,
        })
    }
}
