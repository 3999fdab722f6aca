//! Survey answers and acquisition spend: idempotent inserts by the caller's
//! key. A key seen before is a duplicate when the stored row has the same
//! content, and a conflict otherwise; either way nothing changes.

use sqlx::postgres::PgRow;

use super::{Storage, StorageError};
use crate::domain::{AcquisitionSpend, Feedback};

/// What an idempotent write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Recorded,
    /// The key was stored before with the same content.
    Duplicate,
    /// The key was stored before with other content.
    Conflict,
}

/// The outcome of an `INSERT .. ON CONFLICT DO NOTHING RETURNING` whose
/// conflicting row was read back as `same` (does it hold this content?).
fn written(inserted: Option<PgRow>, same: Option<bool>) -> Written {
    match (inserted, same) {
        (Some(_), _) => Written::Recorded,
        (None, Some(true)) => Written::Duplicate,
        (None, _) => Written::Conflict,
    }
}

impl Storage {
    pub async fn record_feedback(&self, f: &Feedback) -> Result<Written, StorageError> {
        let inserted = sqlx::query(
            "INSERT INTO feedback (customer_id, feedback_id, occurred_at, nps, csat, ces)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (customer_id, feedback_id) DO NOTHING RETURNING 1",
        )
        .bind(f.customer_id.as_str())
        .bind(f.feedback_id.as_str())
        .bind(f.occurred_at)
        .bind(f.scores.nps)
        .bind(f.scores.csat)
        .bind(f.scores.ces)
        .fetch_optional(&self.pool)
        .await?;
        let same = if inserted.is_none() {
            sqlx::query_scalar(
                "SELECT occurred_at = $3 AND nps IS NOT DISTINCT FROM $4
                        AND csat IS NOT DISTINCT FROM $5 AND ces IS NOT DISTINCT FROM $6
                   FROM feedback WHERE customer_id = $1 AND feedback_id = $2",
            )
            .bind(f.customer_id.as_str())
            .bind(f.feedback_id.as_str())
            .bind(f.occurred_at)
            .bind(f.scores.nps)
            .bind(f.scores.csat)
            .bind(f.scores.ces)
            .fetch_optional(&self.pool)
            .await?
        } else {
            None
        };
        Ok(written(inserted, same))
    }

    pub async fn record_spend(&self, s: &AcquisitionSpend) -> Result<Written, StorageError> {
        let inserted = sqlx::query(
            "INSERT INTO acquisition_spend (spend_id, start_time, end_time, channel, amount_nanos)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (spend_id) DO NOTHING RETURNING 1",
        )
        .bind(s.spend_id.as_str())
        .bind(s.start)
        .bind(s.end)
        .bind(&s.channel)
        .bind(s.amount.nanos())
        .fetch_optional(&self.pool)
        .await?;
        let same = if inserted.is_none() {
            sqlx::query_scalar(
                "SELECT start_time = $2 AND end_time = $3 AND channel = $4 AND amount_nanos = $5
                   FROM acquisition_spend WHERE spend_id = $1",
            )
            .bind(s.spend_id.as_str())
            .bind(s.start)
            .bind(s.end)
            .bind(&s.channel)
            .bind(s.amount.nanos())
            .fetch_optional(&self.pool)
            .await?
        } else {
            None
        };
        Ok(written(inserted, same))
    }
}
