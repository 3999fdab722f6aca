//! Per-customer scores under a model version: written after each fit, read
//! by ListAtRiskCustomers and for segments and tiers.

use sqlx::{postgres::PgRow, Row};

use super::{customers::summary_from_row, Storage, StorageError};
use crate::domain::{
    Amount, CustomerId, CustomerSummary, PopulationScore, Segment, Segmentation, ValueTier,
};

/// Rows per insert statement.
const CHUNK: usize = 10_000;

impl Storage {
    /// Every customer's summary (for scoring the whole base).
    pub async fn all_summaries(&self) -> Result<Vec<CustomerSummary>, StorageError> {
        let rows = sqlx::query("SELECT * FROM customers WHERE purchase_occasions > 0")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(summary_from_row)
            .collect::<Result<_, _>>()?)
    }

    /// Stores a version's scores and drops those of versions before
    /// `keep_from` (so the previous version's pages stay readable).
    pub async fn replace_scores(
        &self,
        scores: &[PopulationScore],
        keep_from: i64,
    ) -> Result<(), StorageError> {
        for chunk in scores.chunks(CHUNK) {
            let c = |f: fn(&PopulationScore) -> f64| chunk.iter().map(f).collect::<Vec<f64>>();
            let small = |f: fn(&PopulationScore) -> u8| {
                chunk.iter().map(|s| i16::from(f(s))).collect::<Vec<i16>>()
            };
            sqlx::query(
                "INSERT INTO customer_scores (customer_id, model_version, probability_alive, churn_risk,
                     probability_no_purchase, expected_purchases, predicted_value, value_at_risk,
                     historical_value_nanos, recency_score, frequency_score, monetary_score, segment, value_tier)
                 SELECT * FROM unnest($1::text[], $2::int8[], $3::float8[], $4::float8[], $5::float8[], $6::float8[],
                                      $7::float8[], $8::float8[], $9::int8[], $10::int2[], $11::int2[], $12::int2[],
                                      $13::text[], $14::text[])
                 ON CONFLICT (customer_id, model_version) DO NOTHING",
            )
            .bind(chunk.iter().map(|s| s.customer_id.as_str()).collect::<Vec<_>>())
            .bind(chunk.iter().map(|s| s.model_version).collect::<Vec<_>>())
            .bind(c(|s| s.probability_alive))
            .bind(c(|s| s.churn_risk))
            .bind(c(|s| s.probability_no_purchase))
            .bind(c(|s| s.expected_purchases))
            .bind(c(|s| s.predicted_value))
            .bind(c(|s| s.value_at_risk))
            .bind(chunk.iter().map(|s| s.historical_value.nanos()).collect::<Vec<_>>())
            .bind(small(|s| s.recency_score))
            .bind(small(|s| s.frequency_score))
            .bind(small(|s| s.monetary_score))
            .bind(chunk.iter().map(|s| s.segment.name()).collect::<Vec<_>>())
            .bind(chunk.iter().map(|s| s.value_tier.name()).collect::<Vec<_>>())
            .execute(&self.pool)
            .await?;
        }
        sqlx::query("DELETE FROM customer_scores WHERE model_version < $1")
            .bind(keep_from)
            .execute(&self.pool)
            .await?;
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
            "SELECT * FROM customer_scores
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
        Ok(rows.iter().map(score_from_row).collect::<Result<_, _>>()?)
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
            "SELECT c.*, s.recency_score, s.frequency_score, s.monetary_score, s.segment, s.value_tier
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
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StorageError::from)
    }

    /// A customer's stored scores under a version.
    pub async fn population_score(
        &self,
        id: &CustomerId,
        version: i64,
    ) -> Result<Option<PopulationScore>, StorageError> {
        let row = sqlx::query(
            "SELECT * FROM customer_scores WHERE customer_id = $1 AND model_version = $2",
        )
        .bind(id.as_str())
        .bind(version)
        .fetch_optional(&self.reads)
        .await?;
        Ok(row.as_ref().map(score_from_row).transpose()?)
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

fn score_from_row(row: &PgRow) -> Result<PopulationScore, sqlx::Error> {
    let bad = |what: &str| {
        sqlx::Error::Decode(format!("stored {what} is not one this service writes").into())
    };
    let score = |name: &str| -> Result<u8, sqlx::Error> {
        Ok(row.try_get::<i16, _>(name)?.clamp(1, 5) as u8)
    };
    Ok(PopulationScore {
        customer_id: CustomerId::parse(row.try_get("customer_id")?)
            .map_err(|_| bad("customer_id"))?,
        model_version: row.try_get("model_version")?,
        probability_alive: row.try_get("probability_alive")?,
        churn_risk: row.try_get("churn_risk")?,
        probability_no_purchase: row.try_get("probability_no_purchase")?,
        expected_purchases: row.try_get("expected_purchases")?,
        predicted_value: row.try_get("predicted_value")?,
        value_at_risk: row.try_get("value_at_risk")?,
        historical_value: Amount::from_nanos(row.try_get("historical_value_nanos")?),
        recency_score: score("recency_score")?,
        frequency_score: score("frequency_score")?,
        monetary_score: score("monetary_score")?,
        segment: Segment::parse(row.try_get("segment")?).ok_or_else(|| bad("segment"))?,
        value_tier: ValueTier::parse(row.try_get("value_tier")?)
            .ok_or_else(|| bad("value_tier"))?,
    })
}
