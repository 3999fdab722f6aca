//! Point-in-time scores: what the service would have said at a past
//! instant, or with a named model version.
//!
//! The summary is computed from the transactions that had occurred by the
//! instant (`Storage::summaries_as_of`), with the live definitions; the
//! model is the one active then: the newest successful, activated version
//! whose fit's `as_of` is at or before the instant, so that no model that
//! saw later data scores it. A named version replaces it (it must have
//! fitted); one fitted after the instant is used, and the score says so
//! ([`LookAhead`]).
//!
//! Segments and value tiers are quintiles and ranks over the whole base at
//! a fit, which are not stored per instant: a point-in-time score leaves
//! them empty. With a version but no instant, the score is the live one
//! under that version (the live summary, the version's stored segments
//! when they are still kept).
//!
//! This path is separate from the live one, which stays on its cached
//! model and grouped reads.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use clv_model::ScoreOptions;

use super::{usable, CachedModel, NoPrediction, Score, Scoring, ScoringError};
use crate::domain::{CustomerId, CustomerSummary, Segmentation};
use crate::service::NoActiveModel;

/// What a point-in-time score asks for; both `None` is the live score.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PointInTime {
    /// The instant observed; `None`: now.
    pub as_of: Option<DateTime<Utc>>,
    /// The version to score with; `None`: the one active at `as_of`.
    pub model_version: Option<i64>,
}

impl PointInTime {
    /// Whether this is the live score (neither an instant nor a version).
    pub fn is_live(&self) -> bool {
        self.as_of.is_none() && self.model_version.is_none()
    }
}

/// A named version fitted on data after the scored instant: the score is
/// served, and says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "model version {version} was fitted as of {fitted_as_of}, after as_of: it saw data from \
     after the scored instant"
)]
pub struct LookAhead {
    pub version: i64,
    pub fitted_as_of: DateTime<Utc>,
}

/// The model a point-in-time score uses, or why there is none.
struct PastModel {
    model: Result<CachedModel, NoPrediction>,
    look_ahead: Option<LookAhead>,
}

impl Scoring {
    /// One customer's score as of `at` (see the module doc); NOT_FOUND
    /// when they had no purchase by then.
    pub async fn score_at(
        &self,
        id: &CustomerId,
        options: ScoreOptions,
        level: super::IntervalRequest,
        at: PointInTime,
    ) -> Result<Score, ScoringError> {
        let (mut scores, _) = self
            .score_many_at(std::slice::from_ref(id), options, level, at)
            .await?;
        scores
            .pop()
            .ok_or_else(|| ScoringError::NotFound(id.clone()))
    }

    /// Several customers' scores as of `at` with one read: the scores in
    /// the order of `ids` (first occurrence), and the ids with no purchase
    /// by then. Intervals at `level`, as on the live path.
    pub async fn score_many_at(
        &self,
        ids: &[CustomerId],
        options: ScoreOptions,
        level: super::IntervalRequest,
        at: PointInTime,
    ) -> Result<(Vec<Score>, Vec<CustomerId>), ScoringError> {
        let as_of = at.as_of.unwrap_or_else(Utc::now);
        let past = self.past_model(at, as_of).await?;
        let mut found: HashMap<CustomerId, (CustomerSummary, Option<Segmentation>)> = match at.as_of
        {
            Some(t) => self
                .storage
                .summaries_as_of(ids, t)
                .await?
                .into_iter()
                .map(|s| (s.customer_id.clone(), (s, None)))
                .collect(),
            None => self
                .storage
                .summaries_with_segmentation(ids, past.model.as_ref().ok().map(|m| m.version))
                .await?
                .into_iter()
                .map(|(s, seg)| (s.customer_id.clone(), (s, seg)))
                .collect(),
        };
        let (mut scores, mut unknown) = (Vec::new(), Vec::new());
        let mut seen = HashSet::new();
        for id in ids.iter().filter(|id| seen.insert(*id)) {
            let Some((summary, segmentation)) = found.remove(id) else {
                unknown.push(id.clone());
                continue;
            };
            let mut score = match &past.model {
                Ok(model) => self.score_summary_at(
                    summary,
                    segmentation,
                    Some(*model),
                    &NoActiveModel::default(),
                    (options, level),
                    as_of,
                ),
                Err(why) => {
                    let mut score = self.score_summary_at(
                        summary,
                        segmentation,
                        None,
                        &NoActiveModel::default(),
                        (options, level),
                        as_of,
                    );
                    score.prediction = Err(why.clone());
                    score
                }
            };
            score.look_ahead = past.look_ahead;
            scores.push(score);
        }
        Ok((scores, unknown))
    }

    /// The named version, or the one active at `as_of`.
    async fn past_model(
        &self,
        at: PointInTime,
        as_of: DateTime<Utc>,
    ) -> Result<PastModel, ScoringError> {
        let stored = match at.model_version {
            Some(v) => {
                let m = self
                    .storage
                    .model(Some(v))
                    .await?
                    .ok_or(ScoringError::NoSuchVersion(v))?;
                if let Err(failure) = &m.fit.outcome {
                    return Err(ScoringError::FailedVersion {
                        version: v,
                        failure: failure.as_str().to_owned(),
                    });
                }
                m
            }
            None => match self.storage.model_fitted_by(as_of).await? {
                Some(m) => m,
                None => {
                    return Ok(PastModel {
                        model: Err(NoPrediction::NoModelAsOf(as_of)),
                        look_ahead: None,
                    })
                }
            },
        };
        let look_ahead = (stored.fit.as_of > as_of).then_some(LookAhead {
            version: stored.version,
            fitted_as_of: stored.fit.as_of,
        });
        let model = match usable(&stored) {
            Some(m) => Ok(m),
            None => Err(NoPrediction::UnusableModel(stored.version)),
        };
        Ok(PastModel { model, look_ahead })
    }
}
