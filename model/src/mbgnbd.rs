//! The MBG/NBD purchase and dropout model: parameters, likelihood with its
//! analytic gradient, fit and the per-customer predictions.
//!
//! Batislam, Denizel & Filiztekin (2007), "Empirical validation and
//! comparison of models for customer base analysis", International Journal
//! of Research in Marketing 24(3), 201-209 (BDF below), Appendix A, with
//! the conditional expectation as corrected by Wagner & Hoppe (2008),
//! "Erratum on the MBG/NBD Model", IJRM 25(3), 225-226; the formulas are
//! written out in docs/model.md ("MBG/NBD", M1-M5). It is BG/NBD with one change: a customer may also drop out
//! right after the first purchase (time 0), so p's posterior after x repeat
//! purchases is Beta(a, b+x+1) instead of Beta(a, b+x), and a one-time
//! buyer who has been absent for long is no longer certain to be alive.
//! Time is in days; r, a, b are unitless and α is in days.

use crate::bgnbd::{BgNbdFitInput, BgNbdParams, BgNbdStandardErrors};
use crate::error::{ModelError, ModelKind};
use crate::fit::{FitOptions, FitReport};
use crate::hessian;
use crate::params::four_parameters;
use crate::purchase_fit::{fit_family, FamilyLikelihood, SecondDerivatives};
use crate::special::{digamma, ln_gamma, log_sum_exp};
use crate::summary::CustomerSummary;

four_parameters! {
    /// Fitted or given MBG/NBD parameters: λ ~ Gamma(r, α) purchases per day
    /// while alive; dropout probability p ~ Beta(a, b) at time 0 and after each
    /// repeat purchase.
    pub struct MbgNbdParams(ModelKind::MbgNbd) {
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

/// Standard errors of the MBG/NBD parameters (same fields as BG/NBD's).
pub type MbgNbdStandardErrors = BgNbdStandardErrors;

impl MbgNbdParams {
    /// Log-likelihood of one customer (BDF Appendix A; docs/model.md M1).
    pub fn customer_log_likelihood(&self, x: f64, t_x: f64, t: f64) -> f64 {
        let p = [self.r, self.alpha, self.a, self.b];
        MbgNbdLikelihood.per_x(&p, x).0 + MbgNbdLikelihood.per_row(&p, x, t_x, t).0
    }

    /// Total log-likelihood of grouped customers (sum of count × customer LL).
    pub fn log_likelihood(&self, input: &BgNbdFitInput) -> f64 {
        input
            .groups()
            .iter()
            .map(|g| g.count as f64 * self.customer_log_likelihood(g.x, g.t_x, g.t))
            .sum()
    }

    /// P(alive | x, t_x, T) (BDF Appendix A eq. 5; docs/model.md M2), for every x:
    /// 1/(1 + a/(b+x)·((α+T)/(α+t_x))^(r+x)).
    pub fn probability_alive(&self, customer: &CustomerSummary) -> f64 {
        self.probability_alive_at(customer.x(), customer.t_x(), customer.t())
    }

    pub(crate) fn probability_alive_at(&self, x: f64, t_x: f64, t: f64) -> f64 {
        let u =
            (self.a / (self.b + x)).ln() + (self.r + x) * ((t - t_x) / (self.alpha + t_x)).ln_1p();
        if u > 0.0 {
            let e = (-u).exp();
            e / (1.0 + e)
        } else {
            1.0 / (1.0 + u.exp())
        }
    }

    /// P(no purchase in (T, T+window] | x, t_x, T) = L(x, t_x, T+window) /
    /// L(x, t_x, T) (docs/model.md M4): the likelihood of the history
    /// extended by a window without purchases, over that of the history.
    pub fn probability_no_purchase(&self, customer: &CustomerSummary, window_days: f64) -> f64 {
        MbgNbdLikelihood.probability_no_purchase(&self.array(), customer, window_days)
    }

    /// E[Y(t) | x, t_x, T], expected repeat purchases in (T, T+t] (BDF
    /// Appendix A with Wagner & Hoppe's correction; docs/model.md M3): [`Self::expected_purchases_if_alive`] × P(alive).
    pub fn expected_purchases(&self, customer: &CustomerSummary, horizon_days: f64) -> f64 {
        let (x, t_x, t) = (customer.x(), customer.t_x(), customer.t());
        if horizon_days <= 0.0 {
            return 0.0;
        }
        self.expected_purchases_if_alive(x, t, horizon_days) * self.probability_alive_at(x, t_x, t)
    }

    /// E[Y(t) | alive at T, x, T] = (a+b+x)/(a−1)·[1 − ((α+T)/(α+T+t))^(r+x)
    /// ·₂F₁(r+x, b+x+1; a+b+x; t/(α+T+t))]: BG/NBD's bracket (FHL eq. 10)
    /// with b+1 in place of b, evaluated by the same cancellation-free
    /// series (so a = 1, a < 1 and large x need no special cases).
    pub fn expected_purchases_if_alive(&self, x: f64, t: f64, horizon_days: f64) -> f64 {
        if horizon_days <= 0.0 {
            return 0.0;
        }
        self.shifted_bgnbd().purchase_bracket(x, t, horizon_days)
    }

    /// E[X(t)] for a new customer, repeat purchases in (0, t] after the
    /// first (BDF Appendix A; docs/model.md M5): b/(a−1)·[1 − (α/(α+t))^r ₂F₁(r, b+1; a+b; t/(α+t))],
    /// i.e. P(no dropout at 0) = b/(a+b) times the bracket at x = 0, T = 0.
    pub fn expected_purchases_new_customer(&self, horizon_days: f64) -> f64 {
        if horizon_days <= 0.0 {
            return 0.0;
        }
        self.b / (self.a + self.b) * self.expected_purchases_if_alive(0.0, 0.0, horizon_days)
    }

    /// [`Self::expected_purchases_if_alive`] at each of `horizons` (all
    /// > 0), summed together ([`BgNbdParams::purchase_brackets`]).
    pub(crate) fn purchase_brackets_if_alive(&self, x: f64, t: f64, horizons: &[f64]) -> Vec<f64> {
        self.shifted_bgnbd().purchase_brackets(x, t, horizons)
    }

    /// BG/NBD with b+1: its bracket is this model's bracket.
    fn shifted_bgnbd(&self) -> BgNbdParams {
        BgNbdParams::new(self.r, self.alpha, self.a, self.b + 1.0)
            .expect("positive parameters stay positive")
    }
}

/// ln L (docs/model.md M1) split for the grouped objective, p = (r, α, a, b).
pub(crate) struct MbgNbdLikelihood;

impl FamilyLikelihood for MbgNbdLikelihood {
    /// docs/model.md H2 with b+1 (the coin at time 0).
    fn second_derivatives(&self) -> Option<SecondDerivatives> {
        Some(SecondDerivatives {
            per_x: |p, x| hessian::bg_x_part(p, x, 1.0),
            per_row: |p, history| hessian::bg_row_part(p, history, 1.0),
        })
    }

    /// A1 + A2 = ln Γ(r+x) − ln Γ(r) + r ln α + ln Γ(a+b) + ln Γ(b+x+1)
    /// − ln Γ(b) − ln Γ(a+b+x+1).
    fn per_x(&self, p: &[f64; 4], x: f64) -> (f64, [f64; 4]) {
        let [r, alpha, a, b] = *p;
        let value = ln_gamma(r + x) - ln_gamma(r)
            + r * alpha.ln()
            + ln_gamma(a + b)
            + ln_gamma(b + x + 1.0)
            - ln_gamma(b)
            - ln_gamma(a + b + x + 1.0);
        let (dg_ab, dg_abx) = (digamma(a + b), digamma(a + b + x + 1.0));
        (
            value,
            [
                digamma(r + x) - digamma(r) + alpha.ln(),
                r / alpha,
                dg_ab - dg_abx,
                dg_ab + digamma(b + x + 1.0) - digamma(b) - dg_abx,
            ],
        )
    }

    /// ln(e^A3 + e^A4), A3 = −(r+x) ln(α+T), A4 = ln a − ln(b+x) − (r+x) ln(α+t_x).
    fn per_row(&self, p: &[f64; 4], x: f64, t_x: f64, t: f64) -> (f64, [f64; 4]) {
        let [r, alpha, a, b] = *p;
        let rx = r + x;
        let (lt, ltx) = ((alpha + t).ln(), (alpha + t_x).ln());
        let a3 = -rx * lt;
        let a4 = a.ln() - (b + x).ln() - rx * ltx;
        let value = log_sum_exp(a3, a4);
        let w4 = (a4 - value).exp();
        let w3 = (a3 - value).exp();
        (
            value,
            [
                -(w3 * lt + w4 * ltx),
                -rx * (w3 / (alpha + t) + w4 / (alpha + t_x)),
                w4 / a,
                -w4 / (b + x),
            ],
        )
    }
}

/// A fitted MBG/NBD model with its report.
#[derive(Debug, Clone, PartialEq)]
pub struct MbgNbdFit {
    /// Maximum-likelihood parameters (α in days).
    pub params: MbgNbdParams,
    /// Standard errors, when requested and the Hessian is positive definite.
    pub standard_errors: Option<MbgNbdStandardErrors>,
    /// Covariance of the log-parameters ln(params) in the order of the
    /// parameters (time and money scales in the input's units): the
    /// inverse Hessian of the total negative log-likelihood, when standard
    /// errors are.
    pub log_parameter_covariance: Option<[[f64; 4]; 4]>,
    /// Log-likelihood, iterations, convergence, sizes, duration.
    pub report: FitReport,
}

/// Maximum-likelihood fit of the MBG/NBD model on grouped summaries (the
/// same input as BG/NBD), with the analytic gradient of docs/model.md M1.
pub fn fit_mbgnbd(input: &BgNbdFitInput, options: &FitOptions) -> Result<MbgNbdFit, ModelError> {
    let fit = fit_family(
        &MbgNbdLikelihood,
        ModelKind::MbgNbd,
        ["r", "alpha", "a", "b"],
        &[1],
        input,
        options,
    )?;
    let [r, alpha, a, b] = fit.values;
    Ok(MbgNbdFit {
        params: MbgNbdParams::new(r, alpha, a, b)?,
        standard_errors: fit
            .standard_errors
            .map(|[r, alpha, a, b]| MbgNbdStandardErrors { r, alpha, a, b }),
        log_parameter_covariance: fit.log_parameter_covariance,
        report: fit.report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::MeanNegLogLikelihood;
    use crate::purchase_fit::tests::objective;

    fn params() -> MbgNbdParams {
        MbgNbdParams::from_weeks(0.525, 6.183, 0.891, 1.614).unwrap()
    }

    #[test]
    fn analytic_hessian_matches_differences_and_mpmath() {
        use crate::fit::tests::{
            assert_hessian_matches_mpmath, fixture_groups, fixture_theta, hessian_fixture,
        };
        let f = hessian_fixture();
        let scale = 39.0;
        let theta = fixture_theta(&f, "mbgnbd", 1, scale);
        let objective = objective(&MbgNbdLikelihood, &fixture_groups(&f), scale);
        assert_hessian_matches_mpmath(&objective, (&f, "mbgnbd"), &theta, &[0.4, -1.0, -0.6, 1.2]);
    }

    #[test]
    fn analytic_gradient_matches_finite_differences() {
        let rows = [
            (0.0, 0.0, 30.0, 5),
            (2.0, 10.0, 30.0, 3),
            (1.0, 30.0, 30.0, 2),
            (7.0, 3.5, 12.0, 1),
        ];
        let objective = objective(&MbgNbdLikelihood, &rows, 30.0);
        crate::fit::tests::assert_gradient_matches_central_differences(
            &objective,
            &[-0.3, 0.2, 0.4, -0.1],
        );
    }

    #[test]
    fn likelihood_of_a_one_time_buyer_is_dropout_at_zero_or_silence() {
        // x = 0: L = a/(a+b) + b/(a+b)·(α/(α+T))^r.
        let p = params();
        let t = 200.0;
        let expected = p.a / (p.a + p.b) + p.b / (p.a + p.b) * (p.alpha / (p.alpha + t)).powf(p.r);
        let ours = p.customer_log_likelihood(0.0, 0.0, t).exp();
        assert!(((ours - expected) / expected).abs() < 1e-13);
    }

    #[test]
    fn one_time_buyers_long_absent_are_not_certainly_alive() {
        let p = params();
        let recent = p.probability_alive(&CustomerSummary::new(0.0, 0.0, 10.0, 0.0).unwrap());
        let old = p.probability_alive(&CustomerSummary::new(0.0, 0.0, 600.0, 0.0).unwrap());
        assert!(old < recent && recent < 1.0, "{old} {recent}");
    }

    #[test]
    fn no_purchase_probability_at_a_zero_window_is_one_and_falls_with_it() {
        let p = params();
        let c = CustomerSummary::new(3.0, 100.0, 200.0, 0.0).unwrap();
        assert_eq!(p.probability_no_purchase(&c, 0.0), 1.0);
        let (short, long) = (
            p.probability_no_purchase(&c, 30.0),
            p.probability_no_purchase(&c, 300.0),
        );
        assert!(1.0 > short && short > long && long > 0.0);
    }

    #[test]
    fn new_customer_expectation_is_the_rate_at_first() {
        // For small t, E[X(t)] ≈ b/(a+b)·r/α·t.
        let p = params();
        let h = 1e-4;
        let expected = p.b / (p.a + p.b) * p.r / p.alpha * h;
        let ours = p.expected_purchases_new_customer(h);
        assert!(((ours - expected) / expected).abs() < 1e-3);
    }

    #[test]
    fn objective_equals_the_per_customer_likelihood() {
        let rows = [(0.0, 0.0, 30.0, 5), (2.0, 10.0, 30.0, 3)];
        let p = params();
        let scale = 30.0;
        let objective = objective(&MbgNbdLikelihood, &rows, scale);
        let theta = [p.r.ln(), (p.alpha / scale).ln(), p.a.ln(), p.b.ln()];
        let input = BgNbdFitInput::from_groups(rows).unwrap();
        let shift = 3.0 * 2.0 * scale.ln();
        let expected = -(p.log_likelihood(&input) + shift) / 8.0;
        assert!((objective.evaluate(&theta).0 - expected).abs() < 1e-12);
    }
}
