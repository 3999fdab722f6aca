//! Maximum-likelihood machinery shared by the models: fit options, the fit
//! report, the L-BFGS driver (argmin, More-Thuente line search) over
//! log-parameters θ = ln(params), and standard errors from the Hessian.
//!
//! Standard errors: the Hessian H of the total negative log-likelihood in θ
//! at the optimum is the model's analytic one (BG/NBD, MBG/NBD,
//! Gamma-Gamma: `hessian.rs`) or, for Pareto/NBD, forward differences of
//! its analytic gradient;
//! Cov(θ) = H⁻¹ and, by the delta method, se(param) = param · se(θ)
//! (since d param / d θ = param).
//!
//! Knows nothing of BG/NBD or Gamma-Gamma: a model supplies a
//! `MeanNegLogLikelihood`.

use std::sync::Mutex;
use std::time::Duration;

use argmin::core::{CostFunction, Executor, Gradient, State, TerminationReason};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;

use rayon::prelude::*;

use crate::prec::{
    CONVERGENCE_THRESHOLD, COST_TOLERANCE, GRADIENT_TOLERANCE, HESSIAN_STEP,
    LINE_SEARCH_WIDTH_TOLERANCE, NEWTON_POLISH_BELOW,
};

/// Settings of a fit. `Default` matches the reference implementations
/// (no penalty).
#[derive(Debug, Clone, PartialEq)]
pub struct FitOptions {
    /// λ of an L2 penalty λ·Σθᵢ² on the log-parameters of the rescaled fit
    /// (BG/NBD: θ = ln(r, α/max T, a, b); Gamma-Gamma: θ = ln(p, q, γ/mean m)),
    /// added to the mean negative log-likelihood. 0 (the default) is plain
    /// maximum likelihood, as in the reference implementations.
    pub l2_penalty: f64,
    /// L-BFGS iteration limit.
    pub max_iterations: u64,
    /// Stop L-BFGS when ‖∇‖ of the mean negative log-likelihood in θ is
    /// below this; a Newton step with the finite-difference Hessian then
    /// polishes the optimum (see `newton_polish`).
    pub gradient_tolerance: f64,
    /// Stop when an iteration changes the mean negative log-likelihood by
    /// less than this times max(1, |its starting value|): the rounding floor
    /// of a sum over many customers, below which the line search only
    /// chases noise.
    pub cost_tolerance: f64,
    /// A fit counts as converged when the final gradient norm is below this.
    pub convergence_threshold: f64,
    /// Above this many groups, start from a fit on a subsample of about
    /// 20,000 groups (`usize::MAX` turns the warm start off).
    pub warm_start_above_groups: usize,
    /// Fewest customers a fit accepts.
    pub min_customers: u64,
    /// Compute standard errors (costs 2·dim extra gradient evaluations).
    pub standard_errors: bool,
    /// Return an error instead of an unconverged fit.
    pub require_convergence: bool,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            l2_penalty: 0.0,
            max_iterations: 1000,
            gradient_tolerance: GRADIENT_TOLERANCE,
            cost_tolerance: COST_TOLERANCE,
            convergence_threshold: CONVERGENCE_THRESHOLD,
            warm_start_above_groups: 60_000,
            min_customers: 2,
            standard_errors: true,
            require_convergence: true,
        }
    }
}

/// How a fit went; shared by both models.
#[derive(Debug, Clone, PartialEq)]
pub struct FitReport {
    /// Maximised log-likelihood (no penalty), in the input's units (days, currency).
    pub log_likelihood: f64,
    /// L-BFGS iterations used.
    pub iterations: u64,
    /// Whether the gradient norm reached [`FitOptions::convergence_threshold`].
    pub converged: bool,
    /// ‖∇‖ of the mean negative log-likelihood in log-parameters at the end.
    pub gradient_norm: f64,
    /// Customers the fit used (sum of group counts).
    pub customers: u64,
    /// Distinct groups the likelihood was evaluated over.
    pub groups: usize,
    /// Wall time of the fit: compiling the groups into the likelihood's
    /// tables, warm start, optimisation and standard errors (grouping the
    /// customers, done by the input constructors, is not included).
    pub duration: Duration,
}

/// A model's objective in log-parameters: the negative log-likelihood
/// divided by the number of customers, with its gradient.
pub(crate) trait MeanNegLogLikelihood: Sync {
    /// Value and gradient at θ.
    fn evaluate(&self, theta: &[f64]) -> (f64, Vec<f64>);
    /// Number of customers (to turn the mean into a total).
    fn weight(&self) -> f64;
    /// The analytic Hessian of the mean negative log-likelihood (no
    /// penalty) in θ, where the model has one (docs/model.md H1-H3);
    /// `None` falls back to differencing the analytic gradient.
    fn analytic_hessian(&self, _theta: &[f64]) -> Option<Vec<Vec<f64>>> {
        None
    }
}

/// Where the optimiser stopped.
#[derive(Debug, Clone)]
pub(crate) struct Optimum {
    /// Log-parameters at the end (rescaled problem).
    pub theta: Vec<f64>,
    /// Hessian of the mean negative log-likelihood (no penalty) near θ
    /// (at the point the Newton polish started from).
    pub hessian: Option<Vec<Vec<f64>>>,
    /// L-BFGS iterations over all restarts.
    pub iterations: u64,
    /// ‖∇‖ of the penalised mean objective at θ.
    pub gradient_norm: f64,
    /// `gradient_norm` < the convergence threshold.
    pub converged: bool,
    /// Why the solver stopped last (argmin's words).
    pub reason: String,
}

/// (θ, cost, gradient).
type Evaluation = (Vec<f64>, f64, Vec<f64>);

/// argmin adapter: adds the penalty and remembers the last and the best
/// evaluation (More-Thuente asks for cost and gradient at the same point).
struct Problem<'a, O> {
    /// The model's mean negative log-likelihood.
    objective: &'a O,
    /// λ of the L2 penalty on θ.
    penalty: f64,
    /// The last evaluation, so cost and gradient at one point cost one pass.
    last: Mutex<Option<Evaluation>>,
    /// The lowest-cost evaluation, returned even if the solver errs.
    best: Mutex<Option<Evaluation>>,
}

impl<O: MeanNegLogLikelihood> Problem<'_, O> {
    fn eval(&self, theta: &[f64]) -> (f64, Vec<f64>) {
        if let Some((t, v, g)) = self.last.lock().expect("cache lock").as_ref() {
            if t.as_slice() == theta {
                return (*v, g.clone());
            }
        }
        let (mut value, mut grad) = self.objective.evaluate(theta);
        for (g, t) in grad.iter_mut().zip(theta) {
            value += self.penalty * t * t;
            *g += 2.0 * self.penalty * t;
        }
        if !value.is_finite() || grad.iter().any(|g| !g.is_finite()) {
            // Steer the line search away from overflow.
            value = f64::MAX;
        }
        let evaluation = (theta.to_vec(), value, grad.clone());
        let mut best = self.best.lock().expect("cache lock");
        if best.as_ref().is_none_or(|b| value < b.1) {
            *best = Some(evaluation.clone());
        }
        *self.last.lock().expect("cache lock") = Some(evaluation);
        (value, grad)
    }
}

/// argmin takes its problem by value; this lends it ours.
struct Lent<'p, 'a, O>(&'p Problem<'a, O>);

impl<O: MeanNegLogLikelihood> CostFunction for Lent<'_, '_, O> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, p: &Self::Param) -> Result<f64, argmin::core::Error> {
        Ok(self.0.eval(p).0)
    }
}

impl<O: MeanNegLogLikelihood> Gradient for Lent<'_, '_, O> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;
    fn gradient(&self, p: &Self::Param) -> Result<Vec<f64>, argmin::core::Error> {
        Ok(self.0.eval(p).1)
    }
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// A likelihood's sums over its rows: `sums` of each chunk of `chunk` rows
/// on rayon, added up, when there are more than two chunks; else `sums` of
/// all rows at once on this thread.
pub(crate) fn sum_rows<R: Sync, const K: usize>(
    rows: &[R],
    chunk: usize,
    sums: impl Fn(&[R]) -> [f64; K] + Sync,
) -> [f64; K] {
    if rows.len() > 2 * chunk {
        rows.par_chunks(chunk).map(&sums).reduce(
            || [0.0; K],
            |mut acc, part| {
                acc.iter_mut().zip(part).for_each(|(a, p)| *a += p);
                acc
            },
        )
    } else {
        sums(rows)
    }
}

/// Minimises the (penalised) mean negative log-likelihood from `theta0`
/// with L-BFGS (memory 7) and the More-Thuente line search. The best point
/// seen is returned even if the line search gives up near the optimum
/// (which happens when the cost is flat to rounding).
pub(crate) fn minimize<O: MeanNegLogLikelihood>(
    objective: &O,
    theta0: Vec<f64>,
    options: &FitOptions,
) -> Optimum {
    let problem = Problem {
        objective,
        penalty: options.l2_penalty,
        last: Mutex::new(None),
        best: Mutex::new(None),
    };
    let start_cost = problem.eval(&theta0).0;
    let cost_tolerance = options.cost_tolerance * start_cost.abs().max(1.0);
    let cost_tolerance = if cost_tolerance.is_finite() {
        cost_tolerance
    } else {
        0.0
    };
    let mut iterations = 0;
    let mut reason = String::new();
    let mut start = theta0.clone();
    // L-BFGS restarted from the best point with a fresh memory when the
    // line search gives up early (a stale curvature pair can make the
    // direction uphill); at most MAX_RESTARTS times.
    for _ in 0..=MAX_RESTARTS {
        let solver = MoreThuenteLineSearch::new()
            .with_width_tolerance(LINE_SEARCH_WIDTH_TOLERANCE)
            .map(|line_search| LBFGS::new(line_search, 7))
            .and_then(|s| s.with_tolerance_grad(options.gradient_tolerance))
            .and_then(|s| s.with_tolerance_cost(cost_tolerance));
        let budget = options.max_iterations.saturating_sub(iterations);
        let run = match solver {
            Err(e) => Err(e),
            Ok(solver) => Executor::new(Lent(&problem), solver)
                .configure(|state| state.param(start.clone()).max_iters(budget))
                .run(),
        };
        match run {
            Ok(result) => {
                let state = result.state();
                reason = state
                    .get_termination_reason()
                    .map(TerminationReason::text)
                    .unwrap_or("stopped")
                    .to_string();
                iterations += state.get_iter();
            }
            Err(e) => {
                reason = format!("optimiser stopped: {e}");
                iterations += 1;
            }
        }
        let best = problem.best.lock().expect("cache lock").clone();
        match best {
            Some((theta, _, grad))
                if norm(&grad) >= options.convergence_threshold
                    && iterations < options.max_iterations =>
            {
                if theta == start {
                    break; // no progress since the last restart
                }
                start = theta;
            }
            _ => break,
        }
    }
    let best = problem.best.lock().expect("cache lock").clone();
    let Some((theta, _, grad)) = best else {
        return Optimum {
            theta: theta0,
            hessian: None,
            iterations,
            gradient_norm: f64::INFINITY,
            converged: false,
            reason,
        };
    };
    let (theta, grad, hessian) = newton_polish(&problem, theta, grad);
    let gradient_norm = norm(&grad);
    Optimum {
        theta,
        hessian,
        iterations,
        gradient_norm,
        converged: gradient_norm < options.convergence_threshold,
        reason,
    }
}

/// One Newton step θ − H⁻¹∇ with the analytic Hessian (or, for a model
/// without one, the finite-difference Hessian), taken when
/// L-BFGS has stopped close to the optimum. Line searches compare costs,
/// and a sum over a million customers is only exact to ~1e-16 relative, so
/// they stall near ‖∇‖ ~ 1e-8; the Newton step uses gradients alone and
/// lands within rounding of the optimum. Kept only if the gradient shrinks.
/// The Hessian (needed for standard errors anyway) is returned.
#[allow(clippy::type_complexity)]
fn newton_polish<O: MeanNegLogLikelihood>(
    problem: &Problem<'_, O>,
    theta: Vec<f64>,
    grad: Vec<f64>,
) -> (Vec<f64>, Vec<f64>, Option<Vec<Vec<f64>>>) {
    if norm(&grad) >= NEWTON_POLISH_BELOW || norm(&grad).is_nan() {
        return (theta, grad, None);
    }
    let unpenalised: Vec<f64> = grad
        .iter()
        .zip(&theta)
        .map(|(g, t)| g - 2.0 * problem.penalty * t)
        .collect();
    let hessian = problem
        .objective
        .analytic_hessian(&theta)
        .unwrap_or_else(|| mean_hessian(problem.objective, &theta, &unpenalised));
    let mut penalised = hessian.clone();
    for (i, row) in penalised.iter_mut().enumerate() {
        row[i] += 2.0 * problem.penalty;
    }
    let Some(inverse) = invert_spd(&penalised) else {
        return (theta, grad, Some(hessian));
    };
    let step: Vec<f64> = inverse
        .iter()
        .map(|row| -row.iter().zip(&grad).map(|(h, g)| h * g).sum::<f64>())
        .collect();
    let candidate: Vec<f64> = theta.iter().zip(&step).map(|(t, s)| t + s).collect();
    let (value, candidate_grad) = problem.eval(&candidate);
    if value.is_finite() && norm(&candidate_grad) < norm(&grad) {
        (candidate, candidate_grad, Some(hessian))
    } else {
        (theta, grad, Some(hessian))
    }
}

/// Newton iterations on the full objective with a fixed Hessian (the
/// warm-start sample's, at its optimum) from the warm start θ₀:
/// θ ← θ − H₀⁻¹∇f(θ), one evaluation of the full objective each. The
/// sample's Hessian differs from the full one by sampling error (a few per
/// cent), so each step gains about a digit of the gradient norm where
/// L-BFGS with a fresh memory spends 15-25 evaluations rediscovering the
/// curvature the sample already knows. Each step must lower both the
/// objective (to rounding) and the gradient norm; the first that does not
/// ends the attempt (`None`) and the caller runs L-BFGS from θ₀ instead.
/// Once ‖∇‖ < [`FitOptions::gradient_tolerance`], the usual Newton polish
/// with the full Hessian (needed for the standard errors anyway) finishes,
/// exactly as after L-BFGS. Unpenalised objectives only (the warm start is
/// off under a penalty).
pub(crate) fn refine_from_warm_start<O: MeanNegLogLikelihood>(
    objective: &O,
    theta0: Vec<f64>,
    sample_hessian: &[Vec<f64>],
    options: &FitOptions,
) -> Option<Optimum> {
    let inverse = invert_spd(sample_hessian)?;
    let problem = Problem {
        objective,
        penalty: 0.0,
        last: Mutex::new(None),
        best: Mutex::new(None),
    };
    let (mut theta, (mut value, mut grad)) = (theta0.clone(), problem.eval(&theta0));
    let mut steps = 0;
    while norm(&grad) >= options.gradient_tolerance {
        if steps == REFINE_STEPS || !value.is_finite() {
            return None;
        }
        let candidate: Vec<f64> = theta
            .iter()
            .zip(&inverse)
            .map(|(t, row)| t - row.iter().zip(&grad).map(|(h, g)| h * g).sum::<f64>())
            .collect();
        let (next_value, next_grad) = problem.eval(&candidate);
        let rounding = 1e-14 * value.abs().max(1.0);
        // NaN fails both comparisons and so ends the attempt too.
        let lower = next_value <= value + rounding && norm(&next_grad) < norm(&grad);
        if !lower {
            return None;
        }
        (theta, value, grad) = (candidate, next_value, next_grad);
        steps += 1;
    }
    let (theta, grad, hessian) = newton_polish(&problem, theta, grad);
    let gradient_norm = norm(&grad);
    Some(Optimum {
        theta,
        hessian,
        iterations: steps,
        gradient_norm,
        converged: gradient_norm < options.convergence_threshold,
        reason: format!("{steps} Newton steps from the warm start with its Hessian"),
    })
}

/// Most fixed-Hessian Newton steps [`refine_from_warm_start`] takes before
/// leaving the rest to L-BFGS.
const REFINE_STEPS: u64 = 12;

/// Restarts of L-BFGS after an early stop.
const MAX_RESTARTS: usize = 3;

/// Hessian of the mean negative log-likelihood (no penalty) in θ, by
/// forward differences (for models without an analytic Hessian, and as the
/// test oracle of the analytic ones) of the analytic gradient with step [`HESSIAN_STEP`]
/// from `gradient` (the gradient at θ), symmetrised.
#[allow(clippy::needless_range_loop)] // index loops read like the matrix algebra
pub(crate) fn mean_hessian<O: MeanNegLogLikelihood>(
    objective: &O,
    theta: &[f64],
    gradient: &[f64],
) -> Vec<Vec<f64>> {
    let n = theta.len();
    let h = HESSIAN_STEP;
    let mut hessian = vec![vec![0.0; n]; n];
    for j in 0..n {
        let mut plus = theta.to_vec();
        plus[j] += h;
        let (_, gp) = objective.evaluate(&plus);
        for i in 0..n {
            hessian[i][j] = (gp[i] - gradient[i]) / h;
        }
    }
    for i in 0..n {
        for j in 0..i {
            let mean = 0.5 * (hessian[i][j] + hessian[j][i]);
            hessian[i][j] = mean;
            hessian[j][i] = mean;
        }
    }
    hessian
}

/// Standard errors of θ = ln(params): Cov(θ) is the inverse of the Hessian
/// of the total negative log-likelihood, `customers` × the mean Hessian.
/// `None` if it is not positive definite.
/// Cov(θ) = the inverse of `customers` × the mean Hessian (the Hessian of
/// the total negative log-likelihood); `None` if not positive definite.
pub(crate) fn log_parameter_covariance(
    mean_hessian: &[Vec<f64>],
    customers: f64,
) -> Option<Vec<Vec<f64>>> {
    let total: Vec<Vec<f64>> = mean_hessian
        .iter()
        .map(|row| row.iter().map(|v| v * customers).collect())
        .collect();
    invert_spd(&total)
}

pub(crate) fn log_parameter_standard_errors(
    mean_hessian: &[Vec<f64>],
    customers: f64,
) -> Option<Vec<f64>> {
    let total: Vec<Vec<f64>> = mean_hessian
        .iter()
        .map(|row| row.iter().map(|v| v * customers).collect())
        .collect();
    let inverse = invert_spd(&total)?;
    Some((0..total.len()).map(|i| inverse[i][i].sqrt()).collect())
}

/// Inverse of a symmetric positive definite matrix by Cholesky.
#[allow(clippy::needless_range_loop)] // index loops read like the matrix algebra
fn invert_spd(m: &[Vec<f64>]) -> Option<Vec<Vec<f64>>> {
    let n = m.len();
    let mut l = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = m[i][j] - (0..j).map(|k| l[i][k] * l[j][k]).sum::<f64>();
            if i == j {
                if s <= 0.0 || s.is_nan() {
                    return None;
                }
                l[i][i] = s.sqrt();
            } else {
                l[i][j] = s / l[j][j];
            }
        }
    }
    // Solve L Lᵀ X = I column by column.
    let mut inv = vec![vec![0.0; n]; n];
    for col in 0..n {
        let mut y = vec![0.0; n];
        for i in 0..n {
            let e = if i == col { 1.0 } else { 0.0 };
            y[i] = (e - (0..i).map(|k| l[i][k] * y[k]).sum::<f64>()) / l[i][i];
        }
        let mut x = vec![0.0; n];
        for i in (0..n).rev() {
            x[i] = (y[i] - (i + 1..n).map(|k| l[k][i] * x[k]).sum::<f64>()) / l[i][i];
        }
        for i in 0..n {
            inv[i][col] = x[i];
        }
    }
    Some(inv)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Each component of the objective's analytic gradient at `theta`
    /// equals its central difference (step 1e-6) to 1e-7.
    /// The test oracle for analytic Hessians: central differences of the
    /// analytic gradient.
    pub(crate) fn central_hessian<O: MeanNegLogLikelihood>(
        objective: &O,
        theta: &[f64],
    ) -> Vec<Vec<f64>> {
        let n = theta.len();
        let h = 1e-5;
        let mut out = vec![vec![0.0; n]; n];
        for j in 0..n {
            let (mut p, mut m) = (theta.to_vec(), theta.to_vec());
            p[j] += h;
            m[j] -= h;
            let (gp, gm) = (objective.evaluate(&p).1, objective.evaluate(&m).1);
            for i in 0..n {
                out[i][j] = (gp[i] - gm[i]) / (2.0 * h);
            }
        }
        out
    }

    /// Every entry of `ours` within `tolerance` × the largest entry of `reference`.
    pub(crate) fn assert_matrices_close(ours: &[Vec<f64>], reference: &[Vec<f64>], tolerance: f64) {
        let scale = reference
            .iter()
            .flatten()
            .fold(0.0_f64, |m, v| m.max(v.abs()));
        for (i, (a, b)) in ours.iter().zip(reference).enumerate() {
            for (j, (x, y)) in a.iter().zip(b).enumerate() {
                assert!(
                    (x - y).abs() <= tolerance * scale,
                    "H[{i}][{j}]: {x} vs reference {y} (scale {scale})"
                );
            }
        }
    }

    /// The analytic Hessian against central differences of the gradient.
    pub(crate) fn assert_analytic_hessian_matches_differences<O: MeanNegLogLikelihood>(
        objective: &O,
        theta: &[f64],
    ) {
        let analytic = objective.analytic_hessian(theta).expect("analytic Hessian");
        assert_matrices_close(&analytic, &central_hessian(objective, theta), 1e-7);
    }

    /// Reads `model/fixtures/families_hessians.json`.
    pub(crate) fn hessian_fixture() -> serde_json::Value {
        let path = format!(
            "{}/fixtures/families_hessians.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("JSON")
    }

    /// A JSON array of arrays of numbers.
    pub(crate) fn numbers(v: &serde_json::Value) -> Vec<Vec<f64>> {
        v.as_array()
            .expect("rows")
            .iter()
            .map(|row| {
                row.as_array()
                    .expect("row")
                    .iter()
                    .map(|x| x.as_f64().expect("number"))
                    .collect()
            })
            .collect()
    }

    /// The fixture's CDNOW groups (x, t_x, T, count) in weeks.
    pub(crate) fn fixture_groups(f: &serde_json::Value) -> Vec<(f64, f64, f64, u64)> {
        numbers(&f["groups"])
            .into_iter()
            .map(|g| (g[0], g[1], g[2], g[3] as u64))
            .collect()
    }

    /// θ = ln(params of `model` in the fixture), the parameter at `scaled`
    /// divided by `scale` first.
    pub(crate) fn fixture_theta(
        f: &serde_json::Value,
        model: &str,
        scaled: usize,
        scale: f64,
    ) -> Vec<f64> {
        f[model]["params"]
            .as_array()
            .expect("params")
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let v = v.as_f64().expect("number");
                if i == scaled { v / scale } else { v }.ln()
            })
            .collect()
    }

    /// The objective's analytic Hessian × −`customers` (the total
    /// log-likelihood's) against the fixture's mpmath Hessian of `model`,
    /// and against central differences at θ and at `elsewhere`.
    pub(crate) fn assert_hessian_matches_mpmath<O: MeanNegLogLikelihood>(
        objective: &O,
        (f, model): (&serde_json::Value, &str),
        theta: &[f64],
        elsewhere: &[f64],
    ) {
        let n = objective.weight();
        let ours: Vec<Vec<f64>> = objective
            .analytic_hessian(theta)
            .expect("analytic Hessian")
            .iter()
            .map(|row| row.iter().map(|v| -v * n).collect())
            .collect();
        assert_matrices_close(&ours, &numbers(&f[model]["hessian"]), 1e-9);
        assert_analytic_hessian_matches_differences(objective, theta);
        assert_analytic_hessian_matches_differences(objective, elsewhere);
    }

    pub(crate) fn assert_gradient_matches_central_differences<O: MeanNegLogLikelihood>(
        objective: &O,
        theta: &[f64],
    ) {
        let (_, grad) = objective.evaluate(theta);
        for i in 0..theta.len() {
            let h = 1e-6;
            let (mut p, mut m) = (theta.to_vec(), theta.to_vec());
            p[i] += h;
            m[i] -= h;
            let numeric = (objective.evaluate(&p).0 - objective.evaluate(&m).0) / (2.0 * h);
            assert!(
                (numeric - grad[i]).abs() < 1e-7,
                "component {i}: {numeric} vs {}",
                grad[i]
            );
        }
    }

    /// (θ₀−1)² + 10(θ₁+2)² as a "likelihood" of weight 1.
    struct Bowl;
    impl MeanNegLogLikelihood for Bowl {
        fn evaluate(&self, t: &[f64]) -> (f64, Vec<f64>) {
            (
                (t[0] - 1.0).powi(2) + 10.0 * (t[1] + 2.0).powi(2),
                vec![2.0 * (t[0] - 1.0), 20.0 * (t[1] + 2.0)],
            )
        }
        fn weight(&self) -> f64 {
            1.0
        }
    }

    #[test]
    fn lbfgs_finds_the_minimum_of_a_quadratic() {
        let opt = minimize(&Bowl, vec![5.0, 5.0], &FitOptions::default());
        assert!(opt.converged, "{opt:?}");
        assert!((opt.theta[0] - 1.0).abs() < 1e-8 && (opt.theta[1] + 2.0).abs() < 1e-8);
    }

    #[test]
    fn standard_errors_invert_the_hessian() {
        // Hessian diag(2, 20) → se = (1/√2, 1/√20); exact for a quadratic.
        let hessian = mean_hessian(&Bowl, &[1.0, -2.0], &[0.0, 0.0]);
        let se = log_parameter_standard_errors(&hessian, 1.0).unwrap();
        assert!((se[0] - 0.5f64.sqrt()).abs() < 1e-8 && (se[1] - 0.05f64.sqrt()).abs() < 1e-8);
    }
}
