//! Customer value over a horizon and the scoring of customers: the
//! purchase family's (BG/NBD, MBG/NBD or Pareto/NBD, [`PurchaseParams`])
//! expected purchases per model month times Gamma-Gamma expected spend,
//! discounted (docs/model.md "Customer value over a horizon"; Fader, Hardie &
//! Lee 2005, JMR 42(4), section "CLV").
//!
//! ```text
//! value = Σ_{k=1..H} (E[Y(30k)] − E[Y(30(k−1))]) · E[spend] / (1+d)^(k/12)
//! ```
//!
//! with H model months of 30 days and annual discount rate d. This equals
//! the reference implementation's `customer_lifetime_value(..., time=H,
//! freq='D', discount_rate=(1+d)^(1/12) − 1)`, whose monthly discount factor
//! (1+d_m)^k is the same number. Knows nothing of money types or storage.

use rayon::prelude::*;

use crate::error::ModelError;
use crate::family::PurchaseParams;
use crate::gamma_gamma::GammaGammaParams;
use crate::summary::{fast_map, CustomerSummary, FastHashMap};

/// Days in a model month.
pub const DAYS_PER_MODEL_MONTH: f64 = 30.0;

/// What to predict when scoring.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreOptions {
    /// Horizon H in model months of 30 days (default 12).
    pub horizon_months: u32,
    /// Annual discount rate d, applied per month as (1+d)^(k/12) (default 0.10).
    pub annual_discount_rate: f64,
    /// Window for P(no purchase), days (default 90).
    pub no_purchase_window_days: f64,
}

impl Default for ScoreOptions {
    fn default() -> Self {
        Self {
            horizon_months: 12,
            annual_discount_rate: 0.10,
            no_purchase_window_days: 90.0,
        }
    }
}

/// One customer's predictions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CustomerScore {
    /// P(alive | x, t_x, T).
    pub probability_alive: f64,
    /// P(no purchase in the next `no_purchase_window_days`).
    pub probability_no_purchase: f64,
    /// Expected repeat purchases over the horizon (H·30 days), undiscounted.
    pub expected_purchases: f64,
    /// Expected spend per future occasion (Gamma-Gamma).
    pub expected_spend: f64,
    /// Discounted expected revenue over the horizon.
    pub predicted_value: f64,
}

/// A fitted pair of models: purchases (one family) and spend (Gamma-Gamma).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClvModel {
    /// Purchase and dropout model (its variant names the family).
    pub purchases: PurchaseParams,
    /// Spend model (needs q > 1 to score).
    pub spend: GammaGammaParams,
}

/// E[Y(30k) | alive] for k = 1..H (for BG/NBD the bracket of FHL eq. 10),
/// which depends on (x, T) only; E[Y(30k)] is it times P(alive).
pub(crate) fn purchases_if_alive(
    purchases: &PurchaseParams,
    x: f64,
    t: f64,
    horizon_months: u32,
) -> Vec<f64> {
    let horizons: Vec<f64> = (1..=horizon_months)
        .map(|k| DAYS_PER_MODEL_MONTH * k as f64)
        .collect();
    purchases.purchase_brackets(x, t, &horizons)
}

/// From cumulative E[Y(30k) | alive], k = 1..H, and P(alive):
/// (Σ_k (E[Y(30k)] − E[Y(30(k−1))]) / (1+d)^(k/12), E[Y(30H)]).
pub(crate) fn discount(
    cumulative_if_alive: &[f64],
    probability_alive: f64,
    annual_discount_rate: f64,
) -> (f64, f64) {
    let ln_growth = annual_discount_rate.ln_1p() / 12.0;
    let mut previous = 0.0;
    let mut discounted = 0.0;
    for (k, &cumulative) in (1..).zip(cumulative_if_alive) {
        discounted += (cumulative - previous) * (-(k as f64) * ln_growth).exp();
        previous = cumulative;
    }
    (discounted * probability_alive, previous * probability_alive)
}

/// Discounted and plain expected purchases over the horizon for one history.
pub(crate) fn purchases_over_horizon(
    purchases: &PurchaseParams,
    x: f64,
    t_x: f64,
    t: f64,
    horizon_months: u32,
    annual_discount_rate: f64,
) -> (f64, f64) {
    let brackets = purchases_if_alive(purchases, x, t, horizon_months);
    discount(
        &brackets,
        purchases.probability_alive_at(x, t_x, t),
        annual_discount_rate,
    )
}

/// Discounted expected repeat purchases over `horizon_months` model months.
pub fn discounted_expected_purchases(
    purchases: &PurchaseParams,
    customer: &CustomerSummary,
    horizon_months: u32,
    annual_discount_rate: f64,
) -> f64 {
    purchases_over_horizon(
        purchases,
        customer.x(),
        customer.t_x(),
        customer.t(),
        horizon_months,
        annual_discount_rate,
    )
    .0
}

/// Discounted expected revenue over `horizon_months` model months (see module docs).
pub fn customer_value(
    model: &ClvModel,
    customer: &CustomerSummary,
    horizon_months: u32,
    annual_discount_rate: f64,
) -> Result<f64, ModelError> {
    let spend = model.spend.expected_spend(customer)?;
    let purchases = discounted_expected_purchases(
        &model.purchases,
        customer,
        horizon_months,
        annual_discount_rate,
    );
    finite(purchases * spend, "customer value")
}

fn finite(v: f64, what: &'static str) -> Result<f64, ModelError> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(ModelError::NonFinite { what })
    }
}

/// The purchase-model part of a score, which depends on (x, t_x, T) only.
#[derive(Debug, Clone, Copy)]
struct PurchaseScores {
    probability_alive: f64,
    probability_no_purchase: f64,
    expected_purchases: f64,
    discounted_purchases: f64,
}

impl ClvModel {
    fn purchase_scores(
        &self,
        customer: &CustomerSummary,
        options: &ScoreOptions,
    ) -> Result<PurchaseScores, ModelError> {
        let brackets = purchases_if_alive(
            &self.purchases,
            customer.x(),
            customer.t(),
            options.horizon_months,
        );
        self.purchase_scores_with(customer, &brackets, options)
    }

    /// The purchase scores given E[Y(30k) | alive] for k = 1..H.
    fn purchase_scores_with(
        &self,
        customer: &CustomerSummary,
        brackets: &[f64],
        options: &ScoreOptions,
    ) -> Result<PurchaseScores, ModelError> {
        let probability_alive = self.purchases.probability_alive(customer);
        let (discounted, expected) =
            discount(brackets, probability_alive, options.annual_discount_rate);
        Ok(PurchaseScores {
            probability_alive,
            probability_no_purchase: finite(
                self.purchases
                    .probability_no_purchase(customer, options.no_purchase_window_days),
                "P(no purchase)",
            )?,
            expected_purchases: finite(expected, "expected purchases")?,
            discounted_purchases: finite(discounted, "discounted expected purchases")?,
        })
    }

    fn combine(
        &self,
        customer: &CustomerSummary,
        p: PurchaseScores,
    ) -> Result<CustomerScore, ModelError> {
        let expected_spend = self.spend.expected_spend(customer)?;
        Ok(CustomerScore {
            probability_alive: p.probability_alive,
            probability_no_purchase: p.probability_no_purchase,
            expected_purchases: p.expected_purchases,
            expected_spend,
            predicted_value: finite(p.discounted_purchases * expected_spend, "customer value")?,
        })
    }

    /// Every prediction for one customer.
    pub fn score(
        &self,
        customer: &CustomerSummary,
        options: &ScoreOptions,
    ) -> Result<CustomerScore, ModelError> {
        let purchase = self.purchase_scores(customer, options)?;
        self.combine(customer, purchase)
    }

    /// Scores all customers in parallel (rayon). Each distinct (x, t_x, T)
    /// is scored once, and the expensive part, E[Y(30k) | alive] (a
    /// hypergeometric series per month), once per distinct (x, T).
    pub fn score_all(
        &self,
        customers: &[CustomerSummary],
        options: &ScoreOptions,
    ) -> Result<Vec<CustomerScore>, ModelError> {
        let mut index: FastHashMap<[u64; 3], usize> = fast_map(customers.len() / 4 + 16);
        let mut distinct: Vec<CustomerSummary> = Vec::new();
        let slots: Vec<usize> = customers
            .iter()
            .map(|c| {
                *index
                    .entry([c.x().to_bits(), c.t_x().to_bits(), c.t().to_bits()])
                    .or_insert_with(|| {
                        distinct.push(*c);
                        distinct.len() - 1
                    })
            })
            .collect();
        let mut pair_index: FastHashMap<[u64; 2], usize> = fast_map(distinct.len() / 4 + 16);
        let mut pairs: Vec<(f64, f64)> = Vec::new();
        let pair_slots: Vec<usize> = distinct
            .iter()
            .map(|c| {
                *pair_index
                    .entry([c.x().to_bits(), c.t().to_bits()])
                    .or_insert_with(|| {
                        pairs.push((c.x(), c.t()));
                        pairs.len() - 1
                    })
            })
            .collect();
        let brackets: Vec<Vec<f64>> = pairs
            .par_iter()
            .map(|&(x, t)| purchases_if_alive(&self.purchases, x, t, options.horizon_months))
            .collect();
        let per_history: Vec<PurchaseScores> = distinct
            .par_iter()
            .zip(pair_slots.par_iter())
            .map(|(c, &pair)| self.purchase_scores_with(c, &brackets[pair], options))
            .collect::<Result<_, ModelError>>()?;
        customers
            .par_iter()
            .zip(slots.par_iter())
            .map(|(c, &slot)| self.combine(c, per_history[slot]))
            .collect()
    }
}
