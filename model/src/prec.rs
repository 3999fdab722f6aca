//! Every tolerance and numerical limit of the crate, stated once with the
//! reason for its value (after statrs' `prec.rs`). The optimiser's
//! defaults ([`crate::FitOptions`]), the warm start, the Newton polish, the
//! finite-difference Hessian, the limit on log-parameters that both models'
//! fits share, and the series summation all read them from here.

/// Default [`crate::FitOptions::gradient_tolerance`]: L-BFGS stops when
/// ‖∇‖ of the mean negative log-likelihood in θ is below this; the Newton
/// polish then takes the gradient much further.
pub const GRADIENT_TOLERANCE: f64 = 1e-7;

/// Default [`crate::FitOptions::cost_tolerance`]: an iteration that changes
/// the mean negative log-likelihood by less than this (relative) only
/// chases the rounding noise of a sum over many customers.
pub const COST_TOLERANCE: f64 = 1e-13;

/// Default [`crate::FitOptions::convergence_threshold`]: a fit converged
/// when ‖∇‖ of the mean negative log-likelihood in θ ends below this.
pub const CONVERGENCE_THRESHOLD: f64 = 1e-6;

/// The warm start's gradient tolerance: its fit only needs to get close.
pub const WARM_START_GRADIENT_TOLERANCE: f64 = 1e-6;

/// The warm start's cost tolerance (relative), likewise looser.
pub const WARM_START_COST_TOLERANCE: f64 = 1e-11;

/// Newton-polish only from a gradient norm below this (the quadratic
/// region around the optimum).
pub const NEWTON_POLISH_BELOW: f64 = 1e-3;

/// Relative width at which the More-Thuente line search stops refining: a
/// narrower interval only resolves rounding noise in the cost.
pub const LINE_SEARCH_WIDTH_TOLERANCE: f64 = 1e-6;

/// Step in θ of the forward-difference Hessian. Truncation error ~1e-5
/// relative: far below the sampling error that standard errors describe,
/// and ample for a Newton step from a point already near the optimum.
pub const HESSIAN_STEP: f64 = 1e-5;

/// Log-parameters (of the rescaled problem) beyond ±this are reported as
/// unidentified: e^15 ≈ 3.3e6. Beyond it the likelihood is flat towards a
/// boundary (no visible heterogeneity), and the parameters, though finite,
/// cannot be scored (the series of E[Y] would need ~a terms).
pub const MAX_ABS_LOG_PARAMETER: f64 = 15.0;

/// An unconverged fit with a log-parameter beyond ±this (in the rescaled
/// problem) is running off to a boundary, not merely slow; a warm start
/// that ends beyond it is not used.
pub const DRIFTING_ABS_LOG_PARAMETER: f64 = 10.0;

/// A series stops once the geometric bound on its remaining tail is below
/// this fraction of the sum: 2⁻⁵⁵, below half an ulp of the sum.
pub const SERIES_TAIL_TOLERANCE: f64 = 2.8e-17;

/// A series' running sum and term are rescaled (kept as value · e^scale)
/// once either exceeds this, long before `f64` overflows near 1.8e308.
pub const SERIES_RESCALE_ABOVE: f64 = 1e200;

/// Largest number of series terms before giving up (z extremely close to 1).
pub const MAX_SERIES_TERMS: u64 = 20_000_000;

/// Terms of the Pareto/NBD tail series per row during the fit. The first
/// steps of L-BFGS can probe points where the series ratio z is within
/// 1e-6 of 1 (millions of terms per row); there the fit uses the partial
/// sum (a lower bound, finite and smooth enough to steer the line search
/// back). 20,000 terms are exact to rounding for z up to about 0.998 (in
/// the rescaled problem). The fit's final log-likelihood is recomputed
/// without the cap, and a fit whose optimum needed it is refused.
pub const PARETO_FIT_MAX_TERMS: u64 = 20_000;
