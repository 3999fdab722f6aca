//! Per-customer scores under a model version: written after each fit, read
//! by ListAtRiskCustomers and for segments and tiers.

use sqlx::{postgres::PgRow, Row};

use super::{customers::summary_from_row, money::total, Storage, StorageError};
use crate::domain::{
    CustomerId, CustomerSummary, PopulationScore, Segment, Segmentation, ValueTier,
};

/// Bytes of COPY data sent at a time.
const COPY_CHUNK_BYTES: usize = 1 << 20;

impl Storage {
    /// Every customer's summary (for scoring the whole base).
    pub async fn all_summaries(&self) -> Result<Vec<CustomerSummary>, StorageError> {
        let rows = sqlx::query(
            "SELECT *, net_revenue_nanos::text AS net_revenue_text,
                    repeat_value_nanos::text AS repeat_value_text, cost_nanos::text AS cost_text
               FROM customers WHERE purchase_occasions > 0",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(summary_from_row).collect()
    }

    /// Stores a version's scores and drops those of versions before
    /// `keep_from` (so the previous version's pages stay readable).
    ///
    /// The rows go in with one `COPY` (text format): for a whole customer
    /// base it is several times faster than multi-row inserts. One
    /// transaction: the scores and the deletion commit together, or (on any
    /// failure) not at all.
    pub async fn replace_scores(
        &self,
        scores: &[PopulationScore],
        keep_from: i64,
    ) -> Result<(), StorageError> {
        let mut tx = self.pool.begin().await?;
        let mut copy = tx
            .copy_in_raw(
                "COPY customer_scores (customer_id, model_version, probability_alive, churn_risk,
                     probability_no_purchase, expected_purchases, predicted_value, value_at_risk,
                     historical_value_nanos, recency_score, frequency_score, monetary_score,
                     segment, value_tier) FROM STDIN",
            )
            .await?;
        let mut buf = String::with_capacity(COPY_CHUNK_BYTES + 1024);
        for s in scores {
            copy_row(&mut buf, s);
            if buf.len() >= COPY_CHUNK_BYTES {
                copy.send(std::mem::take(&mut buf).into_bytes()).await?;
            }
        }
        if !buf.is_empty() {
            copy.send(buf.into_bytes()).await?;
        }
        copy.finish().await?;
        sqlx::query("DELETE FROM customer_scores WHERE model_version < $1")
            .bind(keep_from)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A page of a version's customers with churn risk and predicted value
    /// at least the given minimums, by value at risk (highest first), after
    /// the key `(value_at_risk, customer_id)` of the previous page's last.
    pub async fn at_risk_page(
        &self,
        version: i64,
        min_churn_risk: f64,
        min_predicted_value: f64,
        after: Option<(f64, String)>,
        limit: i64,
    ) -> Result<Vec<PopulationScore>, StorageError> {
        let (after_value, after_id) = after.unwrap_or((f64::INFINITY, String::new()));
        let rows = sqlx::query(
            "SELECT *, historical_value_nanos::text AS historical_value_text FROM customer_scores
              WHERE model_version = $1 AND churn_risk >= $2 AND predicted_value >= $3
                AND (value_at_risk, customer_id) < ($4, $5)
              ORDER BY value_at_risk DESC, customer_id DESC
              LIMIT $6",
        )
        .bind(version)
        .bind(min_churn_risk)
        .bind(min_predicted_value)
        .bind(after_value)
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.reads)
        .await?;
        rows.iter().map(score_from_row).collect()
    }

    /// Whether ListAtRiskCustomers can list `version`: a successful,
    /// activated version whose scores are still kept.
    pub async fn listable_version(&self, version: i64) -> Result<bool, StorageError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM models
                             WHERE version = $1 AND state = 'succeeded' AND activated_at IS NOT NULL)
                AND EXISTS (SELECT 1 FROM customer_scores WHERE model_version = $1)",
        )
        .bind(version)
        .fetch_one(&self.reads)
        .await?)
    }

    /// Summaries of `ids` that have one, with their segmentation under
    /// `version` when it has one: one indexed read per customer.
    pub async fn summaries_with_segmentation(
        &self,
        ids: &[CustomerId],
        version: Option<i64>,
    ) -> Result<Vec<(CustomerSummary, Option<Segmentation>)>, StorageError> {
        let ids: Vec<&str> = ids.iter().map(CustomerId::as_str).collect();
        let rows = sqlx::query(
            "SELECT c.*, c.net_revenue_nanos::text AS net_revenue_text,
                    c.repeat_value_nanos::text AS repeat_value_text, c.cost_nanos::text AS cost_text,
                    s.recency_score, s.frequency_score, s.monetary_score, s.segment, s.value_tier
               FROM customers c
               LEFT JOIN customer_scores s ON s.customer_id = c.customer_id AND s.model_version = $2
              WHERE c.customer_id = ANY($1::text[]) AND c.purchase_occasions > 0",
        )
        .bind(&ids)
        .bind(version.unwrap_or(0))
        .fetch_all(&self.reads)
        .await?;
        rows.iter()
            .map(|row| Ok((summary_from_row(row)?, segmentation_from_row(row)?)))
            .collect()
    }

    /// A customer's stored scores under a version.
    pub async fn population_score(
        &self,
        id: &CustomerId,
        version: i64,
    ) -> Result<Option<PopulationScore>, StorageError> {
        let row = sqlx::query(
            "SELECT *, historical_value_nanos::text AS historical_value_text
               FROM customer_scores WHERE customer_id = $1 AND model_version = $2",
        )
        .bind(id.as_str())
        .bind(version)
        .fetch_optional(&self.reads)
        .await?;
        row.as_ref().map(score_from_row).transpose()
    }
}

fn segmentation_from_row(row: &PgRow) -> Result<Option<Segmentation>, sqlx::Error> {
    let Some(segment) = row.try_get::<Option<String>, _>("segment")? else {
        return Ok(None);
    };
    let bad = |what: &str| {
        sqlx::Error::Decode(format!("stored {what} is not one this service writes").into())
    };
    let score = |name: &str| -> Result<u8, sqlx::Error> {
        Ok(row.try_get::<i16, _>(name)?.clamp(1, 5) as u8)
    };
    Ok(Some(Segmentation {
        recency_score: score("recency_score")?,
        frequency_score: score("frequency_score")?,
        monetary_score: score("monetary_score")?,
        segment: Segment::parse(&segment).ok_or_else(|| bad("segment"))?,
        value_tier: ValueTier::parse(row.try_get("value_tier")?)
            .ok_or_else(|| bad("value_tier"))?,
    }))
}

/// A `customer_scores` row, with `historical_value_text` (see
/// [`super::money`]).
fn score_from_row(row: &PgRow) -> Result<PopulationScore, StorageError> {
    let bad = |what: &str| {
        sqlx::Error::Decode(format!("stored {what} is not one this service writes").into())
    };
    let score = |name: &str| -> Result<u8, sqlx::Error> {
        Ok(row.try_get::<i16, _>(name)?.clamp(1, 5) as u8)
    };
    Ok(PopulationScore {
        customer_id: CustomerId::from_stored(row.try_get("customer_id")?)
            .map_err(|_| bad("customer_id"))?,
        model_version: row.try_get("model_version")?,
        probability_alive: row.try_get("probability_alive")?,
        churn_risk: row.try_get("churn_risk")?,
        probability_no_purchase: row.try_get("probability_no_purchase")?,
        expected_purchases: row.try_get("expected_purchases")?,
        predicted_value: row.try_get("predicted_value")?,
        value_at_risk: row.try_get("value_at_risk")?,
        historical_value: total(row, "historical_value_text")?,
        recency_score: score("recency_score")?,
        frequency_score: score("frequency_score")?,
        monetary_score: score("monetary_score")?,
        segment: Segment::parse(row.try_get("segment")?).ok_or_else(|| bad("segment"))?,
        value_tier: ValueTier::parse(row.try_get("value_tier")?)
            .ok_or_else(|| bad("value_tier"))?,
    })
}

/// One row of COPY text format. Ids cannot hold control characters (see
/// `domain::ids`), so a backslash is the only character to escape; floats
/// print in Rust's shortest form that reads back exactly.
fn copy_row(buf: &mut String, s: &PopulationScore) {
    use std::fmt::Write;
    for ch in s.customer_id.as_str().chars() {
        if ch == '\\' {
            buf.push('\\');
        }
        buf.push(ch);
    }
    let _ = writeln!(
        buf,
        "\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
        s.model_version,
        s.probability_alive,
        s.churn_risk,
        s.probability_no_purchase,
        s.expected_purchases,
        s.predicted_value,
        s.value_at_risk,
        s.historical_value.nanos(),
        s.recency_score,
        s.frequency_score,
        s.monetary_score,
        s.segment.name(),
        s.value_tier.name(),
    );
}
