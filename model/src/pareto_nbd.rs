//! The Pareto/NBD purchase and dropout model: parameters, likelihood with
//! its analytic gradient, fit and the per-customer predictions.
//!
//! Schmittlein, Morrison & Colombo (1987), "Counting Your Customers: Who
//! Are They and What Will They Do Next?", Management Science 33(1), 1-24,
//! and Fader & Hardie (2005), "A Note on Deriving the Pareto/NBD Model and
//! Related Expressions" (FH05 below); the formulas, with their equation
//! numbers, are written out in docs/model.md ("Pareto/NBD"). While alive a
//! customer buys at rate λ ~ Gamma(r, α); the lifetime is exponential with
//! rate μ ~ Gamma(s, β). Time is in days (α and β in days).
//!
//! # The hard part, and how it is avoided
//! FH05 eqs. 19-20 (A₀) write the likelihood's "died in (t_x, T]" term as the
//! difference of two Gauss hypergeometric functions, one at t_x and one at
//! T, with the branch α ≥ β or α < β. In floating point the difference
//! cancels when t_x is close to T, the powers (α+t)^(r+s+x) overflow for
//! many purchases, and the two branches must agree at α = β. Here the same
//! term is the integral it came from,
//!
//! ```text
//! I = ∫_{t_x}^{T} (A+τ)^(−p) (B+τ)^(−q) dτ,   A = max(α, β), B = min(α, β),
//! ```
//!
//! (p, q) = (r+x, s+1) when α ≥ β and (s+1, r+x) otherwise, expanded as
//! I = (A+t_x)^(−K)·Σₙ (q)ₙ/n!·zⁿ·(1 − e^((K+n)L))/(K+n) with K = p+q−1,
//! z = (A−B)/(A+t_x) ∈ [0, 1) and L = ln((A+t_x)/(A+T)) ≤ 0 (docs/model.md
//! P3). Every term is positive, the difference of the two endpoints is
//! `expm1` of one number (no cancellation), the power is kept as a
//! logarithm, and at α = β the series is its first term. The derivatives of
//! ln I in p, q, A, B come from the same loop (P5), so the gradient is
//! analytic too. Checked against mpmath at 50 digits (tests/families.rs).

use crate::bgnbd::BgNbdFitInput;
use crate::error::{ModelError, ModelKind};
use crate::fit::{FitOptions, FitReport};
use crate::params::four_parameters;
use crate::prec::{
    MAX_SERIES_TERMS, PARETO_FIT_MAX_TERMS, SERIES_RESCALE_ABOVE as RESCALE_ABOVE,
    SERIES_TAIL_TOLERANCE as TAIL_TOLERANCE,
};
use crate::purchase_fit::{fit_family, FamilyLikelihood};
use crate::special::{digamma, ln_gamma, log_sum_exp};
use crate::summary::CustomerSummary;

four_parameters! {
    /// Fitted or given Pareto/NBD parameters: λ ~ Gamma(r, α) purchases per day
    /// while alive, lifetime ~ Exponential(μ) with μ ~ Gamma(s, β).
    pub struct ParetoNbdParams(ModelKind::ParetoNbd) {
        /// Shape r of the purchase-rate distribution.
        r,
        /// Scale α of the purchase-rate distribution, in days.
        alpha in weeks alpha_weeks,
        /// Shape s of the dropout-rate distribution.
        s,
        /// Scale β of the dropout-rate distribution, in days.
        beta in weeks beta_weeks,
    }
}

/// Standard errors of the Pareto/NBD parameters (delta method from the
/// log-parameters; α and β in days).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParetoNbdStandardErrors {
    /// se(r).
    pub r: f64,
    /// se(α), days.
    pub alpha: f64,
    /// se(s).
    pub s: f64,
    /// se(β), days.
    pub beta: f64,
}

impl ParetoNbdParams {
    /// Log-likelihood of one customer (FH05 eq. 18 with the tail term as
    /// the integral of the module docs; docs/model.md P1-P3).
    pub fn customer_log_likelihood(&self, x: f64, t_x: f64, t: f64) -> f64 {
        let p = self.array();
        EXACT.per_x(&p, x).0 + EXACT.per_row(&p, x, t_x, t).0
    }

    /// Total log-likelihood of grouped customers (sum of count × customer LL).
    pub fn log_likelihood(&self, input: &BgNbdFitInput) -> f64 {
        input
            .groups()
            .iter()
            .map(|g| g.count as f64 * self.customer_log_likelihood(g.x, g.t_x, g.t))
            .sum()
    }

    /// P(alive | x, t_x, T) (FH05 eqs. 36-37; docs/model.md P4): the "alive at
    /// T" share of the likelihood.
    pub fn probability_alive(&self, customer: &CustomerSummary) -> f64 {
        self.probability_alive_at(customer.x(), customer.t_x(), customer.t())
    }

    pub(crate) fn probability_alive_at(&self, x: f64, t_x: f64, t: f64) -> f64 {
        let u = self.dead_odds_log(x, t_x, t);
        if u > 0.0 {
            let e = (-u).exp();
            e / (1.0 + e)
        } else {
            1.0 / (1.0 + u.exp())
        }
    }

    /// ln P(alive | x, t_x, T), finite where P(alive) underflows (hundreds
    /// of purchases long ago).
    pub fn ln_probability_alive(&self, customer: &CustomerSummary) -> f64 {
        let u = self.dead_odds_log(customer.x(), customer.t_x(), customer.t());
        // −ln(1 + eᵘ)
        if u > 0.0 {
            -u - (-u).exp().ln_1p()
        } else {
            -u.exp().ln_1p()
        }
    }

    /// u = ln(s·I/E): ln of the odds "died in (t_x, T]" to "alive at T"
    /// (−∞ when t_x = T).
    fn dead_odds_log(&self, x: f64, t_x: f64, t: f64) -> f64 {
        let (r, alpha, s, beta) = (self.r, self.alpha, self.s, self.beta);
        let ln_alive = -(r + x) * (alpha + t).ln() - s * (beta + t).ln();
        match tail(&self.array(), x, t_x, t, MAX_SERIES_TERMS) {
            None => f64::NEG_INFINITY,
            Some((ln_i, _)) => s.ln() + ln_i - ln_alive,
        }
    }

    /// P(no purchase in (T, T+window] | x, t_x, T) = L(x, t_x, T+window) /
    /// L(x, t_x, T) (docs/model.md P7).
    pub fn probability_no_purchase(&self, customer: &CustomerSummary, window_days: f64) -> f64 {
        EXACT.probability_no_purchase(&self.array(), customer, window_days)
    }

    /// E[Y(t) | x, t_x, T], expected purchases in (T, T+t] (FH05 eq. 41;
    /// docs/model.md P6): [`Self::expected_purchases_if_alive`] × P(alive).
    pub fn expected_purchases(&self, customer: &CustomerSummary, horizon_days: f64) -> f64 {
        let (x, t_x, t) = (customer.x(), customer.t_x(), customer.t());
        if horizon_days <= 0.0 {
            return 0.0;
        }
        self.expected_purchases_if_alive(x, t, horizon_days) * self.probability_alive_at(x, t_x, t)
    }

    /// E[Y(t) | alive at T, x, T] = (r+x)/(α+T)·(β+T)/(s−1)·[1 − ((β+T)/(β+T+t))^(s−1)],
    /// computed as (r+x)/(α+T)·(β+T)·ℓ·φ(−(s−1)ℓ) with ℓ = ln(1 + t/(β+T))
    /// and φ(u) = (eᵘ−1)/u, so s = 1 (where it is (β+T)·ℓ) needs no case.
    pub fn expected_purchases_if_alive(&self, x: f64, t: f64, horizon_days: f64) -> f64 {
        if horizon_days <= 0.0 {
            return 0.0;
        }
        (self.r + x) / (self.alpha + t) * self.mean_lifetime_within(t, horizon_days)
    }

    /// E[X(t)] for a new customer, purchases in (0, t] after the first
    /// (FH05 eq. 27): r/α · β/(s−1)·[1 − (β/(β+t))^(s−1)].
    pub fn expected_purchases_new_customer(&self, horizon_days: f64) -> f64 {
        if horizon_days <= 0.0 {
            return 0.0;
        }
        self.r / self.alpha * self.mean_lifetime_within(0.0, horizon_days)
    }

    /// E[min(lifetime left, t)] for a customer alive at T: (β+T)·ℓ·φ(−(s−1)ℓ).
    fn mean_lifetime_within(&self, t: f64, horizon: f64) -> f64 {
        let ell = (horizon / (self.beta + t)).ln_1p();
        let u = -(self.s - 1.0) * ell;
        let phi = if u == 0.0 { 1.0 } else { u.exp_m1() / u };
        (self.beta + t) * ell * phi
    }
}

/// ln I and its derivatives in (p, q, A, B) (see the module docs).
#[derive(Debug, Clone, Copy)]
struct TailIntegral {
    ln_value: f64,
    d_p: f64,
    d_q: f64,
    d_big: f64,
    d_small: f64,
}

/// e^(−y)·(eʸ − 1 − y) = 1 − e^(−y)(1+y) for y ≥ 0, given `exp_neg_y` =
/// e^(−y): without cancellation at small y (series) and without overflow at
/// large y.
fn exp_m1_minus_x_scaled(y: f64, exp_neg_y: f64) -> f64 {
    if y > 0.5 {
        return 1.0 - exp_neg_y * (1.0 + y);
    }
    let (mut term, mut sum) = (y * y / 2.0, 0.0);
    let mut j = 2.0;
    while term > 1e-18 * sum || sum == 0.0 {
        sum += term;
        j += 1.0;
        term *= y / j;
        if term == 0.0 {
            break;
        }
    }
    exp_neg_y * sum
}

/// ρ = e^(kL) is carried from term to term by one multiplication; every
/// this many terms it is recomputed, so its rounding stays below ~1e-14.
const RHO_REFRESH: u64 = 64;

/// I = ∫_{t_x}^{T} (A+τ)^(−p)(B+τ)^(−q) dτ for A ≥ B > 0 by the series of
/// the module docs, with d ln I/d(p, q, A, B). `None` when t_x = T (I = 0).
/// With `max_terms` = [`MAX_SERIES_TERMS`], ln I is NaN if the series has
/// not converged by then; with fewer, the partial sum is used (the fit's
/// cap, [`PARETO_FIT_MAX_TERMS`]).
fn tail_integral(
    (p, big): (f64, f64),
    (q, small): (f64, f64),
    (t_x, t): (f64, f64),
    max_terms: u64,
) -> Option<TailIntegral> {
    let u1 = big + t_x;
    let ell = -((t - t_x) / u1).ln_1p(); // ln((A+t_x)/(A+T)) ≤ 0
    if ell >= 0.0 || ell.is_nan() {
        return None;
    }
    let z = (big - small) / u1;
    let k0 = p + q - 1.0;
    // Sums, all in units of e^log_scale: S0 = Σ cₙzⁿ e1(k)/k; SH the same
    // weighted by Hₙ = Σ_{j<n} 1/(q+j) (from d(q)ₙ/dq); SD = Σ cₙzⁿ d/dk
    // [e1(k)/k]-part; SP, SQ the series of I(p+1, q) and I(p, q+1).
    let (mut s0, mut sh, mut sd, mut sp, mut sq) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut term, mut harmonic, mut log_scale) = (1.0_f64, 0.0, 0.0);
    // e1(k) = 1 − ρ(k), ρ(k) = e^(kL): by expm1 while ρ ≥ 1/2 (1 − ρ would
    // cancel), else from ρ, which one multiplication by e^L carries on.
    let step = ell.exp();
    let mut rho_next = (k0 * ell).exp();
    let mut e1_next = -(k0 * ell).exp_m1();
    let mut converged = max_terms < MAX_SERIES_TERMS;
    for n in 0..max_terms {
        let nf = n as f64;
        let k = k0 + nf;
        let (e1, rho) = (e1_next, rho_next);
        rho_next = if (n + 1) % RHO_REFRESH == 0 {
            ((k + 1.0) * ell).exp()
        } else {
            rho * step
        };
        e1_next = if rho_next < 0.5 {
            1.0 - rho_next
        } else {
            -((k + 1.0) * ell).exp_m1()
        };
        // d/dk of (1 − e^(kL))/k, less its −ln(A+t_x) part: −e^(−y)(eʸ−1−y)/k², y = −kL.
        let y = -k * ell;
        let d = -exp_m1_minus_x_scaled(y, rho) / (k * k);
        let a = term * e1 / k;
        s0 += a;
        sh += harmonic * a;
        sd += term * d;
        let b = term * e1_next / (k + 1.0);
        sp += b;
        sq += b * (q + nf) / q;
        let ratio = (q + nf) / (nf + 1.0) * z;
        if ratio == 0.0 {
            converged = true;
            break;
        }
        harmonic += 1.0 / (q + nf);
        term *= ratio;
        if term > RESCALE_ABOVE {
            term /= RESCALE_ABOVE;
            s0 /= RESCALE_ABOVE;
            sh /= RESCALE_ABOVE;
            sd /= RESCALE_ABOVE;
            sp /= RESCALE_ABOVE;
            sq /= RESCALE_ABOVE;
            log_scale += RESCALE_ABOVE.ln();
        }
        // Later terms shrink at least geometrically with ρ once ρ < 1; the
        // bound covers the slowly growing Hₙ and (q+n)/q weights too.
        let rho = ratio.max(z);
        let weight = (1.0 + harmonic).max((q + nf + 1.0) / q);
        if rho < 1.0 && term * weight / ((k + 1.0) * (1.0 - rho)) <= TAIL_TOLERANCE * s0 {
            converged = true;
            break;
        }
    }
    let ln_u1 = u1.ln();
    let ln_value = if converged && s0 > 0.0 {
        -k0 * ln_u1 + s0.ln() + log_scale
    } else {
        f64::NAN
    };
    Some(TailIntegral {
        ln_value,
        d_p: -ln_u1 + sd / s0,
        d_q: -ln_u1 + (sh + sd) / s0,
        d_big: -p * sp / (u1 * s0),
        d_small: -q * sq / (u1 * s0),
    })
}

/// The tail integral in the model's parameters p = (r, α, s, β): ln I and
/// d ln I/d(r, α, s, β), on the branch A = max(α, β). `None` when t_x = T.
fn tail(p: &[f64; 4], x: f64, t_x: f64, t: f64, max_terms: u64) -> Option<(f64, [f64; 4])> {
    let [r, alpha, s, beta] = *p;
    if alpha >= beta {
        let i = tail_integral((r + x, alpha), (s + 1.0, beta), (t_x, t), max_terms)?;
        Some((i.ln_value, [i.d_p, i.d_big, i.d_q, i.d_small]))
    } else {
        let i = tail_integral((s + 1.0, beta), (r + x, alpha), (t_x, t), max_terms)?;
        Some((i.ln_value, [i.d_q, i.d_small, i.d_p, i.d_big]))
    }
}

/// ln L of FH05 eq. 18 split for the grouped objective, p = (r, α, s, β).
pub(crate) struct ParetoNbdLikelihood {
    /// Terms of the tail series per row (see [`PARETO_FIT_MAX_TERMS`]).
    max_terms: u64,
}

/// For predictions and the log-likelihood at given parameters: the series
/// to convergence.
const EXACT: ParetoNbdLikelihood = ParetoNbdLikelihood {
    max_terms: MAX_SERIES_TERMS,
};

impl FamilyLikelihood for ParetoNbdLikelihood {
    /// ln Γ(r+x) − ln Γ(r) + r ln α + s ln β.
    fn per_x(&self, p: &[f64; 4], x: f64) -> (f64, [f64; 4]) {
        let [r, alpha, s, beta] = *p;
        (
            ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln() + s * beta.ln(),
            [
                digamma(r + x) - digamma(r) + alpha.ln(),
                r / alpha,
                beta.ln(),
                s / beta,
            ],
        )
    }

    /// ln(E + s·I): E = (α+T)^−(r+x)·(β+T)^−s (alive at T), s·I (died in (t_x, T]).
    fn per_row(&self, p: &[f64; 4], x: f64, t_x: f64, t: f64) -> (f64, [f64; 4]) {
        let [r, alpha, s, beta] = *p;
        let (la, lb) = ((alpha + t).ln(), (beta + t).ln());
        let ln_e = -(r + x) * la - s * lb;
        let grad_e = [-la, -(r + x) / (alpha + t), -lb, -s / (beta + t)];
        let Some((ln_i, grad_i)) = tail(p, x, t_x, t, self.max_terms) else {
            return (ln_e, grad_e);
        };
        let ln_d = s.ln() + ln_i;
        let value = log_sum_exp(ln_e, ln_d);
        let (w_e, w_d) = ((ln_e - value).exp(), (ln_d - value).exp());
        let mut grad = [0.0; 4];
        for k in 0..4 {
            grad[k] = w_e * grad_e[k] + w_d * grad_i[k];
        }
        grad[2] += w_d / s;
        (value, grad)
    }
}

/// A fitted Pareto/NBD model with its report.
#[derive(Debug, Clone, PartialEq)]
pub struct ParetoNbdFit {
    /// Maximum-likelihood parameters (α and β in days).
    pub params: ParetoNbdParams,
    /// Standard errors, when requested and the Hessian is positive definite.
    pub standard_errors: Option<ParetoNbdStandardErrors>,
    /// Covariance of the log-parameters ln(params) in the order of the
    /// parameters (time and money scales in the input's units): the
    /// inverse Hessian of the total negative log-likelihood, when standard
    /// errors are.
    pub log_parameter_covariance: Option<[[f64; 4]; 4]>,
    /// Log-likelihood, iterations, convergence, sizes, duration.
    pub report: FitReport,
}

/// Maximum-likelihood fit of the Pareto/NBD model on grouped summaries
/// (the same input as BG/NBD), with the analytic gradient of FH05 eq. 18.
pub fn fit_pareto_nbd(
    input: &BgNbdFitInput,
    options: &FitOptions,
) -> Result<ParetoNbdFit, ModelError> {
    let fit = fit_family(
        &ParetoNbdLikelihood {
            max_terms: PARETO_FIT_MAX_TERMS,
        },
        ModelKind::ParetoNbd,
        ["r", "alpha", "s", "beta"],
        &[1, 3],
        input,
        options,
    )?;
    let [r, alpha, s, beta] = fit.values;
    let params = ParetoNbdParams::new(r, alpha, s, beta)?;
    // The fit capped the series; its optimum must not have needed the cap.
    let exact = params.log_likelihood(input);
    let capped = fit.report.log_likelihood;
    let agrees = (exact - capped).abs() <= 1e-10 * capped.abs().max(1.0);
    if !agrees {
        return Err(ModelError::NotConverged {
            model: ModelKind::ParetoNbd,
            iterations: fit.report.iterations,
            gradient_norm: fit.report.gradient_norm,
            reason: format!(
                "the optimum lies where the likelihood's series needs more than {PARETO_FIT_MAX_TERMS} terms (|alpha - beta| close to max(alpha, beta)); log-likelihood {exact} exact vs {capped} capped"
            ),
        });
    }
    Ok(ParetoNbdFit {
        params,
        standard_errors: fit
            .standard_errors
            .map(|[r, alpha, s, beta]| ParetoNbdStandardErrors { r, alpha, s, beta }),
        log_parameter_covariance: fit.log_parameter_covariance,
        report: fit.report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::MeanNegLogLikelihood;
    use crate::purchase_fit::tests::objective;

    fn params() -> ParetoNbdParams {
        ParetoNbdParams::from_weeks(0.553, 10.58, 0.606, 11.67).unwrap()
    }

    /// The tail integral by composite Simpson on 20,000 panels (a smooth
    /// integrand), for cross-checks only.
    fn simpson(p: f64, a: f64, q: f64, b: f64, t_x: f64, t: f64) -> f64 {
        let n = 20_000;
        let h = (t - t_x) / n as f64;
        let f = |tau: f64| (a + tau).powf(-p) * (b + tau).powf(-q);
        let mut sum = f(t_x) + f(t);
        for i in 1..n {
            sum += f(t_x + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
        }
        sum * h / 3.0
    }

    #[test]
    fn tail_integral_matches_quadrature() {
        for (p, a, q, b, t_x, t) in [
            (1.5, 2.0, 1.6, 1.0, 0.1, 1.0),
            (3.2, 0.5, 1.2, 0.5, 0.0, 0.9),
            (0.8, 5.0, 7.0, 0.01, 0.3, 0.31),
        ] {
            let ours = tail_integral((p, a), (q, b), (t_x, t), MAX_SERIES_TERMS)
                .unwrap()
                .ln_value;
            let quad = simpson(p, a, q, b, t_x, t).ln();
            assert!((ours - quad).abs() < 1e-10, "{ours} vs {quad}");
        }
    }

    #[test]
    fn analytic_gradient_matches_finite_differences_on_both_branches() {
        let rows = [
            (0.0, 0.0, 30.0, 5),
            (2.0, 10.0, 30.0, 3),
            (1.0, 30.0, 30.0, 2),
            (7.0, 3.5, 12.0, 1),
            (40.0, 29.0, 29.5, 1),
        ];
        let objective = objective(&EXACT, &rows, 30.0);
        // α > β, α < β, α = β.
        for theta in [
            [-0.3, 0.2, 0.4, -0.1],
            [-0.3, -0.5, 0.4, 0.6],
            [0.1, 0.3, -0.2, 0.3],
        ] {
            crate::fit::tests::assert_gradient_matches_central_differences(&objective, &theta);
        }
    }

    #[test]
    fn the_branches_agree_across_alpha_equals_beta() {
        let at = |alpha: f64| {
            ParetoNbdParams::new(0.7, alpha, 0.9, 50.0)
                .unwrap()
                .customer_log_likelihood(3.0, 100.0, 400.0)
        };
        // Across α = β the likelihood is smooth: the steps on either side
        // are the same to rounding (a branch mismatch would show as a jump).
        let (below, equal, above) = (at(50.0 - 1e-6), at(50.0), at(50.0 + 1e-6));
        let (left, right) = (equal - below, above - equal);
        assert!(
            (left - right).abs() < 1e-13 && left.abs() < 1e-6,
            "{below} {equal} {above}"
        );
    }

    #[test]
    fn one_time_buyers_long_absent_are_not_certainly_alive() {
        let p = params();
        let recent = p.probability_alive(&CustomerSummary::new(0.0, 0.0, 10.0, 0.0).unwrap());
        let old = p.probability_alive(&CustomerSummary::new(0.0, 0.0, 600.0, 0.0).unwrap());
        assert!(old < recent && recent < 1.0, "{old} {recent}");
    }

    #[test]
    fn a_purchase_today_means_alive() {
        let c = CustomerSummary::new(4.0, 300.0, 300.0, 0.0).unwrap();
        assert_eq!(params().probability_alive(&c), 1.0);
    }

    #[test]
    fn expected_purchases_are_continuous_through_s_equal_one() {
        let at = |s| {
            ParetoNbdParams::new(0.5, 20.0, s, 30.0)
                .unwrap()
                .expected_purchases_at_for_test(3.0, 40.0, 100.0, 365.0)
        };
        let (below, one, above) = (at(1.0 - 1e-9), at(1.0), at(1.0 + 1e-9));
        assert!(one.is_finite() && (below - one).abs() < 1e-7 && (above - one).abs() < 1e-7);
    }

    impl ParetoNbdParams {
        fn expected_purchases_at_for_test(&self, x: f64, t_x: f64, t: f64, h: f64) -> f64 {
            self.expected_purchases(&CustomerSummary::new(x, t_x, t, 0.0).unwrap(), h)
        }
    }

    #[test]
    fn objective_equals_the_per_customer_likelihood() {
        let rows = [(0.0, 0.0, 30.0, 5), (2.0, 10.0, 30.0, 3)];
        let p = params();
        let scale = 30.0;
        let objective = objective(&EXACT, &rows, scale);
        let theta = [
            p.r.ln(),
            (p.alpha / scale).ln(),
            p.s.ln(),
            (p.beta / scale).ln(),
        ];
        let input = BgNbdFitInput::from_groups(rows).unwrap();
        let shift = 3.0 * 2.0 * scale.ln();
        let expected = -(p.log_likelihood(&input) + shift) / 8.0;
        assert!((objective.evaluate(&theta).0 - expected).abs() < 1e-12);
    }

    #[test]
    fn no_purchase_probability_falls_with_the_window() {
        let p = params();
        let c = CustomerSummary::new(3.0, 100.0, 200.0, 0.0).unwrap();
        let (short, long) = (
            p.probability_no_purchase(&c, 30.0),
            p.probability_no_purchase(&c, 300.0),
        );
        assert!(1.0 > short && short > long && long > 0.0);
    }
}
