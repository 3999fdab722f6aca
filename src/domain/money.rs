//! Exact amounts of the reporting currency, held as integer nanos.
//!
//! Recorded money is never a float: an [`Amount`] is a count of billionths of
//! a currency unit, so sums are exact. The reporting currency itself is a
//! deployment setting checked by [`crate::domain::IngestRules`].

/// Largest absolute amount of one transaction, in whole currency units.
/// It keeps every amount, and the sums of any realistic customer, well inside
/// `i64` nanos (9.2e18), and rejects amounts that can only be mistakes.
pub const MAX_AMOUNT_UNITS: i64 = 1_000_000_000;

const NANOS_PER_UNIT: i64 = 1_000_000_000;

/// An exact amount in nanos of the reporting currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(i64);

impl Amount {
    pub const ZERO: Amount = Amount(0);

    /// Parses the google.type.Money representation (`units` + `nanos`/1e9).
    /// Errors name the sub-field (`units` or `nanos`).
    pub fn from_units_nanos(units: i64, nanos: i32) -> Result<Self, (&'static str, String)> {
        if nanos <= -1_000_000_000 || nanos >= 1_000_000_000 {
            return Err(("nanos", format!("must be in (-1e9, 1e9), got {nanos}")));
        }
        if (units > 0 && nanos < 0) || (units < 0 && nanos > 0) {
            return Err(("nanos", "must have the same sign as units".into()));
        }
        if units.abs() > MAX_AMOUNT_UNITS {
            return Err((
                "units",
                format!("must be at most {MAX_AMOUNT_UNITS} in absolute value, got {units}"),
            ));
        }
        Ok(Self(units * NANOS_PER_UNIT + i64::from(nanos)))
    }

    pub fn from_nanos(nanos: i64) -> Self {
        Self(nanos)
    }

    pub fn nanos(self) -> i64 {
        self.0
    }

    /// Back to `(units, nanos)` with matching signs.
    pub fn units_nanos(self) -> (i64, i32) {
        // |self.0 % 1e9| < 1e9 always fits in i32.
        (self.0 / NANOS_PER_UNIT, (self.0 % NANOS_PER_UNIT) as i32)
    }

    pub fn is_negative(self) -> bool {
        self.0 < 0
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
}
