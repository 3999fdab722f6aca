//! The start and the end that both models' fits share, written once: the
//! fewest customers a fit accepts, the warm start on a subsample, and, once
//! the optimiser has stopped, the limit on log-parameters, the convergence
//! requirement, the parameters back in the input's units, their standard
//! errors and the [`FitReport`]. A model supplies its objective and says
//! how its log-parameters read ([`LogParameters`]); knows nothing of either
//! model's formulas.

use std::time::Instant;

use crate::error::{ModelError, ModelKind};
use crate::fit::{
    log_parameter_covariance, log_parameter_standard_errors, minimize, FitOptions, FitReport,
    MeanNegLogLikelihood, Optimum,
};
use crate::prec::{
    DRIFTING_ABS_LOG_PARAMETER, MAX_ABS_LOG_PARAMETER, WARM_START_COST_TOLERANCE,
    WARM_START_GRADIENT_TOLERANCE,
};

/// Size of the warm-start subsample, in groups.
const WARM_START_GROUPS: usize = 20_000;

/// How a model's N log-parameters θ = ln(params) of the rescaled problem
/// read.
pub(crate) struct LogParameters<const N: usize> {
    /// The model being fitted (named in errors).
    pub model: ModelKind,
    /// Parameter names as in the paper, in θ's order.
    pub names: [&'static str; N],
    /// The parameters in the input's units (BG/NBD α in days, Pareto/NBD α
    /// and β in days, Gamma-Gamma γ in currency), fitted divided by `scale`.
    pub scaled: &'static [usize],
    /// What the input was divided by for the fit.
    pub scale: f64,
}

impl<const N: usize> LogParameters<N> {
    /// Refuses fewer customers than [`FitOptions::min_customers`] (at least one).
    pub fn check_customers(&self, customers: u64, options: &FitOptions) -> Result<(), ModelError> {
        let needed = options.min_customers.max(1);
        if customers < needed {
            return Err(ModelError::TooFewCustomers {
                model: self.model,
                needed,
                got: customers,
            });
        }
        Ok(())
    }

    /// Minimises `objective` from θ = 0 (all parameters 1, as the reference
    /// implementations start) or, above [`FitOptions::warm_start_above_groups`]
    /// groups and without a penalty, from the optimum of a fit on
    /// `subsample(k)`: every k-th group, its count × k, so that the
    /// subsample stands for the whole. A warm start that drifts towards a
    /// boundary is not used.
    pub fn minimize<O: MeanNegLogLikelihood>(
        &self,
        objective: &O,
        groups: usize,
        options: &FitOptions,
        subsample: impl FnOnce(usize) -> O,
    ) -> Optimum {
        let warm = (groups > options.warm_start_above_groups && options.l2_penalty == 0.0)
            .then(|| {
                let k = (groups / WARM_START_GROUPS).max(4);
                let warm_options = FitOptions {
                    gradient_tolerance: WARM_START_GRADIENT_TOLERANCE,
                    cost_tolerance: WARM_START_COST_TOLERANCE,
                    standard_errors: false,
                    require_convergence: false,
                    ..options.clone()
                };
                minimize(&subsample(k), vec![0.0; N], &warm_options).theta
            })
            .filter(|theta| theta.iter().all(|t| t.abs() < DRIFTING_ABS_LOG_PARAMETER));
        minimize(objective, warm.unwrap_or_else(|| vec![0.0; N]), options)
    }

    /// The parameters in the input's units, once the optimiser has stopped.
    /// A log-parameter beyond [`MAX_ABS_LOG_PARAMETER`], or beyond
    /// [`DRIFTING_ABS_LOG_PARAMETER`] in an unconverged fit, is
    /// [`ModelError::Unidentified`]; an unconverged fit is
    /// [`ModelError::NotConverged`] when [`FitOptions::require_convergence`].
    pub fn values(&self, optimum: &Optimum, options: &FitOptions) -> Result<[f64; N], ModelError> {
        let value = |i: usize| {
            let value = optimum.theta[i].exp();
            if self.scaled.contains(&i) {
                value * self.scale
            } else {
                value
            }
        };
        for (i, (&name, &theta)) in self.names.iter().zip(&optimum.theta).enumerate() {
            let drifting = !optimum.converged && theta.abs() > DRIFTING_ABS_LOG_PARAMETER;
            if theta.abs() > MAX_ABS_LOG_PARAMETER || drifting {
                return Err(ModelError::Unidentified {
                    model: self.model,
                    name,
                    value: value(i),
                });
            }
        }
        if !optimum.converged && options.require_convergence {
            return Err(ModelError::NotConverged {
                model: self.model,
                iterations: optimum.iterations,
                gradient_norm: optimum.gradient_norm,
                reason: optimum.reason.clone(),
            });
        }
        Ok(std::array::from_fn(value))
    }

    /// Standard errors of `values` (delta method from the log-parameters:
    /// se(param) = param · se(θ)), when asked for and the Hessian of the
    /// `customers`' total negative log-likelihood is positive definite.
    pub fn standard_errors(
        &self,
        optimum: &Optimum,
        customers: f64,
        values: &[f64; N],
        options: &FitOptions,
    ) -> Option<[f64; N]> {
        if !options.standard_errors {
            return None;
        }
        let se = log_parameter_standard_errors(optimum.hessian.as_ref()?, customers)?;
        Some(std::array::from_fn(|i| values[i] * se[i]))
    }

    /// Cov(ln params) at the optimum (the inverse Hessian of the
    /// `customers`' total negative log-likelihood in θ; rescaling time or
    /// money shifts θ by a constant, so this is also the covariance of the
    /// log-parameters in the input's units), when standard errors are
    /// asked for and the Hessian is positive definite.
    pub fn covariance(
        &self,
        optimum: &Optimum,
        customers: f64,
        options: &FitOptions,
    ) -> Option<[[f64; N]; N]> {
        if !options.standard_errors {
            return None;
        }
        let c = log_parameter_covariance(optimum.hessian.as_ref()?, customers)?;
        Some(std::array::from_fn(|i| std::array::from_fn(|j| c[i][j])))
    }

    /// The report of a fit that started at `started`, with its
    /// log-likelihood in the input's units, which must be finite.
    pub fn report(
        &self,
        optimum: &Optimum,
        log_likelihood: f64,
        (customers, groups): (u64, usize),
        started: Instant,
    ) -> Result<FitReport, ModelError> {
        if !log_likelihood.is_finite() {
            return Err(ModelError::NonFinite {
                what: match self.model {
                    ModelKind::BgNbd => "the BG/NBD log-likelihood at the optimum",
                    ModelKind::GammaGamma => "the Gamma-Gamma log-likelihood at the optimum",
                    ModelKind::MbgNbd => "the MBG/NBD log-likelihood at the optimum",
                    ModelKind::ParetoNbd => "the Pareto/NBD log-likelihood at the optimum",
                },
            });
        }
        Ok(FitReport {
            log_likelihood,
            iterations: optimum.iterations,
            converged: optimum.converged,
            gradient_norm: optimum.gradient_norm,
            customers,
            groups,
            duration: started.elapsed(),
        })
    }
}
