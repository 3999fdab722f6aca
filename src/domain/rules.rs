//! The deployment's ingest rules: reporting currency, business time zone,
//! batch limit and the window of accepted timestamps (from a configured
//! earliest time up to the clock-skew limit). They turn unchecked input
//! into a [`Transaction`] or the list of every offending field.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use super::{
    money::Amount,
    transaction::{
        Transaction, TransactionKind, UncheckedKind, UncheckedMoney, UncheckedTransaction,
    },
    CustomerId, FieldViolation, TransactionId,
};

/// The default earliest accepted timestamp, 1900-01-01T00:00:00Z: any real
/// business history, while year 1 or 0001 placeholders are still refused.
pub const DEFAULT_EARLIEST: &str = "1900-01-01T00:00:00Z";

/// [`DEFAULT_EARLIEST`] as an instant.
pub fn default_earliest() -> DateTime<Utc> {
    // 1900-01-01T00:00:00Z, -2,208,988,800 s, is within chrono's range.
    DateTime::from_timestamp(-2_208_988_800, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[derive(Debug, Clone)]
pub struct IngestRules {
    /// ISO 4217 code every amount must be in (an empty code means this one).
    pub currency: String,
    /// Purchase occasions are calendar days in this zone.
    pub time_zone: Tz,
    /// Most transactions in one batch (one ImportTransactions message).
    pub max_batch: usize,
    /// How far in the future (clock skew) a timestamp may be.
    pub max_future_skew: Duration,
    /// The earliest accepted timestamp (CLVD_EARLIEST_TRANSACTION_TIME).
    pub earliest: DateTime<Utc>,
}

impl Default for IngestRules {
    fn default() -> Self {
        Self {
            currency: "USD".into(),
            time_zone: Tz::UTC,
            max_batch: 10_000,
            max_future_skew: Duration::hours(24),
            earliest: default_earliest(),
        }
    }
}

impl IngestRules {
    /// The purchase occasion (business calendar day) of an instant.
    pub fn occasion_day(&self, at: DateTime<Utc>) -> NaiveDate {
        self.time_zone
            .from_utc_datetime(&at.naive_utc())
            .date_naive()
    }

    /// Validates every field; returns all violations, not just the first.
    pub fn parse_transaction(
        &self,
        raw: UncheckedTransaction,
        now: DateTime<Utc>,
    ) -> Result<Transaction, Vec<FieldViolation>> {
        let mut violations = Vec::new();
        let mut check = |field: &str, r: Result<(), String>| {
            if let Err(d) = r {
                violations.push(FieldViolation::new(field, d));
            }
        };

        let customer_id = CustomerId::parse(&raw.customer_id);
        check(
            "customer_id",
            customer_id.as_ref().map(|_| ()).map_err(Clone::clone),
        );
        let transaction_id = TransactionId::parse(&raw.transaction_id);
        check(
            "transaction_id",
            transaction_id.as_ref().map(|_| ()).map_err(Clone::clone),
        );

        let occurred_at = self.parse_instant("occurred_at", raw.occurred_at, now);
        if let Err(v) = &occurred_at {
            violations.push(v.clone());
        }

        let amount = self.parse_money(raw.amount.as_ref(), "amount", true);
        if let Err(v) = &amount {
            violations.push(v.clone());
        }
        let cost = match raw.cost.as_ref() {
            None => Ok(None),
            Some(_) => self.parse_money(raw.cost.as_ref(), "cost", false).map(Some),
        };
        if let Err(v) = &cost {
            violations.push(v.clone());
        }

        let kind = match raw.kind {
            UncheckedKind::Purchase => {
                if let Ok(a) = amount {
                    if a.is_negative() {
                        violations.push(FieldViolation::new("amount", "a purchase must be >= 0"));
                    }
                }
                if !raw.refunded_transaction_id.is_empty() {
                    violations.push(FieldViolation::new(
                        "refunded_transaction_id",
                        "must be empty for a purchase",
                    ));
                }
                Some(TransactionKind::Purchase)
            }
            UncheckedKind::Refund => {
                if let Ok(a) = amount {
                    if a.nanos() <= 0 {
                        violations.push(FieldViolation::new("amount", "a refund must be > 0"));
                    }
                }
                if let Ok(Some(_)) = cost {
                    violations.push(FieldViolation::new("cost", "only purchases carry a cost"));
                }
                match TransactionId::parse(&raw.refunded_transaction_id) {
                    Ok(of) => Some(TransactionKind::Refund { of }),
                    Err(d) => {
                        violations.push(FieldViolation::new(
                            "refunded_transaction_id",
                            format!("a refund must name the purchase it refunds: {d}"),
                        ));
                        None
                    }
                }
            }
            UncheckedKind::Unspecified => {
                violations.push(FieldViolation::new("kind", "must be PURCHASE or REFUND"));
                None
            }
            UncheckedKind::Unknown(n) => {
                violations.push(FieldViolation::new("kind", format!("unknown value {n}")));
                None
            }
        };
        if let Ok(Some(c)) = cost {
            if c.is_negative() {
                violations.push(FieldViolation::new("cost", "must be >= 0"));
            }
        }

        match (customer_id, transaction_id, occurred_at, amount, cost, kind) {
            (
                Ok(customer_id),
                Ok(transaction_id),
                Ok(occurred_at),
                Ok(amount),
                Ok(cost),
                Some(kind),
            ) if violations.is_empty() => Ok(Transaction {
                occasion_day: self.occasion_day(occurred_at),
                customer_id,
                transaction_id,
                occurred_at,
                kind,
                amount,
                cost,
            }),
            _ => Err(violations),
        }
    }

    /// A timestamp not before [`Self::earliest`] and not beyond the allowed
    /// clock skew; violations are named `field` or `field.nanos`. Seconds
    /// before 1970 are negative with nanos still in [0, 1e9), as protobuf
    /// normalises them: 1969-12-31T23:59:59.5Z is (-1, 500000000).
    pub(super) fn parse_instant(
        &self,
        field: &str,
        raw: Option<(i64, i32)>,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, FieldViolation> {
        let (seconds, nanos) = raw.ok_or_else(|| FieldViolation::new(field, "is required"))?;
        if !(0..1_000_000_000).contains(&nanos) {
            return Err(FieldViolation::new(
                format!("{field}.nanos"),
                format!("must be in [0, 1e9), got {nanos}"),
            ));
        }
        // PostgreSQL keeps microseconds: truncate now, so that a resent
        // transaction compares equal to what was stored. nanos >= 0, so
        // this truncates toward the past for negative seconds too.
        let at = u32::try_from(nanos / 1000 * 1000)
            .ok()
            .and_then(|n| DateTime::from_timestamp(seconds, n))
            .ok_or_else(|| FieldViolation::new(field, "is out of range"))?;
        if at < self.earliest {
            return Err(FieldViolation::new(
                field,
                format!(
                    "is before the earliest accepted time {} (CLVD_EARLIEST_TRANSACTION_TIME)",
                    self.earliest
                        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                ),
            ));
        }
        if at > now + self.max_future_skew {
            return Err(FieldViolation::new(
                field,
                format!(
                    "is in the future (more than {}h after now)",
                    self.max_future_skew.num_hours()
                ),
            ));
        }
        Ok(at)
    }

    pub(super) fn parse_money(
        &self,
        raw: Option<&UncheckedMoney>,
        field: &str,
        required: bool,
    ) -> Result<Amount, FieldViolation> {
        let Some(m) = raw else {
            debug_assert!(required);
            return Err(FieldViolation::new(field, "is required"));
        };
        if !m.currency_code.is_empty() && m.currency_code != self.currency {
            return Err(FieldViolation::new(
                format!("{field}.currency_code"),
                format!(
                    "must be the reporting currency {}, got {:?}",
                    self.currency, m.currency_code
                ),
            ));
        }
        Amount::from_units_nanos(m.units, m.nanos)
            .map_err(|(sub, d)| FieldViolation::new(format!("{field}.{sub}"), d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(
        rules: &IngestRules,
        seconds: i64,
        nanos: i32,
    ) -> Result<DateTime<Utc>, FieldViolation> {
        rules.parse_instant("occurred_at", Some((seconds, nanos)), Utc::now())
    }

    #[test]
    fn negative_seconds_keep_their_instant_truncated_to_microseconds() {
        let rules = IngestRules::default();
        // 1969-12-31T23:59:59.5000007Z: -1 s + 500,000,700 ns.
        let at = parse(&rules, -1, 500_000_700).unwrap();
        assert_eq!(at, DateTime::from_timestamp(-1, 500_000_000).unwrap());
        assert_eq!(
            rules.occasion_day(at),
            NaiveDate::from_ymd_opt(1969, 12, 31).unwrap()
        );
    }

    #[test]
    fn the_floor_is_inclusive_and_a_refusal_names_it() {
        let rules = IngestRules::default();
        assert_eq!(rules.earliest.to_rfc3339(), "1900-01-01T00:00:00+00:00");
        assert_eq!(
            DEFAULT_EARLIEST.parse::<DateTime<Utc>>().unwrap(),
            rules.earliest
        );
        let floor = rules.earliest.timestamp();
        assert!(parse(&rules, floor, 0).is_ok());
        let e = parse(&rules, floor - 1, 999_999_999).unwrap_err();
        assert_eq!(e.field, "occurred_at");
        assert!(e.description.contains("1900-01-01T00:00:00Z"), "{e:?}");

        let rules = IngestRules {
            earliest: "1995-06-01T12:00:00Z".parse().unwrap(),
            ..IngestRules::default()
        };
        let e = parse(&rules, rules.earliest.timestamp() - 1, 0).unwrap_err();
        assert!(e.description.contains("1995-06-01T12:00:00Z"), "{e:?}");
    }
}
