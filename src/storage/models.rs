//! Model versions, and the grouped summaries that fits read.

use std::time::Duration;

use chrono::NaiveDate;
use sqlx::{postgres::PgRow, Postgres, Row, Transaction};

use super::{Storage, StorageError};
use crate::domain::{
    FittedModels, ModelVersion, NewModelVersion, PurchaseParameters, SpendParameters,
};

/// What a fit reads, grouped where the data lives.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FitData {
    /// (x, t_x, T, customers) in days.
    pub purchase_groups: Vec<(f64, f64, f64, u64)>,
    /// (x, m, customers) for customers with x > 0 and m > 0, m in currency units.
    pub spend_groups: Vec<(f64, f64, u64)>,
}

/// The per-customer summary as of a day, from the day rollups: each
/// customer with a purchase on or before $1.
const SUMMARIES_AS_OF: &str = "
    SELECT count(*)::int - 1 AS x, max(day) - min(day) AS t_x, $1::date - min(day) AS t,
           sum(net_nanos) - (array_agg(net_nanos ORDER BY day))[1] AS repeat_nanos
      FROM customer_days WHERE day <= $1::date GROUP BY customer_id";

/// Held while a fit runs: a transaction-scoped advisory lock, so that one
/// replica fits at a time. Dropping it (or a lost connection) releases it.
/// Its transaction is idle by design while the fit works on other
/// connections, so the session's idle-in-transaction timeout is lifted for
/// it alone.
pub struct FitLock(Transaction<'static, Postgres>);

impl FitLock {
    pub async fn release(self) -> Result<(), StorageError> {
        self.0.commit().await?;
        Ok(())
    }
}

/// The advisory lock key of model fits ("clvd-fit").
const FIT_LOCK_KEY: i64 = 0x636c_7664_2d66_6974;

impl Storage {
    /// Takes the fit lock: waits for it, or (`wait` false) returns `None`
    /// when another fit holds it.
    pub async fn fit_lock(&self, wait: bool) -> Result<Option<FitLock>, StorageError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET LOCAL idle_in_transaction_session_timeout = 0")
            .execute(&mut *tx)
            .await?;
        if wait {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(FIT_LOCK_KEY)
                .execute(&mut *tx)
                .await?;
            return Ok(Some(FitLock(tx)));
        }
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(FIT_LOCK_KEY)
            .fetch_one(&mut *tx)
            .await?;
        Ok(got.then_some(FitLock(tx)))
    }

    /// Transactions ever recorded (committed), erased ones included.
    pub async fn transactions_counter(&self) -> Result<i64, StorageError> {
        Ok(
            sqlx::query_scalar(
                "SELECT coalesce(sum(transactions), 0)::bigint FROM ingest_counters",
            )
            .fetch_one(&self.pool)
            .await?,
        )
    }

    /// Grouped summaries as of the end of `as_of_day`. Refunds recorded
    /// later still lower the value of the occasions they refund.
    pub async fn fit_data(&self, as_of_day: NaiveDate) -> Result<FitData, StorageError> {
        let purchases = sqlx::query(&format!(
            "SELECT x, t_x, t, count(*) AS n FROM ({SUMMARIES_AS_OF}) s GROUP BY x, t_x, t"
        ))
        .bind(as_of_day)
        .fetch_all(&self.pool)
        .await?;
        let spend = sqlx::query(&format!(
            "SELECT x, repeat_nanos::float8 / 1e9 / x AS m, count(*) AS n
               FROM ({SUMMARIES_AS_OF}) s WHERE x > 0 AND repeat_nanos > 0 GROUP BY x, m"
        ))
        .bind(as_of_day)
        .fetch_all(&self.pool)
        .await?;
        let mut data = FitData::default();
        for row in purchases {
            data.purchase_groups.push((
                f64::from(row.try_get::<i32, _>("x")?),
                f64::from(row.try_get::<i32, _>("t_x")?),
                f64::from(row.try_get::<i32, _>("t")?),
                row.try_get::<i64, _>("n")? as u64,
            ));
        }
        for row in spend {
            data.spend_groups.push((
                f64::from(row.try_get::<i32, _>("x")?),
                row.try_get("m")?,
                row.try_get::<i64, _>("n")? as u64,
            ));
        }
        Ok(data)
    }

    /// Calibration summaries and holdout repeat occasions, grouped:
    /// (x, t_x, T, holdout occasions, customers), for customers whose first
    /// purchase is on or before `calibration_day`.
    pub async fn holdout_data(
        &self,
        calibration_day: NaiveDate,
        holdout_day: NaiveDate,
    ) -> Result<Vec<(f64, f64, f64, u64, u64)>, StorageError> {
        let rows = sqlx::query(
            "SELECT x, t_x, t, holdout, count(*) AS n FROM (
                 SELECT count(*) FILTER (WHERE day <= $1)::int - 1 AS x,
                        max(day) FILTER (WHERE day <= $1) - min(day) AS t_x,
                        $1::date - min(day) AS t,
                        count(*) FILTER (WHERE day > $1)::int AS holdout
                   FROM customer_days WHERE day <= $2::date
                  GROUP BY customer_id HAVING min(day) <= $1::date) s
              GROUP BY x, t_x, t, holdout",
        )
        .bind(calibration_day)
        .bind(holdout_day)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    f64::from(row.try_get::<i32, _>("x")?),
                    f64::from(row.try_get::<i32, _>("t_x")?),
                    f64::from(row.try_get::<i32, _>("t")?),
                    row.try_get::<i32, _>("holdout")? as u64,
                    row.try_get::<i64, _>("n")? as u64,
                ))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StorageError::from)
    }

    pub async fn insert_model(&self, m: &NewModelVersion) -> Result<ModelVersion, StorageError> {
        let f = m.outcome.as_ref().ok();
        let pse = f.and_then(|f| f.purchases_standard_errors);
        let sse = f.and_then(|f| f.spend_standard_errors);
        let row = sqlx::query(
            "INSERT INTO models (as_of, state, failure, customers, spend_customers, repeat_occasions,
                                 r, alpha_days, a, b, se_r, se_alpha_days, se_a, se_b,
                                 log_likelihood_days, iterations, converged,
                                 p, q, gamma, se_p, se_q, se_gamma, gamma_gamma_log_likelihood,
                                 frequency_spend_correlation, fit_seconds, transactions_counter)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                     $18, $19, $20, $21, $22, $23, $24, $25, $26, $27)
             RETURNING *",
        )
        .bind(m.as_of)
        .bind(if f.is_some() { "succeeded" } else { "failed" })
        .bind(m.outcome.as_ref().err())
        .bind(m.customers)
        .bind(m.spend_customers)
        .bind(m.repeat_occasions)
        .bind(f.map(|f| f.purchases.r))
        .bind(f.map(|f| f.purchases.alpha_days))
        .bind(f.map(|f| f.purchases.a))
        .bind(f.map(|f| f.purchases.b))
        .bind(pse.map(|s| s.r))
        .bind(pse.map(|s| s.alpha_days))
        .bind(pse.map(|s| s.a))
        .bind(pse.map(|s| s.b))
        .bind(f.map(|f| f.log_likelihood_days))
        .bind(f.map(|f| f.iterations as i64))
        .bind(f.map(|f| f.converged))
        .bind(f.map(|f| f.spend.p))
        .bind(f.map(|f| f.spend.q))
        .bind(f.map(|f| f.spend.gamma))
        .bind(sse.map(|s| s.p))
        .bind(sse.map(|s| s.q))
        .bind(sse.map(|s| s.gamma))
        .bind(f.map(|f| f.spend_log_likelihood))
        .bind(f.map(|f| f.frequency_spend_correlation))
        .bind(m.fit_duration.as_secs_f64())
        .bind(m.transactions_counter)
        .fetch_one(&self.pool)
        .await?;
        Ok(model_from_row(&row)?)
    }

    /// A version, or (with `None`) the newest successful one.
    pub async fn model(&self, version: Option<i64>) -> Result<Option<ModelVersion>, StorageError> {
        let row =
            match version {
                Some(v) => {
                    sqlx::query("SELECT * FROM models WHERE version = $1")
                        .bind(v)
                        .fetch_optional(&self.reads)
                        .await?
                }
                None => sqlx::query(
                    "SELECT * FROM models WHERE state = 'succeeded' AND activated_at IS NOT NULL
                      ORDER BY version DESC LIMIT 1",
                )
                .fetch_optional(&self.reads)
                .await?,
            };
        Ok(row.as_ref().map(model_from_row).transpose()?)
    }

    /// Makes a successful version the active one (after its customer scores
    /// are written, so that no listing sees it half-scored).
    pub async fn activate_model(&self, version: i64) -> Result<(), StorageError> {
        sqlx::query(
            "UPDATE models SET activated_at = now() WHERE version = $1 AND state = 'succeeded'",
        )
        .bind(version)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The newest version of any state.
    pub async fn latest_model(&self) -> Result<Option<ModelVersion>, StorageError> {
        let row = sqlx::query("SELECT * FROM models ORDER BY version DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(model_from_row).transpose()?)
    }

    /// Versions below `before` (all when `None`), newest first.
    pub async fn models(
        &self,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ModelVersion>, StorageError> {
        let rows =
            sqlx::query("SELECT * FROM models WHERE version < $1 ORDER BY version DESC LIMIT $2")
                .bind(before.unwrap_or(i64::MAX))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.iter().map(model_from_row).collect::<Result<_, _>>()?)
    }
}

fn model_from_row(row: &PgRow) -> Result<ModelVersion, sqlx::Error> {
    let outcome = if row.try_get::<String, _>("state")? == "succeeded" {
        let purchases_se = match (
            row.try_get::<Option<f64>, _>("se_r")?,
            row.try_get::<Option<f64>, _>("se_alpha_days")?,
            row.try_get::<Option<f64>, _>("se_a")?,
            row.try_get::<Option<f64>, _>("se_b")?,
        ) {
            (Some(r), Some(alpha_days), Some(a), Some(b)) => Some(PurchaseParameters {
                r,
                alpha_days,
                a,
                b,
            }),
            _ => None,
        };
        let spend_se = match (
            row.try_get::<Option<f64>, _>("se_p")?,
            row.try_get::<Option<f64>, _>("se_q")?,
            row.try_get::<Option<f64>, _>("se_gamma")?,
        ) {
            (Some(p), Some(q), Some(gamma)) => Some(SpendParameters { p, q, gamma }),
            _ => None,
        };
        Ok(FittedModels {
            purchases: PurchaseParameters {
                r: row.try_get("r")?,
                alpha_days: row.try_get("alpha_days")?,
                a: row.try_get("a")?,
                b: row.try_get("b")?,
            },
            purchases_standard_errors: purchases_se,
            log_likelihood_days: row.try_get("log_likelihood_days")?,
            iterations: row.try_get::<i64, _>("iterations")? as u64,
            converged: row.try_get("converged")?,
            spend: SpendParameters {
                p: row.try_get("p")?,
                q: row.try_get("q")?,
                gamma: row.try_get("gamma")?,
            },
            spend_standard_errors: spend_se,
            spend_log_likelihood: row.try_get("gamma_gamma_log_likelihood")?,
            frequency_spend_correlation: row.try_get("frequency_spend_correlation")?,
        })
    } else {
        Err(row
            .try_get::<Option<String>, _>("failure")?
            .unwrap_or_default())
    };
    Ok(ModelVersion {
        version: row.try_get("version")?,
        created_at: row.try_get("created_at")?,
        fit: NewModelVersion {
            as_of: row.try_get("as_of")?,
            outcome,
            customers: row.try_get("customers")?,
            spend_customers: row.try_get("spend_customers")?,
            repeat_occasions: row.try_get("repeat_occasions")?,
            fit_duration: Duration::from_secs_f64(row.try_get::<f64, _>("fit_seconds")?.max(0.0)),
            transactions_counter: row.try_get("transactions_counter")?,
        },
    })
}
