//! A seeded simulator of the BG/NBD + Gamma-Gamma story, written from the
//! models' definitions (Fader, Hardie & Lee 2005, Marketing Science 24(2),
//! section 3 assumptions (i)-(v); Fader, Hardie & Lee 2005, JMR 42(4) and
//! Colombo & Jiang 1999 for spend), not from the likelihood:
//!
//! - each customer makes a first purchase at time 0 (their acquisition);
//! - while alive, purchases arrive as a Poisson process of rate λ per day,
//!   λ ~ Gamma(shape r, rate α);
//! - after each repeat purchase the customer drops out for good with
//!   probability p, p ~ Beta(a, b);
//! - each repeat occasion's value ~ Gamma(shape p_s, rate ν), with the
//!   customer's ν ~ Gamma(shape q, rate γ).
//!
//! The other purchase families change only the dropout story
//! ([`PurchaseProcess`], [`simulate_process`]):
//!
//! - MBG/NBD (Batislam et al. 2007): the same, and the customer may also
//!   drop out right after the first purchase, with the same probability p;
//! - Pareto/NBD (Schmittlein, Morrison & Colombo 1987): the customer's
//!   lifetime from the first purchase is Exponential(μ), μ ~ Gamma(shape
//!   s, rate β), independent of purchases.
//!
//! Used to check parameter recovery and, in the service, to test the
//! calibration/holdout evaluation. Knows nothing of fitting.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution, Exp, Gamma};
use rayon::prelude::*;

use crate::bgnbd::BgNbdParams;
use crate::gamma_gamma::GammaGammaParams;
use crate::mbgnbd::MbgNbdParams;
use crate::pareto_nbd::ParetoNbdParams;
use crate::summary::CustomerSummary;

/// When customers make their first purchase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Acquisition {
    /// Everybody at time 0: T equals the calibration length for all.
    AtStart,
    /// Uniformly over the first `window_days` of the calibration period.
    Uniform {
        /// Length of the acquisition window, days (≤ calibration length).
        window_days: f64,
    },
}

/// How purchase times are recorded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TimeResolution {
    /// Exact (continuous) times: the model's own assumption.
    Continuous,
    /// Calendar days as the service records them: acquisition on a whole
    /// day, purchases on the same day merge into one occasion, t_x and T
    /// are whole numbers of days.
    WholeDays,
}

/// What to simulate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimulationConfig {
    /// True purchase and dropout parameters (α in days).
    pub purchases: BgNbdParams,
    /// True spend parameters; `None` leaves m = 0.
    pub spend: Option<GammaGammaParams>,
    /// Number of customers.
    pub customers: usize,
    /// Length of the calibration period, days (the as-of point).
    pub calibration_days: f64,
    /// Length of the holdout period after it, days (0 for none).
    pub holdout_days: f64,
    /// When customers are acquired.
    pub acquisition: Acquisition,
    /// Continuous times or whole days.
    pub resolution: TimeResolution,
    /// Seed; the same seed gives the same customers.
    pub seed: u64,
    /// Keep every purchase occasion (day and value) in
    /// [`SimulatedCustomer::occasions`], e.g. to turn simulated customers
    /// into transactions. Does not change the random draws.
    pub record_occasions: bool,
}

/// One simulated purchase occasion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Occasion {
    /// Days from the start of calibration (whole days with `WholeDays`).
    pub day: f64,
    /// Value of the occasion (0 without a spend model). The first
    /// occasion's value is drawn like the others, though the spend model is
    /// fitted on repeat occasions only.
    pub value: f64,
    /// Whether it falls in the holdout period.
    pub in_holdout: bool,
}

/// One simulated customer: what the service would see, and the truth.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatedCustomer {
    /// Summary at the end of calibration (x, t_x, T, m).
    pub summary: CustomerSummary,
    /// Purchase occasions in the holdout period (T, T + holdout].
    pub holdout_purchases: u64,
    /// Acquisition time, days from the start of calibration.
    pub acquired_at: f64,
    /// True purchase rate λ per day.
    pub purchase_rate: f64,
    /// True dropout probability p (BG/NBD, MBG/NBD); 0 for Pareto/NBD.
    pub dropout_probability: f64,
    /// True dropout rate μ per day (Pareto/NBD); 0 for BG/NBD and MBG/NBD.
    pub dropout_rate: f64,
    /// Whether the customer was still alive at the end of calibration.
    pub alive_at_calibration_end: bool,
    /// Every occasion, first purchase included, when `record_occasions` is set.
    pub occasions: Vec<Occasion>,
}

/// Simulates `config.customers` customers (in parallel; customer i uses
/// ChaCha8 stream i of the seed, so results do not depend on threads).
pub fn simulate(config: &SimulationConfig) -> Vec<SimulatedCustomer> {
    simulate_process(config, PurchaseProcess::BgNbd(config.purchases))
}

/// The purchase and dropout story to simulate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PurchaseProcess {
    /// BG/NBD: dropout with probability p after each repeat purchase.
    BgNbd(BgNbdParams),
    /// MBG/NBD: dropout with probability p at the first and after each repeat purchase.
    MbgNbd(MbgNbdParams),
    /// Pareto/NBD: an exponential lifetime of rate μ ~ Gamma(s, β).
    ParetoNbd(ParetoNbdParams),
}

/// Like [`simulate`], with `process` in place of `config.purchases`
/// (`PurchaseProcess::BgNbd(config.purchases)` gives the same customers as
/// [`simulate`]).
pub fn simulate_process(
    config: &SimulationConfig,
    process: PurchaseProcess,
) -> Vec<SimulatedCustomer> {
    (0..config.customers)
        .into_par_iter()
        .map(|i| {
            let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
            rng.set_stream(i as u64);
            let acquired_at = match config.acquisition {
                Acquisition::AtStart => 0.0,
                Acquisition::Uniform { window_days } => {
                    let at = rng.random::<f64>() * window_days.min(config.calibration_days);
                    match config.resolution {
                        TimeResolution::Continuous => at,
                        TimeResolution::WholeDays => at.floor(),
                    }
                }
            };
            simulate_process_customer(config, process, acquired_at, &mut rng)
        })
        .collect()
}

/// Simulates one customer acquired at `acquired_at` (days from the start of
/// calibration): purchase times over [0, T + holdout) from the first
/// purchase, the calibration summary and the holdout count.
pub fn simulate_customer(
    config: &SimulationConfig,
    acquired_at: f64,
    rng: &mut impl Rng,
) -> SimulatedCustomer {
    simulate_process_customer(
        config,
        PurchaseProcess::BgNbd(config.purchases),
        acquired_at,
        rng,
    )
}

/// [`simulate_customer`] under `process`.
pub fn simulate_process_customer(
    config: &SimulationConfig,
    process: PurchaseProcess,
    acquired_at: f64,
    rng: &mut impl Rng,
) -> SimulatedCustomer {
    let t = config.calibration_days - acquired_at;
    let end = t + config.holdout_days;
    let beta_draw = |a: f64, b: f64, rng: &mut _| {
        Beta::new(a, b)
            .map(|d: Beta<f64>| d.sample(rng))
            .unwrap_or(0.5)
    };
    // (λ, p, μ); the BG/NBD draws come in the order they always have.
    let (lambda, dropout, dropout_rate) = match process {
        PurchaseProcess::BgNbd(p) => {
            let lambda = gamma_draw(p.r(), p.alpha(), rng);
            (lambda, beta_draw(p.a(), p.b(), rng), 0.0)
        }
        PurchaseProcess::MbgNbd(p) => {
            let lambda = gamma_draw(p.r(), p.alpha(), rng);
            (lambda, beta_draw(p.a(), p.b(), rng), 0.0)
        }
        PurchaseProcess::ParetoNbd(p) => {
            let lambda = gamma_draw(p.r(), p.alpha(), rng);
            (lambda, 0.0, gamma_draw(p.s(), p.beta(), rng))
        }
    };
    let rate = config
        .spend
        .map(|s| (s.p(), gamma_draw(s.q(), s.gamma(), rng)));
    let whole_days = config.resolution == TimeResolution::WholeDays;

    let (mut x, mut t_x, mut holdout, mut spend_total) = (0u64, 0.0, 0u64, 0.0);
    let mut occasions = Vec::new();
    let value_of_occasion =
        |rng: &mut _| rate.map_or(0.0, |(shape, nu)| gamma_draw(shape, nu, rng));
    let first_value = value_of_occasion(rng);
    if config.record_occasions {
        occasions.push(Occasion {
            day: acquired_at,
            value: first_value,
            in_holdout: false,
        });
    }
    let mut last_occasion = 0.0;
    let mut now = 0.0;
    let mut alive_at_end = true;
    // Pareto/NBD: purchases stop at the end of the lifetime.
    let pareto = matches!(process, PurchaseProcess::ParetoNbd(_));
    let lifetime = match process {
        PurchaseProcess::ParetoNbd(_) => Exp::new(dropout_rate)
            .map(|d| d.sample(rng))
            .unwrap_or(f64::INFINITY),
        _ => f64::INFINITY,
    };
    let stop = end.min(lifetime);
    if lifetime < t {
        alive_at_end = false;
    }
    // MBG/NBD: dropout is possible right after the first purchase.
    let dead_at_first =
        matches!(process, PurchaseProcess::MbgNbd(_)) && rng.random::<f64>() < dropout;
    if dead_at_first {
        alive_at_end = false;
    }
    let waiting = Exp::new(lambda).ok().filter(|_| !dead_at_first);
    while let Some(gap) = waiting.as_ref().map(|w| w.sample(rng)) {
        now += gap;
        if now >= stop {
            break;
        }
        let when = if whole_days { now.floor() } else { now };
        if when > last_occasion {
            last_occasion = when;
            let value = value_of_occasion(rng);
            let in_holdout = now >= t;
            if in_holdout {
                holdout += 1;
            } else {
                x += 1;
                t_x = when;
                spend_total += value;
            }
            if config.record_occasions {
                occasions.push(Occasion {
                    day: acquired_at + when,
                    value,
                    in_holdout,
                });
            }
        }
        if !pareto && rng.random::<f64>() < dropout {
            alive_at_end = now >= t;
            break;
        }
    }
    let m = if x > 0 { spend_total / x as f64 } else { 0.0 };
    let summary = CustomerSummary::new(x as f64, t_x, t, m)
        .expect("simulated summaries satisfy the invariants");
    SimulatedCustomer {
        summary,
        holdout_purchases: holdout,
        acquired_at,
        purchase_rate: lambda,
        dropout_probability: dropout,
        dropout_rate,
        alive_at_calibration_end: alive_at_end,
        occasions,
    }
}

/// A Gamma(shape, rate) draw.
fn gamma_draw(shape: f64, rate: f64, rng: &mut impl Rng) -> f64 {
    Gamma::new(shape, 1.0 / rate)
        .map(|g| g.sample(rng))
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SimulationConfig {
        SimulationConfig {
            purchases: BgNbdParams::new(0.5, 20.0, 0.8, 2.5).unwrap(),
            spend: Some(GammaGammaParams::new(6.0, 4.0, 15.0).unwrap()),
            customers: 2_000,
            calibration_days: 365.0,
            holdout_days: 180.0,
            acquisition: Acquisition::Uniform { window_days: 180.0 },
            resolution: TimeResolution::WholeDays,
            seed: 7,
            record_occasions: true,
        }
    }

    #[test]
    fn recorded_occasions_rebuild_the_summary() {
        for c in simulate(&config()) {
            let calibration: Vec<&Occasion> =
                c.occasions.iter().filter(|o| !o.in_holdout).collect();
            assert_eq!(calibration[0].day, c.acquired_at);
            assert_eq!(calibration.len() as f64 - 1.0, c.summary.x());
            let last = calibration.last().unwrap().day;
            assert_eq!(last - c.acquired_at, c.summary.t_x());
            assert_eq!(
                c.occasions.iter().filter(|o| o.in_holdout).count() as u64,
                c.holdout_purchases
            );
            if c.summary.x() > 0.0 {
                let repeat_mean =
                    calibration[1..].iter().map(|o| o.value).sum::<f64>() / c.summary.x();
                assert!((repeat_mean - c.summary.m()).abs() < 1e-9 * repeat_mean);
            }
        }
    }

    #[test]
    fn recording_occasions_does_not_change_the_customers() {
        let recorded = simulate(&config());
        let plain = simulate(&SimulationConfig {
            record_occasions: false,
            ..config()
        });
        assert!(recorded
            .iter()
            .zip(&plain)
            .all(|(a, b)| a.summary == b.summary && b.occasions.is_empty()));
    }

    #[test]
    fn same_seed_gives_same_customers() {
        assert_eq!(simulate(&config()), simulate(&config()));
    }

    #[test]
    fn whole_day_summaries_are_whole_days_within_the_window() {
        for c in simulate(&config()) {
            let s = c.summary;
            assert!(s.t().fract() == 0.0 && s.t_x().fract() == 0.0 && s.t_x() <= s.t());
            assert!(s.t() >= 365.0 - 180.0);
            assert_eq!(s.m() > 0.0, s.x() > 0.0);
        }
    }

    #[test]
    fn mean_spend_matches_the_gamma_gamma_mean() {
        // E[m] over occasions = p·γ/(q−1) = 6·15/3 = 30.
        let customers = simulate(&SimulationConfig {
            customers: 20_000,
            ..config()
        });
        let (sum, n) = customers
            .iter()
            .filter(|c| c.summary.x() > 0.0)
            .fold((0.0, 0.0), |(s, n), c| (s + c.summary.m(), n + 1.0));
        assert!((sum / n - 30.0).abs() < 1.0, "{}", sum / n);
    }
}
