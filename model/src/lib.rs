//! Pure numerics of customer value: the BG/NBD purchase and dropout model
//! (Fader, Hardie & Lee 2005, Marketing Science 24(2)) and the Gamma-Gamma
//! spend model (Fader, Hardie & Lee 2005, JMR 42(4)), fitted by maximum
//! likelihood on grouped customer summaries, and the predictions built on
//! them (P(alive), P(no purchase in a window), expected purchases, expected
//! spend, discounted value). No I/O, no async, no database: the service
//! feeds summaries in and stores what comes out.
//!
//! Time is in days (α is per day; `alpha_weeks` reports per week); money is
//! `f64` in currency units here, because predictions are real numbers.
//!
//! # Layout
//! - [`special`]: ln Γ, ψ, ln B, ln ₂F₁ (log-space series, Euler transform).
//! - [`summary`]: [`CustomerSummary`] (x, t_x, T, m), validated, and grouping.
//! - [`bgnbd`]: [`BgNbdParams`] and its predictions, [`BgNbdFitInput`], [`fit_bgnbd`].
//! - [`mbgnbd`]: [`MbgNbdParams`] (Batislam et al. 2007) and its predictions, [`fit_mbgnbd`].
//! - [`pareto_nbd`]: [`ParetoNbdParams`] (Schmittlein et al. 1987) and its
//!   predictions, [`fit_pareto_nbd`]; both new families fit the same
//!   [`BgNbdFitInput`] through `purchase_fit` (the grouped likelihood they share).
//! - [`count_distribution`]: [`PurchaseCountDistribution`], P(X(t) = n) for a new
//!   customer and P(Y(t) = n | history) for all three families.
//! - [`family`]: [`PurchaseFamily`], [`PurchaseParams`] (one family's
//!   parameters, every prediction dispatched to it) and [`fit_family`].
//! - [`interval`]: [`ScoreIntervals`] on one customer's scores from the fit's
//!   [`ModelUncertainty`] (delta method; [`ParameterDraws`] for comparison).
//! - [`next_purchase`]: [`NextPurchase`], median and mean time to the next
//!   purchase if alive, P(a purchase within a window).
//! - [`gamma_gamma`]: [`GammaGammaParams`], [`GammaGammaFitInput`], [`fit_gamma_gamma`].
//! - [`value`]: [`ClvModel`] scoring one or all customers, [`customer_value`].
//! - [`fit`]: [`FitOptions`], [`FitReport`], the L-BFGS driver and standard errors;
//!   `fitted`: the start and end both models' fits share (warm start, limit on
//!   log-parameters, convergence, standard errors, report).
//! - [`prec`]: every tolerance and numerical limit, stated once.
//! - [`error`]: [`ModelError`], messages fit to show to users.
//! - [`evaluate`]: calibration/holdout comparison, [`evaluate_holdout`].
//! - [`mod@simulate`]: a seeded simulator of the models' story
//!   ([`simulate_process`] for MBG/NBD and Pareto/NBD).
//!
//! # Example
//! ```
//! use clv_model::*;
//! // Customers simulated from known parameters, standing in for real ones.
//! let config = SimulationConfig {
//!     purchases: BgNbdParams::new(0.5, 20.0, 0.8, 2.5)?,
//!     spend: Some(GammaGammaParams::new(6.0, 4.0, 15.0)?),
//!     customers: 5_000,
//!     calibration_days: 365.0,
//!     holdout_days: 0.0,
//!     acquisition: Acquisition::Uniform { window_days: 300.0 },
//!     resolution: TimeResolution::WholeDays,
//!     seed: 1,
//!     record_occasions: false,
//! };
//! let summaries: Vec<CustomerSummary> = simulate(&config).into_iter().map(|c| c.summary).collect();
//!
//! // Fit from grouped rows (x, t_x, T, count), as SQL GROUP BY returns them,
//! // and the spend model from rows (x, m, count).
//! let rows = group_purchases(&summaries).into_iter().map(|g| (g.x, g.t_x, g.t, g.count));
//! let purchases = fit_bgnbd(&BgNbdFitInput::from_groups(rows)?, &FitOptions::default())?;
//! let spend_rows = group_spend(&summaries).into_iter().map(|g| (g.x, g.m, g.count));
//! let spend = fit_gamma_gamma(&GammaGammaFitInput::from_groups(spend_rows)?, &FitOptions::default())?;
//! println!("r = {}, alpha = {} weeks", purchases.params.r(), purchases.params.alpha_weeks());
//!
//! // Score one customer: 2 repeat occasions, last on day 30, observed 200 days.
//! let model = ClvModel { purchases: purchases.params.into(), spend: spend.params };
//! let score = model.score(&CustomerSummary::new(2.0, 30.0, 200.0, 25.0)?, &ScoreOptions::default())?;
//! assert!(score.probability_alive > 0.0 && score.predicted_value > 0.0);
//! # Ok::<(), clv_model::ModelError>(())
//! ```

pub mod bgnbd;
pub mod count_distribution;
pub mod error;
pub mod evaluate;
pub mod family;
pub mod fit;
mod fitted;
pub mod gamma_gamma;
mod hessian;
pub mod interval;
pub mod mbgnbd;
pub mod next_purchase;
mod params;
pub mod pareto_nbd;
pub mod prec;
mod purchase_fit;
pub mod simulate;
pub mod special;
pub mod summary;
pub mod value;

pub use bgnbd::{
    fit_bgnbd, BgNbdFit, BgNbdFitInput, BgNbdParams, BgNbdStandardErrors, DAYS_PER_WEEK,
};
pub use count_distribution::PurchaseCountDistribution;
pub use error::{ModelError, ModelKind};
pub use evaluate::{evaluate_holdout, HoldoutBucket, HoldoutEvaluation};
pub use family::{fit_family, PurchaseFamily, PurchaseFamilyFit, PurchaseParams, UnknownFamily};
pub use fit::{FitOptions, FitReport};
pub use gamma_gamma::{
    fit_gamma_gamma, GammaGammaFit, GammaGammaFitInput, GammaGammaParams, GammaGammaStandardErrors,
};
pub use interval::{
    Interval, ModelUncertainty, ParameterDraws, ScoreIntervals, DEFAULT_INTERVAL_LEVEL,
};
pub use mbgnbd::{fit_mbgnbd, MbgNbdFit, MbgNbdParams, MbgNbdStandardErrors};
pub use next_purchase::NextPurchase;
pub use pareto_nbd::{fit_pareto_nbd, ParetoNbdFit, ParetoNbdParams, ParetoNbdStandardErrors};
pub use simulate::{
    simulate, simulate_customer, simulate_process, simulate_process_customer, Acquisition,
    Occasion, PurchaseProcess, SimulatedCustomer, SimulationConfig, TimeResolution,
};
pub use summary::{group_purchases, group_spend, CustomerSummary, PurchaseGroup, SpendGroup};
pub use value::{
    customer_value, discounted_expected_purchases, ClvModel, CustomerScore, ScoreOptions,
    DAYS_PER_MODEL_MONTH,
};
