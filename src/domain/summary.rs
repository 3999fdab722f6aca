//! A customer's purchase summary: what the models read (x, t_x, T, m come
//! from it), kept current at ingest.

use chrono::{DateTime, NaiveDate, Utc};

use super::{CustomerId, Total};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerSummary {
    pub customer_id: CustomerId,
    pub first_purchase_day: NaiveDate,
    pub last_purchase_day: NaiveDate,
    pub first_purchase_at: DateTime<Utc>,
    pub last_purchase_at: DateTime<Utc>,
    /// Days with at least one purchase (x = purchase_occasions − 1).
    pub purchase_occasions: i32,
    pub purchase_count: i32,
    pub refund_count: i32,
    /// Purchases minus refunds.
    pub net_revenue: Total,
    /// Net value of every occasion but the first (m = repeat_value / x).
    pub repeat_value: Total,
    /// Total cost of the purchases that carried one.
    pub cost: Total,
    /// Purchases recorded without a cost (margin is known only when 0).
    pub uncosted_purchases: i32,
}
