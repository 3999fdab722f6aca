//! Model versions (the `models` table, and each version's fitted purchase
//! families in `model_candidates`) and the fit lock.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder, Transaction};

use super::{
    columns::{columns, push_insert_values},
    error::required,
    Storage, StorageError,
};
use crate::domain::{
    CandidateFit, CandidateHoldout, FamilyCandidate, FitFailure, FittedModels, ModelVersion,
    NewModelVersion, PurchaseFamily, PurchaseParameters, SelectedBy, SpendParameters,
};

/// The columns of a [`ModelRow`].
macro_rules! model_columns {
    () => {
        "version, created_at, as_of, state, failure, customers, spend_customers, repeat_occasions,
         r, alpha_days, a, b, se_r, se_alpha_days, se_a, se_b, log_likelihood_days, iterations,
         converged, p, q, gamma, se_p, se_q, se_gamma, gamma_gamma_log_likelihood,
         frequency_spend_correlation, fit_seconds, transactions_counter, family, selected_by,
         s, beta_days, se_s, se_beta_days, log_parameter_covariance,
         spend_log_parameter_covariance"
    };
}

/// The columns of a [`CandidateRow`].
const CANDIDATE_COLUMNS: &str = "version, family, p1, p2, p3, p4, log_likelihood_days, aic_days,
     bic_days, converged, iterations, failure, holdout_days, holdout_mae, holdout_correlation";

/// `SELECT` [`model_columns!`] `FROM models`, then `$tail`.
macro_rules! select_models {
    ($tail:literal) => {
        concat!("SELECT ", model_columns!(), " FROM models ", $tail)
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

    /// Stores a fit (successful or not) as a new version, not yet active,
    /// with its candidates, in one transaction.
    pub async fn insert_model(&self, m: &NewModelVersion) -> Result<ModelVersion, StorageError> {
        let mut tx = self.pool.begin().await?;
        let mut q = QueryBuilder::new("INSERT INTO models ");
        push_insert_values(&mut q, FitColumns::new(m));
        q.push(concat!(" RETURNING ", model_columns!()));
        let row: ModelRow = q.build_query_as().fetch_one(&mut *tx).await?;
        for c in &m.candidates {
            let mut q = QueryBuilder::new("INSERT INTO model_candidates ");
            push_insert_values(&mut q, CandidateColumns::new(row.version, c));
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        row.decode(m.candidates.clone())
    }

    /// The candidates of `rows`' versions, then the versions decoded. The
    /// candidates are read from the primary: written in the same
    /// transaction as their version, they are there whichever pool read it.
    async fn decode_models(&self, rows: Vec<ModelRow>) -> Result<Vec<ModelVersion>, StorageError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let versions: Vec<i64> = rows.iter().map(|r| r.version).collect();
        let candidates: Vec<CandidateRow> = sqlx::query_as(&format!(
            "SELECT {CANDIDATE_COLUMNS} FROM model_candidates WHERE version = ANY($1)
             ORDER BY version, family"
        ))
        .bind(&versions)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                let mine = candidates
                    .iter()
                    .filter(|c| c.version == row.version)
                    .map(CandidateRow::decode)
                    .collect::<Result<Vec<_>, _>>()?;
                row.decode(mine)
            })
            .collect()
    }

    /// One row decoded with its candidates.
    async fn decode_model(
        &self,
        row: Option<ModelRow>,
    ) -> Result<Option<ModelVersion>, StorageError> {
        Ok(self.decode_models(row.into_iter().collect()).await?.pop())
    }

    /// A version, or (with `None`) the newest successful one.
    pub async fn model(&self, version: Option<i64>) -> Result<Option<ModelVersion>, StorageError> {
        let row = match version {
            Some(v) => {
                sqlx::query_as::<_, ModelRow>(select_models!("WHERE version = $1"))
                    .bind(v)
                    .fetch_optional(&self.reads)
                    .await?
            }
            None => {
                sqlx::query_as(select_models!(
                    "WHERE state = 'succeeded' AND activated_at IS NOT NULL
                     ORDER BY version DESC LIMIT 1"
                ))
                .fetch_optional(&self.reads)
                .await?
            }
        };
        self.decode_model(row).await
    }

    /// The model active at `at` for a point-in-time score: the newest
    /// successful, activated version whose fit's `as_of` is at or before
    /// `at` (so none that saw later data).
    pub async fn model_fitted_by(
        &self,
        at: DateTime<Utc>,
    ) -> Result<Option<ModelVersion>, StorageError> {
        let row: Option<ModelRow> = sqlx::query_as(select_models!(
            "WHERE state = 'succeeded' AND activated_at IS NOT NULL AND as_of <= $1
             ORDER BY version DESC LIMIT 1"
        ))
        .bind(at)
        .fetch_optional(&self.reads)
        .await?;
        self.decode_model(row).await
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
        let row: Option<ModelRow> = sqlx::query_as(select_models!("ORDER BY version DESC LIMIT 1"))
            .fetch_optional(&self.pool)
            .await?;
        self.decode_model(row).await
    }

    /// Versions below `before` (all when `None`), newest first.
    pub async fn models(
        &self,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ModelVersion>, StorageError> {
        let rows: Vec<ModelRow> = sqlx::query_as(select_models!(
            "WHERE version < $1 ORDER BY version DESC LIMIT $2"
        ))
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        self.decode_models(rows).await
    }
}

/// State of a successful version.
const SUCCEEDED: &str = "succeeded";
/// State of a failed version (`failure` says why).
const FAILED: &str = "failed";

columns! {
    /// A `models` row but its version and creation time: what a fit stores
    /// (the parameters are NULL on a failed version).
    #[derive(Debug, sqlx::FromRow)]
    struct FitColumns {
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
        family: Option<String>,
        selected_by: Option<String>,
        s: Option<f64>,
        beta_days: Option<f64>,
        se_s: Option<f64>,
        se_beta_days: Option<f64>,
        log_parameter_covariance: Option<Vec<f64>>,
        spend_log_parameter_covariance: Option<Vec<f64>>,
    }
}

columns! {
    /// A `model_candidates` row: one family fitted for a version.
    #[derive(Debug, sqlx::FromRow)]
    struct CandidateColumns {
        version: i64,
        family: String,
        p1: Option<f64>,
        p2: Option<f64>,
        p3: Option<f64>,
        p4: Option<f64>,
        log_likelihood_days: Option<f64>,
        aic_days: Option<f64>,
        bic_days: Option<f64>,
        converged: Option<bool>,
        iterations: Option<i64>,
        failure: Option<String>,
        holdout_days: Option<i64>,
        holdout_mae: Option<f64>,
        holdout_correlation: Option<f64>,
    }
}

/// A `model_candidates` row as [`CANDIDATE_COLUMNS`] reads it.
type CandidateRow = CandidateColumns;

impl CandidateColumns {
    fn new(version: i64, c: &FamilyCandidate) -> Self {
        let fit = c.outcome.as_ref().ok();
        let [p1, p2, p3, p4] = fit.map_or([None; 4], |f| f.params.values.map(Some));
        Self {
            version,
            family: c.family.name().to_owned(),
            p1,
            p2,
            p3,
            p4,
            log_likelihood_days: fit.map(|f| f.log_likelihood_days),
            aic_days: fit.map(|f| f.aic_days),
            bic_days: fit.map(|f| f.bic_days),
            converged: fit.map(|f| f.converged),
            iterations: fit.map(|f| f.iterations as i64),
            failure: c.outcome.as_ref().err().map(|f| f.as_str().to_owned()),
            holdout_days: fit.and_then(|f| f.holdout).map(|h| h.holdout_days),
            holdout_mae: fit.and_then(|f| f.holdout).map(|h| h.mean_absolute_error),
            holdout_correlation: fit.and_then(|f| f.holdout).map(|h| h.correlation),
        }
    }

    fn decode(&self) -> Result<FamilyCandidate, StorageError> {
        let family = family("model_candidates.family", &self.family)?;
        let outcome = match &self.failure {
            Some(reason) => Err(FitFailure::new(reason)),
            None => Ok(CandidateFit {
                params: PurchaseParameters {
                    family,
                    values: [
                        required("model_candidates.p1", self.p1)?,
                        required("model_candidates.p2", self.p2)?,
                        required("model_candidates.p3", self.p3)?,
                        required("model_candidates.p4", self.p4)?,
                    ],
                },
                log_likelihood_days: required(
                    "model_candidates.log_likelihood_days",
                    self.log_likelihood_days,
                )?,
                aic_days: required("model_candidates.aic_days", self.aic_days)?,
                bic_days: required("model_candidates.bic_days", self.bic_days)?,
                converged: required("model_candidates.converged", self.converged)?,
                iterations: required("model_candidates.iterations", self.iterations)?.max(0) as u64,
                holdout: match (
                    self.holdout_days,
                    self.holdout_mae,
                    self.holdout_correlation,
                ) {
                    (Some(holdout_days), Some(mean_absolute_error), Some(correlation)) => {
                        Some(CandidateHoldout {
                            holdout_days,
                            mean_absolute_error,
                            correlation,
                        })
                    }
                    _ => None,
                },
            }),
        };
        Ok(FamilyCandidate { family, outcome })
    }
}

/// An N×N covariance from its N² stored values in `column`, row by row.
fn covariance<const N: usize>(column: &str, values: &[f64]) -> Result<[[f64; N]; N], StorageError> {
    if values.len() != N * N {
        return Err(StorageError::corrupt(
            column,
            format!("{} values, not {}", values.len(), N * N),
        ));
    }
    Ok(std::array::from_fn(|i| {
        std::array::from_fn(|j| values[N * i + j])
    }))
}

/// A stored family name.
fn family(column: &str, name: &str) -> Result<PurchaseFamily, StorageError> {
    name.parse().map_err(|e| StorageError::corrupt(column, e))
}

/// A `models` row as [`model_columns!`] reads it.
#[derive(Debug, sqlx::FromRow)]
struct ModelRow {
    version: i64,
    created_at: DateTime<Utc>,
    #[sqlx(flatten)]
    fit: FitColumns,
}

impl ModelRow {
    /// The version with its stored candidates; one stored before families
    /// existed (none) reads as BG/NBD with one candidate built from the row.
    fn decode(self, candidates: Vec<FamilyCandidate>) -> Result<ModelVersion, StorageError> {
        let mut fit = self.fit.decode()?;
        fit.candidates = if candidates.is_empty() {
            vec![legacy_candidate(&fit)]
        } else {
            candidates
        };
        Ok(ModelVersion {
            version: self.version,
            created_at: self.created_at,
            fit,
        })
    }
}

/// The one BG/NBD candidate of a version stored before families existed.
fn legacy_candidate(fit: &NewModelVersion) -> FamilyCandidate {
    let outcome = match &fit.outcome {
        Ok(f) => {
            let k = PurchaseFamily::BgNbd.parameter_count() as f64;
            let ll = f.log_likelihood_days;
            Ok(CandidateFit {
                params: f.purchases,
                log_likelihood_days: ll,
                aic_days: 2.0 * k - 2.0 * ll,
                bic_days: k * (fit.customers.max(1) as f64).ln() - 2.0 * ll,
                converged: f.converged,
                iterations: f.iterations,
                holdout: None,
            })
        }
        Err(reason) => Err(reason.clone()),
    };
    FamilyCandidate {
        family: PurchaseFamily::BgNbd,
        outcome,
    }
}

impl FitColumns {
    fn new(m: &NewModelVersion) -> Self {
        let f = m.outcome.as_ref().ok();
        let [r, alpha_days, a, b, s, beta_days] = purchase_values(f.map(|f| f.purchases));
        let [se_r, se_alpha_days, se_a, se_b, se_s, se_beta_days] =
            purchase_values(f.and_then(|f| f.purchases_standard_errors));
        let [p, q, gamma] = spend_values(f.map(|f| f.spend));
        let [se_p, se_q, se_gamma] = spend_values(f.and_then(|f| f.spend_standard_errors));
        Self {
            as_of: m.as_of,
            state: (if f.is_some() { SUCCEEDED } else { FAILED }).to_owned(),
            failure: m.outcome.as_ref().err().map(|f| f.as_str().to_owned()),
            customers: m.customers,
            spend_customers: m.spend_customers,
            repeat_occasions: m.repeat_occasions,
            r,
            alpha_days,
            a,
            b,
            se_r,
            se_alpha_days,
            se_a,
            se_b,
            log_likelihood_days: f.map(|f| f.log_likelihood_days),
            iterations: f.map(|f| f.iterations as i64),
            converged: f.map(|f| f.converged),
            p,
            q,
            gamma,
            se_p,
            se_q,
            se_gamma,
            gamma_gamma_log_likelihood: f.map(|f| f.spend_log_likelihood),
            frequency_spend_correlation: f.map(|f| f.frequency_spend_correlation),
            fit_seconds: m.fit_duration.as_secs_f64(),
            transactions_counter: m.transactions_counter,
            family: f.map(|f| f.purchases.family.name().to_owned()),
            selected_by: f.and_then(|f| f.selected_by).map(|s| s.name().to_owned()),
            s,
            beta_days,
            se_s,
            se_beta_days,
            log_parameter_covariance: f
                .and_then(|f| f.log_parameter_covariance)
                .map(|c| c.iter().flatten().copied().collect()),
            spend_log_parameter_covariance: f
                .and_then(|f| f.spend_log_parameter_covariance)
                .map(|c| c.iter().flatten().copied().collect()),
        }
    }

    fn decode(self) -> Result<NewModelVersion, StorageError> {
        let outcome = if self.state == SUCCEEDED {
            Ok(self.fitted()?)
        } else {
            Err(FitFailure::new(self.failure.unwrap_or_default()))
        };
        Ok(NewModelVersion {
            as_of: self.as_of,
            outcome,
            customers: self.customers,
            spend_customers: self.spend_customers,
            repeat_occasions: self.repeat_occasions,
            fit_duration: Duration::from_secs_f64(self.fit_seconds.max(0.0)),
            transactions_counter: self.transactions_counter,
            candidates: Vec::new(),
        })
    }

    /// The parameters of a successful version; a model's standard errors
    /// are absent unless all of them are stored.
    fn fitted(&self) -> Result<FittedModels, StorageError> {
        let estimates =
            |columns: &str| StorageError::corrupt(columns, "NULL on a successful version");
        let family = family("family", &required("family", self.family.clone())?)?;
        Ok(FittedModels {
            purchases: purchase_parameters(
                family,
                [
                    self.r,
                    self.alpha_days,
                    self.a,
                    self.b,
                    self.s,
                    self.beta_days,
                ],
            )
            .ok_or_else(|| estimates("r, alpha_days and a, b or s, beta_days"))?,
            purchases_standard_errors: purchase_parameters(
                family,
                [
                    self.se_r,
                    self.se_alpha_days,
                    self.se_a,
                    self.se_b,
                    self.se_s,
                    self.se_beta_days,
                ],
            ),
            log_parameter_covariance: match &self.log_parameter_covariance {
                None => None,
                Some(values) => Some(covariance("log_parameter_covariance", values)?),
            },
            spend_log_parameter_covariance: match &self.spend_log_parameter_covariance {
                None => None,
                Some(values) => Some(covariance("spend_log_parameter_covariance", values)?),
            },
            selected_by: match &self.selected_by {
                None => None,
                Some(s) => Some(
                    SelectedBy::parse(s).ok_or_else(|| StorageError::corrupt("selected_by", s))?,
                ),
            },
            log_likelihood_days: required("log_likelihood_days", self.log_likelihood_days)?,
            iterations: required("iterations", self.iterations)?.max(0) as u64,
            converged: required("converged", self.converged)?,
            spend: spend_parameters([self.p, self.q, self.gamma])
                .ok_or_else(|| estimates("p, q, gamma"))?,
            spend_standard_errors: spend_parameters([self.se_p, self.se_q, self.se_gamma]),
            spend_log_likelihood: required(
                "gamma_gamma_log_likelihood",
                self.gamma_gamma_log_likelihood,
            )?,
            frequency_spend_correlation: required(
                "frequency_spend_correlation",
                self.frequency_spend_correlation,
            )?,
        })
    }
}

/// A family's parameters as their columns' values, in `r, alpha_days, a,
/// b, s, beta_days` order: BG/NBD and MBG/NBD fill a, b; Pareto/NBD s,
/// beta_days (all NULL for none).
fn purchase_values(p: Option<PurchaseParameters>) -> [Option<f64>; 6] {
    let Some(p) = p else {
        return [None; 6];
    };
    let [r, alpha, third, fourth] = p.values.map(Some);
    match p.family {
        PurchaseFamily::ParetoNbd => [r, alpha, None, None, third, fourth],
        PurchaseFamily::BgNbd | PurchaseFamily::MbgNbd => [r, alpha, third, fourth, None, None],
    }
}

/// A family's parameters from their columns' values (see
/// [`purchase_values`]): `None` unless the family's four are all set.
fn purchase_parameters(
    family: PurchaseFamily,
    [r, alpha, a, b, s, beta]: [Option<f64>; 6],
) -> Option<PurchaseParameters> {
    let values = match family {
        PurchaseFamily::ParetoNbd => [r?, alpha?, s?, beta?],
        PurchaseFamily::BgNbd | PurchaseFamily::MbgNbd => [r?, alpha?, a?, b?],
    };
    Some(PurchaseParameters { family, values })
}

/// Gamma-Gamma parameters as their columns' values, in `p, q, gamma` order.
fn spend_values(s: Option<SpendParameters>) -> [Option<f64>; 3] {
    s.map_or([None; 3], |s| [s.p, s.q, s.gamma].map(Some))
}

/// Gamma-Gamma parameters from their columns' values: `None` unless all
/// are set.
fn spend_parameters([p, q, gamma]: [Option<f64>; 3]) -> Option<SpendParameters> {
    Some(SpendParameters {
        p: p?,
        q: q?,
        gamma: gamma?,
    })
}
