//! Scoring one customer with the active model: P(alive), churn risk and
//! band, P(no purchase in a window), expected purchases and spend, and the
//! discounted value over a horizon.
//!
//! The active model is cached and re-read from the database at most every
//! [`MODEL_REFRESH`], so every replica scores with a new version within
//! seconds of its fit. The customer's summary is read on every call, so a
//! score always includes the newest transaction; concurrent single reads
//! share a query ([`PointReads`]). Scores as of a past instant, or with a
//! named version, take a separate path ([`point_in_time`]).
//!
//! Every prediction carries central intervals at the requested level when
//! the version stored its parameter covariances ([`PredictionIntervals`],
//! docs/definitions.md), and the expected time to the next purchase.

mod point_in_time;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use clv_model::{
    ClvModel, CustomerSummary as ModelSummary, Interval, ModelError, ModelUncertainty,
    NextPurchase, PurchaseFamily, ScoreOptions,
};
use tokio::sync::RwLock;

use super::{
    batcher::BackendError,
    no_model::NoActiveModel,
    page_token_key::{PageTokenKeyError, PageTokenKeys},
    point_reads::PointReads,
};
use crate::{
    domain::{
        AtRiskCursor, CustomerId, CustomerSummary, ModelVersion, PopulationScore, Segmentation,
        TokenError, Total,
    },
    storage::{Storage, StorageError},
};

pub use point_in_time::{LookAhead, PointInTime};

/// How stale the cached active model may get.
pub const MODEL_REFRESH: Duration = Duration::from_secs(2);

/// Churn-risk bands: `churn_risk` (1 − P(alive)) at or above a threshold.
#[derive(Debug, Clone, Copy)]
pub struct ChurnPolicy {
    pub medium_at: f64,
    pub high_at: f64,
    pub no_purchase_window_days: u32,
    /// The least P(alive) of a customer ListAtRiskCustomers lists.
    pub at_risk_min_probability_alive: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Band {
    Low,
    Medium,
    High,
}

impl ChurnPolicy {
    pub fn band(&self, churn_risk: f64) -> Band {
        if churn_risk >= self.high_at {
            Band::High
        } else if churn_risk >= self.medium_at {
            Band::Medium
        } else {
            Band::Low
        }
    }
}

/// Predictions for one customer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    pub model_version: i64,
    /// The purchase family of that version.
    pub family: PurchaseFamily,
    pub probability_alive: f64,
    pub churn_risk: f64,
    pub band: Band,
    pub probability_no_purchase: f64,
    pub expected_purchases: f64,
    pub expected_spend: f64,
    pub predicted_value: f64,
    /// What the family cannot see in this history, said in the answer.
    pub caveat: Option<Caveat>,
    /// Central intervals on the scores; `None` when the version stored no
    /// purchase covariance, or the intervals are not finite.
    pub intervals: Option<PredictionIntervals>,
    /// When the next purchase comes (within the churn window).
    pub next_purchase: NextPurchase,
}

/// Central intervals on one prediction's scores at `level`
/// (docs/definitions.md, "Intervals on scores").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PredictionIntervals {
    /// In (0, 1).
    pub level: f64,
    /// P(alive): purchase-parameter uncertainty.
    pub probability_alive: Interval,
    /// The repeat purchase count over the horizon: the count's own central
    /// interval at the fitted parameters, widened to hold
    /// `expected_purchases` (so it contains the point estimate); `None`
    /// when only P(alive)'s was asked for.
    pub purchases: Option<Interval>,
    /// The mean count over the horizon: purchase-parameter uncertainty;
    /// `None` as `purchases`.
    pub expected_purchases: Option<Interval>,
    /// Spend per occasion: Gamma-Gamma parameter uncertainty; `None` when
    /// the version stored no Gamma-Gamma covariance.
    pub expected_spend: Option<Interval>,
    /// Discounted value: both fits' uncertainty; `None` as `expected_spend`.
    pub predicted_value: Option<Interval>,
}

/// Which intervals a score carries, and at what level (in (0, 1), checked
/// by the caller).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntervalRequest {
    pub level: f64,
    /// Every score's (a customer value), or P(alive)'s alone (a churn
    /// risk, whose fast path skips the costlier ones).
    pub all: bool,
}

/// The stored covariances of a version's log-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Uncertainty {
    purchases: [[f64; 4]; 4],
    /// `None` on versions stored before the Gamma-Gamma one was kept.
    spend: Option<[[f64; 3]; 3]>,
}

/// A limit of the model family that a score must say out loud.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Caveat {
    /// BG/NBD lets a customer drop out only right after a repeat purchase,
    /// so a customer without one is alive by assumption, however long ago
    /// they bought.
    #[error(
        "no repeat purchase: BG/NBD lets customers drop out only after a repeat purchase, so \
         probability_alive is 1 by the model's assumption, not by evidence; \
         probability_no_purchase is the churn signal for this customer"
    )]
    AliveByAssumption,
}

impl ChurnPolicy {
    /// Whether a prediction puts the customer on the at-risk list: the
    /// HIGH band, and still likely enough to be reachable.
    pub fn at_risk(&self, p: &Prediction) -> bool {
        p.band == Band::High && p.probability_alive >= self.at_risk_min_probability_alive
    }
}

/// Why a customer's score has no prediction (the text is sent as the
/// answer's note).
#[derive(Debug, Clone, thiserror::Error)]
pub enum NoPrediction {
    #[error(transparent)]
    NoActiveModel(#[from] NoActiveModel),
    /// A point-in-time score with no version fitted as of its instant.
    #[error(
        "no model was fitted as of {0} or earlier: call ModelService.FitModel with an as_of \
         at or before it, or name a fitted version in model_version"
    )]
    NoModelAsOf(DateTime<Utc>),
    #[error("model version {0} is unusable")]
    UnusableModel(i64),
    /// The model cannot score this customer's history.
    #[error("{0}")]
    Unscorable(#[from] ModelError),
}

/// A customer's score: the summary, and predictions when a model exists.
#[derive(Debug, Clone)]
pub struct Score {
    pub as_of: DateTime<Utc>,
    pub summary: CustomerSummary,
    /// RFM, segment and tier at the active model's fit.
    pub segmentation: Option<crate::domain::Segmentation>,
    pub prediction: Result<Prediction, NoPrediction>,
    /// A named version fitted on data after a point-in-time score's
    /// instant (`None` on the live path).
    pub look_ahead: Option<LookAhead>,
}

impl Score {
    /// Net revenue per purchase.
    pub fn average_order_value(&self) -> Total {
        let s = &self.summary;
        s.net_revenue
            .div_trunc(u64::try_from(s.purchase_count).unwrap_or(1))
    }

    /// Historical plus predicted value, currency units; `None` without a
    /// prediction (the total is then the historical value, exactly).
    pub fn predicted_total_value(&self) -> Option<f64> {
        let p = self.prediction.as_ref().ok()?;
        Some(self.summary.net_revenue.nanos() as f64 / 1e9 + p.predicted_value)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScoringError {
    /// NOT_FOUND.
    #[error("customer {0} has no recorded purchase")]
    NotFound(CustomerId),
    /// A listing of scores before any fit (FAILED_PRECONDITION).
    #[error(transparent)]
    NoActiveModel(#[from] NoActiveModel),
    /// A named model version that does not exist (NOT_FOUND).
    #[error("model version {0} does not exist")]
    NoSuchVersion(i64),
    /// A named model version whose fit failed (FAILED_PRECONDITION).
    #[error("model version {version} failed to fit ({failure}): name a version that fitted")]
    FailedVersion { version: i64, failure: String },
    /// A page token that cannot be read (INVALID_ARGUMENT on
    /// `page_token`; the texts of the token variants follow that name).
    #[error("{0}")]
    BadPageToken(#[from] TokenError),
    /// A page token of a listing with other filters (INVALID_ARGUMENT).
    #[error("was issued for other filters")]
    TokenForOtherFilters,
    /// A page token of a version whose scores are gone (INVALID_ARGUMENT).
    /// The text fits a violation description whole (160 bytes).
    #[error(
        "names model version {0}, whose scores are gone (two newer versions were fitted) or \
         never existed: start the listing again without a token"
    )]
    UnlistableVersion(i64),
    #[error(transparent)]
    PageTokenKey(#[from] PageTokenKeyError),
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl From<StorageError> for ScoringError {
    fn from(e: StorageError) -> Self {
        ScoringError::Backend(e.into())
    }
}

/// What ListAtRiskCustomers asks for, its fields checked.
#[derive(Debug, Clone, PartialEq)]
pub struct AtRiskQuery {
    pub page_size: usize,
    /// `None`: the policy's high band.
    pub min_churn_risk: Option<f64>,
    pub min_predicted_value: f64,
    /// Empty: the first page.
    pub page_token: String,
}

/// A page of at-risk customers.
#[derive(Debug, Clone)]
pub struct AtRiskPage {
    pub customers: Vec<PopulationScore>,
    /// Empty on the last page.
    pub next_page_token: String,
    /// The version the whole listing reads.
    pub version: i64,
    /// That version's purchase family.
    pub family: Option<PurchaseFamily>,
}

#[derive(Clone, Copy)]
struct CachedModel {
    version: i64,
    model: Result<ClvModel, ()>,
    /// `None` when the version stored no purchase covariance.
    uncertainty: Option<Uncertainty>,
}

/// Bumped by this process's fits, so that its own scoring cache reloads at
/// once (other replicas reload within [`MODEL_REFRESH`]).
#[derive(Debug, Clone, Default)]
pub struct ModelEpoch(Arc<std::sync::atomic::AtomicU64>);

impl ModelEpoch {
    pub fn bump(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

pub struct Scoring {
    storage: Storage,
    point_reads: PointReads,
    time_zone: Tz,
    policy: ChurnPolicy,
    epoch: ModelEpoch,
    /// When the model was read, at which epoch, and what it was.
    cache: RwLock<Option<(Instant, u64, Option<CachedModel>)>>,
}

impl Scoring {
    /// `read_slots`: see [`PointReads::start`].
    pub fn new(
        storage: Storage,
        time_zone: Tz,
        policy: ChurnPolicy,
        epoch: ModelEpoch,
        read_slots: usize,
    ) -> Arc<Self> {
        Arc::new(Self {
            point_reads: PointReads::start(storage.clone(), read_slots),
            storage,
            time_zone,
            policy,
            epoch,
            cache: RwLock::new(None),
        })
    }

    pub fn policy(&self) -> ChurnPolicy {
        self.policy
    }

    async fn active_model(&self) -> Result<Option<CachedModel>, StorageError> {
        let epoch = self.epoch.get();
        let fresh_enough = |c: &Option<(Instant, u64, Option<CachedModel>)>| match c {
            Some((loaded, at_epoch, model))
                if loaded.elapsed() < MODEL_REFRESH && *at_epoch == epoch =>
            {
                Some(*model)
            }
            _ => None,
        };
        if let Some(model) = fresh_enough(&*self.cache.read().await) {
            return Ok(model);
        }
        // One caller reloads; the others wait for its answer.
        let mut cache = self.cache.write().await;
        if let Some(model) = fresh_enough(&cache) {
            return Ok(model);
        }
        let fresh = self.storage.model(None).await?.as_ref().and_then(usable);
        *cache = Some((Instant::now(), epoch, fresh));
        Ok(fresh)
    }

    /// Scores a customer now, over `options`' horizon and discount rate,
    /// with intervals at `level` (in (0, 1), checked by the caller).
    pub async fn score(
        &self,
        id: &CustomerId,
        options: ScoreOptions,
        level: IntervalRequest,
    ) -> Result<Score, ScoringError> {
        let model = self.active_model().await?;
        let (summary, segmentation) = self
            .point_reads
            .read(id.clone(), model.map(|m| m.version))
            .await?
            .ok_or_else(|| ScoringError::NotFound(id.clone()))?;
        let no_model = self.why_no_model(model).await?;
        Ok(self.score_summary(summary, segmentation, model, &no_model, (options, level)))
    }

    /// Scores several customers with one read: the scores in the order of
    /// `ids` (first occurrence), and the ids with nothing recorded.
    pub async fn score_many(
        &self,
        ids: &[CustomerId],
        options: ScoreOptions,
        level: IntervalRequest,
    ) -> Result<(Vec<Score>, Vec<CustomerId>), ScoringError> {
        let model = self.active_model().await?;
        let mut found: std::collections::HashMap<
            CustomerId,
            (CustomerSummary, Option<Segmentation>),
        > = self
            .storage
            .summaries_with_segmentation(ids, model.map(|m| m.version))
            .await?
            .into_iter()
            .map(|(s, seg)| (s.customer_id.clone(), (s, seg)))
            .collect();
        let no_model = self.why_no_model(model).await?;
        let (mut scores, mut unknown) = (Vec::new(), Vec::new());
        let mut seen = std::collections::HashSet::new();
        for id in ids.iter().filter(|id| seen.insert(*id)) {
            match found.remove(id) {
                Some((summary, segmentation)) => scores.push(self.score_summary(
                    summary,
                    segmentation,
                    model,
                    &no_model,
                    (options, level),
                )),
                None => unknown.push(id.clone()),
            }
        }
        Ok((scores, unknown))
    }

    /// A page of at-risk customers, by value at risk. A listing stays on
    /// the version it started with; a new version's scores are a new
    /// listing.
    pub async fn list_at_risk(
        &self,
        keys: &PageTokenKeys,
        query: AtRiskQuery,
    ) -> Result<AtRiskPage, ScoringError> {
        let AtRiskQuery {
            page_size,
            min_churn_risk,
            min_predicted_value,
            page_token,
        } = query;
        let min_churn_risk = min_churn_risk.unwrap_or(self.policy.high_at);
        let token = if page_token.is_empty() {
            None
        } else {
            let t = AtRiskCursor::open(keys.key().await?, &page_token)?;
            if t.min_churn_risk != min_churn_risk || t.min_predicted_value != min_predicted_value {
                return Err(ScoringError::TokenForOtherFilters);
            }
            Some(t)
        };
        let (version, cached_family) = match &token {
            Some(t) => (t.version, None),
            None => match self.active_model().await? {
                Some(m) => (m.version, m.model.ok().map(|m| m.purchases.family())),
                None => return Err(NoActiveModel::read(&self.storage).await?.into()),
            },
        };
        let continued = token.is_some();
        let mut customers = self
            .storage
            .at_risk_page(
                version,
                min_churn_risk,
                min_predicted_value,
                self.policy.at_risk_min_probability_alive,
                token.map(|t| (t.value_at_risk, t.customer_id.as_str().to_owned())),
                page_size as i64 + 1,
            )
            .await?;
        // A token is only issued when more customers follow, so an empty
        // continuation is checked: a version whose scores a later fit
        // pruned (or one that never had any) is not an empty listing.
        if continued && customers.is_empty() && !self.storage.listable_version(version).await? {
            return Err(ScoringError::UnlistableVersion(version));
        }
        let more = customers.len() > page_size;
        customers.truncate(page_size);
        let next_page_token = match (more, customers.last()) {
            (true, Some(last)) => AtRiskCursor {
                version,
                min_churn_risk,
                min_predicted_value,
                value_at_risk: last.value_at_risk,
                customer_id: last.customer_id.clone(),
            }
            .seal(keys.key().await?),
            _ => String::new(),
        };
        let family = match cached_family {
            Some(f) => Some(f),
            None => self
                .storage
                .model(Some(version))
                .await?
                .and_then(|m| m.fitted().map(|f| f.purchases.family)),
        };
        Ok(AtRiskPage {
            customers,
            family,
            next_page_token,
            version,
        })
    }

    /// Why scores have no prediction when `model` is `None` (read only
    /// then); the default otherwise, unused.
    async fn why_no_model(
        &self,
        model: Option<CachedModel>,
    ) -> Result<NoActiveModel, StorageError> {
        match model {
            Some(_) => Ok(NoActiveModel::default()),
            None => NoActiveModel::read(&self.storage).await,
        }
    }

    fn score_summary(
        &self,
        summary: CustomerSummary,
        segmentation: Option<Segmentation>,
        model: Option<CachedModel>,
        no_model: &NoActiveModel,
        options: (ScoreOptions, IntervalRequest),
    ) -> Score {
        self.score_summary_at(summary, segmentation, model, no_model, options, Utc::now())
    }

    /// The score of a summary observed at `as_of`, over `options` with
    /// intervals at `level`.
    fn score_summary_at(
        &self,
        summary: CustomerSummary,
        segmentation: Option<Segmentation>,
        model: Option<CachedModel>,
        no_model: &NoActiveModel,
        (options, level): (ScoreOptions, IntervalRequest),
        as_of: DateTime<Utc>,
    ) -> Score {
        let today = as_of.with_timezone(&self.time_zone).date_naive();
        let prediction = match model {
            None => Err(no_model.clone().into()),
            Some(CachedModel {
                model: Err(()),
                version,
                ..
            }) => Err(NoPrediction::UnusableModel(version)),
            Some(CachedModel {
                model: Ok(model),
                version,
                uncertainty,
            }) => predict(
                (&model, uncertainty.as_ref()),
                version,
                &summary,
                today,
                (options, level),
                self.policy,
            ),
        };
        Score {
            as_of,
            summary,
            segmentation,
            prediction,
            look_ahead: None,
        }
    }
}

/// A stored version's models, ready to score: `None` for a failed version,
/// `model: Err` for a successful one whose parameters the model core
/// refuses (logged).
fn usable(m: &ModelVersion) -> Option<CachedModel> {
    let f = m.fitted()?;
    let model = super::population::clv_model(f)
        .map_err(|e| tracing::error!(version = m.version, error = %e, "stored model is unusable"));
    let uncertainty = f.log_parameter_covariance.map(|purchases| Uncertainty {
        purchases,
        spend: f.spend_log_parameter_covariance,
    });
    Some(CachedModel {
        version: m.version,
        model,
        uncertainty,
    })
}

/// The model's view of a summary as of `today`.
pub(crate) fn model_summary(
    s: &CustomerSummary,
    today: chrono::NaiveDate,
) -> Result<ModelSummary, ModelError> {
    history_summary(
        i64::from(s.purchase_occasions),
        (s.first_purchase_day, s.last_purchase_day),
        s.repeat_value,
        today,
    )
}

/// The model's view of a purchase history as of `today`: x, t_x, T in
/// days and m, the mean net value of the repeat occasions.
pub(crate) fn history_summary(
    occasions: i64,
    (first_day, last_day): (chrono::NaiveDate, chrono::NaiveDate),
    repeat_value: Total,
    today: chrono::NaiveDate,
) -> Result<ModelSummary, ModelError> {
    let x = (occasions - 1) as f64;
    let t_x = (last_day - first_day).num_days() as f64;
    // A purchase dated after today (clock skew) counts as today.
    let t = ((today - first_day).num_days() as f64).max(t_x);
    let m = if x > 0.0 {
        repeat_value.nanos() as f64 / 1e9 / x
    } else {
        0.0
    };
    ModelSummary::new(x, t_x, t, m)
}

fn predict(
    (model, uncertainty): (&ClvModel, Option<&Uncertainty>),
    version: i64,
    summary: &CustomerSummary,
    today: chrono::NaiveDate,
    (options, level): (ScoreOptions, IntervalRequest),
    policy: ChurnPolicy,
) -> Result<Prediction, NoPrediction> {
    let customer = model_summary(summary, today)?;
    let options = ScoreOptions {
        no_purchase_window_days: f64::from(policy.no_purchase_window_days),
        ..options
    };
    let s = model.score(&customer, &options)?;
    let churn_risk = 1.0 - s.probability_alive;
    // BG/NBD is the one served family whose P(alive) is 1 without a repeat
    // purchase (its dropout happens only after purchases); MBG/NBD and
    // Pareto/NBD let customers drop out before one.
    let caveat = (customer.x() == 0.0 && model.purchases.family() == PurchaseFamily::BgNbd)
        .then_some(Caveat::AliveByAssumption);
    Ok(Prediction {
        model_version: version,
        family: model.purchases.family(),
        probability_alive: s.probability_alive,
        churn_risk,
        band: policy.band(churn_risk),
        probability_no_purchase: s.probability_no_purchase,
        expected_purchases: s.expected_purchases,
        expected_spend: s.expected_spend,
        predicted_value: s.predicted_value,
        caveat,
        intervals: uncertainty.and_then(|u| intervals(model, u, (&customer, &s), &options, level)),
        next_purchase: model
            .purchases
            .next_purchase_given(&customer, s.probability_no_purchase),
    })
}

/// The intervals of one customer's scores (see [`PredictionIntervals`]);
/// `None` when the model core cannot give finite ones (logged: the score
/// itself is served).
fn intervals(
    model: &ClvModel,
    uncertainty: &Uncertainty,
    (customer, score): (&ModelSummary, &clv_model::CustomerScore),
    options: &ScoreOptions,
    IntervalRequest { level, all }: IntervalRequest,
) -> Option<PredictionIntervals> {
    if !all {
        let alive = model
            .purchases
            .probability_alive_interval(&uncertainty.purchases, customer, level)
            .map_err(|e| tracing::debug!(error = %e, "no P(alive) interval for this score"))
            .ok()?;
        return Some(PredictionIntervals {
            level,
            probability_alive: alive,
            purchases: None,
            expected_purchases: None,
            expected_spend: None,
            predicted_value: None,
        });
    }
    let both = ModelUncertainty {
        purchases: uncertainty.purchases,
        // Without the spend covariance the spend side is computed as
        // certain, and its intervals are left out below.
        spend: uncertainty.spend.unwrap_or([[0.0; 3]; 3]),
    };
    let i = model
        .score_intervals_given(&both, customer, options, level, score)
        .map_err(|e| tracing::debug!(error = %e, "no intervals for this score"))
        .ok()?;
    let (low, high) = i.purchase_count;
    let purchases = Interval {
        lower: (low as f64).min(i.expected_purchases.lower),
        upper: (high as f64).max(i.expected_purchases.upper),
    };
    let spend_known = uncertainty.spend.is_some();
    Some(PredictionIntervals {
        level: i.level,
        probability_alive: i.probability_alive,
        purchases: Some(purchases),
        expected_purchases: Some(i.expected_purchases),
        expected_spend: spend_known.then_some(i.expected_spend),
        predicted_value: spend_known.then_some(i.predicted_value),
    })
}
