//! Per-customer scores under a model version: written after each fit, read
//! by ListAtRiskCustomers and for segments and tiers. Each version's scores
//! are a partition of `customer_scores` of their own, loaded and indexed
//! before they are attached, and dropped whole when no longer needed.

use chrono::NaiveDate;

use super::{
    copy_binary::BinaryRows,
    customers::{select_summaries, stored_customer_id, summary_columns, SummaryRow},
    error::required,
    money::total,
    Storage, StorageError,
};
use crate::domain::{
    CustomerId, CustomerSummary, PopulationScore, Segment, Segmentation, Total, ValueTier,
};

/// Bytes of COPY data sent at a time.
const COPY_CHUNK_BYTES: usize = 1 << 20;

/// The partition of `customer_scores` that holds a version's scores.
pub(super) fn scores_partition(version: i64) -> String {
    format!("customer_scores_v{version}")
}

/// The columns of a [`ScoreRow`] from `customer_scores` aliased `s`, the
/// historical value as exact text (see [`super::money`]).
macro_rules! score_columns {
    () => {
        "s.customer_id, s.model_version, s.probability_alive, s.churn_risk,
         s.probability_no_purchase, s.expected_purchases, s.predicted_value, s.value_at_risk,
         s.historical_value_nanos::text AS historical_value, s.recency_score, s.frequency_score,
         s.monetary_score, s.segment, s.value_tier"
    };
}

/// `SELECT` [`score_columns!`] `FROM customer_scores s`, then `$tail`.
macro_rules! select_scores {
    ($tail:literal) => {
        concat!(
            "SELECT ",
            score_columns!(),
            " FROM customer_scores s ",
            $tail
        )
    };
}

/// A customer as whole-base scoring sees them.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoringSummary {
    pub customer_id: CustomerId,
    pub first_purchase_day: NaiveDate,
    pub last_purchase_day: NaiveDate,
    /// At least 1.
    pub purchase_occasions: i32,
    pub net_revenue: Total,
    /// Net value of every occasion but the first.
    pub repeat_value: Total,
}

/// A [`ScoringSummary`] as [`Storage::scoring_summaries`] reads it.
#[derive(Debug, sqlx::FromRow)]
struct ScoringRow {
    customer_id: String,
    first_purchase_day: Option<NaiveDate>,
    last_purchase_day: Option<NaiveDate>,
    purchase_occasions: i32,
    net_revenue: Option<String>,
    repeat_value: Option<String>,
}

impl ScoringRow {
    fn decode(self) -> Result<ScoringSummary, StorageError> {
        Ok(ScoringSummary {
            customer_id: stored_customer_id(&self.customer_id)?,
            first_purchase_day: required("first_purchase_day", self.first_purchase_day)?,
            last_purchase_day: required("last_purchase_day", self.last_purchase_day)?,
            purchase_occasions: self.purchase_occasions,
            net_revenue: total("net_revenue_nanos", self.net_revenue.as_deref())?,
            repeat_value: total("repeat_value_nanos", self.repeat_value.as_deref())?,
        })
    }
}

/// A `customer_scores` row as [`score_columns!`] reads it.
#[derive(Debug, sqlx::FromRow)]
struct ScoreRow {
    customer_id: String,
    model_version: i64,
    probability_alive: f64,
    churn_risk: f64,
    probability_no_purchase: f64,
    expected_purchases: f64,
    predicted_value: f64,
    value_at_risk: f64,
    historical_value: Option<String>,
    #[sqlx(flatten)]
    segmentation: SegmentationRow,
}

/// The segmentation columns of a `customer_scores` row; all NULL when a
/// LEFT JOIN found no scores.
#[derive(Debug, sqlx::FromRow)]
struct SegmentationRow {
    recency_score: Option<i16>,
    frequency_score: Option<i16>,
    monetary_score: Option<i16>,
    segment: Option<String>,
    value_tier: Option<String>,
}

/// A customer's summary and, when scored under the version asked for, their
/// segmentation.
#[derive(Debug, sqlx::FromRow)]
struct SegmentedSummaryRow {
    #[sqlx(flatten)]
    summary: SummaryRow,
    #[sqlx(flatten)]
    segmentation: SegmentationRow,
}

impl SegmentationRow {
    fn decode(self) -> Result<Option<Segmentation>, StorageError> {
        let Some(segment) = self.segment else {
            return Ok(None);
        };
        let score = |column: &str, score: Option<i16>| {
            score
                .map(|s| s.clamp(1, 5) as u8)
                .ok_or_else(|| StorageError::corrupt(column, "NULL beside a segment"))
        };
        let unknown = |column: &str| StorageError::corrupt(column, "not one this service writes");
        let value_tier = self.value_tier.unwrap_or_default();
        Ok(Some(Segmentation {
            recency_score: score("recency_score", self.recency_score)?,
            frequency_score: score("frequency_score", self.frequency_score)?,
            monetary_score: score("monetary_score", self.monetary_score)?,
            segment: Segment::parse(&segment).ok_or_else(|| unknown("segment"))?,
            value_tier: ValueTier::parse(&value_tier).ok_or_else(|| unknown("value_tier"))?,
        }))
    }
}

impl ScoreRow {
    fn decode(self) -> Result<PopulationScore, StorageError> {
        let segmentation = self
            .segmentation
            .decode()?
            .ok_or_else(|| StorageError::corrupt("segment", "NULL"))?;
        Ok(PopulationScore {
            customer_id: stored_customer_id(&self.customer_id)?,
            model_version: self.model_version,
            probability_alive: self.probability_alive,
            churn_risk: self.churn_risk,
            probability_no_purchase: self.probability_no_purchase,
            expected_purchases: self.expected_purchases,
            predicted_value: self.predicted_value,
            value_at_risk: self.value_at_risk,
            historical_value: total("historical_value_nanos", self.historical_value.as_deref())?,
            recency_score: segmentation.recency_score,
            frequency_score: segmentation.frequency_score,
            monetary_score: segmentation.monetary_score,
            segment: segmentation.segment,
            value_tier: segmentation.value_tier,
        })
    }
}

impl Storage {
    /// Every customer's summary (for scoring the whole base).
    pub async fn all_summaries(&self) -> Result<Vec<CustomerSummary>, StorageError> {
        let rows: Vec<SummaryRow> =
            sqlx::query_as(select_summaries!("WHERE c.purchase_occasions > 0"))
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter().map(SummaryRow::into_summary).collect()
    }

    /// What scoring the whole base reads of every customer: the columns
    /// [`ScoringSummary`] holds and no others (half the columns of
    /// [`Storage::all_summaries`], and neither timestamps nor costs to
    /// decode a million times).
    pub async fn scoring_summaries(&self) -> Result<Vec<ScoringSummary>, StorageError> {
        let rows: Vec<ScoringRow> = sqlx::query_as(
            "SELECT customer_id, first_purchase_day, last_purchase_day, purchase_occasions,
                    net_revenue_nanos::text AS net_revenue, repeat_value_nanos::text AS repeat_value
               FROM customers WHERE purchase_occasions > 0",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(ScoringRow::decode).collect()
    }

    /// Stores a version's scores as its own partition of
    /// `customer_scores`, `customer_scores_v<version>`, in one transaction:
    /// a fresh table (created here, so `COPY ... FREEZE` writes its rows
    /// already frozen, with no later vacuum rewrite), the rows in with one
    /// binary `COPY` (the server parses no numbers), then the two indexes built once over the loaded rows (far
    /// cheaper than keeping them up to date row by row), then its planner
    /// statistics gathered, then attached. The
    /// version's rows become visible whole at the commit, or (on any
    /// failure) never, and no table is left behind. Attaching takes only a
    /// SHARE UPDATE EXCLUSIVE lock on `customer_scores`: reads and other
    /// versions' pages go on meanwhile.
    pub async fn write_scores(
        &self,
        version: i64,
        scores: &[PopulationScore],
    ) -> Result<(), StorageError> {
        // `version` is a number this service read from `models`: safe to
        // put into statement text.
        let table = scores_partition(version);
        let mut tx = self.pool.begin().await?;
        // The index builds sort the whole version at once.
        sqlx::query("SET LOCAL maintenance_work_mem = '256MB'")
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!(
            "CREATE TABLE {table} (LIKE customer_scores INCLUDING DEFAULTS,
                 CONSTRAINT {table}_version CHECK (model_version = {version}))"
        ))
        .execute(&mut *tx)
        .await?;
        let mut copy = tx
            .copy_in_raw(&format!(
                "COPY {table} (customer_id, model_version, probability_alive, churn_risk,
                     probability_no_purchase, expected_purchases, predicted_value, value_at_risk,
                     historical_value_nanos, recency_score, frequency_score, monetary_score,
                     segment, value_tier) FROM STDIN WITH (FORMAT binary, FREEZE)"
            ))
            .await?;
        let mut rows = BinaryRows::new(COPY_CHUNK_BYTES + 1024);
        for s in scores {
            copy_row(&mut rows, s);
            if rows.len() >= COPY_CHUNK_BYTES {
                copy.send(rows.take()).await?;
            }
        }
        rows.finish();
        copy.send(rows.take()).await?;
        copy.finish().await?;
        // The same keys as the parent's, so that attaching adopts them.
        for statement in [
            format!("ALTER TABLE {table} ADD PRIMARY KEY (customer_id, model_version)"),
            format!(
                "CREATE INDEX {table}_by_value_at_risk
                     ON {table} (model_version, value_at_risk DESC, customer_id DESC)"
            ),
            // Statistics before the first read: without them the planner
            // cannot tell how few rows pass the at-risk filter and reads the
            // whole version for ListAtRiskCustomers' first page (256 ms
            // against 0.5 ms at 1,000,000 customers; docs/benchmarks.md,
            // issue 15, fourth session) until autovacuum analyzes it. Only
            // the columns that page filters and orders on, from a sample of
            // 3,000 rows (statistics target 10): the full default took
            // 0.2-0.5 s of the fit; autovacuum refines them later.
            "SET LOCAL default_statistics_target = 10".to_owned(),
            format!(
                "ANALYZE {table} (churn_risk, predicted_value, probability_alive, value_at_risk)"
            ),
            format!(
                "ALTER TABLE customer_scores ATTACH PARTITION {table} FOR VALUES IN ({version})"
            ),
        ] {
            sqlx::query(&statement).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Drops the scores of versions before `keep_from` (each version's
    /// partition), so that the previous version's pages stay readable.
    /// Dropping a partition locks `customer_scores` briefly (ACCESS
    /// EXCLUSIVE): each drop waits at most 5 s for
    /// readers to finish, and one that cannot get the lock is left for the
    /// next fit. Returns the versions dropped.
    pub async fn drop_scores_before(&self, keep_from: i64) -> Result<Vec<i64>, StorageError> {
        let partitions: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = 'customer_scores'::regclass",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut dropped = Vec::new();
        for name in partitions {
            let Some(version) = name
                .strip_prefix("customer_scores_v")
                .and_then(|v| v.parse::<i64>().ok())
            else {
                continue;
            };
            if version >= keep_from {
                continue;
            }
            let mut tx = self.pool.begin().await?;
            sqlx::query("SET LOCAL lock_timeout = '5s'")
                .execute(&mut *tx)
                .await?;
            let table = scores_partition(version);
            match sqlx::query(&format!("DROP TABLE {table}"))
                .execute(&mut *tx)
                .await
            {
                Ok(_) => {
                    tx.commit().await?;
                    dropped.push(version);
                }
                Err(e) => {
                    tracing::warn!(version, error = %e, "old scores not dropped; the next fit tries again");
                }
            }
        }
        Ok(dropped)
    }

    /// A page of a version's customers with churn risk, predicted value and
    /// P(alive) at least the given minimums, by value at risk (highest
    /// first), after the key `(value_at_risk, customer_id)` of the previous
    /// page's last.
    pub async fn at_risk_page(
        &self,
        version: i64,
        min_churn_risk: f64,
        min_predicted_value: f64,
        min_probability_alive: f64,
        after: Option<(f64, String)>,
        limit: i64,
    ) -> Result<Vec<PopulationScore>, StorageError> {
        let (after_value, after_id) = after.unwrap_or((f64::INFINITY, String::new()));
        let rows: Vec<ScoreRow> = sqlx::query_as(select_scores!(
            "WHERE s.model_version = $1 AND s.churn_risk >= $2 AND s.predicted_value >= $3
                AND s.probability_alive >= $7
                AND (s.value_at_risk, s.customer_id) < ($4, $5)
              ORDER BY s.value_at_risk DESC, s.customer_id DESC
              LIMIT $6"
        ))
        .bind(version)
        .bind(min_churn_risk)
        .bind(min_predicted_value)
        .bind(after_value)
        .bind(after_id)
        .bind(limit)
        .bind(min_probability_alive)
        .fetch_all(&self.reads)
        .await?;
        rows.into_iter().map(ScoreRow::decode).collect()
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
        let mut conn = self.held_reads.take().await?;
        let rows: Vec<SegmentedSummaryRow> = sqlx::query_as(concat!(
            "SELECT ",
            summary_columns!(),
            ", s.recency_score, s.frequency_score, s.monetary_score, s.segment, s.value_tier
               FROM customers c
               LEFT JOIN customer_scores s ON s.customer_id = c.customer_id AND s.model_version = $2
              WHERE c.customer_id = ANY($1::text[]) AND c.purchase_occasions > 0"
        ))
        .bind(&ids)
        .bind(version.unwrap_or(0))
        .fetch_all(&mut *conn)
        .await?;
        self.held_reads.put_back(conn);
        rows.into_iter()
            .map(|row| Ok((row.summary.into_summary()?, row.segmentation.decode()?)))
            .collect()
    }

    /// A customer's stored scores under a version.
    pub async fn population_score(
        &self,
        id: &CustomerId,
        version: i64,
    ) -> Result<Option<PopulationScore>, StorageError> {
        let row: Option<ScoreRow> = sqlx::query_as(select_scores!(
            "WHERE s.customer_id = $1 AND s.model_version = $2"
        ))
        .bind(id.as_str())
        .bind(version)
        .fetch_optional(&self.reads)
        .await?;
        row.map(ScoreRow::decode).transpose()
    }
}

/// One row of binary COPY, in the column order of [`Storage::write_scores`].
fn copy_row(rows: &mut BinaryRows, s: &PopulationScore) {
    rows.row(14);
    rows.text(s.customer_id.as_str());
    rows.int8(s.model_version);
    for v in [
        s.probability_alive,
        s.churn_risk,
        s.probability_no_purchase,
        s.expected_purchases,
        s.predicted_value,
        s.value_at_risk,
    ] {
        rows.float8(v);
    }
    rows.numeric_integer(s.historical_value.nanos());
    for score in [s.recency_score, s.frequency_score, s.monetary_score] {
        rows.int2(i16::from(score));
    }
    rows.text(s.segment.name());
    rows.text(s.value_tier.name());
}
