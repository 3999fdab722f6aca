//! The grouped likelihood and the maximum-likelihood fit that the MBG/NBD
//! and Pareto/NBD purchase models share: the input's distinct
//! (x, t_x, T) groups, time rescaled so that max T = 1, the terms that
//! depend on x alone evaluated once per distinct x, the rest once per group
//! (on rayon above [`PARALLEL_CHUNK`] groups), and the fit through
//! [`LogParameters`] (warm start, limits, convergence, standard errors).
//!
//! A family supplies its per-customer log-likelihood split in two
//! ([`FamilyLikelihood`]) with the analytic gradient in its four natural
//! parameters; this module knows none of the formulas. (BG/NBD keeps its
//! own, more specialised tables in `bgnbd.rs`.)

use std::time::Instant;

use crate::bgnbd::{BgNbdFitInput, Distinct};
use crate::error::{ModelError, ModelKind};
use crate::fit::{sum_rows, FitOptions, FitReport, MeanNegLogLikelihood};
use crate::fitted::{warm_start_sample, LogParameters};
use crate::hessian::{self, Derivatives4};
use crate::special::CompensatedSum;
use crate::summary::{CustomerSummary, PurchaseGroup};

/// Rows per rayon task; below this many rows the evaluation stays serial.
const PARALLEL_CHUNK: usize = 8_192;

/// A family's per-customer log-likelihood, ln L = `per_x` + `per_row`, in
/// its natural parameters `p` (time-scaled ones already divided by the
/// scale), each with its gradient in `p`.
pub(crate) trait FamilyLikelihood: Sync {
    /// The terms that depend on x alone (the Γ functions).
    fn per_x(&self, p: &[f64; 4], x: f64) -> (f64, [f64; 4]);
    /// The terms that depend on (x, t_x, T).
    fn per_row(&self, p: &[f64; 4], x: f64, t_x: f64, t: f64) -> (f64, [f64; 4]);

    /// P(no purchase in (T, T+window] | x, t_x, T) = L(x, t_x, T+window) /
    /// L(x, t_x, T): the likelihood of the history extended by a window
    /// without purchases over that of the history (the x-only terms cancel).
    fn probability_no_purchase(
        &self,
        p: &[f64; 4],
        customer: &CustomerSummary,
        window_days: f64,
    ) -> f64 {
        let (x, t_x, t) = (customer.x(), customer.t_x(), customer.t());
        if window_days <= 0.0 {
            return 1.0;
        }
        let later = self.per_row(p, x, t_x, t + window_days).0;
        let now = self.per_row(p, x, t_x, t).0;
        (later - now).exp().min(1.0)
    }
    /// Gradient and Hessian in `p` of `per_x` and of `per_row`, where the
    /// family has them analytically (docs/model.md H2); `None` (the
    /// default) falls back to differencing the gradient.
    fn second_derivatives(&self) -> Option<SecondDerivatives> {
        None
    }
}

/// A family's analytic (gradient, Hessian) of its x-only and row terms.
pub(crate) struct SecondDerivatives {
    /// Of `per_x` at (p, x).
    pub per_x: fn(&[f64; 4], f64) -> Derivatives4,
    /// Of `per_row` at (p, (x, t_x, T)).
    pub per_row: fn(&[f64; 4], (f64, f64, f64)) -> Derivatives4,
}

/// One group: x, scaled t_x and T, count.
#[derive(Debug, Clone, Copy)]
struct Row {
    x: f64,
    t_x: f64,
    t: f64,
    weight: f64,
}

/// The grouped input compiled for one family.
pub(crate) struct GroupedObjective<'f, F> {
    family: &'f F,
    x_values: Vec<f64>,
    x_weights: Vec<f64>,
    rows: Vec<Row>,
    total_weight: f64,
}

impl<'f, F: FamilyLikelihood> GroupedObjective<'f, F> {
    fn new(family: &'f F, groups: &[PurchaseGroup], scale: f64) -> Self {
        let mut xs = Distinct::new();
        let mut x_weights: Vec<f64> = Vec::new();
        let mut rows = Vec::with_capacity(groups.len());
        let mut total_weight = 0.0;
        for g in groups {
            let w = g.count as f64;
            let x_index = xs.of(g.x);
            x_weights.resize(xs.values.len(), 0.0);
            x_weights[x_index as usize] += w;
            total_weight += w;
            rows.push(Row {
                x: g.x,
                t_x: g.t_x / scale,
                t: g.t / scale,
                weight: w,
            });
        }
        Self {
            family,
            x_values: xs.values,
            x_weights,
            rows,
            total_weight,
        }
    }

    /// Total repeat occasions Σ count·x (for the LL's time-scale shift).
    fn repeat_occasions(&self) -> f64 {
        self.x_values
            .iter()
            .zip(&self.x_weights)
            .map(|(x, w)| x * w)
            .sum()
    }
}

impl<F: FamilyLikelihood> MeanNegLogLikelihood for GroupedObjective<'_, F> {
    fn evaluate(&self, theta: &[f64]) -> (f64, Vec<f64>) {
        let p: [f64; 4] = std::array::from_fn(|i| theta[i].exp());
        let mut ll = CompensatedSum::default();
        let mut grad = [0.0; 4];
        for (&x, &w) in self.x_values.iter().zip(&self.x_weights) {
            let (v, g) = self.family.per_x(&p, x);
            ll.add(w * v);
            grad.iter_mut().zip(g).for_each(|(a, g)| *a += w * g);
        }
        let sums = sum_rows(&self.rows, PARALLEL_CHUNK, |rows| {
            let mut ll = CompensatedSum::default();
            let mut s = [0.0; 5];
            for row in rows {
                let (v, g) = self.family.per_row(&p, row.x, row.t_x, row.t);
                if v.is_nan() {
                    return [f64::NAN; 5];
                }
                ll.add(row.weight * v);
                for i in 0..4 {
                    s[i + 1] += row.weight * g[i];
                }
            }
            s[0] = ll.value();
            s
        });
        ll.add(sums[0]);
        let n = self.total_weight;
        let value = -ll.value() / n;
        // Chain rule to θ = ln(param), and negate the mean.
        let gradient: Vec<f64> = (0..4)
            .map(|i| -(grad[i] + sums[i + 1]) * p[i] / n)
            .collect();
        if !value.is_finite() || gradient.iter().any(|g| !g.is_finite()) {
            // A point the family cannot evaluate: infeasible.
            return (f64::MAX, vec![0.0; 4]);
        }
        (value, gradient)
    }

    fn weight(&self) -> f64 {
        self.total_weight
    }

    fn analytic_hessian(&self, theta: &[f64]) -> Option<Vec<Vec<f64>>> {
        let second = self.family.second_derivatives()?;
        let p: [f64; 4] = std::array::from_fn(|i| theta[i].exp());
        let mut acc = [0.0; 20];
        for (&x, &w) in self.x_values.iter().zip(&self.x_weights) {
            hessian::accumulate(&mut acc, w, &(second.per_x)(&p, x));
        }
        Some(hessian::mean_negative_theta_hessian_over(
            &p,
            acc,
            (&self.rows, PARALLEL_CHUNK),
            |row| (row.weight, (second.per_row)(&p, (row.x, row.t_x, row.t))),
            self.total_weight,
        ))
    }
}

/// What a family's fit returns before it wraps the parameters in its type.
pub(crate) struct FamilyFit {
    /// Parameters in days.
    pub values: [f64; 4],
    /// Their standard errors, when asked for and available.
    pub standard_errors: Option<[f64; 4]>,
    /// Cov(ln params), when standard errors are.
    pub log_parameter_covariance: Option<[[f64; 4]; 4]>,
    /// The report.
    pub report: FitReport,
}

/// Maximum-likelihood fit of a four-parameter purchase family on grouped
/// summaries: θ = ln(params) with time rescaled so max T = 1 (the
/// parameters at `scaled` are time scales), from θ = 0 or a warm start.
pub(crate) fn fit_family<F: FamilyLikelihood>(
    family: &F,
    model: ModelKind,
    names: [&'static str; 4],
    scaled: &'static [usize],
    input: &BgNbdFitInput,
    options: &FitOptions,
) -> Result<FamilyFit, ModelError> {
    let started = Instant::now();
    let groups = input.groups();
    let max_t = groups.iter().map(|g| g.t).fold(0.0, f64::max);
    let theta = LogParameters {
        model,
        names,
        scaled,
        scale: if max_t > 0.0 { max_t } else { 1.0 },
    };
    theta.check_customers(input.customers(), options)?;
    if groups.iter().all(|g| g.x == 0.0) {
        return Err(ModelError::NoRepeatPurchasers {
            customers: input.customers(),
        });
    }
    let scale = theta.scale;
    let objective = GroupedObjective::new(family, groups, scale);
    let optimum = theta.minimize(&objective, groups.len(), options, |k| {
        GroupedObjective::new(family, &warm_start_sample(groups, k), scale)
    });
    let values = theta.values(&optimum, options)?;
    // Rescaling time by s shifts each customer's LL by −x·ln s in all three
    // purchase families.
    let log_likelihood = -objective.evaluate(&optimum.theta).0 * objective.total_weight
        - objective.repeat_occasions() * scale.ln();
    let standard_errors = theta.standard_errors(&optimum, objective.weight(), &values, options);
    let log_parameter_covariance = theta.covariance(&optimum, objective.weight(), options);
    let report = theta.report(
        &optimum,
        log_likelihood,
        (input.customers(), groups.len()),
        started,
    )?;
    Ok(FamilyFit {
        values,
        standard_errors,
        log_parameter_covariance,
        report,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The grouped objective of `family` over `rows` (x, t_x, T, count),
    /// time divided by `scale`.
    pub(crate) fn objective<'f, F: FamilyLikelihood>(
        family: &'f F,
        rows: &[(f64, f64, f64, u64)],
        scale: f64,
    ) -> GroupedObjective<'f, F> {
        let input = BgNbdFitInput::from_groups(rows.iter().copied()).unwrap();
        GroupedObjective::new(family, input.groups(), scale)
    }
}
