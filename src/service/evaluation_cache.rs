//! EvaluateModel's answers, kept per active model version: the first call
//! for a (version, calibration day, holdout day, families) computes the
//! evaluation (a calibration fit, seconds on a large base) and stores it as
//! JSON; later calls read it. A new version is a new key, so the first call
//! after a fit computes afresh. Until then, transactions recorded after the
//! first call do not change the answer: like the customer scores, it
//! follows the active version (the refit policy bounds how far behind).
//! Without an active version nothing is kept.
//!
//! The JSON is a private mirror of [`Evaluation`] (serde derives; the model
//! core's types have none). Floats round-trip exactly (serde_json writes the
//! shortest representation that reads back to the same bits); a stored
//! answer that cannot be read back (say, a non-finite figure, which JSON
//! cannot hold) is computed again instead, and not stored.

use std::{future::Future, time::Duration};

use chrono::NaiveDate;
use clv_model::{
    BgNbdFit, BgNbdParams, BgNbdStandardErrors, FitReport, HoldoutBucket, HoldoutEvaluation,
};
use serde::{Deserialize, Serialize};

use super::models::{Evaluation, FamilyHoldout, HoldoutFigures, ModelsError};
use crate::{
    domain::{CandidateFit, FitFailure, PurchaseFamily, PurchaseParameters},
    storage::{EvaluationKey, Storage},
};

/// The evaluation for the request, kept or computed by `compute` (and then
/// kept, when a version is active).
pub(super) async fn kept_or_computed<F, Fut>(
    storage: &Storage,
    (calibration_day, holdout_day): (NaiveDate, NaiveDate),
    families: &[PurchaseFamily],
    compute: F,
) -> Result<Evaluation, ModelsError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Evaluation, ModelsError>>,
{
    let Some(active) = storage.model(None).await? else {
        return compute().await;
    };
    let key = EvaluationKey {
        model_version: active.version,
        calibration_day,
        holdout_day,
        families: families
            .iter()
            .map(|f| f.name())
            .collect::<Vec<_>>()
            .join(","),
    };
    if let Some(json) = storage.stored_evaluation(&key).await? {
        match serde_json::from_str::<Stored>(&json).map_err(|e| e.to_string()) {
            Ok(stored) => match stored.evaluation() {
                Ok(evaluation) => return Ok(evaluation),
                Err(e) => {
                    tracing::warn!(error = %e, "a kept evaluation is unreadable; computing it")
                }
            },
            Err(e) => tracing::warn!(error = %e, "a kept evaluation is unreadable; computing it"),
        }
        return compute().await;
    }
    let evaluation = compute().await?;
    let stored = Stored::of(&evaluation);
    // Keep only what reads back as computed (not, say, a NaN figure).
    match serde_json::to_string(&stored) {
        Ok(json) if serde_json::from_str::<Stored>(&json).is_ok_and(|s| s == stored) => {
            storage.store_evaluation(&key, &json).await?;
        }
        _ => tracing::warn!("an evaluation JSON cannot carry exactly is not kept"),
    }
    Ok(evaluation)
}

/// [`Evaluation`] as kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Stored {
    /// BG/NBD's r, alpha (days), a, b.
    bgnbd: [f64; 4],
    standard_errors: Option<[f64; 4]>,
    log_parameter_covariance: Option<[[f64; 4]; 4]>,
    log_likelihood: f64,
    iterations: u64,
    converged: bool,
    gradient_norm: f64,
    fit_customers: u64,
    groups: usize,
    fit_seconds: f64,
    holdout_days: f64,
    customers: u64,
    actual_total: f64,
    predicted_total: f64,
    mean_absolute_error: f64,
    /// (repeat purchases, and more, customers, actual mean, predicted mean).
    buckets: Vec<(u64, bool, u64, f64, f64)>,
    repeat_occasions: i64,
    families: Vec<StoredFamily>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StoredFamily {
    family: String,
    fit: Option<StoredFit>,
    failure: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StoredFit {
    params: [f64; 4],
    log_likelihood_days: f64,
    aic_days: f64,
    bic_days: f64,
    converged: bool,
    iterations: u64,
    actual: f64,
    predicted: f64,
    mean_absolute_error: f64,
    correlation: f64,
}

impl Stored {
    fn of(e: &Evaluation) -> Self {
        let p = &e.fit.params;
        let r = &e.fit.report;
        let c = &e.comparison;
        Self {
            bgnbd: [p.r(), p.alpha(), p.a(), p.b()],
            standard_errors: e.fit.standard_errors.map(|s| [s.r, s.alpha, s.a, s.b]),
            log_parameter_covariance: e.fit.log_parameter_covariance,
            log_likelihood: r.log_likelihood,
            iterations: r.iterations,
            converged: r.converged,
            gradient_norm: r.gradient_norm,
            fit_customers: r.customers,
            groups: r.groups,
            fit_seconds: r.duration.as_secs_f64(),
            holdout_days: c.holdout_days,
            customers: c.customers,
            actual_total: c.actual_total,
            predicted_total: c.predicted_total,
            mean_absolute_error: c.mean_absolute_error,
            buckets: c
                .buckets
                .iter()
                .map(|b| {
                    (
                        b.repeat_purchases,
                        b.and_more,
                        b.customers,
                        b.actual_mean,
                        b.predicted_mean,
                    )
                })
                .collect(),
            repeat_occasions: e.repeat_occasions,
            families: e
                .families
                .iter()
                .map(|f| match &f.outcome {
                    Ok((fit, figures)) => StoredFamily {
                        family: f.family.name().to_owned(),
                        fit: Some(StoredFit {
                            params: fit.params.values,
                            log_likelihood_days: fit.log_likelihood_days,
                            aic_days: fit.aic_days,
                            bic_days: fit.bic_days,
                            converged: fit.converged,
                            iterations: fit.iterations,
                            actual: figures.actual,
                            predicted: figures.predicted,
                            mean_absolute_error: figures.mean_absolute_error,
                            correlation: figures.correlation,
                        }),
                        failure: None,
                    },
                    Err(reason) => StoredFamily {
                        family: f.family.name().to_owned(),
                        fit: None,
                        failure: Some(reason.to_string()),
                    },
                })
                .collect(),
        }
    }

    fn evaluation(self) -> Result<Evaluation, String> {
        let [r, alpha, a, b] = self.bgnbd;
        let params = BgNbdParams::new(r, alpha, a, b).map_err(|e| e.to_string())?;
        let families = self
            .families
            .into_iter()
            .map(|f| {
                let family: PurchaseFamily = f.family.parse().map_err(|_| f.family.clone())?;
                let outcome = match (f.fit, f.failure) {
                    (Some(fit), _) => Ok((
                        CandidateFit {
                            params: PurchaseParameters {
                                family,
                                values: fit.params,
                            },
                            log_likelihood_days: fit.log_likelihood_days,
                            aic_days: fit.aic_days,
                            bic_days: fit.bic_days,
                            converged: fit.converged,
                            iterations: fit.iterations,
                            // An evaluation's calibration fits are not
                            // candidates of a version: no holdout policy.
                            holdout: None,
                        },
                        HoldoutFigures {
                            actual: fit.actual,
                            predicted: fit.predicted,
                            mean_absolute_error: fit.mean_absolute_error,
                            correlation: fit.correlation,
                        },
                    )),
                    (None, reason) => Err(FitFailure::new(reason.unwrap_or_default())),
                };
                Ok(FamilyHoldout { family, outcome })
            })
            .collect::<Result<_, String>>()?;
        Ok(Evaluation {
            fit: BgNbdFit {
                params,
                standard_errors: self
                    .standard_errors
                    .map(|[r, alpha, a, b]| BgNbdStandardErrors { r, alpha, a, b }),
                log_parameter_covariance: self.log_parameter_covariance,
                report: FitReport {
                    log_likelihood: self.log_likelihood,
                    iterations: self.iterations,
                    converged: self.converged,
                    gradient_norm: self.gradient_norm,
                    customers: self.fit_customers,
                    groups: self.groups,
                    duration: Duration::try_from_secs_f64(self.fit_seconds)
                        .map_err(|e| e.to_string())?,
                },
            },
            comparison: HoldoutEvaluation {
                holdout_days: self.holdout_days,
                customers: self.customers,
                actual_total: self.actual_total,
                predicted_total: self.predicted_total,
                mean_absolute_error: self.mean_absolute_error,
                buckets: self
                    .buckets
                    .into_iter()
                    .map(
                        |(repeat_purchases, and_more, customers, actual_mean, predicted_mean)| {
                            HoldoutBucket {
                                repeat_purchases,
                                and_more,
                                customers,
                                actual_mean,
                                predicted_mean,
                            }
                        },
                    )
                    .collect(),
            },
            repeat_occasions: self.repeat_occasions,
            families,
        })
    }
}
