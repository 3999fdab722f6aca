//! Expected time to a customer's next purchase (docs/model.md, "Time to
//! the next purchase", N1-N3).
//!
//! Given the history (x, t_x, T) and that the customer is alive at T, the
//! purchase rate is λ ~ Gamma(r+x, α+T) in all three families, and the wait
//! W to the next purchase is Exponential(λ); mixed over λ it is Lomax:
//! P(W > w) = ((α+T)/(α+T+w))^(r+x). For BG/NBD and MBG/NBD a customer
//! alive at T is alive until their next purchase (dropout happens only
//! right after a purchase), so this is the wait itself. For Pareto/NBD the
//! customer may die first: the median and mean here are those of the
//! purchase clock alone, "if the customer stays alive" (the wait a
//! surviving customer has), and death is counted in the probability of a
//! purchase within the window, which is 1 − P(no purchase in the window)
//! for every family.

use crate::bgnbd::BgNbdParams;
use crate::family::PurchaseParams;
use crate::mbgnbd::MbgNbdParams;
use crate::pareto_nbd::ParetoNbdParams;
use crate::summary::CustomerSummary;

/// When a customer's next purchase comes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NextPurchase {
    /// Median days from T to the next purchase if the customer is (and, for
    /// Pareto/NBD, stays) alive: (α+T)·(2^(1/(r+x)) − 1) (N1).
    pub median_days_if_alive: f64,
    /// Mean days, likewise: (α+T)/(r+x−1) for r+x > 1; infinite for
    /// r+x ≤ 1 (the Lomax mean does not exist) (N2).
    pub mean_days_if_alive: f64,
    /// P(at least one purchase in (T, T+window]), death and dropout
    /// included: 1 − P(no purchase in the window) (N3).
    pub probability_within_window: f64,
}

/// N1-N2 from the posterior shape r+x and rate α+T of λ.
fn lomax(shape: f64, rate: f64) -> (f64, f64) {
    let median = rate * (std::f64::consts::LN_2 / shape).exp_m1();
    let mean = if shape > 1.0 {
        rate / (shape - 1.0)
    } else {
        f64::INFINITY
    };
    (median, mean)
}

fn next_purchase(
    (r, alpha): (f64, f64),
    customer: &CustomerSummary,
    no_purchase: f64,
) -> NextPurchase {
    let (median, mean) = lomax(r + customer.x(), alpha + customer.t());
    NextPurchase {
        median_days_if_alive: median,
        mean_days_if_alive: mean,
        probability_within_window: (1.0 - no_purchase).clamp(0.0, 1.0),
    }
}

impl BgNbdParams {
    /// Time to the next purchase and P(a purchase within `window_days`).
    pub fn next_purchase(&self, customer: &CustomerSummary, window_days: f64) -> NextPurchase {
        let none = self.probability_no_purchase(customer, window_days);
        next_purchase((self.r(), self.alpha()), customer, none)
    }
}

impl MbgNbdParams {
    /// Time to the next purchase and P(a purchase within `window_days`).
    pub fn next_purchase(&self, customer: &CustomerSummary, window_days: f64) -> NextPurchase {
        let none = self.probability_no_purchase(customer, window_days);
        next_purchase((self.r(), self.alpha()), customer, none)
    }
}

impl ParetoNbdParams {
    /// Time to the next purchase if the customer stays alive, and P(a
    /// purchase within `window_days`) with death counted (module docs).
    pub fn next_purchase(&self, customer: &CustomerSummary, window_days: f64) -> NextPurchase {
        let none = self.probability_no_purchase(customer, window_days);
        next_purchase((self.r(), self.alpha()), customer, none)
    }
}

impl PurchaseParams {
    /// Time to the next purchase, given P(no purchase in the window)
    /// already computed for this customer (`no_purchase`): what
    /// [`PurchaseParams::next_purchase`] returns, without evaluating that
    /// probability again (scoring has it at hand).
    pub fn next_purchase_given(
        &self,
        customer: &CustomerSummary,
        no_purchase: f64,
    ) -> NextPurchase {
        // r and α lead every family's parameters.
        let [r, alpha, ..] = self.values();
        next_purchase((r, alpha), customer, no_purchase)
    }

    /// Time to the next purchase and P(a purchase within `window_days`)
    /// for the family (module docs).
    pub fn next_purchase(&self, customer: &CustomerSummary, window_days: f64) -> NextPurchase {
        match self {
            Self::BgNbd(p) => p.next_purchase(customer, window_days),
            Self::MbgNbd(p) => p.next_purchase(customer, window_days),
            Self::ParetoNbd(p) => p.next_purchase(customer, window_days),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_mean_match_mpmath_quadrature() {
        let path = format!(
            "{}/fixtures/families_next_purchase.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let f: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        for p in f["points"].as_array().unwrap() {
            let (shape, rate) = (p["shape"].as_f64().unwrap(), p["rate"].as_f64().unwrap());
            let (median, mean) = lomax(shape, rate);
            let reference = p["median"].as_f64().unwrap();
            assert!(
                (median / reference - 1.0).abs() < 1e-10,
                "{median} vs {reference}"
            );
            match p["mean"].as_f64() {
                // Quadrature of a heavy tail: good to ~1e-9.
                Some(reference) => assert!((mean / reference - 1.0).abs() < 1e-8, "{mean}"),
                None => assert_eq!(mean, f64::INFINITY),
            }
        }
    }

    #[test]
    fn the_median_halves_the_lomax_survival() {
        let (median, mean) = lomax(2.7, 300.0);
        let survival = (300.0 / (300.0 + median)).powf(2.7);
        assert!((survival - 0.5).abs() < 1e-14);
        assert!((mean - 300.0 / 1.7).abs() < 1e-12);
        assert_eq!(lomax(0.9, 300.0).1, f64::INFINITY);
    }
}
