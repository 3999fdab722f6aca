//! Scoring the whole customer base after a fit: model scores, value at
//! risk, RFM quintiles, segments and value tiers, stored per version.

use chrono::NaiveDate;
use clv_model::{BgNbdParams, ClvModel, GammaGammaParams, ModelError, ScoreOptions};

use super::scoring::history_summary;
use crate::{
    domain::{quintiles, value_tiers, FittedModels, PopulationScore, Segment},
    storage::ScoringSummary,
};

/// The models of a fit, ready to score.
pub(crate) fn clv_model(fitted: &FittedModels) -> Result<ClvModel, ModelError> {
    let (p, s) = (fitted.purchases, fitted.spend);
    Ok(ClvModel {
        purchases: BgNbdParams::new(p.r, p.alpha_days, p.a, p.b)?,
        spend: GammaGammaParams::new(s.p, s.q, s.gamma)?,
    })
}

/// Scores every summary as of `today` under `fitted` (version `version`).
/// Customers the model cannot score (a non-finite result) are left out and
/// counted in the second value.
pub fn population_scores(
    version: i64,
    fitted: &FittedModels,
    today: NaiveDate,
    summaries: Vec<ScoringSummary>,
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
            let if_retained = if c.probability_alive > 0.0 {
                c.predicted_value / c.probability_alive
            } else {
                0.0
            };
            PopulationScore {
                customer_id: summary.customer_id,
                model_version: version,
                probability_alive: c.probability_alive,
                churn_risk,
                probability_no_purchase: c.probability_no_purchase,
                expected_purchases: c.expected_purchases,
                predicted_value: c.predicted_value,
                value_at_risk: churn_risk * if_retained,
                historical_value: summary.net_revenue,
                recency_score: r[i],
                frequency_score: f[i],
                monetary_score: m[i],
                segment: Segment::from_rf(r[i], f[i]),
                value_tier: tiers[i],
            }
        })
        .collect();
    Ok((rows, skipped))
}
