//! A stored model version: the fitted parameters (or why the fit failed),
//! the data window, and fit statistics. Parameters are in days and
//! currency units; other units are a matter of presentation.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// BG/NBD parameters with alpha per day, or their standard errors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PurchaseParameters {
    pub r: f64,
    pub alpha_days: f64,
    pub a: f64,
    pub b: f64,
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
    pub purchases: PurchaseParameters,
    pub purchases_standard_errors: Option<PurchaseParameters>,
    /// BG/NBD log-likelihood with time in days.
    pub log_likelihood_days: f64,
    pub iterations: u64,
    pub converged: bool,
    pub spend: SpendParameters,
    pub spend_standard_errors: Option<SpendParameters>,
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
