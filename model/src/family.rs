//! The purchase-model families side by side: [`PurchaseFamily`] names one
//! (BG/NBD, MBG/NBD, Pareto/NBD), [`PurchaseParams`] holds one family's
//! fitted parameters and dispatches every prediction to it, and
//! [`fit_family`] fits any of them on the same [`BgNbdFitInput`], returning
//! what a model comparison needs (log-likelihood, parameter count, report,
//! standard errors). The formulas live in each family's module; this one
//! only chooses between them.

use std::fmt;
use std::str::FromStr;

use crate::bgnbd::{fit_bgnbd, BgNbdFitInput, BgNbdParams};
use crate::error::ModelError;
use crate::fit::{FitOptions, FitReport};
use crate::mbgnbd::{fit_mbgnbd, MbgNbdParams};
use crate::pareto_nbd::{fit_pareto_nbd, ParetoNbdParams};
use crate::summary::CustomerSummary;

/// A purchase-and-dropout model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PurchaseFamily {
    /// BG/NBD (Fader, Hardie & Lee 2005).
    BgNbd,
    /// MBG/NBD (Batislam, Denizel & Filiztekin 2007).
    MbgNbd,
    /// Pareto/NBD (Schmittlein, Morrison & Colombo 1987).
    ParetoNbd,
}

impl PurchaseFamily {
    /// Every family, in a fixed order (BG/NBD, MBG/NBD, Pareto/NBD).
    pub const ALL: [PurchaseFamily; 3] = [
        PurchaseFamily::BgNbd,
        PurchaseFamily::MbgNbd,
        PurchaseFamily::ParetoNbd,
    ];

    /// The stable name: "bg_nbd", "mbg_nbd" or "pareto_nbd".
    pub fn name(self) -> &'static str {
        match self {
            PurchaseFamily::BgNbd => "bg_nbd",
            PurchaseFamily::MbgNbd => "mbg_nbd",
            PurchaseFamily::ParetoNbd => "pareto_nbd",
        }
    }

    /// The name as written in the papers: "BG/NBD", "MBG/NBD", "Pareto/NBD".
    pub fn paper_name(self) -> &'static str {
        match self {
            PurchaseFamily::BgNbd => "BG/NBD",
            PurchaseFamily::MbgNbd => "MBG/NBD",
            PurchaseFamily::ParetoNbd => "Pareto/NBD",
        }
    }

    /// Number of free parameters k (4 for every family today), as AIC and
    /// BIC count them.
    pub fn parameter_count(self) -> usize {
        4
    }
}

impl fmt::Display for PurchaseFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not one of [`PurchaseFamily::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown purchase model family {0:?}: expected one of bg_nbd, mbg_nbd, pareto_nbd")]
pub struct UnknownFamily(pub String);

impl FromStr for PurchaseFamily {
    type Err = UnknownFamily;

    /// Accepts the stable names ("bg_nbd", "mbg_nbd", "pareto_nbd"),
    /// case-insensitively, with '-' or '/' for '_' ("BG/NBD", "pareto-nbd").
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let normal: String = s
            .trim()
            .chars()
            .map(|c| match c {
                '-' | '/' => '_',
                c => c.to_ascii_lowercase(),
            })
            .collect();
        PurchaseFamily::ALL
            .into_iter()
            .find(|f| f.name() == normal)
            .ok_or_else(|| UnknownFamily(s.to_string()))
    }
}

/// One family's parameters (α and β in days).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PurchaseParams {
    /// BG/NBD r, α, a, b.
    BgNbd(BgNbdParams),
    /// MBG/NBD r, α, a, b.
    MbgNbd(MbgNbdParams),
    /// Pareto/NBD r, α, s, β.
    ParetoNbd(ParetoNbdParams),
}

impl From<BgNbdParams> for PurchaseParams {
    fn from(p: BgNbdParams) -> Self {
        PurchaseParams::BgNbd(p)
    }
}

impl From<MbgNbdParams> for PurchaseParams {
    fn from(p: MbgNbdParams) -> Self {
        PurchaseParams::MbgNbd(p)
    }
}

impl From<ParetoNbdParams> for PurchaseParams {
    fn from(p: ParetoNbdParams) -> Self {
        PurchaseParams::ParetoNbd(p)
    }
}

impl PurchaseParams {
    /// The family these parameters belong to.
    pub fn family(&self) -> PurchaseFamily {
        match self {
            PurchaseParams::BgNbd(_) => PurchaseFamily::BgNbd,
            PurchaseParams::MbgNbd(_) => PurchaseFamily::MbgNbd,
            PurchaseParams::ParetoNbd(_) => PurchaseFamily::ParetoNbd,
        }
    }

    /// Builds a family's parameters from its four values in the family's
    /// order (BG/NBD and MBG/NBD: r, α, a, b; Pareto/NBD: r, α, s, β; α and
    /// β in days), validated.
    pub fn from_values(family: PurchaseFamily, values: [f64; 4]) -> Result<Self, ModelError> {
        let [p0, p1, p2, p3] = values;
        Ok(match family {
            PurchaseFamily::BgNbd => BgNbdParams::new(p0, p1, p2, p3)?.into(),
            PurchaseFamily::MbgNbd => MbgNbdParams::new(p0, p1, p2, p3)?.into(),
            PurchaseFamily::ParetoNbd => ParetoNbdParams::new(p0, p1, p2, p3)?.into(),
        })
    }

    /// The four values in the family's order (see [`Self::from_values`]).
    pub fn values(&self) -> [f64; 4] {
        match self {
            PurchaseParams::BgNbd(p) => [p.r(), p.alpha(), p.a(), p.b()],
            PurchaseParams::MbgNbd(p) => [p.r(), p.alpha(), p.a(), p.b()],
            PurchaseParams::ParetoNbd(p) => [p.r(), p.alpha(), p.s(), p.beta()],
        }
    }

    /// Number of free parameters (see [`PurchaseFamily::parameter_count`]).
    pub fn parameter_count(&self) -> usize {
        self.family().parameter_count()
    }

    /// P(alive | x, t_x, T).
    pub fn probability_alive(&self, customer: &CustomerSummary) -> f64 {
        match self {
            PurchaseParams::BgNbd(p) => p.probability_alive(customer),
            PurchaseParams::MbgNbd(p) => p.probability_alive(customer),
            PurchaseParams::ParetoNbd(p) => p.probability_alive(customer),
        }
    }

    pub(crate) fn probability_alive_at(&self, x: f64, t_x: f64, t: f64) -> f64 {
        match self {
            PurchaseParams::BgNbd(p) => p.probability_alive_at(x, t_x, t),
            PurchaseParams::MbgNbd(p) => p.probability_alive_at(x, t_x, t),
            PurchaseParams::ParetoNbd(p) => p.probability_alive_at(x, t_x, t),
        }
    }

    /// P(no purchase in (T, T+window] | x, t_x, T).
    pub fn probability_no_purchase(&self, customer: &CustomerSummary, window_days: f64) -> f64 {
        match self {
            PurchaseParams::BgNbd(p) => p.probability_no_purchase(customer, window_days),
            PurchaseParams::MbgNbd(p) => p.probability_no_purchase(customer, window_days),
            PurchaseParams::ParetoNbd(p) => p.probability_no_purchase(customer, window_days),
        }
    }

    /// E[Y(t) | x, t_x, T], expected repeat purchases in (T, T+t].
    pub fn expected_purchases(&self, customer: &CustomerSummary, horizon_days: f64) -> f64 {
        match self {
            PurchaseParams::BgNbd(p) => p.expected_purchases(customer, horizon_days),
            PurchaseParams::MbgNbd(p) => p.expected_purchases(customer, horizon_days),
            PurchaseParams::ParetoNbd(p) => p.expected_purchases(customer, horizon_days),
        }
    }

    /// E[Y(t) | alive at T, x, T]: expected purchases in (T, T+t] given
    /// the customer is alive at T (depends on x and T only);
    /// [`Self::expected_purchases`] is it times P(alive).
    pub fn expected_purchases_if_alive(&self, x: f64, t: f64, horizon_days: f64) -> f64 {
        match self {
            PurchaseParams::BgNbd(p) => {
                if horizon_days <= 0.0 {
                    0.0
                } else {
                    p.purchase_bracket(x, t, horizon_days)
                }
            }
            PurchaseParams::MbgNbd(p) => p.expected_purchases_if_alive(x, t, horizon_days),
            PurchaseParams::ParetoNbd(p) => p.expected_purchases_if_alive(x, t, horizon_days),
        }
    }

    /// The bracket the value formula discounts: exactly BG/NBD's
    /// `purchase_bracket` (no horizon check, so BG/NBD scores stay
    /// bit-identical) and the other families' E[Y(t) | alive].
    pub(crate) fn purchase_bracket(&self, x: f64, t: f64, horizon_days: f64) -> f64 {
        match self {
            PurchaseParams::BgNbd(p) => p.purchase_bracket(x, t, horizon_days),
            other => other.expected_purchases_if_alive(x, t, horizon_days),
        }
    }

    /// [`Self::purchase_bracket`] at each of `horizons` (all > 0), the
    /// BG/NBD and MBG/NBD series summed together
    /// ([`BgNbdParams::purchase_brackets`]); the same values.
    pub(crate) fn purchase_brackets(&self, x: f64, t: f64, horizons: &[f64]) -> Vec<f64> {
        match self {
            PurchaseParams::BgNbd(p) => p.purchase_brackets(x, t, horizons),
            PurchaseParams::MbgNbd(p) => p.purchase_brackets_if_alive(x, t, horizons),
            PurchaseParams::ParetoNbd(_) => horizons
                .iter()
                .map(|&h| self.purchase_bracket(x, t, h))
                .collect(),
        }
    }

    /// E[X(t)] for a new customer: repeat purchases in (0, t] after the first.
    pub fn expected_purchases_new_customer(&self, horizon_days: f64) -> f64 {
        match self {
            PurchaseParams::BgNbd(p) => p.expected_purchases_new_customer(horizon_days),
            PurchaseParams::MbgNbd(p) => p.expected_purchases_new_customer(horizon_days),
            PurchaseParams::ParetoNbd(p) => p.expected_purchases_new_customer(horizon_days),
        }
    }

    /// Log-likelihood of one customer (x, t_x, T in days).
    pub fn customer_log_likelihood(&self, x: f64, t_x: f64, t: f64) -> f64 {
        match self {
            PurchaseParams::BgNbd(p) => p.customer_log_likelihood(x, t_x, t),
            PurchaseParams::MbgNbd(p) => p.customer_log_likelihood(x, t_x, t),
            PurchaseParams::ParetoNbd(p) => p.customer_log_likelihood(x, t_x, t),
        }
    }

    /// Total log-likelihood of grouped customers.
    pub fn log_likelihood(&self, input: &BgNbdFitInput) -> f64 {
        match self {
            PurchaseParams::BgNbd(p) => p.log_likelihood(input),
            PurchaseParams::MbgNbd(p) => p.log_likelihood(input),
            PurchaseParams::ParetoNbd(p) => p.log_likelihood(input),
        }
    }
}

/// One family's maximum-likelihood fit, in family-neutral form.
#[derive(Debug, Clone, PartialEq)]
pub struct PurchaseFamilyFit {
    /// The fitted parameters (their variant names the family).
    pub params: PurchaseParams,
    /// Standard errors in the family's parameter order (see
    /// [`PurchaseParams::values`]), α and β in days; `None` when not asked
    /// for or the Hessian is not positive definite.
    pub standard_errors: Option<[f64; 4]>,
    /// Covariance of the log-parameters ln(params) (in the family's order,
    /// time-scaled ones in days), when standard errors are available.
    pub log_parameter_covariance: Option<[[f64; 4]; 4]>,
    /// Log-likelihood, iterations, convergence, sizes, duration.
    pub report: FitReport,
}

impl PurchaseFamilyFit {
    /// The family fitted.
    pub fn family(&self) -> PurchaseFamily {
        self.params.family()
    }

    /// AIC = 2k − 2 ln L.
    pub fn aic(&self) -> f64 {
        2.0 * self.params.parameter_count() as f64 - 2.0 * self.report.log_likelihood
    }

    /// BIC = k ln(n) − 2 ln L, n = customers fitted.
    pub fn bic(&self) -> f64 {
        self.params.parameter_count() as f64 * (self.report.customers as f64).ln()
            - 2.0 * self.report.log_likelihood
    }
}

/// Maximum-likelihood fit of `family` on grouped summaries.
pub fn fit_family(
    family: PurchaseFamily,
    input: &BgNbdFitInput,
    options: &FitOptions,
) -> Result<PurchaseFamilyFit, ModelError> {
    Ok(match family {
        PurchaseFamily::BgNbd => {
            let fit = fit_bgnbd(input, options)?;
            PurchaseFamilyFit {
                params: fit.params.into(),
                standard_errors: fit.standard_errors.map(|e| [e.r, e.alpha, e.a, e.b]),
                log_parameter_covariance: fit.log_parameter_covariance,
                report: fit.report,
            }
        }
        PurchaseFamily::MbgNbd => {
            let fit = fit_mbgnbd(input, options)?;
            PurchaseFamilyFit {
                params: fit.params.into(),
                standard_errors: fit.standard_errors.map(|e| [e.r, e.alpha, e.a, e.b]),
                log_parameter_covariance: fit.log_parameter_covariance,
                report: fit.report,
            }
        }
        PurchaseFamily::ParetoNbd => {
            let fit = fit_pareto_nbd(input, options)?;
            PurchaseFamilyFit {
                params: fit.params.into(),
                standard_errors: fit.standard_errors.map(|e| [e.r, e.alpha, e.s, e.beta]),
                log_parameter_covariance: fit.log_parameter_covariance,
                report: fit.report,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for family in PurchaseFamily::ALL {
            assert_eq!(family.to_string().parse::<PurchaseFamily>(), Ok(family));
            assert_eq!(family.paper_name().parse::<PurchaseFamily>(), Ok(family));
        }
        assert!("gamma_gamma".parse::<PurchaseFamily>().is_err());
    }

    #[test]
    fn dispatch_equals_the_family_and_bgnbd_is_bit_identical() {
        let c = CustomerSummary::new(3.0, 100.0, 200.0, 0.0).unwrap();
        let bg = BgNbdParams::new(0.5, 20.0, 0.8, 2.5).unwrap();
        let p = PurchaseParams::from(bg);
        assert_eq!(p.probability_alive(&c), bg.probability_alive(&c));
        assert_eq!(
            p.expected_purchases(&c, 90.0),
            bg.expected_purchases(&c, 90.0)
        );
        let pareto = ParetoNbdParams::new(0.5, 20.0, 0.8, 30.0).unwrap();
        let q = PurchaseParams::from(pareto);
        assert_eq!(q.family(), PurchaseFamily::ParetoNbd);
        assert_eq!(
            q.probability_no_purchase(&c, 30.0),
            pareto.probability_no_purchase(&c, 30.0)
        );
        assert_eq!(
            PurchaseParams::from_values(PurchaseFamily::ParetoNbd, q.values()),
            Ok(q)
        );
    }
}
