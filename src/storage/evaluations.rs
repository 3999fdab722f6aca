//! What is computed once per model version and kept (migration
//! `version_caches`): EvaluateModel's answers, stored as the service's
//! JSON, and the aggregates of a version's scores that GetSegmentReport and
//! GetLoyaltySummary read. A version's `customer_scores` partition never
//! changes once attached, so its aggregates are computed once, in one
//! transaction, the first time they are asked for.

use chrono::NaiveDate;

use super::{
    reports::{count, SegmentRecord},
    SegmentRow, Storage, StorageError,
};

/// The request an evaluation answers, under the active version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvaluationKey {
    pub model_version: i64,
    pub calibration_day: NaiveDate,
    pub holdout_day: NaiveDate,
    /// The families compared besides BG/NBD, as the service names them.
    pub families: String,
}

/// A version's score aggregates.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreAggregates {
    /// Customers scored under the version.
    pub customers: u64,
    /// Their mean predicted value (currency units; 0 with none).
    pub mean_predicted_value: f64,
    /// Per segment and per value tier.
    pub segments: Vec<SegmentRow>,
    /// The customers ranked by total value, highest first, in up to 100
    /// equal groups: (customers, their total value), in rank order.
    pub value_percentiles: Vec<(u64, f64)>,
}

/// The segment rows of a version's scores, from its partition `{scores}`.
const SEGMENTS_OF_SCORES: &str =
    "SELECT 'segment' AS dimension, segment AS name, count(*) AS customers,
            sum(historical_value_nanos) AS revenue,
            avg(historical_value_nanos / 1e9 + predicted_value)::float8 AS average_value,
            avg(churn_risk) AS average_churn_risk
       FROM {scores} WHERE model_version = $1 GROUP BY segment
     UNION ALL
     SELECT 'value_tier', value_tier, count(*), sum(historical_value_nanos),
            avg(historical_value_nanos / 1e9 + predicted_value)::float8, avg(churn_risk)
       FROM {scores} WHERE model_version = $1 GROUP BY value_tier";

/// The value percentiles of a version's scores, from its partition
/// `{scores}`.
const PERCENTILES_OF_SCORES: &str =
    "SELECT percentile, count(*)::int8 AS customers, sum(value)::float8 AS value
       FROM (SELECT historical_value_nanos / 1e9 + predicted_value AS value,
                    ntile(100) OVER (ORDER BY historical_value_nanos / 1e9 + predicted_value DESC,
                                              customer_id) AS percentile
               FROM {scores} WHERE model_version = $1) ranked
      GROUP BY percentile";

impl Storage {
    /// The stored evaluation (the service's JSON) for `key`, if any.
    pub async fn stored_evaluation(
        &self,
        key: &EvaluationKey,
    ) -> Result<Option<String>, StorageError> {
        Ok(sqlx::query_scalar(
            "SELECT evaluation FROM model_evaluations
              WHERE model_version = $1 AND calibration_day = $2 AND holdout_day = $3
                AND families = $4",
        )
        .bind(key.model_version)
        .bind(key.calibration_day)
        .bind(key.holdout_day)
        .bind(&key.families)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Keeps an evaluation for `key`; one already stored stays (a
    /// concurrent first call computed the same).
    pub async fn store_evaluation(
        &self,
        key: &EvaluationKey,
        evaluation: &str,
    ) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO model_evaluations (model_version, calibration_day, holdout_day, families,
                                            evaluation)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (model_version, calibration_day, holdout_day, families) DO NOTHING",
        )
        .bind(key.model_version)
        .bind(key.calibration_day)
        .bind(key.holdout_day)
        .bind(&key.families)
        .bind(evaluation)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The aggregates of `version`'s scores: stored ones, or computed from
    /// its partition and stored first. A concurrent first call for the same
    /// version waits on the first one's claim (the score_summaries row) and
    /// then reads what it stored.
    pub async fn score_aggregates(&self, version: i64) -> Result<ScoreAggregates, StorageError> {
        if let Some(kept) = self.stored_score_aggregates(version).await? {
            return Ok(kept);
        }
        // The version's partition read directly, not through
        // `customer_scores`: the statements lock that partition only, so
        // that a fit dropping an older version's partition (which locks
        // `customer_scores` exclusively) does not wait for them.
        // (A version scored before scores were partitioned with no row has
        // no partition: then the parent, which has none of its rows.)
        let partition = super::scores::scores_partition(version);
        let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
            .bind(&partition)
            .fetch_one(&self.pool)
            .await?;
        let scores = match exists {
            Some(_) => partition,
            None => "customer_scores".to_owned(),
        };
        let mut tx = self.pool.begin().await?;
        let claimed = sqlx::query(&format!(
            "INSERT INTO score_summaries (model_version, customers, mean_predicted_value)
             SELECT $1, count(*), avg(predicted_value)
               FROM {scores} WHERE model_version = $1
             ON CONFLICT (model_version) DO NOTHING"
        ))
        .bind(version)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 1 {
            sqlx::query(&format!(
                "INSERT INTO score_segments (model_version, dimension, name, customers, revenue_nanos,
                                             average_value, average_churn_risk)
                 SELECT $1, dimension, name, customers, revenue, average_value, average_churn_risk
                   FROM ({segments}) s",
                segments = SEGMENTS_OF_SCORES.replace("{scores}", &scores)
            ))
            .bind(version)
            .execute(&mut *tx)
            .await?;
            sqlx::query(&format!(
                "INSERT INTO score_value_percentiles (model_version, percentile, customers, value)
                 SELECT $1, percentile, customers, value FROM ({percentiles}) p",
                percentiles = PERCENTILES_OF_SCORES.replace("{scores}", &scores)
            ))
            .bind(version)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.stored_score_aggregates(version)
            .await?
            .ok_or_else(|| StorageError::corrupt("score_summaries", "missing after it was written"))
    }

    async fn stored_score_aggregates(
        &self,
        version: i64,
    ) -> Result<Option<ScoreAggregates>, StorageError> {
        let summary: Option<(i64, Option<f64>)> = sqlx::query_as(
            "SELECT customers, mean_predicted_value FROM score_summaries WHERE model_version = $1",
        )
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        let Some((customers, mean)) = summary else {
            return Ok(None);
        };
        let segments: Vec<SegmentRecord> = sqlx::query_as(
            "SELECT dimension, name, customers, revenue_nanos::text AS revenue, average_value,
                    average_churn_risk
               FROM score_segments WHERE model_version = $1",
        )
        .bind(version)
        .fetch_all(&self.pool)
        .await?;
        let percentiles: Vec<(i64, f64)> = sqlx::query_as(
            "SELECT customers, value FROM score_value_percentiles
              WHERE model_version = $1 ORDER BY percentile",
        )
        .bind(version)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(ScoreAggregates {
            customers: count(customers),
            mean_predicted_value: mean.unwrap_or(0.0),
            segments: decode_segments(segments)?,
            value_percentiles: percentiles
                .into_iter()
                .map(|(n, v)| (count(n), v))
                .collect(),
        }))
    }
}

fn decode_segments(rows: Vec<SegmentRecord>) -> Result<Vec<SegmentRow>, StorageError> {
    rows.into_iter().map(SegmentRecord::decode).collect()
}
