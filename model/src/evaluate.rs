//! Calibration/holdout evaluation of a fitted BG/NBD model: predicted
//! against actual repeat purchases in a holdout period, in total and by the
//! number of repeat purchases in calibration (the table of Fader, Hardie &
//! Lee 2005, Marketing Science 24(2), section 4, Figure 4; docs/model.md
//! "Checking a fit"). The prediction per customer is E[Y(holdout) | x, t_x,
//! T] (FHL eq. 10). Knows nothing of where the customers come from.

use rayon::prelude::*;

use crate::bgnbd::BgNbdParams;
use crate::summary::CustomerSummary;

/// Customers with the same number of calibration repeat purchases (or, for
/// the last bucket, at least that many).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HoldoutBucket {
    /// x in calibration; the last bucket holds every x ≥ this.
    pub repeat_purchases: u64,
    /// Whether this is the open-ended last bucket ("7+").
    pub and_more: bool,
    /// Customers in the bucket.
    pub customers: u64,
    /// Mean holdout repeat purchases that happened.
    pub actual_mean: f64,
    /// Mean predicted E[Y(holdout)].
    pub predicted_mean: f64,
}

/// Predicted against actual holdout purchases.
#[derive(Debug, Clone, PartialEq)]
pub struct HoldoutEvaluation {
    /// Length of the holdout period, days.
    pub holdout_days: f64,
    /// Customers evaluated.
    pub customers: u64,
    /// Sum of actual holdout purchases.
    pub actual_total: f64,
    /// Sum of predicted holdout purchases.
    pub predicted_total: f64,
    /// Mean |actual − predicted| per customer.
    pub mean_absolute_error: f64,
    /// By calibration repeat purchases 0, 1, …, `last_bucket`+.
    pub buckets: Vec<HoldoutBucket>,
}

/// Compares E[Y(`holdout_days`) | calibration summary] with the holdout
/// purchases that happened, per customer `(calibration summary, holdout
/// repeat purchases)`, with buckets x = 0, 1, …, `last_bucket` (and more).
pub fn evaluate_holdout(
    params: &BgNbdParams,
    customers: &[(CustomerSummary, u64)],
    holdout_days: f64,
    last_bucket: u64,
) -> HoldoutEvaluation {
    let predicted: Vec<f64> = customers
        .par_iter()
        .map(|(c, _)| params.expected_purchases(c, holdout_days))
        .collect();
    let buckets_len = last_bucket as usize + 1;
    let mut counts = vec![0u64; buckets_len];
    let mut actual_sums = vec![0.0; buckets_len];
    let mut predicted_sums = vec![0.0; buckets_len];
    let (mut actual_total, mut predicted_total, mut absolute_error) = (0.0, 0.0, 0.0);
    for ((c, actual), prediction) in customers.iter().zip(&predicted) {
        let bucket = (c.x() as u64).min(last_bucket) as usize;
        let actual = *actual as f64;
        counts[bucket] += 1;
        actual_sums[bucket] += actual;
        predicted_sums[bucket] += prediction;
        actual_total += actual;
        predicted_total += prediction;
        absolute_error += (actual - prediction).abs();
    }
    let buckets = (0..buckets_len)
        .map(|i| {
            let n = counts[i] as f64;
            HoldoutBucket {
                repeat_purchases: i as u64,
                and_more: i == buckets_len - 1,
                customers: counts[i],
                actual_mean: if n > 0.0 { actual_sums[i] / n } else { 0.0 },
                predicted_mean: if n > 0.0 { predicted_sums[i] / n } else { 0.0 },
            }
        })
        .collect();
    HoldoutEvaluation {
        holdout_days,
        customers: customers.len() as u64,
        actual_total,
        predicted_total,
        mean_absolute_error: if customers.is_empty() {
            0.0
        } else {
            absolute_error / customers.len() as f64
        },
        buckets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_split_customers_by_calibration_purchases() {
        let params = BgNbdParams::new(0.5, 20.0, 0.8, 2.5).unwrap();
        let c =
            |x: f64| CustomerSummary::new(x, if x > 0.0 { 10.0 } else { 0.0 }, 100.0, 0.0).unwrap();
        let customers = [(c(0.0), 0), (c(1.0), 2), (c(9.0), 4), (c(12.0), 6)];
        let eval = evaluate_holdout(&params, &customers, 90.0, 7);
        assert_eq!(eval.buckets.len(), 8);
        assert_eq!(eval.buckets[7].customers, 2);
        assert!(eval.buckets[7].and_more && !eval.buckets[6].and_more);
        assert_eq!(eval.buckets[7].actual_mean, 5.0);
        assert_eq!(eval.actual_total, 12.0);
        let expected: f64 = customers
            .iter()
            .map(|(c, _)| params.expected_purchases(c, 90.0))
            .sum();
        assert!((eval.predicted_total - expected).abs() < 1e-12);
    }
}
