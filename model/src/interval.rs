//! Central intervals on one customer's scores at serving speed
//! (docs/model.md, "Intervals on scores", I1-I5).
//!
//! What they cover:
//! - P(alive), expected purchases, expected spend and predicted value:
//!   the uncertainty of the fitted parameters only, from the asymptotic
//!   normal law of the log-parameters (covariance = inverse Hessian of the
//!   total negative log-likelihood, [`ModelUncertainty`]). The purchase
//!   and spend fits are separate likelihoods, so their estimates are taken
//!   as independent.
//! - The purchase count: the count's own randomness, from the conditional
//!   distribution P(Y(t) = n | history) at the fitted parameters
//!   (`count_distribution`).
//! - Neither covers model misspecification (the wrong family, spend that
//!   depends on frequency, a changing market).
//!
//! Method: the delta method on a scale that keeps the interval in range —
//! logit for P(alive), log for purchases, spend and value — with the
//! gradient of the score in the log-parameters by forward differences (4
//! extra purchase evaluations; the spend gradient is analytic). The
//! alternative, K seeded draws of the log-parameters precomputed once per
//! model ([`ParameterDraws`]), costs K evaluations per customer; the
//! bench `model/benches/intervals.rs` measures both, and the delta method
//! is the one that keeps scoring fast (docs/model.md I5).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::count_distribution::PurchaseCountDistribution;
use crate::error::ModelError;
use crate::family::PurchaseParams;
use crate::gamma_gamma::GammaGammaParams;
use crate::summary::CustomerSummary;
use crate::value::{
    discount, purchases_if_alive, purchases_over_horizon, ClvModel, CustomerScore, ScoreOptions,
    DAYS_PER_MODEL_MONTH,
};

/// The default level of the intervals.
pub const DEFAULT_INTERVAL_LEVEL: f64 = 0.90;

/// Step in a log-parameter for the forward differences of the delta method.
const DELTA_STEP: f64 = 1e-5;

/// Covariances of the log-parameters of a fitted model: purchases (the
/// family's four, in [`PurchaseParams::values`] order) and spend (p, q, γ).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelUncertainty {
    /// Cov(ln params) of the purchase family's fit.
    pub purchases: [[f64; 4]; 4],
    /// Cov(ln p, ln q, ln γ) of the Gamma-Gamma fit.
    pub spend: [[f64; 3]; 3],
}

/// A closed interval [lower, upper].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// Lower end.
    pub lower: f64,
    /// Upper end.
    pub upper: f64,
}

impl Interval {
    fn point(v: f64) -> Self {
        Self { lower: v, upper: v }
    }

    /// Whether `v` lies in [lower, upper].
    pub fn contains(&self, v: f64) -> bool {
        self.lower <= v && v <= self.upper
    }
}

/// One customer's intervals at `level`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreIntervals {
    /// The level, e.g. 0.9.
    pub level: f64,
    /// P(alive): parameter uncertainty.
    pub probability_alive: Interval,
    /// Expected repeat purchases over the horizon: parameter uncertainty
    /// of the mean.
    pub expected_purchases: Interval,
    /// The number of repeat purchases over the horizon: the count's own
    /// randomness at the fitted parameters (whole numbers, C6).
    pub purchase_count: (usize, usize),
    /// P(count in `purchase_count`) (≥ level: the count is discrete).
    pub purchase_count_probability: f64,
    /// Expected spend per occasion: parameter uncertainty.
    pub expected_spend: Interval,
    /// Predicted (discounted) value: parameter uncertainty of both fits.
    pub predicted_value: Interval,
}

/// z = Φ⁻¹(u) for u in [0.5, 1): Newton on Φ from 0, which converges
/// monotonically there (Φ is concave for z ≥ 0). Hand-rolled: the crate's
/// dependencies have erfc (libm) but no inverse.
fn normal_quantile(u: f64) -> f64 {
    // Every score of a request asks for the same level (most requests the
    // default), so the last answer per thread is kept.
    thread_local! {
        static LAST: std::cell::Cell<(f64, f64)> = const { std::cell::Cell::new((f64::NAN, 0.0)) };
    }
    let (last_u, last_z) = LAST.get();
    if last_u == u {
        return last_z;
    }
    let z = normal_quantile_newton(u);
    LAST.set((u, z));
    z
}

fn normal_quantile_newton(u: f64) -> f64 {
    let mut z = 0.0_f64;
    for _ in 0..100 {
        let cdf = 0.5 * libm::erfc(-z / std::f64::consts::SQRT_2);
        let density = (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let step = (cdf - u) / density;
        z -= step;
        if step.abs() < 1e-15 * z.abs().max(1.0) {
            break;
        }
    }
    z
}

fn check_level(level: f64) -> Result<f64, ModelError> {
    if level > 0.0 && level < 1.0 {
        Ok(level)
    } else {
        Err(ModelError::InvalidIntervalLevel { level })
    }
}

/// The purchase side of a score on the transformed scales: (logit
/// P(alive), ln E[Y(horizon)], ln discounted purchases), and P(alive),
/// computed once for all three (for Pareto/NBD a series of its own).
fn purchase_side(
    purchases: &PurchaseParams,
    customer: &CustomerSummary,
    options: &ScoreOptions,
) -> ([f64; 3], f64) {
    let (x, t_x, t) = (customer.x(), customer.t_x(), customer.t());
    let alive = purchases.probability_alive_at(x, t_x, t);
    let brackets = purchases_if_alive(purchases, x, t, options.horizon_months);
    let (discounted, expected) = discount(&brackets, alive, options.annual_discount_rate);
    (
        [
            alive.ln() - (-alive).ln_1p(),
            expected.ln(),
            discounted.ln(),
        ],
        alive,
    )
}

/// d ln E[spend]/d ln(p, q, γ) of p(γ+mx)/(px+q−1).
fn spend_log_gradient(spend: &GammaGammaParams, customer: &CustomerSummary) -> [f64; 3] {
    let (p, q, gamma) = (spend.p(), spend.q(), spend.gamma());
    let x = customer.x();
    let m = if x > 0.0 { customer.m().max(0.0) } else { 0.0 };
    let denominator = p * x + q - 1.0;
    [
        1.0 - p * x / denominator,
        -q / denominator,
        gamma / (gamma + m * x),
    ]
}

fn quadratic_form<const N: usize>(g: &[f64; N], c: &[[f64; N]; N]) -> f64 {
    (0..N)
        .map(|i| (0..N).map(|j| g[i] * c[i][j] * g[j]).sum::<f64>())
        .sum()
}

/// ±z·se on the transformed scale, back through `back`; an infinite
/// centre (P(alive) = 1 or 0, no purchases expected) is a point interval
/// (I3); an infinite variance (a score that saturates under a small
/// parameter step) is the whole range; a NaN is an error, not a zero-width
/// interval.
fn around(
    centre: f64,
    variance: f64,
    z: f64,
    back: impl Fn(f64) -> f64,
) -> Result<Interval, ModelError> {
    if centre.is_infinite() {
        return Ok(Interval::point(back(centre)));
    }
    if variance == f64::INFINITY && !centre.is_nan() {
        // A score that saturates (P(alive) rounds to 1) under a small step
        // of a parameter: nothing better than the whole range.
        return Ok(Interval {
            lower: back(f64::NEG_INFINITY),
            upper: back(f64::INFINITY),
        });
    }
    if centre.is_nan() || variance.is_nan() {
        return Err(ModelError::NonFinite {
            what: "a score interval (the score or its gradient in the log-parameters)",
        });
    }
    let half = z * variance.max(0.0).sqrt();
    Ok(Interval {
        lower: back(centre - half),
        upper: back(centre + half),
    })
}

fn logistic(u: f64) -> f64 {
    if u >= 0.0 {
        1.0 / (1.0 + (-u).exp())
    } else {
        let e = u.exp();
        e / (1.0 + e)
    }
}

impl ClvModel {
    /// Central intervals at `level` on one customer's scores by the delta
    /// method (module docs; docs/model.md I1-I4).
    pub fn score_intervals(
        &self,
        uncertainty: &ModelUncertainty,
        customer: &CustomerSummary,
        options: &ScoreOptions,
        level: f64,
    ) -> Result<ScoreIntervals, ModelError> {
        let (base, alive) = purchase_side(&self.purchases, customer, options);
        let spend = self.spend.expected_spend(customer)?;
        self.intervals_around(uncertainty, customer, options, level, (base, alive, spend))
    }

    /// [`ClvModel::score_intervals`] around a score already computed for
    /// the same customer and options (`score` = [`ClvModel::score`]): the
    /// serving path, which has the score at hand, saves the centre's
    /// evaluation (one of the five purchase-side evaluations).
    pub fn score_intervals_given(
        &self,
        uncertainty: &ModelUncertainty,
        customer: &CustomerSummary,
        options: &ScoreOptions,
        level: f64,
        score: &CustomerScore,
    ) -> Result<ScoreIntervals, ModelError> {
        let alive = score.probability_alive;
        let discounted = score.predicted_value / score.expected_spend;
        let base = [
            alive.ln() - (-alive).ln_1p(),
            score.expected_purchases.ln(),
            discounted.ln(),
        ];
        self.intervals_around(
            uncertainty,
            customer,
            options,
            level,
            (base, alive, score.expected_spend),
        )
    }

    /// The delta method around the transformed centre `base` (see
    /// [`purchase_side`]), with its P(alive) and the expected spend.
    fn intervals_around(
        &self,
        uncertainty: &ModelUncertainty,
        customer: &CustomerSummary,
        options: &ScoreOptions,
        level: f64,
        (base, alive, spend): ([f64; 3], f64, f64),
    ) -> Result<ScoreIntervals, ModelError> {
        let level = check_level(level)?;
        let z = normal_quantile(0.5 + level / 2.0);
        let family = self.purchases.family();
        let values = self.purchases.values();
        // Forward differences in each log-parameter.
        let mut gradients = [[0.0; 4]; 3];
        for k in 0..4 {
            let mut moved = values;
            moved[k] *= DELTA_STEP.exp();
            let (shifted, _) = purchase_side(
                &PurchaseParams::from_values(family, moved)?,
                customer,
                options,
            );
            for (score, gradient) in gradients.iter_mut().enumerate() {
                gradient[k] = (shifted[score] - base[score]) / DELTA_STEP;
            }
        }
        let variance = gradients.map(|g| quadratic_form(&g, &uncertainty.purchases));
        let spend_variance = quadratic_form(
            &spend_log_gradient(&self.spend, customer),
            &uncertainty.spend,
        );
        let count = self
            .purchases
            .conditional_purchase_distribution_given_alive(
                customer,
                options.horizon_months as f64 * DAYS_PER_MODEL_MONTH,
                alive,
            );
        let purchase_count = count.central_interval(level);
        Ok(ScoreIntervals {
            level,
            probability_alive: around(base[0], variance[0], z, logistic)?,
            expected_purchases: around(base[1], variance[1], z, f64::exp)?,
            purchase_count,
            purchase_count_probability: count.mass_between(purchase_count.0, purchase_count.1),
            expected_spend: around(spend.ln(), spend_variance, z, f64::exp)?,
            predicted_value: around(
                base[2] + spend.ln(),
                variance[2] + spend_variance,
                z,
                f64::exp,
            )?,
        })
    }
}

impl PurchaseParams {
    /// The P(alive) interval of [`ClvModel::score_intervals`] alone (the
    /// same delta method on logit P(alive), four extra P(alive)
    /// evaluations): what a churn-risk answer needs, without the cost of
    /// the purchase and value intervals.
    pub fn probability_alive_interval(
        &self,
        covariance: &[[f64; 4]; 4],
        customer: &CustomerSummary,
        level: f64,
    ) -> Result<Interval, ModelError> {
        let level = check_level(level)?;
        let z = normal_quantile(0.5 + level / 2.0);
        let (x, t_x, t) = (customer.x(), customer.t_x(), customer.t());
        let logit = |p: &PurchaseParams| {
            let alive = p.probability_alive_at(x, t_x, t);
            alive.ln() - (-alive).ln_1p()
        };
        let base = logit(self);
        let values = self.values();
        let mut gradient = [0.0; 4];
        for (k, g) in gradient.iter_mut().enumerate() {
            let mut moved = values;
            moved[k] *= DELTA_STEP.exp();
            *g = (logit(&PurchaseParams::from_values(self.family(), moved)?) - base) / DELTA_STEP;
        }
        around(base, quadratic_form(&gradient, covariance), z, logistic)
    }
}

/// Method (a), for comparison: K seeded draws of the log-parameters from
/// their asymptotic normal law, precomputed once per model; each score is
/// evaluated per draw and the interval is its empirical quantiles.
#[derive(Debug, Clone)]
pub struct ParameterDraws {
    models: Vec<ClvModel>,
}

/// Lower-triangular L with L·Lᵀ = c (Cholesky); `None` unless positive definite.
fn cholesky<const N: usize>(c: &[[f64; N]; N]) -> Option<[[f64; N]; N]> {
    let mut l = [[0.0; N]; N];
    for i in 0..N {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
            if i == j {
                let d = c[i][i] - s;
                if d <= 0.0 || !d.is_finite() {
                    return None;
                }
                l[i][j] = d.sqrt();
            } else {
                l[i][j] = (c[i][j] - s) / l[j][j];
            }
        }
    }
    Some(l)
}

fn draw<const N: usize>(centre: &[f64; N], l: &[[f64; N]; N], rng: &mut ChaCha8Rng) -> [f64; N] {
    let z: [f64; N] = std::array::from_fn(|_| StandardNormal.sample(rng));
    std::array::from_fn(|i| {
        let shift: f64 = (0..=i).map(|k| l[i][k] * z[k]).sum();
        centre[i] * shift.exp()
    })
}

impl ParameterDraws {
    /// `k` draws with `seed` (the same seed gives the same draws).
    pub fn new(
        model: &ClvModel,
        uncertainty: &ModelUncertainty,
        k: usize,
        seed: u64,
    ) -> Result<Self, ModelError> {
        let not_definite = ModelError::NonFinite {
            what: "the Cholesky factor of the log-parameter covariance (not positive definite)",
        };
        let lp = cholesky(&uncertainty.purchases).ok_or(not_definite.clone())?;
        let ls = cholesky(&uncertainty.spend).ok_or(not_definite)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let family = model.purchases.family();
        let (pv, s) = (model.purchases.values(), &model.spend);
        let sv = [s.p(), s.q(), s.gamma()];
        let models = (0..k)
            .map(|_| {
                let purchases = PurchaseParams::from_values(family, draw(&pv, &lp, &mut rng))?;
                let [p, q, gamma] = draw(&sv, &ls, &mut rng);
                Ok(ClvModel {
                    purchases,
                    spend: GammaGammaParams::new(p, q, gamma)?,
                })
            })
            .collect::<Result<_, ModelError>>()?;
        Ok(Self { models })
    }

    /// Central intervals at `level` from the draws' quantiles (draws with
    /// q ≤ 1, whose expected spend is undefined, are left out of spend and
    /// value). The count interval mixes the conditional distribution over
    /// the draws (I3).
    pub fn score_intervals(
        &self,
        customer: &CustomerSummary,
        options: &ScoreOptions,
        level: f64,
    ) -> Result<ScoreIntervals, ModelError> {
        let level = check_level(level)?;
        let (mut alive, mut expected, mut spend, mut value) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (x, t_x, t) = (customer.x(), customer.t_x(), customer.t());
        let horizon = options.horizon_months as f64 * DAYS_PER_MODEL_MONTH;
        let mut mixture: Vec<f64> = Vec::new();
        for m in &self.models {
            alive.push(m.purchases.probability_alive_at(x, t_x, t));
            let (discounted, e) = purchases_over_horizon(
                &m.purchases,
                x,
                t_x,
                t,
                options.horizon_months,
                options.annual_discount_rate,
            );
            expected.push(e);
            let d = m
                .purchases
                .conditional_purchase_distribution(customer, horizon);
            if mixture.len() < d.probabilities().len() {
                mixture.resize(d.probabilities().len(), 0.0);
            }
            for (acc, p) in mixture.iter_mut().zip(d.probabilities()) {
                *acc += p / self.models.len() as f64;
            }
            if let Ok(s) = m.spend.expected_spend(customer) {
                spend.push(s);
                value.push(discounted * s);
            }
        }
        let count = PurchaseCountDistribution::from_probabilities(mixture);
        let purchase_count = count.central_interval(level);
        Ok(ScoreIntervals {
            level,
            probability_alive: quantiles(alive, level),
            expected_purchases: quantiles(expected, level),
            purchase_count,
            purchase_count_probability: count.mass_between(purchase_count.0, purchase_count.1),
            expected_spend: quantiles(spend, level),
            predicted_value: quantiles(value, level),
        })
    }
}

/// The (1−level)/2 and (1+level)/2 empirical quantiles (nearest rank).
fn quantiles(mut v: Vec<f64>, level: f64) -> Interval {
    if v.is_empty() {
        return Interval::point(f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let at = |u: f64| v[((u * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Interval {
        lower: at((1.0 - level) / 2.0),
        upper: at((1.0 + level) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// P(alive) computed once for the purchase side and the count law
    /// gives what computing it for each gave, to the bit: the
    /// transformed centre against P(alive) and `purchases_over_horizon`
    /// (which computes its own), and the count law against
    /// `conditional_purchase_distribution` (likewise), for every family.
    #[test]
    fn one_p_alive_gives_the_same_bits_as_one_per_use() {
        let families = [
            PurchaseParams::BgNbd(crate::BgNbdParams::new(0.243, 4.414, 0.793, 2.426).unwrap()),
            PurchaseParams::MbgNbd(crate::MbgNbdParams::new(0.525, 6.183, 0.891, 1.614).unwrap()),
            PurchaseParams::ParetoNbd(
                crate::ParetoNbdParams::new(0.553, 74.0, 0.606, 81.7).unwrap(),
            ),
            PurchaseParams::ParetoNbd(
                crate::ParetoNbdParams::new(0.553, 10.0, 0.2, 4000.0).unwrap(),
            ),
        ];
        let options = ScoreOptions::default();
        for purchases in families {
            for (x, t_x, t) in [(0.0, 0.0, 30.0), (2.0, 100.0, 365.0), (12.0, 700.0, 720.0)] {
                let customer = CustomerSummary::new(x, t_x, t, 20.0).unwrap();
                let (base, alive) = purchase_side(&purchases, &customer, &options);
                let each = purchases.probability_alive_at(x, t_x, t);
                let (discounted, expected) = purchases_over_horizon(
                    &purchases,
                    x,
                    t_x,
                    t,
                    options.horizon_months,
                    options.annual_discount_rate,
                );
                let old = [each.ln() - (-each).ln_1p(), expected.ln(), discounted.ln()];
                assert_eq!(
                    base.map(f64::to_bits),
                    old.map(f64::to_bits),
                    "{purchases:?} {x} {t_x} {t}"
                );
                let h = options.horizon_months as f64 * DAYS_PER_MODEL_MONTH;
                assert_eq!(
                    purchases.conditional_purchase_distribution_given_alive(&customer, h, alive),
                    purchases.conditional_purchase_distribution(&customer, h),
                    "{purchases:?} {x} {t_x} {t}"
                );
            }
        }
    }

    #[test]
    fn normal_quantiles_are_right() {
        for (u, z) in [
            (0.5, 0.0),
            (0.95, 1.6448536269514722),
            (0.975, 1.959963984540054),
            (0.995, 2.5758293035489004),
        ] {
            assert!((normal_quantile(u) - z).abs() < 1e-12, "{u}");
        }
    }

    #[test]
    fn degenerate_scores_are_points_whole_ranges_or_errors() {
        let certain = around(f64::INFINITY, f64::NAN, 1.64, logistic).unwrap();
        assert_eq!((certain.lower, certain.upper), (1.0, 1.0));
        let saturated = around(30.0, f64::INFINITY, 1.64, logistic).unwrap();
        assert_eq!((saturated.lower, saturated.upper), (0.0, 1.0));
        assert!(around(f64::NAN, 0.1, 1.64, f64::exp).is_err());
        assert!(around(1.0, f64::NAN, 1.64, f64::exp).is_err());
        let plain = around(0.0, 1.0, 2.0, f64::exp).unwrap();
        assert!((plain.lower - (-2.0_f64).exp()).abs() < 1e-15);
        assert!((plain.upper - 2.0_f64.exp()).abs() < 1e-15);
    }

    #[test]
    fn intervals_given_a_score_equal_the_intervals_from_scratch() {
        use crate::{BgNbdParams, ParetoNbdParams};
        let uncertainty = ModelUncertainty {
            purchases: std::array::from_fn(|i| {
                std::array::from_fn(|j| if i == j { 0.01 } else { 0.002 })
            }),
            spend: std::array::from_fn(|i| std::array::from_fn(|j| f64::from(i == j) * 0.02)),
        };
        let spend = GammaGammaParams::new(6.0, 4.0, 15.0).unwrap();
        let options = ScoreOptions::default();
        for purchases in [
            PurchaseParams::from(BgNbdParams::new(0.6, 25.0, 0.7, 2.2).unwrap()),
            PurchaseParams::from(ParetoNbdParams::new(0.8, 40.0, 0.5, 60.0).unwrap()),
        ] {
            let model = ClvModel { purchases, spend };
            for (x, t_x, t, m) in [(0.0, 0.0, 200.0, 0.0), (3.0, 150.0, 300.0, 20.0)] {
                let c = CustomerSummary::new(x, t_x, t, m).unwrap();
                let score = model.score(&c, &options).unwrap();
                let given = model
                    .score_intervals_given(&uncertainty, &c, &options, 0.9, &score)
                    .unwrap();
                let scratch = model
                    .score_intervals(&uncertainty, &c, &options, 0.9)
                    .unwrap();
                let close = |a: Interval, b: Interval| {
                    (a.lower - b.lower).abs() <= 1e-12 * b.lower.abs().max(1.0)
                        && (a.upper - b.upper).abs() <= 1e-12 * b.upper.abs().max(1.0)
                };
                assert!(close(given.probability_alive, scratch.probability_alive));
                assert!(close(given.expected_purchases, scratch.expected_purchases));
                assert!(close(given.expected_spend, scratch.expected_spend));
                assert!(close(given.predicted_value, scratch.predicted_value));
                assert_eq!(given.purchase_count, scratch.purchase_count);
                let alive = purchases
                    .probability_alive_interval(&uncertainty.purchases, &c, 0.9)
                    .unwrap();
                assert!(close(alive, scratch.probability_alive));
            }
        }
    }

    #[test]
    fn cholesky_reproduces_the_matrix() {
        let c = [[4.0, 2.0, 0.4], [2.0, 5.0, 1.0], [0.4, 1.0, 3.0]];
        let l = cholesky(&c).unwrap();
        for i in 0..3 {
            for j in 0..3 {
                let v: f64 = (0..3).map(|k| l[i][k] * l[j][k]).sum();
                assert!((v - c[i][j]).abs() < 1e-14);
            }
        }
        assert!(cholesky(&[[1.0, 2.0], [2.0, 1.0]]).is_none());
    }
}
