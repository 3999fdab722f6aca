//! A customer's purchase summary: what the models read (x, t_x, T, m come
//! from it), kept current at ingest.

use chrono::{DateTime, NaiveDate, Utc};

use super::{Amount, CustomerId};

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
    pub net_revenue: Amount,
    /// Net value of every occasion but the first (m = repeat_value / x).
    pub repeat_value: Amount,
    /// Total cost of the purchases that carried one.
    pub cost: Amount,
    /// Purchases recorded without a cost (margin is known only when 0).
    pub uncosted_purchases: i32,
}

impl CustomerSummary {
    /// Net value of the first occasion.
    pub fn first_occasion_value(&self) -> i64 {
        self.net_revenue.nanos() - self.repeat_value.nanos()
    }
}
