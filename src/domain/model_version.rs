//! A stored model version: the fitted parameters (or why the fit failed),
//! the data window, fit statistics, and every purchase family fitted for it
//! (the candidates) with the policy that chose the active one. Parameters
//! are in days and currency units; other units are a matter of
//! presentation.

use std::time::Duration;

use chrono::{DateTime, Utc};
pub use clv_model::PurchaseFamily;
use clv_model::{ModelError, PurchaseParams};

/// One purchase family's four parameters, time scales in days, in the
/// family's order (BG/NBD and MBG/NBD: r, alpha, a, b; Pareto/NBD: r,
/// alpha, s, beta), or their standard errors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PurchaseParameters {
    pub family: PurchaseFamily,
    pub values: [f64; 4],
}

impl PurchaseParameters {
    /// BG/NBD parameters (alpha in days).
    pub fn bgnbd(r: f64, alpha_days: f64, a: f64, b: f64) -> Self {
        Self {
            family: PurchaseFamily::BgNbd,
            values: [r, alpha_days, a, b],
        }
    }

    /// The model core's parameters (validated: all positive and finite).
    pub fn model(&self) -> Result<PurchaseParams, ModelError> {
        PurchaseParams::from_values(self.family, self.values)
    }
}

impl From<PurchaseParams> for PurchaseParameters {
    fn from(p: PurchaseParams) -> Self {
        Self {
            family: p.family(),
            values: p.values(),
        }
    }
}

/// How the active family of a version was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Criterion {
    /// Lowest BIC = k ln(n) − 2 LL.
    Bic,
    /// Lowest AIC = 2k − 2 LL.
    Aic,
    /// Lowest holdout mean absolute error of the repeat purchases
    /// predicted by a fit on the data before the holdout; BIC when the
    /// data allows no holdout (docs/definitions.md, "Choosing the family").
    Holdout,
}

/// The selection setting (CLVD_MODEL_SELECTION): a criterion, or one
/// family pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelSelection {
    /// Fit every family (unless the request names some) and activate the
    /// best by the criterion.
    Criterion(Criterion),
    /// Fit this family only (unless the request names families) and
    /// activate it.
    Pinned(PurchaseFamily),
}

impl Default for ModelSelection {
    fn default() -> Self {
        ModelSelection::Criterion(Criterion::Bic)
    }
}

impl std::str::FromStr for ModelSelection {
    type Err = String;

    /// "bic", "aic", "holdout", or a family name ("bg_nbd", "mbg_nbd", "pareto_nbd").
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "bic" => Ok(ModelSelection::Criterion(Criterion::Bic)),
            "aic" => Ok(ModelSelection::Criterion(Criterion::Aic)),
            "holdout" => Ok(ModelSelection::Criterion(Criterion::Holdout)),
            other => other
                .parse::<PurchaseFamily>()
                .map(ModelSelection::Pinned)
                .map_err(|_| {
                    format!(
                        "unknown model selection {s:?}: use bic, aic, holdout, or a family \
                         to pin (bg_nbd, mbg_nbd, pareto_nbd)"
                    )
                }),
        }
    }
}

/// How a version's family was chosen, as stored and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectedBy {
    /// Lowest BIC among the families that fitted.
    Bic,
    /// Lowest AIC among the families that fitted.
    Aic,
    /// Lowest holdout mean absolute error among the families that fitted
    /// (on the whole data and on the data before the holdout).
    Holdout,
    /// The request named this family alone.
    Requested,
    /// The setting pinned this family.
    Pinned,
}

impl SelectedBy {
    pub fn name(self) -> &'static str {
        match self {
            SelectedBy::Bic => "bic",
            SelectedBy::Aic => "aic",
            SelectedBy::Holdout => "holdout",
            SelectedBy::Requested => "requested",
            SelectedBy::Pinned => "pinned",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            SelectedBy::Bic,
            SelectedBy::Aic,
            SelectedBy::Holdout,
            SelectedBy::Requested,
            SelectedBy::Pinned,
        ]
        .into_iter()
        .find(|v| v.name() == s)
    }
}

/// What one family's fit found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CandidateFit {
    pub params: PurchaseParameters,
    /// Log-likelihood with time in days.
    pub log_likelihood_days: f64,
    /// 2k − 2 LL (days).
    pub aic_days: f64,
    /// k ln(n) − 2 LL (days), n = customers.
    pub bic_days: f64,
    pub converged: bool,
    pub iterations: u64,
    /// The family's holdout figures, when the selection policy was
    /// `holdout` and the data allowed a holdout.
    pub holdout: Option<CandidateHoldout>,
}

/// How a family fitted on the data before a holdout predicted the repeat
/// purchases in it (as EvaluateModel computes them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CandidateHoldout {
    /// Length of the holdout, days (the last days up to the fit's day).
    pub holdout_days: i64,
    /// Mean over customers of |predicted − actual| holdout repeat purchases.
    pub mean_absolute_error: f64,
    /// Pearson correlation over customers of predicted and actual; 0 when
    /// either does not vary.
    pub correlation: f64,
}

impl CandidateFit {
    /// The figure `criterion` compares (lower is better); NaN (never
    /// chosen) for `holdout` without holdout figures.
    pub fn score(&self, criterion: Criterion) -> f64 {
        match criterion {
            Criterion::Bic => self.bic_days,
            Criterion::Aic => self.aic_days,
            Criterion::Holdout => self.holdout.map_or(f64::NAN, |h| h.mean_absolute_error),
        }
    }
}

/// One family fitted for a version: its fit, or why it failed.
#[derive(Debug, Clone, PartialEq)]
pub struct FamilyCandidate {
    pub family: PurchaseFamily,
    pub outcome: Result<CandidateFit, FitFailure>,
}

/// The candidate to activate under `criterion`: the succeeded one with the
/// lowest criterion (ties: the earlier in `candidates`).
pub fn select_candidate(candidates: &[FamilyCandidate], criterion: Criterion) -> Option<usize> {
    candidates
        .iter()
        .enumerate()
        .filter_map(|(i, c)| Some((i, c.outcome.as_ref().ok()?.score(criterion))))
        .filter(|(_, v)| v.is_finite())
        .fold(None, |best: Option<(usize, f64)>, (i, v)| match best {
            Some((_, b)) if b <= v => best,
            _ => Some((i, v)),
        })
        .map(|(i, _)| i)
}

/// Gamma-Gamma parameters (gamma in currency units), or their standard errors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpendParameters {
    pub p: f64,
    pub q: f64,
    pub gamma: f64,
}

/// What a successful fit found.
#[derive(Debug, Clone, PartialEq)]
pub struct FittedModels {
    /// The activated family's parameters.
    pub purchases: PurchaseParameters,
    pub purchases_standard_errors: Option<PurchaseParameters>,
    /// How the family was chosen (`None` on versions stored before
    /// families existed).
    pub selected_by: Option<SelectedBy>,
    /// Covariance of the activated family's log-parameters ln(params)
    /// (time scales in days), in the family's parameter order, when the
    /// fit provided it.
    pub log_parameter_covariance: Option<[[f64; 4]; 4]>,
    /// The activated family's log-likelihood with time in days.
    pub log_likelihood_days: f64,
    pub iterations: u64,
    pub converged: bool,
    pub spend: SpendParameters,
    pub spend_standard_errors: Option<SpendParameters>,
    /// Covariance of the Gamma-Gamma log-parameters ln(p, q, γ), when the
    /// fit provided it (`None` on versions stored before clvd kept it).
    pub spend_log_parameter_covariance: Option<[[f64; 3]; 3]>,
    pub spend_log_likelihood: f64,
    pub frequency_spend_correlation: f64,
}

/// Why the data could not support a fit: the model core's explanation, as
/// stored with the failed version and shown to callers (it names the data,
/// never an internal cause).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitFailure(String);

impl FitFailure {
    /// The reason, as the model core or the stored version gives it.
    pub fn new(reason: impl std::fmt::Display) -> Self {
        Self(reason.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for FitFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A fit to be stored: fitted models, or the reason there are none.
#[derive(Debug, Clone, PartialEq)]
pub struct NewModelVersion {
    pub as_of: DateTime<Utc>,
    pub outcome: Result<FittedModels, FitFailure>,
    pub customers: i64,
    pub spend_customers: i64,
    /// Σ x over customers: converts the log-likelihood between time units.
    pub repeat_occasions: i64,
    pub fit_duration: Duration,
    /// Transactions ever recorded when the fit started: the refit job
    /// compares it with the current count.
    pub transactions_counter: Option<i64>,
    /// Every family fitted, in [`PurchaseFamily::ALL`] order.
    pub candidates: Vec<FamilyCandidate>,
}

/// A stored version.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelVersion {
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub fit: NewModelVersion,
}

impl ModelVersion {
    pub fn fitted(&self) -> Option<&FittedModels> {
        self.fit.outcome.as_ref().ok()
    }
}
