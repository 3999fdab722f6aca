//! Survey answers and acquisition spend: idempotent inserts by the caller's
//! key. A key seen before is a duplicate when the stored row has the same
//! content, and a conflict otherwise; either way nothing changes.

use sqlx::{
    postgres::{PgArguments, Postgres},
    query::QueryScalar,
};

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

/// A statement of an idempotent write, returning one `bool`.
type Statement<'q> = QueryScalar<'q, Postgres, bool, PgArguments>;

impl Storage {
    pub async fn record_feedback(&self, f: &Feedback) -> Result<Written, StorageError> {
        self.write_once(
            "INSERT INTO feedback (customer_id, feedback_id, occurred_at, nps, csat, ces)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (customer_id, feedback_id) DO NOTHING RETURNING true AS inserted",
            "SELECT occurred_at = $3 AND nps IS NOT DISTINCT FROM $4
                    AND csat IS NOT DISTINCT FROM $5 AND ces IS NOT DISTINCT FROM $6 AS same
               FROM feedback WHERE customer_id = $1 AND feedback_id = $2",
            |q| {
                q.bind(f.customer_id.as_str())
                    .bind(f.feedback_id.as_str())
                    .bind(f.occurred_at)
                    .bind(f.scores.nps)
                    .bind(f.scores.csat)
                    .bind(f.scores.ces)
            },
        )
        .await
    }

    pub async fn record_spend(&self, s: &AcquisitionSpend) -> Result<Written, StorageError> {
        self.write_once(
            "INSERT INTO acquisition_spend (spend_id, start_time, end_time, channel, amount_nanos)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (spend_id) DO NOTHING RETURNING true AS inserted",
            "SELECT start_time = $2 AND end_time = $3 AND channel = $4 AND amount_nanos = $5 AS same
               FROM acquisition_spend WHERE spend_id = $1",
            |q| {
                q.bind(s.spend_id.as_str())
                    .bind(s.start)
                    .bind(s.end)
                    .bind(&s.channel)
                    .bind(s.amount.nanos())
            },
        )
        .await
    }

    /// Runs `insert` (`INSERT .. ON CONFLICT DO NOTHING RETURNING true`)
    /// and, when the key was stored before, `same` (does the stored row
    /// hold this content?). Both take the same parameters, bound by `bind`.
    async fn write_once<'q>(
        &self,
        insert: &'q str,
        same: &'q str,
        bind: impl Fn(Statement<'q>) -> Statement<'q>,
    ) -> Result<Written, StorageError> {
        let inserted = bind(sqlx::query_scalar(insert))
            .fetch_optional(&self.pool)
            .await?;
        if inserted.is_some() {
            return Ok(Written::Recorded);
        }
        let same = bind(sqlx::query_scalar(same))
            .fetch_optional(&self.pool)
            .await?;
        Ok(match same {
            Some(true) => Written::Duplicate,
            // Other content, or (erased meanwhile) none.
            _ => Written::Conflict,
        })
    }
}
