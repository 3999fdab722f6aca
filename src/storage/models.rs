//! Model versions (the `models` table) and the fit lock.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder, Transaction};

use super::{
    columns::{columns, push_insert_values},
    Storage, StorageError,
};
use crate::domain::{
    FittedModels, ModelVersion, NewModelVersion, PurchaseParameters, SpendParameters,
};

/// The columns of a [`ModelRow`].
macro_rules! model_columns {
    () => {
        "version, created_at, as_of, state, failure, customers, spend_customers, repeat_occasions,
         r, alpha_days, a, b, se_r, se_alpha_days, se_a, se_b, log_likelihood_days, iterations,
         converged, p, q, gamma, se_p, se_q, se_gamma, gamma_gamma_log_likelihood,
         frequency_spend_correlation, fit_seconds, transactions_counter"
    };
}

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

    /// Stores a fit (successful or not) as a new version, not yet active.
    pub async fn insert_model(&self, m: &NewModelVersion) -> Result<ModelVersion, StorageError> {
        let mut q = QueryBuilder::new("INSERT INTO models ");
        push_insert_values(&mut q, ModelColumns::new(m));
        q.push(concat!(" RETURNING ", model_columns!()));
        let row: ModelRow = q.build_query_as().fetch_one(&self.pool).await?;
        row.decode()
    }

    /// A version, or (with `None`) the newest successful one.
    pub async fn model(&self, version: Option<i64>) -> Result<Option<ModelVersion>, StorageError> {
        let row = match version {
            Some(v) => {
                sqlx::query_as::<_, ModelRow>(concat!(
                    "SELECT ",
                    model_columns!(),
                    " FROM models WHERE version = $1"
                ))
                .bind(v)
                .fetch_optional(&self.reads)
                .await?
            }
            None => {
                sqlx::query_as(concat!(
                    "SELECT ",
                    model_columns!(),
                    " FROM models WHERE state = 'succeeded' AND activated_at IS NOT NULL
                          ORDER BY version DESC LIMIT 1"
                ))
                .fetch_optional(&self.reads)
                .await?
            }
        };
        row.map(ModelRow::decode).transpose()
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
        let row: Option<ModelRow> = sqlx::query_as(concat!(
            "SELECT ",
            model_columns!(),
            " FROM models ORDER BY version DESC LIMIT 1"
        ))
        .fetch_optional(&self.pool)
        .await?;
        row.map(ModelRow::decode).transpose()
    }

    /// Versions below `before` (all when `None`), newest first.
    pub async fn models(
        &self,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ModelVersion>, StorageError> {
        let rows: Vec<ModelRow> = sqlx::query_as(concat!(
            "SELECT ",
            model_columns!(),
            " FROM models WHERE version < $1 ORDER BY version DESC LIMIT $2"
        ))
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(ModelRow::decode).collect()
    }
}

/// State of a successful version.
const SUCCEEDED: &str = "succeeded";
/// State of a failed version (`failure` says why).
const FAILED: &str = "failed";

columns! {
    /// A new `models` row.
    struct ModelColumns<'a> {
        as_of: DateTime<Utc>,
        state: &'a str,
        failure: Option<&'a str>,
        customers: i64,
        spend_customers: i64,
        repeat_occasions: i64,
        r: Option<f64>,
        alpha_days: Option<f64>,
        a: Option<f64>,
        b: Option<f64>,
        se_r: Option<f64>,
        se_alpha_days: Option<f64>,
        se_a: Option<f64>,
        se_b: Option<f64>,
        log_likelihood_days: Option<f64>,
        iterations: Option<i64>,
        converged: Option<bool>,
        p: Option<f64>,
        q: Option<f64>,
        gamma: Option<f64>,
        se_p: Option<f64>,
        se_q: Option<f64>,
        se_gamma: Option<f64>,
        gamma_gamma_log_likelihood: Option<f64>,
        frequency_spend_correlation: Option<f64>,
        fit_seconds: f64,
        transactions_counter: Option<i64>,
    }
}

impl<'a> ModelColumns<'a> {
    fn new(m: &'a NewModelVersion) -> Self {
        let f = m.outcome.as_ref().ok();
        let purchases = f.map(|f| f.purchases);
        let spend = f.map(|f| f.spend);
        let pse = f.and_then(|f| f.purchases_standard_errors);
        let sse = f.and_then(|f| f.spend_standard_errors);
        Self {
            as_of: m.as_of,
            state: if f.is_some() { SUCCEEDED } else { FAILED },
            failure: m.outcome.as_ref().err().map(String::as_str),
            customers: m.customers,
            spend_customers: m.spend_customers,
            repeat_occasions: m.repeat_occasions,
            r: purchases.map(|p| p.r),
            alpha_days: purchases.map(|p| p.alpha_days),
            a: purchases.map(|p| p.a),
            b: purchases.map(|p| p.b),
            se_r: pse.map(|s| s.r),
            se_alpha_days: pse.map(|s| s.alpha_days),
            se_a: pse.map(|s| s.a),
            se_b: pse.map(|s| s.b),
            log_likelihood_days: f.map(|f| f.log_likelihood_days),
            iterations: f.map(|f| f.iterations as i64),
            converged: f.map(|f| f.converged),
            p: spend.map(|s| s.p),
            q: spend.map(|s| s.q),
            gamma: spend.map(|s| s.gamma),
            se_p: sse.map(|s| s.p),
            se_q: sse.map(|s| s.q),
            se_gamma: sse.map(|s| s.gamma),
            gamma_gamma_log_likelihood: f.map(|f| f.spend_log_likelihood),
            frequency_spend_correlation: f.map(|f| f.frequency_spend_correlation),
            fit_seconds: m.fit_duration.as_secs_f64(),
            transactions_counter: m.transactions_counter,
        }
    }
}

/// A `models` row as [`model_columns!`] reads it: the parameters are NULL
/// on a failed version.
#[derive(Debug, sqlx::FromRow)]
struct ModelRow {
    version: i64,
    created_at: DateTime<Utc>,
    as_of: DateTime<Utc>,
    state: String,
    failure: Option<String>,
    customers: i64,
    spend_customers: i64,
    repeat_occasions: i64,
    r: Option<f64>,
    alpha_days: Option<f64>,
    a: Option<f64>,
    b: Option<f64>,
    se_r: Option<f64>,
    se_alpha_days: Option<f64>,
    se_a: Option<f64>,
    se_b: Option<f64>,
    log_likelihood_days: Option<f64>,
    iterations: Option<i64>,
    converged: Option<bool>,
    p: Option<f64>,
    q: Option<f64>,
    gamma: Option<f64>,
    se_p: Option<f64>,
    se_q: Option<f64>,
    se_gamma: Option<f64>,
    gamma_gamma_log_likelihood: Option<f64>,
    frequency_spend_correlation: Option<f64>,
    fit_seconds: f64,
    transactions_counter: Option<i64>,
}

impl ModelRow {
    fn decode(self) -> Result<ModelVersion, StorageError> {
        let outcome = if self.state == SUCCEEDED {
            Ok(self.fitted()?)
        } else {
            Err(self.failure.clone().unwrap_or_default())
        };
        Ok(ModelVersion {
            version: self.version,
            created_at: self.created_at,
            fit: NewModelVersion {
                as_of: self.as_of,
                outcome,
                customers: self.customers,
                spend_customers: self.spend_customers,
                repeat_occasions: self.repeat_occasions,
                fit_duration: Duration::from_secs_f64(self.fit_seconds.max(0.0)),
                transactions_counter: self.transactions_counter,
            },
        })
    }

    /// The parameters of a successful version; its standard errors are
    /// absent unless all of them are stored.
    fn fitted(&self) -> Result<FittedModels, StorageError> {
        let set = |column: &str, value: Option<f64>| {
            value.ok_or_else(|| StorageError::corrupt(column, "NULL on a successful version"))
        };
        let purchases_standard_errors = match (self.se_r, self.se_alpha_days, self.se_a, self.se_b)
        {
            (Some(r), Some(alpha_days), Some(a), Some(b)) => Some(PurchaseParameters {
                r,
                alpha_days,
                a,
                b,
            }),
            _ => None,
        };
        let spend_standard_errors = match (self.se_p, self.se_q, self.se_gamma) {
            (Some(p), Some(q), Some(gamma)) => Some(SpendParameters { p, q, gamma }),
            _ => None,
        };
        Ok(FittedModels {
            purchases: PurchaseParameters {
                r: set("r", self.r)?,
                alpha_days: set("alpha_days", self.alpha_days)?,
                a: set("a", self.a)?,
                b: set("b", self.b)?,
            },
            purchases_standard_errors,
            log_likelihood_days: set("log_likelihood_days", self.log_likelihood_days)?,
            iterations: self
                .iterations
                .ok_or_else(|| StorageError::corrupt("iterations", "NULL on a successful version"))?
                .max(0) as u64,
            converged: self.converged.ok_or_else(|| {
                StorageError::corrupt("converged", "NULL on a successful version")
            })?,
            spend: SpendParameters {
                p: set("p", self.p)?,
                q: set("q", self.q)?,
                gamma: set("gamma", self.gamma)?,
            },
            spend_standard_errors,
            spend_log_likelihood: set(
                "gamma_gamma_log_likelihood",
                self.gamma_gamma_log_likelihood,
            )?,
            frequency_spend_correlation: set(
                "frequency_spend_correlation",
                self.frequency_spend_correlation,
            )?,
        })
    }
}
