//! Fitting, versioning and reading the population models.
//!
//! A fit reads the grouped summaries as of a day (storage groups them where
//! the data lives), fits the requested purchase families (BG/NBD, MBG/NBD,
//! Pareto/NBD, one thread each) and Gamma-Gamma off the async workers,
//! chooses the family to activate by the selection policy (docs/model.md
//! "Choosing the family"), and stores the outcome as a new version with
//! every family's fit as its candidates: fitted parameters, or the reason
//! the data could not support a fit (the active model then stays as it
//! was). A family that fails is a failed candidate, not a failed fit, while
//! another family succeeds.
//!
//! One fit runs at a time: in this process a mutex orders the fits, and
//! across replicas a PostgreSQL advisory lock, tried (never waited on with
//! a connection held) while the turn is ours. A fit whose caller leaves
//! while it waits for its turn gives up without starting; one that has
//! started finishes in the background (stored, scored and activated) and
//! its answer is discarded.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use clv_model::{
    evaluate_holdout, fit_bgnbd, fit_family, fit_gamma_gamma, BgNbdFit, BgNbdFitInput,
    CustomerSummary as ModelSummary, FitOptions, GammaGammaFitInput, HoldoutEvaluation, ModelError,
    PurchaseFamilyFit,
};

use tokio::{sync::Mutex, task::JoinError};
use tokio_util::sync::CancellationToken;

use super::{
    fit_stages::{FitStage, FitStageMetric, StageClock},
    holdout_selection,
    no_model::NoActiveModel,
    page_token_key::{PageTokenKeyError, PageTokenKeys},
    scoring::ModelEpoch,
};
use crate::{
    domain::{
        CandidateFit, Criterion, FamilyCandidate, FitFailure, FittedModels, ModelSelection,
        ModelVersion, ModelsCursor, NewModelVersion, PurchaseFamily, PurchaseParameters,
        SelectedBy, SpendParameters, TokenError,
    },
    storage::{FitData, HoldoutGroup, ScoringSummary, Storage, StorageError},
};

#[derive(Debug, thiserror::Error)]
pub enum ModelsError {
    /// The active model was asked for before any fit succeeded (NOT_FOUND).
    #[error(transparent)]
    NoActiveModel(#[from] NoActiveModel),
    /// No such version (NOT_FOUND).
    #[error("model version {0} does not exist")]
    NoSuchVersion(i64),
    /// The data cannot support a fit (FAILED_PRECONDITION); the attempt was
    /// stored as `version`.
    #[error(
        "the data cannot support a fit (recorded as failed version {version}; the active model \
         is unchanged): {reason}"
    )]
    FitFailed { version: i64, reason: String },
    /// The calibration data cannot support a fit (FAILED_PRECONDITION).
    #[error("the calibration data cannot support a fit: {0}")]
    CannotEvaluate(#[source] ModelError),
    /// The caller left before the fit's turn came (CANCELLED); nothing was
    /// fitted.
    #[error("the caller left before the fit started; nothing was fitted")]
    Abandoned,
    /// A page token that cannot be read (INVALID_ARGUMENT on `page_token`;
    /// the text follows that name).
    #[error("{0}")]
    BadPageToken(#[source] TokenError),
    /// The numerical work panicked or was cancelled (INTERNAL; logged, not
    /// sent).
    #[error("the {task} task failed")]
    TaskFailed {
        task: &'static str,
        #[source]
        cause: JoinError,
    },
    #[error(transparent)]
    PageTokenKey(#[from] PageTokenKeyError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl ModelsError {
    fn task(task: &'static str) -> impl FnOnce(JoinError) -> Self {
        move |cause| ModelsError::TaskFailed { task, cause }
    }
}

/// A page of ListModels.
#[derive(Debug, Clone)]
pub struct ModelsPage {
    pub models: Vec<ModelVersion>,
    /// The active version, to mark it in the page.
    pub active: Option<i64>,
    /// Empty on the last page.
    pub next_page_token: String,
}

/// A calibration fit and its holdout comparison.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub fit: BgNbdFit,
    pub comparison: HoldoutEvaluation,
    /// Σx over the calibration customers.
    pub repeat_occasions: i64,
    /// The families asked to be compared too, in [`PurchaseFamily::ALL`]
    /// order.
    pub families: Vec<FamilyHoldout>,
}

/// One family's calibration fit and holdout figures, or why it failed.
#[derive(Debug, Clone)]
pub struct FamilyHoldout {
    pub family: PurchaseFamily,
    pub outcome: Result<(CandidateFit, HoldoutFigures), FitFailure>,
}

/// Predicted against actual holdout repeat occasions over all customers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HoldoutFigures {
    pub actual: f64,
    pub predicted: f64,
    /// Mean over customers of |predicted − actual|.
    pub mean_absolute_error: f64,
    /// Pearson correlation over customers of predicted and actual; 0 when
    /// either does not vary.
    pub correlation: f64,
}

/// The holdout figures of `params` over grouped calibration/holdout rows.
pub(super) fn holdout_figures(
    params: &clv_model::PurchaseParams,
    rows: &[HoldoutGroup],
    holdout_days: f64,
) -> Result<HoldoutFigures, ModelError> {
    let mut pairs = Vec::with_capacity(rows.len());
    for row in rows {
        let g = row.calibration;
        let summary = ModelSummary::new(g.x, g.t_x, g.t, 0.0)?;
        let predicted = params.expected_purchases(&summary, holdout_days);
        pairs.push((g.customers as f64, predicted, row.holdout_occasions as f64));
    }
    let n: f64 = pairs.iter().map(|p| p.0).sum();
    let sum = |f: &dyn Fn(&(f64, f64, f64)) -> f64| pairs.iter().map(|p| p.0 * f(p)).sum::<f64>();
    let (predicted, actual) = (sum(&|p| p.1), sum(&|p| p.2));
    let (mean_p, mean_a) = (predicted / n.max(1.0), actual / n.max(1.0));
    let covariance = sum(&|p| (p.1 - mean_p) * (p.2 - mean_a));
    let spread = (sum(&|p| (p.1 - mean_p).powi(2)) * sum(&|p| (p.2 - mean_a).powi(2))).sqrt();
    let correlation = if spread > 0.0 {
        covariance / spread
    } else {
        0.0
    };
    Ok(HoldoutFigures {
        actual,
        predicted,
        mean_absolute_error: sum(&|p| (p.1 - p.2).abs()) / n.max(1.0),
        correlation,
    })
}

/// Actual and predicted holdout purchases of a group of customers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// The group's calibration repeat purchases (`and_more`: at least).
    pub repeat_occasions: u64,
    pub and_more: bool,
    pub customers: u64,
    pub actual: f64,
    pub predicted: f64,
    pub absolute_error: f64,
    /// (predicted − actual) / actual × 100; 0 when nothing happened.
    pub percentage_error: f64,
    pub actual_per_customer: f64,
    pub predicted_per_customer: f64,
}

impl Comparison {
    fn new(
        repeat_occasions: u64,
        and_more: bool,
        customers: u64,
        actual: f64,
        predicted: f64,
    ) -> Self {
        let per = |v: f64| {
            if customers > 0 {
                v / customers as f64
            } else {
                0.0
            }
        };
        Self {
            repeat_occasions,
            and_more,
            customers,
            actual,
            predicted,
            absolute_error: (predicted - actual).abs(),
            percentage_error: if actual > 0.0 {
                (predicted - actual) / actual * 100.0
            } else {
                0.0
            },
            actual_per_customer: per(actual),
            predicted_per_customer: per(predicted),
        }
    }
}

impl Evaluation {
    /// All customers together (repeat occasions do not apply).
    pub fn total(&self) -> Comparison {
        let c = &self.comparison;
        Comparison::new(0, false, c.customers, c.actual_total, c.predicted_total)
    }

    /// By calibration repeat purchases.
    pub fn by_repeat_occasions(&self) -> Vec<Comparison> {
        self.comparison
            .buckets
            .iter()
            .map(|b| {
                let n = b.customers as f64;
                Comparison::new(
                    b.repeat_purchases,
                    b.and_more,
                    b.customers,
                    b.actual_mean * n,
                    b.predicted_mean * n,
                )
            })
            .collect()
    }
}

/// What one fit is asked for: the families (empty: the setting's) and a
/// criterion overriding the setting's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FitChoice {
    pub families: Vec<PurchaseFamily>,
    pub criterion: Option<Criterion>,
}

/// How the family to activate is picked among the fitted ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// The best by the criterion.
    Best(Criterion),
    /// This family (the only one fitted).
    Only(PurchaseFamily, SelectedBy),
}

/// The families to fit and the rule, from the setting and the request:
/// families named by the request are fitted (one alone is activated as
/// `requested`); with none named, a pinned setting fits its family alone
/// (unless the request asks for a criterion), otherwise every family.
fn plan(setting: ModelSelection, choice: &FitChoice) -> (Vec<PurchaseFamily>, Rule) {
    let setting_criterion = match setting {
        ModelSelection::Criterion(c) => c,
        ModelSelection::Pinned(_) => Criterion::Bic,
    };
    let criterion = choice.criterion.unwrap_or(setting_criterion);
    if !choice.families.is_empty() {
        let mut families = choice.families.clone();
        families.sort();
        families.dedup();
        return match families[..] {
            [only] => (families, Rule::Only(only, SelectedBy::Requested)),
            _ => (families, Rule::Best(criterion)),
        };
    }
    match (setting, choice.criterion) {
        (ModelSelection::Pinned(f), None) => (vec![f], Rule::Only(f, SelectedBy::Pinned)),
        _ => (PurchaseFamily::ALL.to_vec(), Rule::Best(criterion)),
    }
}

pub struct Models {
    storage: Storage,
    time_zone: Tz,
    /// CLVD_MODEL_SELECTION.
    selection: ModelSelection,
    /// Bumped after each successful fit.
    epoch: ModelEpoch,
    /// This process's turn to fit: waited for without holding a database
    /// connection, so that waiting fits cannot exhaust the pool.
    turn: Mutex<()>,
    /// Churn risk of the HIGH band (see [`Models::with_high_risk_at`]).
    high_risk_at: f64,
    /// Where each stage of a fit is timed.
    stages: FitStageMetric,
}

/// The HIGH band's default churn risk, the setting's default.
const DEFAULT_HIGH_RISK_AT: f64 = 0.6;

/// How often a fit waiting for another replica's fit tries the lock again.
const FIT_LOCK_RETRY: Duration = Duration::from_millis(250);

/// When the background job refits. `None` turns a trigger off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefitPolicy {
    /// Refit when the newest version is this old.
    pub interval: Option<std::time::Duration>,
    /// Refit when this many transactions arrived since the newest version.
    pub min_new_transactions: Option<u64>,
}

/// What one step of the refit job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefitOutcome {
    /// Another replica holds the fit lock.
    Busy,
    NotDue,
    Fitted {
        version: i64,
        why: String,
    },
    /// The fit failed and was stored as `version`; the active model stays.
    Failed {
        version: i64,
        reason: String,
    },
}

impl Models {
    pub fn new(
        storage: Storage,
        time_zone: Tz,
        epoch: ModelEpoch,
        selection: ModelSelection,
    ) -> Self {
        Self {
            storage,
            time_zone,
            selection,
            epoch,
            turn: Mutex::new(()),
            high_risk_at: DEFAULT_HIGH_RISK_AT,
            stages: FitStageMetric::default(),
        }
    }

    /// The churn risk of the HIGH band, which keeps customers out of the
    /// engaged segments at the next fit (default 0.6, the setting's).
    pub fn with_high_risk_at(mut self, high_risk_at: f64) -> Self {
        self.high_risk_at = high_risk_at;
        self
    }

    /// Observes each fit stage's duration in `stages`.
    pub fn with_fit_stages(mut self, stages: FitStageMetric) -> Self {
        self.stages = stages;
        self
    }

    /// Fits on the data up to the business day of `as_of`, once no other
    /// fit (of any replica) is running. While waiting for its turn it gives
    /// up ([`ModelsError::Abandoned`]) when `caller` is cancelled; once
    /// started, it runs to its end whatever `caller` says.
    pub async fn fit(
        &self,
        as_of: DateTime<Utc>,
        choice: &FitChoice,
        caller: &CancellationToken,
    ) -> Result<ModelVersion, ModelsError> {
        let _turn = tokio::select! {
            biased;
            () = caller.cancelled() => return Err(ModelsError::Abandoned),
            turn = self.turn.lock() => turn,
        };
        let lock = loop {
            if caller.is_cancelled() {
                return Err(ModelsError::Abandoned);
            }
            if let Some(lock) = self.storage.fit_lock(false).await? {
                break lock;
            }
            // Another replica fits: try again soon, holding no connection.
            tokio::select! {
                () = caller.cancelled() => return Err(ModelsError::Abandoned),
                () = tokio::time::sleep(FIT_LOCK_RETRY) => {}
            }
        };
        let result = self.fit_locked(as_of, choice).await;
        lock.release().await?;
        result
    }

    /// Refits if the policy says it is due and no other replica is fitting:
    /// the step of the background job, callable on its own in tests.
    pub async fn refit_if_due(
        &self,
        policy: RefitPolicy,
        now: DateTime<Utc>,
    ) -> Result<RefitOutcome, ModelsError> {
        let Ok(_turn) = self.turn.try_lock() else {
            return Ok(RefitOutcome::Busy);
        };
        let Some(lock) = self.storage.fit_lock(false).await? else {
            return Ok(RefitOutcome::Busy);
        };
        let outcome = match self.due(policy, now).await {
            Ok(None) => Ok(RefitOutcome::NotDue),
            Ok(Some(why)) => match self.fit_locked(now, &FitChoice::default()).await {
                Ok(m) => Ok(RefitOutcome::Fitted {
                    version: m.version,
                    why,
                }),
                Err(ModelsError::FitFailed { version, reason }) => {
                    Ok(RefitOutcome::Failed { version, reason })
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        lock.release().await?;
        outcome
    }

    /// Why a refit is due, if it is. The clock runs from the newest version
    /// of any state, so data that cannot be fitted is not refitted in a loop.
    async fn due(
        &self,
        policy: RefitPolicy,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, ModelsError> {
        let counter = self.storage.transactions_counter().await?;
        let Some(latest) = self.storage.latest_model().await? else {
            return Ok((counter > 0).then(|| "no model has been fitted yet".to_owned()));
        };
        if let Some(interval) = policy.interval {
            if now - latest.created_at
                >= chrono::Duration::from_std(interval).unwrap_or(chrono::Duration::MAX)
            {
                return Ok(Some(format!(
                    "the newest version is older than {}s",
                    interval.as_secs()
                )));
            }
        }
        if let Some(min_new) = policy.min_new_transactions {
            let arrived = counter - latest.fit.transactions_counter.unwrap_or(0);
            if arrived >= min_new as i64 {
                return Ok(Some(format!(
                    "{arrived} transactions arrived since the newest version"
                )));
            }
        }
        Ok(None)
    }

    async fn fit_locked(
        &self,
        as_of: DateTime<Utc>,
        choice: &FitChoice,
    ) -> Result<ModelVersion, ModelsError> {
        let mut clock = StageClock::start(&self.stages);
        let transactions_counter = Some(self.storage.transactions_counter().await?);
        let previous = self.storage.model(None).await?.map(|m| m.version);
        clock.done(FitStage::Prepare, 1);
        // Every customer's summary, read once: grouped for the fit and
        // scored after it. Only the customers with purchases on both sides
        // of the fit's day are grouped by the database, on a second
        // connection meanwhile (none when the fit is as of today).
        let as_of_day = as_of.with_timezone(&self.time_zone).date_naive();
        let (summaries, straddling) = tokio::try_join!(
            self.storage.scoring_summaries(),
            self.storage.fit_data_straddling(as_of_day)
        )?;
        clock.done(FitStage::ReadSummaries, summaries.len());
        let data = tokio::task::spawn_blocking(move || {
            let data = FitData::from_summaries(as_of_day, &summaries, straddling);
            (data, summaries)
        });
        let (data, summaries) = data.await.map_err(ModelsError::task("grouping"))?;
        clock.done(
            FitStage::ReadGroups,
            data.purchase_groups.len() + data.spend_groups.len(),
        );
        let started = Instant::now();
        let (families, rule) = plan(self.selection, choice);
        let holdout = match rule {
            Rule::Best(Criterion::Holdout) => {
                let span = data.purchase_groups.iter().map(|g| g.t).fold(0.0, f64::max);
                holdout_selection::read_holdout(&self.storage, as_of_day, span).await?
            }
            _ => None,
        };
        let (outcome, candidates, counts) =
            tokio::task::spawn_blocking(move || fit_all(&data, &families, rule, holdout))
                .await
                .map_err(ModelsError::task("fit"))?;
        clock.done(FitStage::Fit, counts.customers.max(0) as usize);
        let new = NewModelVersion {
            as_of,
            outcome,
            customers: counts.customers,
            spend_customers: counts.spend_customers,
            repeat_occasions: counts.repeat_occasions,
            fit_duration: started.elapsed(),
            transactions_counter,
            candidates,
        };
        let stored = self.storage.insert_model(&new).await?;
        clock.version(stored.version);
        clock.done(FitStage::StoreVersion, 1);
        match &stored.fit.outcome {
            Ok(fitted) => {
                // Scores of the whole base under the new version. When they
                // cannot be stored the version is never activated: the
                // previous one stays active, with its scores.
                if let Err(e) = self
                    .score_population(stored.version, fitted.clone(), summaries, &mut clock)
                    .await
                {
                    tracing::error!(version = stored.version, error = %e, "scoring the customer base failed; the active model stays");
                    return Err(e);
                }
                // Active only now, with its scores in place.
                self.storage.activate_model(stored.version).await?;
                self.epoch.bump();
                // The version's segment and value-curve aggregates, kept for
                // GetSegmentReport, computed now off the fit's critical path
                // so that the first report after a fit does not wait for
                // them (a report that comes first computes them itself).
                let storage = self.storage.clone();
                let version = stored.version;
                tokio::spawn(async move {
                    if let Err(error) = storage.score_aggregates(version).await {
                        tracing::warn!(version, %error, "keeping the score aggregates failed");
                    }
                });
                // The previous version's scores stay for pages already being
                // read; older ones go.
                let dropped = self
                    .storage
                    .drop_scores_before(previous.unwrap_or(stored.version))
                    .await?;
                clock.done(FitStage::Activate, dropped.len());
                tracing::info!(
                    version = stored.version,
                    customers = counts.customers,
                    seconds = new.fit_duration.as_secs_f64(),
                    "model fitted"
                );
                Ok(stored)
            }
            Err(reason) => {
                tracing::warn!(version = stored.version, %reason, "model fit failed; the active model stays");
                Err(ModelsError::FitFailed {
                    version: stored.version,
                    reason: reason.to_string(),
                })
            }
        }
    }

    /// Fits BG/NBD on the data up to the calibration day and compares its
    /// predictions for the holdout with what happened; kept per active
    /// version and request days ([`super::evaluation_cache`]).
    pub async fn evaluate(
        &self,
        calibration_end: DateTime<Utc>,
        holdout_end: DateTime<Utc>,
        families: &[PurchaseFamily],
    ) -> Result<Evaluation, ModelsError> {
        let mut families = families.to_vec();
        families.sort();
        families.dedup();
        let calibration_day = calibration_end.with_timezone(&self.time_zone).date_naive();
        let holdout_day = holdout_end.with_timezone(&self.time_zone).date_naive();
        let days = (calibration_day, holdout_day);
        super::evaluation_cache::kept_or_computed(&self.storage, days, &families, || {
            self.compute_evaluation(days, families.clone())
        })
        .await
    }

    /// [`Models::evaluate`]'s computation (nothing is stored).
    async fn compute_evaluation(
        &self,
        (calibration_day, holdout_day): (chrono::NaiveDate, chrono::NaiveDate),
        families: Vec<PurchaseFamily>,
    ) -> Result<Evaluation, ModelsError> {
        let rows = self
            .storage
            .holdout_data(calibration_day, holdout_day)
            .await?;
        let holdout_days = (holdout_day - calibration_day).num_days() as f64;
        tokio::task::spawn_blocking(move || -> Result<Evaluation, ModelError> {
            let calibration = || rows.iter().map(|r| r.calibration);
            let groups = calibration().map(|g| (g.x, g.t_x, g.t, g.customers));
            let input = BgNbdFitInput::from_groups(groups)?;
            let options = FitOptions::default();
            let fit = fit_bgnbd(&input, &options)?;
            let families = families
                .iter()
                .map(|&family| {
                    let outcome = fit_family(family, &input, &options).and_then(|f| {
                        let figures = holdout_figures(&f.params, &rows, holdout_days)?;
                        Ok((candidate_fit(&f), figures))
                    });
                    FamilyHoldout {
                        family,
                        outcome: outcome.map_err(FitFailure::new),
                    }
                })
                .collect();
            let mut customers = Vec::new();
            for row in &rows {
                let g = row.calibration;
                let summary = ModelSummary::new(g.x, g.t_x, g.t, 0.0)?;
                let customer = (summary, row.holdout_occasions);
                customers.extend(std::iter::repeat_n(customer, g.customers as usize));
            }
            let comparison = evaluate_holdout(&fit.params, &customers, holdout_days, 7);
            let repeat_occasions = calibration().map(|g| g.x as i64 * g.customers as i64).sum();
            Ok(Evaluation {
                fit,
                comparison,
                repeat_occasions,
                families,
            })
        })
        .await
        .map_err(ModelsError::task("evaluation"))?
        .map_err(ModelsError::CannotEvaluate)
    }

    async fn score_population(
        &self,
        version: i64,
        fitted: FittedModels,
        summaries: Vec<ScoringSummary>,
        clock: &mut StageClock<'_>,
    ) -> Result<(), ModelsError> {
        let started = Instant::now();
        let today = Utc::now().with_timezone(&self.time_zone).date_naive();
        let high_risk_at = self.high_risk_at;
        let (rows, skipped) = tokio::task::spawn_blocking(move || {
            super::population::population_scores(version, &fitted, today, summaries, high_risk_at)
        })
        .await
        .map_err(ModelsError::task("scoring"))?
        .map_err(ModelsError::CannotEvaluate)?;
        clock.done(FitStage::Score, rows.len());
        self.storage.write_scores(version, &rows).await?;
        clock.done(FitStage::WriteScores, rows.len());
        tracing::info!(
            version,
            customers = rows.len(),
            skipped,
            seconds = started.elapsed().as_secs_f64(),
            "customer base scored"
        );
        Ok(())
    }

    /// A version, or the active one, and the active version.
    pub async fn get(
        &self,
        version: Option<i64>,
    ) -> Result<(ModelVersion, Option<i64>), ModelsError> {
        let Some(model) = self.storage.model(version).await? else {
            return Err(match version {
                Some(v) => ModelsError::NoSuchVersion(v),
                None => NoActiveModel::read(&self.storage).await?.into(),
            });
        };
        Ok((model, self.active_version().await?))
    }

    /// A page of versions, newest first, after the one `page_token` (empty:
    /// from the newest) was issued for.
    pub async fn list(
        &self,
        keys: &PageTokenKeys,
        page_token: &str,
        page_size: usize,
    ) -> Result<ModelsPage, ModelsError> {
        let before = if page_token.is_empty() {
            None
        } else {
            Some(
                ModelsCursor::open(keys.key().await?, page_token)
                    .map_err(ModelsError::BadPageToken)?
                    .before,
            )
        };
        let mut models = self.storage.models(before, page_size as i64 + 1).await?;
        let more = models.len() > page_size;
        models.truncate(page_size);
        let active = self.active_version().await?;
        let next_page_token = match (more, models.last()) {
            (true, Some(last)) => ModelsCursor {
                before: last.version,
            }
            .seal(keys.key().await?),
            _ => String::new(),
        };
        Ok(ModelsPage {
            models,
            active,
            next_page_token,
        })
    }

    pub async fn active_version(&self) -> Result<Option<i64>, ModelsError> {
        Ok(self.storage.model(None).await?.map(|m| m.version))
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    customers: i64,
    spend_customers: i64,
    repeat_occasions: i64,
}

/// Every family's fit, the family chosen by `rule`, and Gamma-Gamma, on
/// grouped data (CPU-bound: runs on a blocking thread; the families fit on
/// one thread each), with each family's holdout figures when `holdout`
/// (rows, days) is given.
fn fit_all(
    data: &FitData,
    families: &[PurchaseFamily],
    rule: Rule,
    holdout: Option<(Vec<HoldoutGroup>, i64)>,
) -> (
    Result<FittedModels, FitFailure>,
    Vec<FamilyCandidate>,
    Counts,
) {
    let counts = Counts {
        customers: data
            .purchase_groups
            .iter()
            .map(|g| g.customers as i64)
            .sum(),
        spend_customers: data.spend_groups.iter().map(|g| g.customers as i64).sum(),
        repeat_occasions: data
            .purchase_groups
            .iter()
            .map(|g| g.x as i64 * g.customers as i64)
            .sum(),
    };
    let options = FitOptions::default();
    let input = match BgNbdFitInput::from_groups(
        data.purchase_groups
            .iter()
            .map(|g| (g.x, g.t_x, g.t, g.customers)),
    ) {
        Ok(input) => input,
        Err(e) => return (Err(FitFailure::new(e)), Vec::new(), counts),
    };
    let (input, options_ref) = (&input, &options);
    let fits: Vec<Result<PurchaseFamilyFit, ModelError>> = std::thread::scope(|scope| {
        let running: Vec<_> = families
            .iter()
            .map(|&f| scope.spawn(move || fit_family(f, input, options_ref)))
            .collect();
        running
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut candidates: Vec<FamilyCandidate> = families
        .iter()
        .zip(&fits)
        .map(|(&family, fit)| FamilyCandidate {
            family,
            outcome: fit.as_ref().map(candidate_fit).map_err(FitFailure::new),
        })
        .collect();
    if let Some((rows, days)) = &holdout {
        holdout_selection::add_holdout_figures(&mut candidates, rows, *days);
    }
    let chosen = match rule {
        Rule::Best(criterion) => holdout_selection::choose(&candidates, criterion),
        Rule::Only(family, by) => families
            .iter()
            .position(|&f| f == family)
            .filter(|&i| fits[i].is_ok())
            .map(|i| (i, by)),
    };
    let Some((index, selected_by)) = chosen else {
        return (Err(every_family_failed(&candidates)), candidates, counts);
    };
    let Ok(purchases) = &fits[index] else {
        return (Err(every_family_failed(&candidates)), candidates, counts);
    };
    let spend = || -> Result<_, ModelError> {
        fit_gamma_gamma(
            &GammaGammaFitInput::from_groups(
                data.spend_groups.iter().map(|g| (g.x, g.m, g.customers)),
            )?,
            &options,
        )
    };
    let spend = match spend() {
        Ok(spend) => spend,
        Err(e) => return (Err(FitFailure::new(e)), candidates, counts),
    };
    let s = spend.params;
    let family = purchases.family();
    let fitted = FittedModels {
        purchases: purchases.params.into(),
        purchases_standard_errors: purchases
            .standard_errors
            .map(|values| PurchaseParameters { family, values }),
        selected_by: Some(selected_by),
        log_parameter_covariance: purchases.log_parameter_covariance,
        log_likelihood_days: purchases.report.log_likelihood,
        iterations: purchases.report.iterations,
        converged: purchases.report.converged,
        spend: SpendParameters {
            p: s.p(),
            q: s.q(),
            gamma: s.gamma(),
        },
        spend_standard_errors: spend.standard_errors.map(|se| SpendParameters {
            p: se.p,
            q: se.q,
            gamma: se.gamma,
        }),
        spend_log_parameter_covariance: spend.log_parameter_covariance,
        spend_log_likelihood: spend.report.log_likelihood,
        frequency_spend_correlation: spend.frequency_spend_correlation,
    };
    (Ok(fitted), candidates, counts)
}

/// A successful family fit as a candidate (AIC and BIC in days).
fn candidate_fit(fit: &PurchaseFamilyFit) -> CandidateFit {
    CandidateFit {
        params: fit.params.into(),
        log_likelihood_days: fit.report.log_likelihood,
        aic_days: fit.aic(),
        bic_days: fit.bic(),
        converged: fit.report.converged,
        iterations: fit.report.iterations,
        holdout: None,
    }
}

/// Why no family could be activated: the one reason when every family
/// failed for the same one (or only one was fitted), else each family's.
fn every_family_failed(candidates: &[FamilyCandidate]) -> FitFailure {
    let reasons: Vec<(PurchaseFamily, &str)> = candidates
        .iter()
        .filter_map(|c| Some((c.family, c.outcome.as_ref().err()?.as_str())))
        .collect();
    match reasons.first() {
        None => FitFailure::new("no purchase family was fitted"),
        Some((_, first)) if reasons.iter().all(|(_, r)| r == first) => FitFailure::new(first),
        Some(_) => FitFailure::new(format!(
            "no purchase family could be fitted: {}",
            reasons
                .iter()
                .map(|(f, r)| format!("{}: {r}", f.paper_name()))
                .collect::<Vec<_>>()
                .join("; ")
        )),
    }
}
