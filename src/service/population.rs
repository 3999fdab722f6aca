//! Scoring the whole customer base after a fit: model scores, value at
//! risk, RFM quintiles, segments and value tiers, stored per version.

use chrono::NaiveDate;
use clv_model::{ClvModel, GammaGammaParams, ModelError, ScoreOptions};

use super::scoring::history_summary;
use crate::{
    domain::{quintiles, value_tiers, FittedModels, PopulationScore, Segment},
    storage::ScoringSummary,
};

/// The models of a fit, ready to score (the activated purchase family).
pub(crate) fn clv_model(fitted: &FittedModels) -> Result<ClvModel, ModelError> {
    let s = fitted.spend;
    Ok(ClvModel {
        purchases: fitted.purchases.model()?,
        spend: GammaGammaParams::new(s.p, s.q, s.gamma)?,
    })
}

/// Scores every summary as of `today` under `fitted` (version `version`).
/// Customers the model cannot score (a non-finite result) are left out and
/// counted in the second value.
///
/// Value at risk is churn risk × predicted value, and a customer whose
/// churn risk is at least `high_risk_at` (the HIGH band) is not shown in an
/// engaged segment ([`Segment::reconciled`]); docs/definitions.md says why.
pub fn population_scores(
    version: i64,
    fitted: &FittedModels,
    today: NaiveDate,
    summaries: Vec<ScoringSummary>,
    high_risk_at: f64,
) -> Result<(Vec<PopulationScore>, usize), ModelError> {
    let model = clv_model(fitted)?;
    let options = ScoreOptions::default();
    let mut skipped = 0;
    let mut histories = Vec::with_capacity(summaries.len());
    let mut kept = Vec::with_capacity(summaries.len());
    for summary in summaries {
        match history_summary(
            i64::from(summary.purchase_occasions),
            (summary.first_purchase_day, summary.last_purchase_day),
            summary.repeat_value,
            today,
        ) {
            Ok(c) => {
                histories.push(c);
                kept.push(summary);
            }
            Err(_) => skipped += 1,
        }
    }
    // The whole base at once: each distinct history scored once, in
    // parallel. When any customer cannot be scored that way, one by one,
    // leaving out only those.
    let scores: Vec<Option<_>> = match model.score_all(&histories, &options) {
        Ok(all) => all.into_iter().map(Some).collect(),
        Err(_) => histories
            .iter()
            .map(|c| model.score(c, &options).ok())
            .collect(),
    };
    let mut scored = Vec::with_capacity(kept.len());
    for (summary, score) in kept.into_iter().zip(scores) {
        match score.filter(|s| s.probability_alive.is_finite() && s.predicted_value.is_finite()) {
            Some(score) => scored.push((summary, score)),
            None => skipped += 1,
        }
    }
    let recency: Vec<f64> = scored
        .iter()
        .map(|(s, _)| -((today - s.last_purchase_day).num_days() as f64))
        .collect();
    let frequency: Vec<f64> = scored
        .iter()
        .map(|(s, _)| f64::from(s.purchase_occasions))
        .collect();
    let monetary: Vec<f64> = scored
        .iter()
        .map(|(s, _)| s.net_revenue.nanos() as f64 / f64::from(s.purchase_occasions.max(1)))
        .collect();
    let total: Vec<f64> = scored
        .iter()
        .map(|(s, c)| s.net_revenue.nanos() as f64 / 1e9 + c.predicted_value)
        .collect();
    let (r, f, m, tiers) = (
        quintiles(&recency),
        quintiles(&frequency),
        quintiles(&monetary),
        value_tiers(&total),
    );
    let rows = scored
        .into_iter()
        .enumerate()
        .map(|(i, (summary, c))| {
            let churn_risk = 1.0 - c.probability_alive;
            PopulationScore {
                customer_id: summary.customer_id,
                model_version: version,
                probability_alive: c.probability_alive,
                churn_risk,
                probability_no_purchase: c.probability_no_purchase,
                expected_purchases: c.expected_purchases,
                predicted_value: c.predicted_value,
                value_at_risk: value_at_risk(churn_risk, c.predicted_value),
                historical_value: summary.net_revenue,
                recency_score: r[i],
                frequency_score: f[i],
                monetary_score: m[i],
                segment: Segment::from_rf(r[i], f[i]).reconciled(f[i], churn_risk >= high_risk_at),
                value_tier: tiers[i],
            }
        })
        .collect();
    Ok((rows, skipped))
}

/// The part of a customer's expected value that hangs on whether they are
/// still active: churn risk × predicted value, that is P(alive) ·
/// (1 − P(alive)) · the value if retained. It is zero for a customer surely
/// active (nothing to save) and for one surely gone (nothing left to save),
/// and largest for a valuable customer whose status is in doubt: the
/// customers a retention action can still change. It never exceeds the
/// predicted value.
pub fn value_at_risk(churn_risk: f64, predicted_value: f64) -> f64 {
    churn_risk * predicted_value
}
