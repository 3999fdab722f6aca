//! Customer value over a horizon and the scoring of customers: BG/NBD
//! expected purchases per model month times Gamma-Gamma expected spend,
//! discounted (MODELS.md "Customer value over a horizon"; Fader, Hardie &
//! Lee 2005, JMR 42(4), section "CLV").
//!
//!   value = Σ_{k=1..H} (E[Y(30k)] − E[Y(30(k−1))]) · E[spend] / (1+d)^(k/12)
//!
//! with H model months of 30 days and annual discount rate d. This equals
//! the reference implementation's `customer_lifetime_value(..., time=H,
//! freq='D', discount_rate=(1+d)^(1/12) − 1)`, whose monthly discount factor
//! (1+d_m)^k is the same number. Knows nothing of money types or storage.

use std::collections::HashMap;

use rayon::prelude::*;

use crate::bgnbd::BgNbdParams;
use crate::error::ModelError;
use crate::gamma_gamma::GammaGammaParams;
use crate::summary::CustomerSummary;

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
        Self { horizon_months: 12, annual_discount_rate: 0.10, no_purchase_window_days: 90.0 }
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

/// A fitted pair of models: purchases (BG/NBD) and spend (Gamma-Gamma).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClvModel {
    /// Purchase and dropout model.
    pub purchases: BgNbdParams,
    /// Spend model (needs q > 1 to score).
    pub spend: GammaGammaParams,
}

/// Σ_{k=1..H} (E[Y(30k)] − E[Y(30(k−1))]) / (1+d)^(k/12): discounted
/// expected purchases, to be multiplied by the expected spend. Also returns
/// the undiscounted E[Y(30·H)].
fn purchases_over_horizon(purchases: &BgNbdParams, x: f64, t_x: f64, t: f64, horizon_months: u32, annual_discount_rate: f64) -> (f64, f64) {
    let mut previous = 0.0;
    let mut discounted = 0.0;
    let ln_growth = annual_discount_rate.ln_1p() / 12.0;
    for k in 1..=horizon_months {
        let cumulative = purchases.expected_purchases_at(x, t_x, t, DAYS_PER_MODEL_MONTH * k as f64);
        discounted += (cumulative - previous) * (-(k as f64) * ln_growth).exp();
        previous = cumulative;
    }
    (discounted, previous)
}

/// Discounted expected repeat purchases over `horizon_months` model months.
pub fn discounted_expected_purchases(purchases: &BgNbdParams, customer: &CustomerSummary, horizon_months: u32, annual_discount_rate: f64) -> f64 {
    purchases_over_horizon(purchases, customer.x(), customer.t_x(), customer.t(), horizon_months, annual_discount_rate).0
}

/// Discounted expected revenue over `horizon_months` model months (see module docs).
pub fn customer_value(model: &ClvModel, customer: &CustomerSummary, horizon_months: u32, annual_discount_rate: f64) -> Result<f64, ModelError> {
    let spend = model.spend.expected_spend(customer)?;
    let purchases = discounted_expected_purchases(&model.purchases, customer, horizon_months, annual_discount_rate);
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
    fn purchase_scores(&self, customer: &CustomerSummary, options: &ScoreOptions) -> Result<PurchaseScores, ModelError> {
        let (x, t_x, t) = (customer.x(), customer.t_x(), customer.t());
        let (discounted, expected) = purchases_over_horizon(&self.purchases, x, t_x, t, options.horizon_months, options.annual_discount_rate);
        Ok(PurchaseScores {
            probability_alive: self.purchases.probability_alive(customer),
            probability_no_purchase: finite(self.purchases.probability_no_purchase(customer, options.no_purchase_window_days), "P(no purchase)")?,
            expected_purchases: finite(expected, "expected purchases")?,
            discounted_purchases: finite(discounted, "discounted expected purchases")?,
        })
    }

    fn combine(&self, customer: &CustomerSummary, p: PurchaseScores) -> Result<CustomerScore, ModelError> {
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
    pub fn score(&self, customer: &CustomerSummary, options: &ScoreOptions) -> Result<CustomerScore, ModelError> {
        let purchase = self.purchase_scores(customer, options)?;
        self.combine(customer, purchase)
    }

    /// Scores all customers in parallel (rayon). The purchase predictions
    /// depend only on (x, t_x, T), so each distinct history is computed once.
    pub fn score_all(&self, customers: &[CustomerSummary], options: &ScoreOptions) -> Result<Vec<CustomerScore>, ModelError> {
        let mut index: HashMap<[u64; 3], usize> = HashMap::with_capacity(customers.len() / 4 + 16);
        let mut distinct: Vec<CustomerSummary> = Vec::new();
        let slots: Vec<usize> = customers
            .iter()
            .map(|c| {
                *index.entry([c.x().to_bits(), c.t_x().to_bits(), c.t().to_bits()]).or_insert_with(|| {
                    distinct.push(*c);
                    distinct.len() - 1
                })
            })
            .collect();
        let per_history: Vec<PurchaseScores> =
            distinct.par_iter().map(|c| self.purchase_scores(c, options)).collect::<Result<_, ModelError>>()?;
        customers.par_iter().zip(slots.par_iter()).map(|(c, &slot)| self.combine(c, per_history[slot])).collect()
    }
}
