//! The `holdout` selection policy (CLVD_MODEL_SELECTION=holdout or
//! FitModelRequest.selection = MODEL_SELECTION_HOLDOUT): when the data
//! spans enough time, every family that fitted the whole data is fitted
//! again on the data before a holdout, and its predicted repeat purchases
//! in the holdout are compared with the actual ones, customer by customer,
//! as EvaluateModel does (mean absolute error and correlation, recorded
//! with the candidate). The family with the lowest holdout mean absolute
//! error is activated. Without a holdout (data too short, or no family
//! could be fitted before it) the policy falls back to BIC, and the
//! version says `bic`. The rule is in docs/definitions.md ("Choosing the
//! family").

use chrono::{Days, NaiveDate};
use clv_model::{fit_family, BgNbdFitInput, FitOptions, ModelError};

use super::models::holdout_figures;
use crate::{
    domain::{select_candidate, CandidateHoldout, Criterion, FamilyCandidate, SelectedBy},
    storage::{HoldoutGroup, Storage, StorageError},
};

/// The holdout is the last 1/`HOLDOUT_SHARE` of the data's span.
const HOLDOUT_SHARE: i64 = 4;

/// The shortest holdout, days: four weeks, so that every weekday is in it
/// four times and most customers had a chance to buy in it.
pub(super) const MIN_HOLDOUT_DAYS: i64 = 28;

/// The holdout for data spanning `span_days` (from the earliest first
/// purchase to the fit's day, the largest T): its last quarter, when that
/// is at least [`MIN_HOLDOUT_DAYS`] (a span of at least 112 days).
pub(super) fn holdout_days(span_days: f64) -> Option<i64> {
    let days = span_days.max(0.0).floor() as i64 / HOLDOUT_SHARE;
    (days >= MIN_HOLDOUT_DAYS).then_some(days)
}

/// The calibration/holdout rows for a fit up to `as_of_day` over data
/// spanning `span_days`, with the holdout's length; `None` when the span
/// allows no holdout.
pub(super) async fn read_holdout(
    storage: &Storage,
    as_of_day: NaiveDate,
    span_days: f64,
) -> Result<Option<(Vec<HoldoutGroup>, i64)>, StorageError> {
    let Some(days) = holdout_days(span_days) else {
        return Ok(None);
    };
    let Some(calibration_day) = as_of_day.checked_sub_days(Days::new(days as u64)) else {
        return Ok(None);
    };
    let rows = storage.holdout_data(calibration_day, as_of_day).await?;
    Ok(Some((rows, days)))
}

/// Records on every candidate that fitted the whole data the holdout
/// figures of its family fitted on the calibration part of `rows`
/// (families fitted in parallel, one thread each). A family whose
/// calibration fit fails gets none, and so cannot be chosen by holdout.
pub(super) fn add_holdout_figures(
    candidates: &mut [FamilyCandidate],
    rows: &[HoldoutGroup],
    holdout_days: i64,
) {
    let calibration = rows.iter().map(|r| {
        let g = r.calibration;
        (g.x, g.t_x, g.t, g.customers)
    });
    let Ok(input) = BgNbdFitInput::from_groups(calibration) else {
        return;
    };
    let (input, options) = (&input, &FitOptions::default());
    std::thread::scope(|scope| {
        let running: Vec<_> = candidates
            .iter_mut()
            .filter(|c| c.outcome.is_ok())
            .map(|candidate| {
                scope.spawn(move || -> Result<(), ModelError> {
                    let fit = fit_family(candidate.family, input, options)?;
                    let figures = holdout_figures(&fit.params, rows, holdout_days as f64)?;
                    if let Ok(fitted) = candidate.outcome.as_mut() {
                        fitted.holdout = Some(CandidateHoldout {
                            holdout_days,
                            mean_absolute_error: figures.mean_absolute_error,
                            correlation: figures.correlation,
                        });
                    }
                    Ok(())
                })
            })
            .collect();
        for handle in running {
            // A family that cannot be fitted before the holdout keeps no
            // figures; a panic is the caller's.
            let _ = handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        }
    });
}

/// The candidate to activate under `criterion` and how it was chosen:
/// `holdout` takes the lowest holdout mean absolute error among the
/// candidates with holdout figures, and falls back to BIC when none has
/// them.
pub(super) fn choose(
    candidates: &[FamilyCandidate],
    criterion: Criterion,
) -> Option<(usize, SelectedBy)> {
    match criterion {
        Criterion::Bic => {
            select_candidate(candidates, Criterion::Bic).map(|i| (i, SelectedBy::Bic))
        }
        Criterion::Aic => {
            select_candidate(candidates, Criterion::Aic).map(|i| (i, SelectedBy::Aic))
        }
        Criterion::Holdout => select_candidate(candidates, Criterion::Holdout)
            .map(|i| (i, SelectedBy::Holdout))
            .or_else(|| choose(candidates, Criterion::Bic)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holdout_is_the_last_quarter_of_at_least_four_weeks() {
        assert_eq!(holdout_days(111.9), None);
        assert_eq!(holdout_days(112.0), Some(28));
        assert_eq!(holdout_days(365.0), Some(91));
        assert_eq!(holdout_days(0.0), None);
    }
}
