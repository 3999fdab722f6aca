//! The Gamma-Gamma spend model: parameters, likelihood, fit and the
//! conditional expected spend per occasion.
//!
//! Fader, Hardie & Lee (2005), "RFM and CLV: Using Iso-Value Curves for
//! Customer Base Analysis", Journal of Marketing Research 42(4), 415-430,
//! after Colombo & Jiang (1999); formulas in docs/model.md (and Fader &
//! Hardie's note "The Gamma-Gamma Model of Monetary Value", eq. 5 for the
//! conditional expectation). Spend per occasion ~ Gamma(p, ν) across a
//! customer's occasions, ν ~ Gamma(q, γ) across customers; γ is in currency
//! units. Knows nothing of purchase timing.

use std::time::Instant;

use crate::error::{check_positive, ModelError, ModelKind};
use crate::fit::{sum_rows, FitOptions, FitReport, MeanNegLogLikelihood};
use crate::fitted::LogParameters;
use crate::hessian;
use crate::special::{digamma, ln_gamma, CompensatedSum};
use crate::summary::{
    fast_map, group_spend, sort_and_merge, CustomerSummary, FastHashMap, SpendGroup,
};

/// Gamma-Gamma parameters p, q, γ (γ in currency units).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GammaGammaParams {
    p: f64,
    q: f64,
    gamma: f64,
}

/// Standard errors of the Gamma-Gamma parameters (delta method).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GammaGammaStandardErrors {
    /// se(p).
    pub p: f64,
    /// se(q).
    pub q: f64,
    /// se(γ).
    pub gamma: f64,
}

impl GammaGammaParams {
    /// Validates parameters (positive, finite).
    pub fn new(p: f64, q: f64, gamma: f64) -> Result<Self, ModelError> {
        let m = ModelKind::GammaGamma;
        Ok(Self {
            p: check_positive(m, "p", p)?,
            q: check_positive(m, "q", q)?,
            gamma: check_positive(m, "gamma", gamma)?,
        })
    }

    /// Shape p of spend per occasion.
    pub fn p(&self) -> f64 {
        self.p
    }
    /// Shape q of the customers' spend scales.
    pub fn q(&self) -> f64 {
        self.q
    }
    /// Scale γ of the customers' spend scales (currency units).
    pub fn gamma(&self) -> f64 {
        self.gamma
    }

    /// Log-likelihood of one customer with x > 0 occasions of mean value m > 0 (docs/model.md).
    pub fn customer_log_likelihood(&self, x: f64, m: f64) -> f64 {
        let Self { p, q, gamma } = *self;
        let px = p * x;
        ln_gamma(px + q) - ln_gamma(px) - ln_gamma(q)
            + q * gamma.ln()
            + (px - 1.0) * m.ln()
            + px * x.ln()
            - (px + q) * (gamma + m * x).ln()
    }

    /// Total log-likelihood over grouped customers.
    pub fn log_likelihood(&self, input: &GammaGammaFitInput) -> f64 {
        input
            .groups
            .iter()
            .map(|g| g.count as f64 * self.customer_log_likelihood(g.x, g.m))
            .sum()
    }

    /// E[spend per occasion | m, x] = p(γ + m·x)/(p·x + q − 1) (Fader &
    /// Hardie's Gamma-Gamma note, eq. 5); the population mean pγ/(q−1) for
    /// x = 0. Needs q > 1. The model is defined for m > 0 only; a repeat
    /// buyer whose net value is m ≤ 0 (refunds) is scored with m = 0, which
    /// keeps the prediction between 0 and the population mean.
    pub fn expected_spend(&self, customer: &CustomerSummary) -> Result<f64, ModelError> {
        self.expected_spend_at(customer.x(), customer.m())
    }

    pub(crate) fn expected_spend_at(&self, x: f64, m: f64) -> Result<f64, ModelError> {
        let Self { p, q, gamma } = *self;
        if q <= 1.0 {
            return Err(ModelError::SpendUndefined { q });
        }
        let m = if x > 0.0 { m.max(0.0) } else { 0.0 };
        Ok(p * (gamma + m * x) / (p * x + q - 1.0))
    }
}

/// Validated, grouped Gamma-Gamma fitting input: distinct (x, m), x > 0, m > 0.
#[derive(Debug, Clone, PartialEq)]
pub struct GammaGammaFitInput {
    groups: Vec<SpendGroup>,
    customers: u64,
}

impl GammaGammaFitInput {
    /// From rows `(x, m, count)`. Rows with x = 0 or m ≤ 0 are left out (the
    /// model is fitted on repeat buyers with positive spend); x must be a
    /// whole number ≥ 0 and m finite.
    pub fn from_groups(
        rows: impl IntoIterator<Item = (f64, f64, u64)>,
    ) -> Result<Self, ModelError> {
        let mut groups: Vec<SpendGroup> = Vec::new();
        for (x, m, count) in rows {
            if !(x.is_finite() && x >= 0.0 && x.fract() == 0.0 && m.is_finite()) {
                let reason = "x must be a non-negative whole number and m finite";
                return Err(ModelError::InvalidSummary {
                    x,
                    t_x: f64::NAN,
                    t: f64::NAN,
                    m,
                    reason,
                });
            }
            if x > 0.0 && m > 0.0 && count > 0 {
                groups.push(SpendGroup { x, m, count });
            }
        }
        let customers = sort_and_merge(&mut groups);
        Ok(Self { groups, customers })
    }

    /// From per-customer summaries (keeps x > 0 and m > 0, groups equal (x, m)).
    pub fn from_summaries(summaries: &[CustomerSummary]) -> Self {
        let groups = group_spend(summaries);
        let customers = groups.iter().map(|g| g.count).sum();
        Self { groups, customers }
    }

    /// The distinct groups.
    pub fn groups(&self) -> &[SpendGroup] {
        &self.groups
    }

    /// Number of customers the fit uses.
    pub fn customers(&self) -> u64 {
        self.customers
    }

    /// Pearson correlation of x and m over the customers (count-weighted).
    /// The model assumes spend independent of frequency; a large |ρ| says
    /// the assumption is doubtful. NaN with fewer than two distinct values.
    pub fn frequency_spend_correlation(&self) -> f64 {
        let n = self.customers as f64;
        let mean = |f: fn(&SpendGroup) -> f64| {
            self.groups
                .iter()
                .map(|g| g.count as f64 * f(g))
                .sum::<f64>()
                / n
        };
        let (mx, mm) = (mean(|g| g.x), mean(|g| g.m));
        let (mut sxx, mut smm, mut sxm) = (0.0, 0.0, 0.0);
        for g in &self.groups {
            let (dx, dm, w) = (g.x - mx, g.m - mm, g.count as f64);
            sxx += w * dx * dx;
            smm += w * dm * dm;
            sxm += w * dx * dm;
        }
        sxm / (sxx * smm).sqrt()
    }
}

/// A fitted Gamma-Gamma model with its report.
#[derive(Debug, Clone, PartialEq)]
pub struct GammaGammaFit {
    /// Maximum-likelihood parameters (γ in currency units).
    pub params: GammaGammaParams,
    /// Standard errors, when requested and the Hessian is positive definite.
    pub standard_errors: Option<GammaGammaStandardErrors>,
    /// Pearson correlation of x and m over the fitted customers.
    pub frequency_spend_correlation: f64,
    /// Covariance of the log-parameters ln(params) in the order of the
    /// parameters (time and money scales in the input's units): the
    /// inverse Hessian of the total negative log-likelihood, when standard
    /// errors are.
    pub log_parameter_covariance: Option<[[f64; 3]; 3]>,
    /// Log-likelihood, iterations, convergence, sizes, duration.
    pub report: FitReport,
}

/// One customer group of the compiled input.
#[derive(Debug, Clone, Copy)]
struct SpendRow {
    x: f64,
    /// Scaled m and its log.
    m: f64,
    ln_m: f64,
    weight: f64,
    x_index: u32,
}

/// Compiled input, m rescaled by `scale` (so that γ' = γ/scale is O(1)).
struct Objective {
    /// Distinct x and, per x, Σw and Σw·ln m (scaled).
    x_values: Vec<f64>,
    x_weights: Vec<f64>,
    x_weighted_ln_m: Vec<f64>,
    rows: Vec<SpendRow>,
    total_weight: f64,
}

impl Objective {
    fn new(input: &GammaGammaFitInput, scale: f64) -> Self {
        let mut per_x: FastHashMap<u64, u32> = fast_map(256);
        let (mut x_values, mut x_weights, mut x_weighted_ln_m) =
            (Vec::new(), Vec::new(), Vec::new());
        let mut rows = Vec::with_capacity(input.groups.len());
        for g in &input.groups {
            let (weight, m) = (g.count as f64, g.m / scale);
            let ln_m = m.ln();
            let x_index = *per_x.entry(g.x.to_bits()).or_insert_with(|| {
                x_values.push(g.x);
                x_weights.push(0.0);
                x_weighted_ln_m.push(0.0);
                (x_values.len() - 1) as u32
            });
            x_weights[x_index as usize] += weight;
            x_weighted_ln_m[x_index as usize] += weight * ln_m;
            rows.push(SpendRow {
                x: g.x,
                m,
                ln_m,
                weight,
                x_index,
            });
        }
        Self {
            x_values,
            x_weights,
            x_weighted_ln_m,
            rows,
            total_weight: input.customers as f64,
        }
    }
}

/// Sums over customers: [LL, Σw·ln(γ+mx), Σw·x·ln(γ+mx), Σw(px+q)/(γ+mx)].
/// Each customer's whole LL goes into a compensated sum.
fn row_sums(rows: &[SpendRow], p: f64, q: f64, gamma: f64, per_x_ll: &[f64]) -> [f64; 4] {
    let mut ll = CompensatedSum::default();
    let mut s = [0.0; 4];
    for row in rows {
        let px = p * row.x;
        let denom = gamma + row.m * row.x;
        let ln_denom = denom.ln();
        let w = row.weight;
        ll.add(w * (per_x_ll[row.x_index as usize] + (px - 1.0) * row.ln_m - (px + q) * ln_denom));
        s[1] += w * ln_denom;
        s[2] += w * row.x * ln_denom;
        s[3] += w * (px + q) / denom;
    }
    s[0] = ll.value();
    s
}

impl MeanNegLogLikelihood for Objective {
    fn evaluate(&self, theta: &[f64]) -> (f64, Vec<f64>) {
        let (p, q, gamma) = (theta[0].exp(), theta[1].exp(), theta[2].exp());
        let (lg_q, dg_q, ln_gamma_) = (ln_gamma(q), digamma(q), gamma.ln());
        let (mut g_p, mut g_q, mut g_gamma) = (0.0, 0.0, 0.0);
        // The terms of the LL that depend on x only, and their gradients.
        let mut per_x_ll = vec![0.0; self.x_values.len()];
        for (i, ((&x, &w), &wlm)) in self
            .x_values
            .iter()
            .zip(&self.x_weights)
            .zip(&self.x_weighted_ln_m)
            .enumerate()
        {
            let px = p * x;
            let (dg_pxq, dg_px) = (digamma(px + q), digamma(px));
            per_x_ll[i] = ln_gamma(px + q) - ln_gamma(px) - lg_q + q * ln_gamma_ + px * x.ln();
            g_p += x * (w * (dg_pxq - dg_px + x.ln()) + wlm);
            g_q += w * (dg_pxq - dg_q + ln_gamma_);
            g_gamma += w * q / gamma;
        }
        let s = sum_rows(&self.rows, PARALLEL_CHUNK, |rows| {
            row_sums(rows, p, q, gamma, &per_x_ll)
        });
        let ll = s[0];
        g_p -= s[2];
        g_q -= s[1];
        g_gamma -= s[3];
        let n = self.total_weight;
        (
            -ll / n,
            vec![-g_p * p / n, -g_q * q / n, -g_gamma * gamma / n],
        )
    }

    fn weight(&self) -> f64 {
        self.total_weight
    }

    /// docs/model.md H3 summed over the groups.
    fn analytic_hessian(&self, theta: &[f64]) -> Option<Vec<Vec<f64>>> {
        let p: [f64; 3] = std::array::from_fn(|i| theta[i].exp());
        let acc = sum_rows(&self.rows, PARALLEL_CHUNK, |rows| {
            let mut acc = [0.0; 12];
            for row in rows {
                let d = hessian::gamma_gamma_customer(&p, row.x, row.m);
                hessian::accumulate(&mut acc, row.weight, &d);
            }
            acc
        });
        Some(hessian::mean_negative_theta_hessian(
            &p,
            &acc,
            self.total_weight,
        ))
    }
}

/// Customers per rayon task; below twice this the evaluation stays serial.
const PARALLEL_CHUNK: usize = 32_768;

/// With many groups, a fit on every k-th group (counts × k) gives a start
/// close to the optimum.
fn subsample(input: &GammaGammaFitInput, scale: f64, k: usize) -> Objective {
    let groups: Vec<SpendGroup> = input
        .groups
        .iter()
        .step_by(k)
        .map(|g| SpendGroup {
            count: g.count * k as u64,
            ..*g
        })
        .collect();
    let customers = groups.iter().map(|g| g.count).sum();
    Objective::new(&GammaGammaFitInput { groups, customers }, scale)
}

/// Maximum-likelihood fit of the Gamma-Gamma model. Spend is rescaled by
/// the customers' mean m during the fit (γ scales with the currency), from
/// p = q = γ' = 1 as the reference implementation starts.
pub fn fit_gamma_gamma(
    input: &GammaGammaFitInput,
    options: &FitOptions,
) -> Result<GammaGammaFit, ModelError> {
    let started = Instant::now();
    if input.customers == 0 {
        return Err(ModelError::NoSpendData);
    }
    let theta = LogParameters {
        model: ModelKind::GammaGamma,
        names: ["p", "q", "gamma"],
        scaled: &[2],
        scale: input
            .groups
            .iter()
            .map(|g| g.count as f64 * g.m)
            .sum::<f64>()
            / input.customers as f64,
    };
    theta.check_customers(input.customers, options)?;
    let scale = theta.scale;
    let objective = Objective::new(input, scale);
    let optimum = theta.minimize(&objective, input.groups.len(), options, |k| {
        subsample(input, scale, k)
    });
    let values = theta.values(&optimum, options)?;
    let [p, q, gamma] = values;
    let params = GammaGammaParams::new(p, q, gamma)?;
    // LL in currency units from the rescaled objective: m = s·m', γ = s·γ'
    // shift each customer's LL by −ln s.
    let log_likelihood =
        -(objective.evaluate(&optimum.theta).0 + scale.ln()) * objective.total_weight;
    let standard_errors = theta
        .standard_errors(&optimum, objective.weight(), &values, options)
        .map(|[p, q, gamma]| GammaGammaStandardErrors { p, q, gamma });
    let log_parameter_covariance = theta.covariance(&optimum, objective.weight(), options);
    let sizes = (input.customers, input.groups.len());
    let report = theta.report(&optimum, log_likelihood, sizes, started)?;
    Ok(GammaGammaFit {
        params,
        standard_errors,
        log_parameter_covariance,
        frequency_spend_correlation: input.frequency_spend_correlation(),
        report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analytic_hessian_matches_differences_and_mpmath() {
        use crate::fit::tests::{
            assert_hessian_matches_mpmath, fixture_theta, hessian_fixture, numbers,
        };
        let f = hessian_fixture();
        let rows = numbers(&f["gamma_gamma"]["spend"])
            .into_iter()
            .map(|r| (r[0], r[1], 1));
        let input = GammaGammaFitInput::from_groups(rows).unwrap();
        let scale = 35.0;
        let theta = fixture_theta(&f, "gamma_gamma", 2, scale);
        let objective = Objective::new(&input, scale);
        assert_hessian_matches_mpmath(&objective, (&f, "gamma_gamma"), &theta, &[0.5, 1.5, -0.2]);
    }

    #[test]
    fn analytic_gradient_matches_finite_differences() {
        let input = GammaGammaFitInput::from_groups([
            (1.0, 20.0, 3),
            (3.0, 35.5, 2),
            (10.0, 12.0, 1),
            (1.0, 80.0, 4),
        ])
        .unwrap();
        let objective = Objective::new(&input, 30.0);
        let theta = [0.7, 0.3, -0.2];
        crate::fit::tests::assert_gradient_matches_central_differences(&objective, &theta);
    }

    #[test]
    fn expected_spend_needs_q_above_one() {
        let params = GammaGammaParams::new(2.0, 0.8, 10.0).unwrap();
        let err = params.expected_spend_at(2.0, 30.0).unwrap_err();
        assert!(err.to_string().contains("q > 1"), "{err}");
    }

    #[test]
    fn expected_spend_of_a_new_customer_is_the_population_mean() {
        let params = GammaGammaParams::new(6.25, 3.74, 15.44).unwrap();
        let mean = 6.25 * 15.44 / 2.74;
        assert!((params.expected_spend_at(0.0, 123.0).unwrap() - mean).abs() < 1e-12);
    }

    #[test]
    fn refunded_repeat_buyers_get_a_spend_between_zero_and_the_mean() {
        let params = GammaGammaParams::new(6.25, 3.74, 15.44).unwrap();
        let refunded = params.expected_spend_at(3.0, -40.0).unwrap();
        assert!(refunded > 0.0 && refunded < params.expected_spend_at(0.0, 0.0).unwrap());
        assert_eq!(refunded, params.expected_spend_at(3.0, 0.0).unwrap());
    }

    #[test]
    fn correlation_is_reported_over_customers() {
        let input =
            GammaGammaFitInput::from_groups([(1.0, 10.0, 1), (2.0, 20.0, 1), (3.0, 30.0, 1)])
                .unwrap();
        assert!((input.frequency_spend_correlation() - 1.0).abs() < 1e-12);
    }
}
