//! The BG/NBD purchase and dropout model: parameters, likelihood, fit and
//! the per-customer predictions.
//!
//! Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way: An
//! Alternative to the Pareto/NBD Model", Marketing Science 24(2), 275-284
//! (FHL below), with the formulas written out in docs/model.md ("Formulas"). Time is in days throughout;
//! r, a, b are unitless and α is in days ([`BgNbdParams::alpha_weeks`]
//! reports it per week). Knows nothing of spend or money.

use std::time::Instant;

use rayon::prelude::*;

use crate::error::{ModelError, ModelKind};
use crate::fit::{sum_rows, FitOptions, FitReport, MeanNegLogLikelihood};
use crate::fitted::{warm_start_sample, LogParameters};
use crate::hessian;
use crate::params::four_parameters;
use crate::special::{
    digamma, ln_beta, ln_gamma, log_sum_exp, sum_ratio_series, sum_ratio_series_sharing,
    CompensatedSum,
};
use crate::summary::{
    fast_map, group_purchases, sort_and_merge, CustomerSummary, FastHashMap, Group, PurchaseGroup,
};

/// Days per week, for reporting α per week.
pub const DAYS_PER_WEEK: f64 = 7.0;

four_parameters! {
    /// Fitted or given BG/NBD parameters: λ ~ Gamma(r, α) purchases per day
    /// while alive, dropout probability p ~ Beta(a, b) after each repeat purchase.
    pub struct BgNbdParams(ModelKind::BgNbd) {
        /// Shape r of the purchase-rate distribution.
        r,
        /// Scale α of the purchase-rate distribution, in days.
        alpha in weeks alpha_weeks,
        /// Beta shape a of the dropout probability.
        a,
        /// Beta shape b of the dropout probability.
        b,
    }
}

/// Standard errors of the BG/NBD parameters (delta method from the
/// log-parameters; α in days).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BgNbdStandardErrors {
    /// se(r).
    pub r: f64,
    /// se(α), days.
    pub alpha: f64,
    /// se(a).
    pub a: f64,
    /// se(b).
    pub b: f64,
}

impl BgNbdStandardErrors {
    /// se(α) in weeks.
    pub fn alpha_weeks(&self) -> f64 {
        self.alpha / DAYS_PER_WEEK
    }
}

impl BgNbdParams {
    /// Log-likelihood of one customer (FHL eq. 6; docs/model.md A1..A4 with
    /// log-sum-exp).
    pub fn customer_log_likelihood(&self, x: f64, t_x: f64, t: f64) -> f64 {
        let Self { r, alpha, a, b } = *self;
        let a1 = ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln();
        let a2 = ln_gamma(a + b) + ln_gamma(b + x) - ln_gamma(b) - ln_gamma(a + b + x);
        let a3 = -(r + x) * (alpha + t).ln();
        let tail = if x > 0.0 {
            let a4 = a.ln() - (b + x - 1.0).ln() - (r + x) * (alpha + t_x).ln();
            log_sum_exp(a3, a4)
        } else {
            a3
        };
        a1 + a2 + tail
    }

    /// Total log-likelihood of grouped customers (sum of count × customer LL).
    pub fn log_likelihood(&self, input: &BgNbdFitInput) -> f64 {
        input
            .groups
            .iter()
            .map(|g| g.count as f64 * self.customer_log_likelihood(g.x, g.t_x, g.t))
            .sum()
    }

    /// u = ln(a/(b+x−1)) + (r+x)·ln((α+T)/(α+t_x)), so P(alive) = 1/(1+eᵘ).
    fn dead_odds_log(&self, x: f64, t_x: f64, t: f64) -> f64 {
        (self.a / (self.b + x - 1.0)).ln() + (self.r + x) * ((t - t_x) / (self.alpha + t_x)).ln_1p()
    }

    /// P(alive | x, t_x, T) (FHL eq. 11, docs/model.md): 1 for x = 0.
    pub fn probability_alive(&self, customer: &CustomerSummary) -> f64 {
        self.probability_alive_at(customer.x(), customer.t_x(), customer.t())
    }

    pub(crate) fn probability_alive_at(&self, x: f64, t_x: f64, t: f64) -> f64 {
        if x == 0.0 {
            return 1.0;
        }
        let u = self.dead_odds_log(x, t_x, t);
        if u > 0.0 {
            let e = (-u).exp();
            e / (1.0 + e)
        } else {
            1.0 / (1.0 + u.exp())
        }
    }

    /// P(no purchase in (T, T+window] | x, t_x, T) (docs/model.md, Fader &
    /// Hardie's note on P(no purchase)): the churn signal that also moves
    /// for one-time buyers.
    pub fn probability_no_purchase(&self, customer: &CustomerSummary, window_days: f64) -> f64 {
        self.probability_no_purchase_at(customer.x(), customer.t_x(), customer.t(), window_days)
    }

    fn probability_no_purchase_at(&self, x: f64, t_x: f64, t: f64, window: f64) -> f64 {
        let Self { r, alpha, a, b } = *self;
        if window <= 0.0 {
            return 1.0;
        }
        let rx = r + x;
        let alive_term = ln_beta(a, b + x);
        // ln of B(a,b+x)·F^−(r+x) and B(a,b+x)·M^−(r+x), and the dead term.
        let l_future = alive_term - rx * (alpha + t + window).ln();
        let l_now = alive_term - rx * (alpha + t).ln();
        if x > 0.0 {
            let l_dead = ln_beta(a + 1.0, b + x - 1.0) - rx * (alpha + t_x).ln();
            (log_sum_exp(l_dead, l_future) - log_sum_exp(l_dead, l_now)).exp()
        } else {
            (l_future - l_now).exp()
        }
    }

    /// E[Y(t) | x, t_x, T], expected repeat purchases in (T, T+t] (FHL eq. 10).
    ///
    /// # Formula
    /// With z = t/(α+T+t), c = a+b+x−1, Euler's transformation turns
    /// ((α+T)/(α+T+t))^(r+x)·₂F₁(r+x, b+x; c; z) into
    /// (1−z)^(a−1)·₂F₁(a+b−1−r, a−1; c; z). Every term of that series after
    /// the first carries the factor (a−1), which cancels the (a−1) of eq. 10:
    ///
    ///   c/(a−1)·[1 − …] = c·(−L)·φ((a−1)L) − (1−z)^(a−1)·Σₙ≥₁ τₙ,
    ///
    /// L = ln(1−z), φ(u) = (eᵘ−1)/u (1 at u = 0), and
    /// τₙ = (a+b−1−r)ₙ (a)ₙ₋₁ zⁿ / ((c+1)ₙ₋₁ n!), which already includes the
    /// factor c. So a = 1 (φ), a < 1, c ≤ 0 (x = 0 with a+b ≤ 1) and large x
    /// (the transformed series then converges within a few terms even for z
    /// near 1) need no special cases; the result is multiplied by P(alive).
    pub fn expected_purchases(&self, customer: &CustomerSummary, horizon_days: f64) -> f64 {
        self.expected_purchases_at(customer.x(), customer.t_x(), customer.t(), horizon_days)
    }

    pub(crate) fn expected_purchases_at(&self, x: f64, t_x: f64, t: f64, horizon: f64) -> f64 {
        if horizon <= 0.0 {
            return 0.0;
        }
        self.purchase_bracket(x, t, horizon) * self.probability_alive_at(x, t_x, t)
    }

    /// E[X(t)] for a new customer, repeat purchases in (0, t] after the
    /// first (FHL eq. 9): the bracket of eq. 10 with x = 0, T = 0.
    pub fn expected_purchases_new_customer(&self, horizon_days: f64) -> f64 {
        if horizon_days <= 0.0 {
            return 0.0;
        }
        self.purchase_bracket(0.0, 0.0, horizon_days)
    }

    /// (a+b+x−1)/(a−1)·[1 − ((α+T)/(α+T+t))^(r+x)·₂F₁(r+x, b+x; a+b+x−1; z)].
    /// It is E[Y(t)] given alive: it depends on (x, T), not on t_x.
    pub(crate) fn purchase_bracket(&self, x: f64, t: f64, horizon: f64) -> f64 {
        let Self { r, alpha, a, b } = *self;
        let z = horizon / (alpha + t + horizon);
        let ln_one_minus_z = -(horizon / (alpha + t)).ln_1p();
        let c = a + b + x - 1.0;
        let u = (a - 1.0) * ln_one_minus_z;
        let phi = if u == 0.0 { 1.0 } else { u.exp_m1() / u };
        let leading = c * (-ln_one_minus_z) * phi;
        let alpha_prime = a + b - 1.0 - r;
        let first = alpha_prime * z;
        let series = sum_ratio_series(first, z, |n| {
            let n = (n + 1) as f64; // ratio τₙ₊₁/τₙ for n ≥ 1
            (alpha_prime + n) * (a + n - 1.0) / ((c + n) * (n + 1.0)) * z
        });
        match series {
            Some(s) => leading - (s.log_scale + u).exp() * s.value,
            None => f64::NAN,
        }
    }

    /// [`Self::purchase_bracket`] at each of `horizons`, bit-identical to
    /// it, with the series summed together ([`sum_ratio_series_sharing`]):
    /// their term ratios differ only by the factor z, so each term's
    /// coefficient is computed once for every horizon.
    pub(crate) fn purchase_brackets(&self, x: f64, t: f64, horizons: &[f64]) -> Vec<f64> {
        let Self { r, alpha, a, b } = *self;
        let c = a + b + x - 1.0;
        let alpha_prime = a + b - 1.0 - r;
        let mut zs = Vec::with_capacity(horizons.len());
        let mut firsts = Vec::with_capacity(horizons.len());
        let mut outside = Vec::with_capacity(horizons.len());
        for &horizon in horizons {
            let z = horizon / (alpha + t + horizon);
            let ln_one_minus_z = -(horizon / (alpha + t)).ln_1p();
            let u = (a - 1.0) * ln_one_minus_z;
            let phi = if u == 0.0 { 1.0 } else { u.exp_m1() / u };
            let leading = c * (-ln_one_minus_z) * phi;
            zs.push(z);
            firsts.push(alpha_prime * z);
            outside.push((leading, u));
        }
        let series = sum_ratio_series_sharing(&firsts, &zs, |n| {
            let n = (n + 1) as f64; // ratio τₙ₊₁/τₙ for n ≥ 1, without its z
            (alpha_prime + n) * (a + n - 1.0) / ((c + n) * (n + 1.0))
        });
        series
            .into_iter()
            .zip(outside)
            .map(|(series, (leading, u))| match series {
                Some(s) => leading - (s.log_scale + u).exp() * s.value,
                None => f64::NAN,
            })
            .collect()
    }

    /// P(X(t) = n) for a new customer: n repeat purchases in (0, t] (FHL eq. 8).
    ///
    /// The second term's 1 − Σ_{j<n} NB(j) is summed as the tail
    /// Σ_{j≥n} NB(j) of the negative binomial, so large n does not cancel.
    pub fn probability_of_purchases(&self, n: u32, horizon_days: f64) -> f64 {
        let Self { r, alpha, a, b } = *self;
        let t = horizon_days;
        let nf = n as f64;
        let ln_q = (alpha / (alpha + t)).ln(); // ln(α/(α+t))
        let ln_p = if t > 0.0 {
            (t / (alpha + t)).ln()
        } else {
            f64::NEG_INFINITY
        };
        let ln_nb = |j: f64| {
            ln_gamma(r + j) - ln_gamma(r) - ln_gamma(j + 1.0)
                + r * ln_q
                + if j > 0.0 { j * ln_p } else { 0.0 }
        };
        let first = (ln_beta(a, b + nf) - ln_beta(a, b) + ln_nb(nf)).exp();
        if n == 0 {
            return first;
        }
        let p = t / (alpha + t);
        let tail = sum_ratio_series(ln_nb(nf).exp(), p, |k| {
            let j = nf + k as f64;
            (r + j) / (j + 1.0) * p
        })
        .map_or(f64::NAN, |s| s.to_f64());
        first + (ln_beta(a + 1.0, b + nf - 1.0) - ln_beta(a, b)).exp() * tail
    }
}

/// Validated, grouped BG/NBD fitting input: distinct `(x, t_x, T)` with the
/// number of customers sharing each.
#[derive(Debug, Clone, PartialEq)]
pub struct BgNbdFitInput {
    groups: Vec<PurchaseGroup>,
    customers: u64,
}

impl BgNbdFitInput {
    /// From grouped rows `(x, t_x, T, count)` as read from SQL `GROUP BY`.
    /// Rows are validated like [`CustomerSummary`]; repeated keys are merged,
    /// zero counts dropped, and the groups ordered by (x, t_x, T), so the
    /// order of the rows does not matter.
    pub fn from_groups(
        rows: impl IntoIterator<Item = (f64, f64, f64, u64)>,
    ) -> Result<Self, ModelError> {
        let mut groups: Vec<PurchaseGroup> = Vec::new();
        for (x, t_x, t, count) in rows {
            let valid = CustomerSummary::new(x, t_x, t, 0.0)?;
            if count > 0 {
                groups.push(PurchaseGroup {
                    x: valid.x(),
                    t_x: valid.t_x(),
                    t: valid.t(),
                    count,
                });
            }
        }
        let customers = sort_and_merge(&mut groups);
        Ok(Self { groups, customers })
    }

    /// From per-customer summaries (groups them).
    pub fn from_summaries(summaries: &[CustomerSummary]) -> Self {
        let mut groups = group_purchases(summaries);
        // Same order as from_groups (already so for whole-day summaries).
        groups.par_sort_unstable_by_key(Group::order);
        Self {
            customers: summaries.len() as u64,
            groups,
        }
    }

    /// The distinct groups.
    pub fn groups(&self) -> &[PurchaseGroup] {
        &self.groups
    }

    /// Number of customers (sum of counts).
    pub fn customers(&self) -> u64 {
        self.customers
    }
}

/// A fitted BG/NBD model with its report.
#[derive(Debug, Clone, PartialEq)]
pub struct BgNbdFit {
    /// Maximum-likelihood parameters (α in days).
    pub params: BgNbdParams,
    /// Standard errors, when requested and the Hessian is positive definite.
    pub standard_errors: Option<BgNbdStandardErrors>,
    /// Covariance of the log-parameters ln(params) in the order of the
    /// parameters (time and money scales in the input's units): the
    /// inverse Hessian of the total negative log-likelihood, when standard
    /// errors are.
    pub log_parameter_covariance: Option<[[f64; 4]; 4]>,
    /// Log-likelihood, iterations, convergence, sizes, duration.
    pub report: FitReport,
}

/// One likelihood row with x > 0, indices into the per-value tables.
#[derive(Debug, Clone, Copy)]
struct Row {
    /// Repeat occasions (r + x appears in every term).
    x: f64,
    /// Index into the per-x tables (A1 + A2, ln(b+x−1)).
    x_index: u32,
    /// Index into the ln(α+t_x) tables.
    t_x_index: u32,
    /// Index into the ln(α+T) tables.
    t_index: u32,
    /// Customers in the group.
    weight: f64,
}

/// The grouped input compiled for fast evaluation, time rescaled so max T = 1.
struct Objective {
    /// Distinct x values and total weight per x.
    x_values: Vec<f64>,
    x_weights: Vec<f64>,
    /// Distinct scaled T and t_x values.
    t_values: Vec<f64>,
    t_x_values: Vec<f64>,
    /// Rows with x > 0.
    rows: Vec<Row>,
    /// x = 0 customers: total weight per distinct T (index into t_values).
    zero_rows: Vec<(u32, f64)>,
    total_weight: f64,
}

/// Rows per rayon task; below this many rows the evaluation stays serial.
const PARALLEL_CHUNK: usize = 16_384;

/// Distinct values in first-seen order, and the index of a value.
pub(crate) struct Distinct {
    /// The values, in first-seen order.
    pub(crate) values: Vec<f64>,
    /// Bit pattern → position in `values`.
    index: FastHashMap<u64, u32>,
}

impl Distinct {
    pub(crate) fn new() -> Self {
        Self {
            values: Vec::new(),
            index: fast_map(1024),
        }
    }

    pub(crate) fn of(&mut self, value: f64) -> u32 {
        let values = &mut self.values;
        *self.index.entry(value.to_bits()).or_insert_with(|| {
            values.push(value);
            (values.len() - 1) as u32
        })
    }
}

impl Objective {
    fn new(input: &BgNbdFitInput, scale: f64) -> Self {
        let (mut xs, mut ts, mut txs) = (Distinct::new(), Distinct::new(), Distinct::new());
        let mut x_weights: Vec<f64> = Vec::new();
        let mut zero: Vec<f64> = Vec::new();
        let mut rows = Vec::with_capacity(input.groups.len());
        for grp in &input.groups {
            let w = grp.count as f64;
            let x_index = xs.of(grp.x);
            let t_index = ts.of(grp.t / scale);
            x_weights.resize(xs.values.len(), 0.0);
            zero.resize(ts.values.len(), 0.0);
            x_weights[x_index as usize] += w;
            if grp.x > 0.0 {
                let t_x_index = txs.of(grp.t_x / scale);
                rows.push(Row {
                    x: grp.x,
                    x_index,
                    t_x_index,
                    t_index,
                    weight: w,
                });
            } else {
                zero[t_index as usize] += w;
            }
        }
        let zero_rows = zero
            .into_iter()
            .enumerate()
            .filter(|(_, w)| *w > 0.0)
            .map(|(i, w)| (i as u32, w))
            .collect();
        Self {
            x_values: xs.values,
            x_weights,
            t_values: ts.values,
            t_x_values: txs.values,
            rows,
            zero_rows,
            total_weight: input.customers as f64,
        }
    }
}

/// Per-evaluation tables indexed by the rows.
struct Tables {
    /// A1 + A2 per distinct x.
    a1_a2: Vec<f64>,
    ln_b1: Vec<f64>,
    inv_b1: Vec<f64>,
    ln_t: Vec<f64>,
    inv_t: Vec<f64>,
    ln_tx: Vec<f64>,
    inv_tx: Vec<f64>,
}

/// Sums over rows with x > 0: [LL, ∂r, ∂α, Σw·w4, Σw·w4/(b+x−1)], where
/// w4 = e^A4/(e^A3+e^A4) is the weight of the "dropped out after t_x" term.
/// Each row's whole LL (A1+A2 included) is added to a compensated sum, so
/// the total carries no more rounding than a few of its ulps.
fn row_sums(rows: &[Row], r: f64, ln_a: f64, tables: &Tables) -> [f64; 5] {
    let Tables {
        a1_a2,
        ln_b1,
        inv_b1,
        ln_t,
        inv_t,
        ln_tx,
        inv_tx,
    } = tables;
    let mut ll = CompensatedSum::default();
    let mut s = [0.0; 5];
    for row in rows {
        let rx = r + row.x;
        let (lt, it) = (ln_t[row.t_index as usize], inv_t[row.t_index as usize]);
        let (lx, ix) = (
            ln_tx[row.t_x_index as usize],
            inv_tx[row.t_x_index as usize],
        );
        let a3 = -rx * lt;
        let a4 = ln_a - ln_b1[row.x_index as usize] - rx * lx;
        // Branch-free log-sum-exp: e = e^(−|A4−A3|) ≤ 1.
        let e = (-(a4 - a3).abs()).exp();
        // ln(1+e) with e ∈ (0, 1]: absolute error ~1e-16, and cheaper than ln_1p.
        let lse = a3.max(a4) + (1.0 + e).ln();
        let w_larger = 1.0 / (1.0 + e);
        let w4 = if a4 > a3 { w_larger } else { 1.0 - w_larger };
        let w3 = 1.0 - w4;
        let w = row.weight;
        ll.add(w * (a1_a2[row.x_index as usize] + lse));
        s[1] -= w * (w3 * lt + w4 * lx);
        s[2] -= w * rx * (w3 * it + w4 * ix);
        s[3] += w * w4;
        s[4] += w * w4 * inv_b1[row.x_index as usize];
    }
    s[0] = ll.value();
    s
}

impl MeanNegLogLikelihood for Objective {
    fn evaluate(&self, theta: &[f64]) -> (f64, Vec<f64>) {
        let (r, alpha, a, b) = (
            theta[0].exp(),
            theta[1].exp(),
            theta[2].exp(),
            theta[3].exp(),
        );
        let (mut ll, mut g_r, mut g_alpha, mut g_a, mut g_b) = (0.0, 0.0, 0.0, 0.0, 0.0);
        // Terms A1 + A2 depend on x only.
        let (lg_r, lg_b, lg_ab) = (ln_gamma(r), ln_gamma(b), ln_gamma(a + b));
        let (dg_r, dg_b, dg_ab) = (digamma(r), digamma(b), digamma(a + b));
        let ln_alpha = alpha.ln();
        let mut ln_b1 = vec![0.0; self.x_values.len()];
        let mut inv_b1 = vec![0.0; self.x_values.len()];
        let mut a1_a2 = vec![0.0; self.x_values.len()];
        for (i, (&x, &w)) in self.x_values.iter().zip(&self.x_weights).enumerate() {
            let dg_abx = digamma(a + b + x);
            a1_a2[i] = ln_gamma(r + x) - lg_r + r * ln_alpha + lg_ab + ln_gamma(b + x)
                - lg_b
                - ln_gamma(a + b + x);
            g_r += w * (digamma(r + x) - dg_r + ln_alpha);
            g_alpha += w * r / alpha;
            g_a += w * (dg_ab - dg_abx);
            g_b += w * (dg_ab + digamma(b + x) - dg_b - dg_abx);
            if x > 0.0 {
                ln_b1[i] = (b + x - 1.0).ln();
                inv_b1[i] = 1.0 / (b + x - 1.0);
            }
        }
        let ln_t: Vec<f64> = self.t_values.iter().map(|t| (alpha + t).ln()).collect();
        let inv_t: Vec<f64> = self.t_values.iter().map(|t| 1.0 / (alpha + t)).collect();
        let ln_tx: Vec<f64> = self.t_x_values.iter().map(|t| (alpha + t).ln()).collect();
        let inv_tx: Vec<f64> = self.t_x_values.iter().map(|t| 1.0 / (alpha + t)).collect();
        // x = 0: A1 + A2 = r·ln α, LL = r·ln(α/(α+T)).
        let mut zero_ll = CompensatedSum::default();
        for &(ti, w) in &self.zero_rows {
            zero_ll.add(w * r * (ln_alpha - ln_t[ti as usize]));
            g_r -= w * ln_t[ti as usize];
            g_alpha -= w * r * inv_t[ti as usize];
        }
        let ln_a = a.ln();
        let tables = Tables {
            a1_a2,
            ln_b1,
            inv_b1,
            ln_t,
            inv_t,
            ln_tx,
            inv_tx,
        };
        let s = sum_rows(&self.rows, PARALLEL_CHUNK, |rows| {
            row_sums(rows, r, ln_a, &tables)
        });
        ll += zero_ll.value() + s[0];
        g_r += s[1];
        g_alpha += s[2];
        g_a += s[3] / a;
        g_b -= s[4];
        let n = self.total_weight;
        // Chain rule to θ = ln(param), and negate the mean.
        (
            -ll / n,
            vec![
                -g_r * r / n,
                -g_alpha * alpha / n,
                -g_a * a / n,
                -g_b * b / n,
            ],
        )
    }

    fn weight(&self) -> f64 {
        self.total_weight
    }

    /// docs/model.md H2 summed over the groups (x-only terms once per x).
    fn analytic_hessian(&self, theta: &[f64]) -> Option<Vec<Vec<f64>>> {
        let p: [f64; 4] = std::array::from_fn(|i| theta[i].exp());
        let mut acc = [0.0; 20];
        for (&x, &w) in self.x_values.iter().zip(&self.x_weights) {
            hessian::accumulate(&mut acc, w, &hessian::bg_x_part(&p, x, 0.0));
        }
        for &(t_index, w) in &self.zero_rows {
            let t = self.t_values[t_index as usize];
            hessian::accumulate(&mut acc, w, &hessian::bg_row_part(&p, (0.0, 0.0, t), 0.0));
        }
        Some(hessian::mean_negative_theta_hessian_over(
            &p,
            acc,
            (&self.rows, PARALLEL_CHUNK),
            |row| {
                let t_x = self.t_x_values[row.t_x_index as usize];
                let t = self.t_values[row.t_index as usize];
                (row.weight, hessian::bg_row_part(&p, (row.x, t_x, t), 0.0))
            },
            self.total_weight,
        ))
    }
}

/// With many groups, a fit on a sample of them ([`warm_start_sample`]:
/// every k-th group with x > 0, the x = 0 groups, counts scaled so the
/// sample stands for the whole) gives a start close to the optimum, which
/// saves most full-size iterations.
fn subsample(input: &BgNbdFitInput, scale: f64, k: usize) -> Objective {
    let groups = warm_start_sample(&input.groups, k);
    let customers = groups.iter().map(|g| g.count).sum();
    Objective::new(&BgNbdFitInput { groups, customers }, scale)
}

/// Maximum-likelihood fit of the BG/NBD model on grouped summaries.
///
/// The optimiser works on θ = ln(r, α', a, b) with time rescaled so that
/// max T = 1 (α = α'·max T afterwards), starting from all ones as the
/// reference implementations do, with the analytic gradient of FHL eq. 6.
pub fn fit_bgnbd(input: &BgNbdFitInput, options: &FitOptions) -> Result<BgNbdFit, ModelError> {
    let started = Instant::now();
    let max_t = input.groups.iter().map(|g| g.t).fold(0.0, f64::max);
    let theta = LogParameters {
        model: ModelKind::BgNbd,
        names: ["r", "alpha", "a", "b"],
        scaled: &[1],
        scale: if max_t > 0.0 { max_t } else { 1.0 },
    };
    theta.check_customers(input.customers, options)?;
    if input.groups.iter().all(|g| g.x == 0.0) {
        return Err(ModelError::NoRepeatPurchasers {
            customers: input.customers,
        });
    }
    let scale = theta.scale;
    let objective = Objective::new(input, scale);
    let optimum = theta.minimize(&objective, input.groups.len(), options, |k| {
        subsample(input, scale, k)
    });
    let values = theta.values(&optimum, options)?;
    let [r, alpha, a, b] = values;
    let params = BgNbdParams::new(r, alpha, a, b)?;
    // LL in days from the rescaled objective: rescaling time by s shifts each
    // customer's LL by −x·ln s (A1 gains r·ln s, A3/A4 lose (r+x)·ln s).
    let repeat_occasions: f64 = objective
        .x_values
        .iter()
        .zip(&objective.x_weights)
        .map(|(x, w)| x * w)
        .sum();
    let log_likelihood = -objective.evaluate(&optimum.theta).0 * objective.total_weight
        - repeat_occasions * scale.ln();
    let standard_errors = theta
        .standard_errors(&optimum, objective.weight(), &values, options)
        .map(|[r, alpha, a, b]| BgNbdStandardErrors { r, alpha, a, b });
    let log_parameter_covariance = theta.covariance(&optimum, objective.weight(), options);
    let sizes = (input.customers, input.groups.len());
    let report = theta.report(&optimum, log_likelihood, sizes, started)?;
    Ok(BgNbdFit {
        params,
        standard_errors,
        log_parameter_covariance,
        report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::tests::hessian_fixture;

    fn params() -> BgNbdParams {
        BgNbdParams::from_weeks(0.243, 4.414, 0.793, 2.426).unwrap()
    }

    /// The horizons' series summed together give exactly (bit for bit)
    /// what each horizon's own series gives, over parameters and histories
    /// that make the series short, long (z near 1), terminating (a+b−1−r a
    /// non-positive integer) and rescaled (x in the thousands).
    #[test]
    fn brackets_summed_together_equal_each_brackets_own_series() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let horizons: Vec<f64> = (1..=24).map(|k| 30.0 * k as f64).collect();
        let mut cases = vec![
            (params(), 0.0, 0.0),
            (params(), 3.0, 40.0),
            (BgNbdParams::new(2.0, 0.5, 1.5, 1.5).unwrap(), 1.0, 5.0),
            (BgNbdParams::new(0.5, 3.0, 2.0, 1.5).unwrap(), 7.0, 900.0),
            (BgNbdParams::new(0.3, 1.0, 0.9, 5.0).unwrap(), 4000.0, 2.0),
        ];
        for _ in 0..300 {
            let p = BgNbdParams::new(
                rng.random_range(0.05..8.0),
                rng.random_range(0.1..200.0),
                rng.random_range(0.05..8.0),
                rng.random_range(0.05..20.0),
            )
            .unwrap();
            cases.push((
                p,
                f64::from(rng.random_range(0..60_u32)),
                rng.random_range(0.0..1500.0),
            ));
        }
        for (p, x, t) in cases {
            let together = p.purchase_brackets(x, t, &horizons);
            for (h, got) in horizons.iter().zip(&together) {
                let alone = p.purchase_bracket(x, t, *h);
                assert!(
                    got.to_bits() == alone.to_bits() || (got.is_nan() && alone.is_nan()),
                    "{p:?} x={x} T={t} horizon {h}: together {got}, alone {alone}"
                );
            }
        }
    }

    #[test]
    fn analytic_hessian_matches_differences_and_mpmath() {
        use crate::fit::tests::{assert_hessian_matches_mpmath, fixture_groups, fixture_theta};
        let f = hessian_fixture();
        let input = BgNbdFitInput::from_groups(fixture_groups(&f)).unwrap();
        let scale = 39.0;
        let theta = fixture_theta(&f, "bgnbd", 1, scale);
        let objective = Objective::new(&input, scale);
        assert_hessian_matches_mpmath(&objective, (&f, "bgnbd"), &theta, &[0.4, -1.0, -0.6, 1.2]);
    }

    #[test]
    fn analytic_gradient_matches_finite_differences() {
        let input = BgNbdFitInput::from_groups([
            (0.0, 0.0, 30.0, 5),
            (2.0, 10.0, 30.0, 3),
            (1.0, 30.0, 30.0, 2),
            (7.0, 3.5, 12.0, 1),
        ])
        .unwrap();
        let objective = Objective::new(&input, 30.0);
        let theta = [-0.3, 0.2, 0.4, -0.1];
        crate::fit::tests::assert_gradient_matches_central_differences(&objective, &theta);
    }

    #[test]
    fn objective_equals_the_per_customer_likelihood() {
        let input = BgNbdFitInput::from_groups([
            (0.0, 0.0, 30.0, 5),
            (2.0, 10.0, 30.0, 3),
            (1.0, 30.0, 30.0, 2),
        ])
        .unwrap();
        let p = params();
        let scale = 30.0;
        let objective = Objective::new(&input, scale);
        let theta = [p.r.ln(), (p.alpha / scale).ln(), p.a.ln(), p.b.ln()];
        // Rescaling time shifts the LL by −Σ count·x·ln(scale).
        let shift: f64 = input
            .groups
            .iter()
            .map(|g| g.count as f64 * g.x * scale.ln())
            .sum();
        let expected = -(p.log_likelihood(&input) + shift) / 10.0;
        assert!((objective.evaluate(&theta).0 - expected).abs() < 1e-12);
    }

    #[test]
    fn probability_alive_is_one_for_one_time_buyers() {
        let c = CustomerSummary::new(0.0, 0.0, 300.0, 0.0).unwrap();
        assert_eq!(params().probability_alive(&c), 1.0);
    }

    #[test]
    fn probability_alive_does_not_overflow_for_large_x() {
        let c = CustomerSummary::new(500.0, 10.0, 3000.0, 0.0).unwrap();
        let p = params().probability_alive(&c);
        assert!(p.is_finite() && (0.0..1e-100).contains(&p));
    }

    #[test]
    fn no_purchase_probability_falls_for_absent_one_time_buyers() {
        let p = params();
        let recent =
            p.probability_no_purchase(&CustomerSummary::new(0.0, 0.0, 10.0, 0.0).unwrap(), 90.0);
        let long_ago =
            p.probability_no_purchase(&CustomerSummary::new(0.0, 0.0, 700.0, 0.0).unwrap(), 90.0);
        assert!(long_ago > recent, "{long_ago} vs {recent}");
    }

    #[test]
    fn expected_purchases_are_continuous_through_a_equal_one() {
        let at = |a| {
            BgNbdParams::new(0.5, 20.0, a, 2.0)
                .unwrap()
                .expected_purchases_at(3.0, 40.0, 100.0, 365.0)
        };
        let (below, one, above) = (at(1.0 - 1e-9), at(1.0), at(1.0 + 1e-9));
        assert!(one.is_finite() && (below - one).abs() < 1e-7 && (above - one).abs() < 1e-7);
    }

    #[test]
    fn expected_purchases_start_at_the_purchase_rate() {
        // For small t, E[Y(t)] ≈ (r+x)/(α+T)·t·P(alive).
        let p = params();
        let (x, t_x, t, h) = (4.0, 50.0, 100.0, 1e-4);
        let expected = (p.r + x) / (p.alpha + t) * h * p.probability_alive_at(x, t_x, t);
        assert!(((p.expected_purchases_at(x, t_x, t, h) - expected) / expected).abs() < 1e-3);
    }

    #[test]
    fn purchase_probabilities_sum_to_one() {
        let p = params();
        let total: f64 = (0..400).map(|n| p.probability_of_purchases(n, 365.0)).sum();
        assert!((total - 1.0).abs() < 1e-9, "{total}");
    }

    #[test]
    fn purchase_probabilities_far_in_the_tail_stay_positive() {
        let p = params();
        let (far, farther) = (
            p.probability_of_purchases(150, 365.0),
            p.probability_of_purchases(300, 365.0),
        );
        assert!(
            far > 0.0 && farther > 0.0 && farther < far,
            "{far} {farther}"
        );
    }

    #[test]
    fn purchase_probabilities_have_the_expected_mean() {
        let p = params();
        let mean: f64 = (0..2000)
            .map(|n| n as f64 * p.probability_of_purchases(n, 180.0))
            .sum();
        let expected = p.expected_purchases_new_customer(180.0);
        assert!(
            ((mean - expected) / expected).abs() < 1e-8,
            "{mean} vs {expected}"
        );
    }
}
