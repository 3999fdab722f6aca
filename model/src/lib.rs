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
//! - [`gamma_gamma`]: [`GammaGammaParams`], [`GammaGammaFitInput`], [`fit_gamma_gamma`].
//! - [`value`]: [`ClvModel`] scoring one or all customers, [`customer_value`].
//! - [`fit`]: [`FitOptions`], [`FitReport`], the L-BFGS driver and standard errors.
//! - [`error`]: [`ModelError`], messages fit to show to users.
//! - [`simulate`]: a seeded simulator of the models' story.
//!
//! # Example
//! ```
//! use clv_model::{fit_bgnbd, BgNbdFitInput, FitOptions};
//! // Grouped rows (x, t_x, T, count), as from SQL GROUP BY.
//! let input = BgNbdFitInput::from_groups([
//!     (0.0, 0.0, 300.0, 40), (1.0, 100.0, 300.0, 12), (3.0, 250.0, 290.0, 7),
//!     (2.0, 40.0, 310.0, 9), (0.0, 0.0, 200.0, 30), (5.0, 180.0, 200.0, 2),
//! ])?;
//! let fit = fit_bgnbd(&input, &FitOptions::default())?;
//! assert!(fit.report.converged);
//! # Ok::<(), clv_model::ModelError>(())
//! ```

pub mod bgnbd;
pub mod error;
pub mod fit;
pub mod gamma_gamma;
pub mod simulate;
pub mod special;
pub mod summary;
pub mod value;

pub use bgnbd::{fit_bgnbd, BgNbdFit, BgNbdFitInput, BgNbdParams, BgNbdStandardErrors, DAYS_PER_WEEK};
pub use error::{ModelError, ModelKind};
pub use fit::{FitOptions, FitReport};
pub use gamma_gamma::{fit_gamma_gamma, GammaGammaFit, GammaGammaFitInput, GammaGammaParams, GammaGammaStandardErrors};
pub use simulate::{simulate, simulate_customer, Acquisition, SimulatedCustomer, SimulationConfig, TimeResolution};
pub use summary::{group_purchases, group_spend, CustomerSummary, PurchaseGroup, SpendGroup};
pub use value::{customer_value, discounted_expected_purchases, ClvModel, CustomerScore, ScoreOptions, DAYS_PER_MODEL_MONTH};
