//! The one error type of the model crate. Every message is written for the
//! person who asked for the fit or the score: the service passes these
//! through as FAILED_PRECONDITION (data problems) or INVALID_ARGUMENT
//! (invalid summaries and parameters). Knows nothing of gRPC.

use thiserror::Error;

/// Which model an error concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// BG/NBD purchase and dropout model.
    BgNbd,
    /// Gamma-Gamma spend model.
    GammaGamma,
    /// MBG/NBD purchase and dropout model (Batislam et al. 2007).
    MbgNbd,
    /// Pareto/NBD purchase and dropout model (Schmittlein et al. 1987).
    ParetoNbd,
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ModelKind::BgNbd => "BG/NBD purchase",
            ModelKind::GammaGamma => "Gamma-Gamma spend",
            ModelKind::MbgNbd => "MBG/NBD purchase",
            ModelKind::ParetoNbd => "Pareto/NBD purchase",
        })
    }
}

/// Everything that can go wrong while building inputs, fitting or scoring.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ModelError {
    /// A customer summary breaks an invariant (x integer ≥ 0, 0 ≤ t_x ≤ T, m finite).
    #[error("invalid customer summary (x={x}, t_x={t_x}, T={t}, m={m}): {reason}")]
    InvalidSummary {
        /// Repeat occasions as given.
        x: f64,
        /// Days from first to last occasion as given.
        t_x: f64,
        /// Days observed as given.
        t: f64,
        /// Mean repeat-occasion value as given.
        m: f64,
        /// Which invariant failed.
        reason: &'static str,
    },
    /// A model parameter is not a positive finite number.
    #[error("invalid {model} model parameter {name} = {value}: must be a positive finite number")]
    InvalidParameter {
        /// The model the parameter belongs to.
        model: ModelKind,
        /// Parameter name as in the paper.
        name: &'static str,
        /// The offending value.
        value: f64,
    },
    /// Fewer customers than a fit can sensibly use.
    #[error("too few customers to fit the {model} model: need at least {needed}, got {got}")]
    TooFewCustomers {
        /// The model being fitted.
        model: ModelKind,
        /// Minimum number of customers.
        needed: u64,
        /// Number of customers supplied.
        got: u64,
    },
    /// Nobody bought twice, so dropout cannot be estimated.
    #[error("no customer has a repeat purchase (x > 0 for none of {customers} customers): no purchase model (BG/NBD, MBG/NBD, Pareto/NBD) can be fitted until some customers buy on a second day")]
    NoRepeatPurchasers {
        /// Number of customers supplied.
        customers: u64,
    },
    /// The spend model has no customer with x > 0 and m > 0.
    #[error("no customer with a repeat purchase of positive value (x > 0 and m > 0): the Gamma-Gamma spend model cannot be fitted")]
    NoSpendData,
    /// The optimiser stopped away from an optimum.
    #[error("the {model} model fit did not converge after {iterations} iterations (gradient norm {gradient_norm:.3e}): {reason}")]
    NotConverged {
        /// The model being fitted.
        model: ModelKind,
        /// Iterations used.
        iterations: u64,
        /// Norm of the gradient of the mean negative log-likelihood at the end.
        gradient_norm: f64,
        /// Why the optimiser stopped.
        reason: String,
    },
    /// A parameter ran off to 0 or infinity: the data do not identify the model.
    #[error("the data do not identify the {model} model: parameter {name} diverged to {value:.3e} (typical when all customers look alike or there are very few of them)")]
    Unidentified {
        /// The model being fitted.
        model: ModelKind,
        /// Parameter name as in the paper.
        name: &'static str,
        /// Where it went.
        value: f64,
    },
    /// Expected spend is infinite when q ≤ 1.
    #[error("expected spend per occasion is undefined for the fitted Gamma-Gamma model: it needs q > 1, the fit has q = {q}")]
    SpendUndefined {
        /// The fitted q.
        q: f64,
    },
    /// A computation produced NaN or infinity.
    #[error("non-finite result while computing {what}")]
    NonFinite {
        /// What was being computed.
        what: &'static str,
    },
    /// An interval level outside (0, 1).
    #[error(
        "invalid interval level {level}: must lie strictly between 0 and 1 (e.g. 0.9 for 90 %)"
    )]
    InvalidIntervalLevel {
        /// The level asked for.
        level: f64,
    },
}

/// `value` when it is a positive finite number, else
/// [`ModelError::InvalidParameter`] naming the model and the parameter.
pub(crate) fn check_positive(
    model: ModelKind,
    name: &'static str,
    value: f64,
) -> Result<f64, ModelError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(ModelError::InvalidParameter { model, name, value })
    }
}
