//! Exact amounts of the reporting currency, held as integer nanos.
//!
//! Recorded money is never a float. Two types, for two kinds of limit:
//!
//! - [`Amount`]: one transaction's amount (or cost, or spend record), at
//!   most [`MAX_AMOUNT_UNITS`] whole units in absolute value, units and
//!   nanos together. It fits `i64` nanos with room to spare.
//! - [`Total`]: any sum of amounts (a customer's summary, a per-day row, a
//!   cohort cell, a spend period, a report figure), up to what the API's
//!   `Money` can carry: `units` within `i64`, about 9.2e18 units. That is
//!   1e9 times more than `i64` nanos could hold, so totals are `i128` nanos
//!   here and `numeric` in PostgreSQL, and every operation on them is
//!   checked: a result past the limit is a [`TotalOutOfRange`] error for
//!   the call that would produce it, never a wrapped value.
//!
//! The reporting currency itself is a deployment setting checked by
//! [`crate::domain::IngestRules`].

/// Largest absolute amount of one transaction, in whole currency units
/// (units and nanos together: 1,000,000,000.000000001 is over it).
pub const MAX_AMOUNT_UNITS: i64 = 1_000_000_000;

const NANOS_PER_UNIT: i64 = 1_000_000_000;

/// [`MAX_AMOUNT_UNITS`] in nanos.
const MAX_AMOUNT_NANOS: i128 = MAX_AMOUNT_UNITS as i128 * NANOS_PER_UNIT as i128;

/// Largest absolute total, in nanos: the largest `Money` (`units` =
/// `i64::MAX`, `nanos` = 999,999,999).
pub const MAX_TOTAL_NANOS: i128 = i64::MAX as i128 * NANOS_PER_UNIT as i128 + 999_999_999;

/// An exact amount of one transaction, in nanos of the reporting currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(i64);

impl Amount {
    pub const ZERO: Amount = Amount(0);

    /// Parses the google.type.Money representation (`units` + `nanos`/1e9).
    /// Errors name the sub-field (`units` or `nanos`); the cap applies to
    /// the whole amount and is reported on `units`. Computed in `i128`, so
    /// no input (`i64::MIN` included) can overflow on the way.
    pub fn from_units_nanos(units: i64, nanos: i32) -> Result<Self, (&'static str, String)> {
        if nanos <= -1_000_000_000 || nanos >= 1_000_000_000 {
            return Err(("nanos", format!("must be in (-1e9, 1e9), got {nanos}")));
        }
        if (units > 0 && nanos < 0) || (units < 0 && nanos > 0) {
            return Err(("nanos", "must have the same sign as units".into()));
        }
        let whole = i128::from(units) * i128::from(NANOS_PER_UNIT) + i128::from(nanos);
        if whole.abs() > MAX_AMOUNT_NANOS {
            return Err((
                "units",
                format!(
                    "the amount must be at most {MAX_AMOUNT_UNITS} units in absolute value \
                     (units and nanos together), got {units} units and {nanos} nanos"
                ),
            ));
        }
        // |whole| <= 1e18 < i64::MAX.
        i64::try_from(whole)
            .map(Self)
            .map_err(|_| ("units", "is out of range".into()))
    }

    /// An amount as stored (storage writes only parsed amounts).
    pub fn from_nanos(nanos: i64) -> Self {
        Self(nanos)
    }

    pub fn nanos(self) -> i64 {
        self.0
    }

    /// Back to `(units, nanos)` with matching signs.
    pub fn units_nanos(self) -> (i64, i32) {
        Total::from(self).units_nanos()
    }

    pub fn is_negative(self) -> bool {
        self.0 < 0
    }
}

/// A total past the largest amount `Money` can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the total exceeds the largest amount the API can express \
     ({max} units in absolute value)",
    max = i64::MAX
)]
pub struct TotalOutOfRange;

/// An exact sum of amounts, in nanos; always within [`MAX_TOTAL_NANOS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Total(i128);

impl Total {
    pub const ZERO: Total = Total(0);

    /// A total of `nanos`, if `Money` can carry it.
    pub fn from_nanos(nanos: i128) -> Result<Self, TotalOutOfRange> {
        if nanos.abs() <= MAX_TOTAL_NANOS {
            Ok(Self(nanos))
        } else {
            Err(TotalOutOfRange)
        }
    }

    /// A predicted (real-valued) amount in currency units, rounded to the
    /// nano and clamped into range (a non-finite value is 0). Predictions
    /// are estimates, so the clamp loses nothing a caller could rely on.
    pub fn saturating_from_units_f64(units: f64) -> Self {
        Self::saturating_from_nanos_f64(units * 1e9)
    }

    /// A predicted amount in nanos, rounded and clamped as
    /// [`Total::saturating_from_units_f64`].
    pub fn saturating_from_nanos_f64(nanos: f64) -> Self {
        let nanos = nanos.round();
        if !nanos.is_finite() {
            return Self::ZERO;
        }
        let limit = MAX_TOTAL_NANOS as f64;
        // In range after the clamp; `as` saturates at the i128 bounds anyway.
        Self((nanos.clamp(-limit, limit) as i128).clamp(-MAX_TOTAL_NANOS, MAX_TOTAL_NANOS))
    }

    pub fn nanos(self) -> i128 {
        self.0
    }

    /// In currency units, as a real number (for ratios and models).
    pub fn units_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    pub fn checked_add(self, other: impl Into<Total>) -> Result<Self, TotalOutOfRange> {
        // Both within 9.3e27, so the i128 sum cannot overflow.
        Self::from_nanos(self.0 + other.into().0)
    }

    pub fn checked_sub(self, other: impl Into<Total>) -> Result<Self, TotalOutOfRange> {
        Self::from_nanos(self.0 - other.into().0)
    }

    /// The sum of `totals`, if every partial sum is in range.
    pub fn checked_sum(totals: impl IntoIterator<Item = Total>) -> Result<Self, TotalOutOfRange> {
        totals
            .into_iter()
            .try_fold(Self::ZERO, |sum, t| sum.checked_add(t))
    }

    /// Divided by `n` (> 0), truncated toward zero: never larger than
    /// `self`, so always in range.
    pub fn div_trunc(self, n: u64) -> Self {
        Self(self.0 / i128::from(n.max(1)))
    }

    /// Divided by `n` (> 0), rounded half away from zero to the nano.
    pub fn div_round(self, n: u64) -> Self {
        let (t, n) = (self.0, i128::from(n.max(1)));
        // |2t| <= 1.9e28, far inside i128.
        Self((2 * t + t.signum() * n) / (2 * n))
    }

    /// Back to `(units, nanos)` with matching signs; `units` fits `i64`
    /// because the total is within [`MAX_TOTAL_NANOS`].
    pub fn units_nanos(self) -> (i64, i32) {
        let n = i128::from(NANOS_PER_UNIT);
        let units = (self.0 / n).clamp(i128::from(i64::MIN), i128::from(i64::MAX));
        // |self.0 % 1e9| < 1e9 always fits in i32.
        (units as i64, (self.0 % n) as i32)
    }

    pub fn is_negative(self) -> bool {
        self.0 < 0
    }
}

impl From<Amount> for Total {
    fn from(a: Amount) -> Self {
        Self(i128::from(a.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_units_and_nanos() {
        let a = Amount::from_units_nanos(-12, -500_000_000).unwrap();
        assert_eq!(a.nanos(), -12_500_000_000);
        assert_eq!(a.units_nanos(), (-12, -500_000_000));
    }

    #[test]
    fn rejects_mixed_signs_out_of_range_nanos_and_absurd_units() {
        assert_eq!(Amount::from_units_nanos(1, -1).unwrap_err().0, "nanos");
        assert_eq!(
            Amount::from_units_nanos(0, 1_000_000_000).unwrap_err().0,
            "nanos"
        );
        assert_eq!(
            Amount::from_units_nanos(MAX_AMOUNT_UNITS + 1, 0)
                .unwrap_err()
                .0,
            "units"
        );
    }

    #[test]
    fn the_cap_holds_on_the_whole_amount_and_for_every_int64() {
        for (units, nanos) in [
            (i64::MIN, 0),
            (i64::MIN, -999_999_999),
            (i64::MIN + 1, 0),
            (i64::MAX, 0),
            (MAX_AMOUNT_UNITS, 1),
            (-MAX_AMOUNT_UNITS, -1),
        ] {
            assert_eq!(
                Amount::from_units_nanos(units, nanos).unwrap_err().0,
                "units",
                "{units} units {nanos} nanos"
            );
        }
        assert_eq!(
            Amount::from_units_nanos(-MAX_AMOUNT_UNITS, 0)
                .unwrap()
                .nanos(),
            -1_000_000_000_000_000_000
        );
    }

    #[test]
    fn totals_reach_the_largest_money_and_stop_there() {
        let max = Total::from_nanos(MAX_TOTAL_NANOS).unwrap();
        assert_eq!(max.units_nanos(), (i64::MAX, 999_999_999));
        let min = Total::from_nanos(-MAX_TOTAL_NANOS).unwrap();
        assert_eq!(min.units_nanos(), (-i64::MAX, -999_999_999));
        assert_eq!(
            max.checked_add(Total::from_nanos(1).unwrap()),
            Err(TotalOutOfRange)
        );
        assert_eq!(
            min.checked_sub(Total::from_nanos(1).unwrap()),
            Err(TotalOutOfRange)
        );
        assert_eq!(Total::from_nanos(MAX_TOTAL_NANOS + 1), Err(TotalOutOfRange));
        let ten = Total::checked_sum(
            std::iter::repeat_n(Amount::from_units_nanos(MAX_AMOUNT_UNITS, 0).unwrap(), 10)
                .map(Total::from),
        )
        .unwrap();
        assert_eq!(ten.units_nanos(), (10 * MAX_AMOUNT_UNITS, 0));
    }

    #[test]
    fn division_rounds_or_truncates_and_predictions_saturate() {
        let t = |n| Total::from_nanos(n).unwrap();
        assert_eq!(t(10).div_round(4), t(3));
        assert_eq!(t(-10).div_round(4), t(-3));
        assert_eq!(t(11).div_trunc(4), t(2));
        assert_eq!(
            Total::saturating_from_units_f64(1e30).nanos(),
            MAX_TOTAL_NANOS
        );
        assert_eq!(Total::saturating_from_units_f64(f64::NAN), Total::ZERO);
        assert_eq!(Total::saturating_from_units_f64(1.5).nanos(), 1_500_000_000);
    }
}
