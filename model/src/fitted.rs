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
    log_parameter_covariance, log_parameter_standard_errors, minimize, refine_from_warm_start,
    FitOptions, FitReport, MeanNegLogLikelihood, Optimum,
};
use crate::prec::{
    DRIFTING_ABS_LOG_PARAMETER, MAX_ABS_LOG_PARAMETER, WARM_START_COST_TOLERANCE,
    WARM_START_GRADIENT_TOLERANCE,
};
use crate::summary::PurchaseGroup;

/// Size of the warm-start subsample, in groups.
const WARM_START_GROUPS: usize = 20_000;

/// The purchase families' warm-start sample: every k-th group with x > 0
/// and the x = 0 groups, each kept group's count multiplied by its stride
/// so that the sample stands for the whole. The x = 0 groups (most
/// customers, and on whole-day data few groups: one per T) are all kept
/// while there are at most half of [`WARM_START_GROUPS`] of them; with
/// distinct summaries (a million customers with fractional T) they are
/// strided too, else the "sample" keeps most of the input and the warm
/// start costs as much as the fit it is meant to shorten.
pub(crate) fn warm_start_sample(groups: &[PurchaseGroup], k: usize) -> Vec<PurchaseGroup> {
    let zeros = groups.iter().filter(|g| g.x == 0.0).count();
    let zero_stride = zeros.div_ceil(WARM_START_GROUPS / 2).max(1);
    let strided = |stride: usize| {
        move |g: &PurchaseGroup| PurchaseGroup {
            count: g.count * stride as u64,
            ..*g
        }
    };
    groups
        .iter()
        .filter(|g| g.x == 0.0)
        .step_by(zero_stride)
        .map(strided(zero_stride))
        .chain(
            groups
                .iter()
                .filter(|g| g.x > 0.0)
                .step_by(k)
                .map(strided(k)),
        )
        .collect()
}

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
    /// boundary is not used. From the warm start, Newton steps with the
    /// sample's Hessian ([`refine_from_warm_start`]), else L-BFGS.
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
                minimize(&subsample(k), vec![0.0; N], &warm_options)
            })
            .filter(|warm| {
                warm.theta
                    .iter()
                    .all(|t| t.abs() < DRIFTING_ABS_LOG_PARAMETER)
            });
        let Some(warm) = warm else {
            return minimize(objective, vec![0.0; N], options);
        };
        // Newton steps with the sample's Hessian first (few evaluations of
        // the full objective); L-BFGS from the warm start if they falter.
        warm.hessian
            .as_deref()
            .and_then(|h| refine_from_warm_start(objective, warm.theta.clone(), h, options))
            .unwrap_or_else(|| minimize(objective, warm.theta, options))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn group(x: f64, t_x: f64, t: f64, count: u64) -> PurchaseGroup {
        PurchaseGroup { x, t_x, t, count }
    }

    #[test]
    fn the_warm_start_sample_of_distinct_summaries_stays_small() {
        // 600,000 distinct one-time buyers and 400,000 distinct repeat
        // buyers: what a million customers with fractional days look like.
        let mut groups: Vec<PurchaseGroup> = (0..600_000)
            .map(|i| group(0.0, 0.0, 1.0 + i as f64 * 1e-3, 1))
            .collect();
        groups.extend(
            (0..400_000).map(|i| group(1.0 + (i % 7) as f64, 0.5, 1.0 + i as f64 * 1e-3, 1)),
        );
        let k = groups.len() / WARM_START_GROUPS;
        let sample = warm_start_sample(&groups, k);
        assert!(
            sample.len() <= WARM_START_GROUPS + 2,
            "{} groups",
            sample.len()
        );
        // It stands for as many customers of each kind (to one stride).
        let customers = |zero: bool| -> u64 {
            sample
                .iter()
                .filter(|g| (g.x == 0.0) == zero)
                .map(|g| g.count)
                .sum()
        };
        assert!(customers(true).abs_diff(600_000) <= 60);
        assert!(customers(false).abs_diff(400_000) <= k as u64);
    }

    #[test]
    fn few_one_time_buyer_groups_are_all_kept() {
        // Whole days: one x = 0 group per T, each with many customers.
        let groups: Vec<PurchaseGroup> = (1..=700)
            .map(|t| group(0.0, 0.0, t as f64, 1_000))
            .chain((0..100_000).map(|i| group(1.0, 0.5, 1.0 + i as f64, 1)))
            .collect();
        let sample = warm_start_sample(&groups, 5);
        let zeros: Vec<_> = sample.iter().filter(|g| g.x == 0.0).collect();
        assert_eq!(zeros.len(), 700);
        assert!(zeros.iter().all(|g| g.count == 1_000));
        assert_eq!(sample.len(), 700 + 20_000);
    }
}
