//! One CSV row into a transaction, checked locally with the service's own
//! rules ([`IngestRules::parse_transaction`]) before anything is sent.
//!
//! Times (`--time-zone`, default UTC, applies to the forms without an
//! offset): RFC 3339 (`2026-10-31T12:00:00Z`, `…+02:00`); `YYYY-MM-DD
//! HH:MM:SS[.fff]` (or with `T`) as a local time of that zone; a date alone
//! `YYYY-MM-DD` as midnight at the start of that day in that zone. A local
//! time that occurs twice (a DST fall-back) is the earlier; one that does
//! not exist (a DST gap) is rejected.
//!
//! Transaction ids: the file's column when it has one. Without it, each
//! row's id is derived from the file's identity and the row: `<first 16 hex
//! digits of the SHA-256 of the file's (decompressed) bytes>:<line>`. A
//! rerun of the same file resends the same ids (duplicates, stored once);
//! an edited file is a new identity, whose rows are all new transactions.
//! A refund in such a file names its purchase as `line:<N>` (the purchase
//! on line N, earlier in the same file, same customer), or by a stored
//! transaction id as it is.

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
};

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::{columns::Columns, decimal::parse_decimal};
use crate::{
    domain::{
        IngestRules, Transaction, TransactionKind, UncheckedKind, UncheckedMoney,
        UncheckedTransaction,
    },
    pb,
};

/// Why a row was refused: the CSV column (empty: the row as a whole) and
/// the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub column: String,
    pub reason: String,
}

/// Checks the rows of one file.
pub struct RowChecker {
    pub columns: Columns,
    rules: IngestRules,
    now: DateTime<Utc>,
    time_zone: Tz,
    /// The currency code sent with every amount (empty: the server's).
    currency: String,
    /// The file's identity, when ids are derived from it.
    identity: Option<String>,
    /// Derived ids only: line → hash of the customer of each purchase that
    /// passed the checks, for refunds naming `line:<N>`.
    purchases: HashMap<u64, u64>,
}

/// The prefix a refund uses to name the purchase on a line of the file.
pub const LINE_REFERENCE: &str = "line:";

impl RowChecker {
    pub fn new(
        columns: Columns,
        rules: IngestRules,
        time_zone: Tz,
        currency: String,
        identity: Option<String>,
    ) -> Self {
        Self {
            columns,
            rules,
            now: Utc::now(),
            time_zone,
            currency,
            identity,
            purchases: HashMap::new(),
        }
    }

    /// The transaction id derived for `line` of a file of `identity`.
    pub fn derived_id(identity: &str, line: u64) -> String {
        format!("{identity}:{line}")
    }

    /// One row (its fields, and the line it starts on) into a transaction.
    pub fn check(
        &mut self,
        record: &csv::ByteRecord,
        line: u64,
    ) -> Result<pb::Transaction, Vec<Problem>> {
        let c = &self.columns;
        if record.len() != c.width {
            return Err(vec![Problem {
                column: String::new(),
                reason: format!("has {} fields, the header has {}", record.len(), c.width),
            }]);
        }
        let mut problems = Vec::new();
        let mut text = |index: usize, name: &str| -> Option<&str> {
            let bytes = record.get(index).unwrap_or_default();
            match std::str::from_utf8(bytes) {
                Ok(s) => Some(s),
                Err(_) => {
                    problems.push(Problem {
                        column: name.to_owned(),
                        reason: "is not UTF-8".into(),
                    });
                    None
                }
            }
        };
        let customer = text(c.customer.index, &c.customer.name);
        let transaction = c.transaction.as_ref().map(|t| text(t.index, &t.name));
        let time = text(c.time.index, &c.time.name);
        let amount = text(c.amount.index, &c.amount.name);
        let kind = c.kind.as_ref().and_then(|k| text(k.index, &k.name));
        let refunded = c.refunded.as_ref().and_then(|r| text(r.index, &r.name));
        let cost = c.cost.as_ref().and_then(|k| text(k.index, &k.name));

        let mut local = |column: &str, r: Result<(), String>| {
            if let Err(reason) = r {
                problems.push(Problem {
                    column: column.to_owned(),
                    reason,
                });
            }
        };
        let occurred_at = time.and_then(|t| {
            let parsed = parse_time(t, self.time_zone);
            let at = parsed.as_ref().ok().copied();
            local(&c.time.name, parsed.map(|_| ()));
            at
        });
        let money = |(units, nanos)| UncheckedMoney {
            currency_code: self.currency.clone(),
            units,
            nanos,
        };
        let amount = amount.and_then(|a| {
            let parsed = parse_decimal(a);
            let m = parsed.as_ref().ok().copied().map(money);
            local(&c.amount.name, parsed.map(|_| ()));
            m
        });
        let cost = match (cost.map(str::trim), &c.cost) {
            (Some(s), Some(col)) if !s.is_empty() => {
                let parsed = parse_decimal(s);
                let m = parsed.as_ref().ok().copied().map(money);
                local(&col.name, parsed.map(|_| ()));
                m
            }
            _ => None,
        };
        let kind = match kind.map(str::trim) {
            None | Some("") => UncheckedKind::Purchase,
            Some(k) if k.eq_ignore_ascii_case("purchase") => UncheckedKind::Purchase,
            Some(k) if k.eq_ignore_ascii_case("refund") => UncheckedKind::Refund,
            Some(k) => {
                local(
                    c.kind.as_ref().map_or("", |k| &k.name),
                    Err(format!("{k:?} is neither purchase nor refund")),
                );
                UncheckedKind::Purchase
            }
        };
        let transaction_id = match (transaction, &self.identity) {
            (Some(Some(id)), _) => id.to_owned(),
            (None, Some(identity)) => Self::derived_id(identity, line),
            // Not UTF-8 (already a problem), or no column and no identity.
            _ => String::new(),
        };
        let mut refund_line = None;
        let refunded_transaction_id = match (refunded, &self.identity) {
            (Some(r), Some(identity)) if r.starts_with(LINE_REFERENCE) => {
                match r[LINE_REFERENCE.len()..].parse::<u64>() {
                    Ok(n) => {
                        refund_line = Some(n);
                        Self::derived_id(identity, n)
                    }
                    Err(_) => r.to_owned(),
                }
            }
            (Some(r), _) => r.to_owned(),
            (None, _) => String::new(),
        };
        let customer = customer.unwrap_or_default();
        let customer_hash = hash(customer);
        let raw = UncheckedTransaction {
            customer_id: customer.to_owned(),
            transaction_id,
            occurred_at,
            kind,
            amount,
            cost,
            refunded_transaction_id,
        };
        let checked = self.rules.parse_transaction(raw, self.now);
        let columns = &self.columns;
        match checked {
            Ok(t) if problems.is_empty() => {
                if let Some(n) = refund_line {
                    if n >= line || self.purchases.get(&n) != Some(&customer_hash) {
                        return Err(vec![Problem {
                            column: columns.of_field("refunded_transaction_id"),
                            reason: format!(
                                "line {n} is not a purchase of this customer that passed the \
                                 checks earlier in the file"
                            ),
                        }]);
                    }
                }
                if self.identity.is_some() && t.is_purchase() {
                    self.purchases.insert(line, customer_hash);
                }
                Ok(to_pb(t, &self.currency))
            }
            Ok(_) => Err(problems),
            Err(violations) => {
                // A field whose text could not be read is reported once,
                // by the reading; the domain's "is required" would repeat it.
                for v in violations {
                    let column = columns.of_field(&v.field);
                    if !problems.iter().any(|p| p.column == column) {
                        problems.push(Problem {
                            column,
                            reason: v.description,
                        });
                    }
                }
                Err(problems)
            }
        }
    }
}

fn hash(s: &str) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

/// A checked transaction as the API's message.
fn to_pb(t: Transaction, currency: &str) -> pb::Transaction {
    let money = |a: crate::domain::Amount| {
        let (units, nanos) = a.units_nanos();
        pb::Money {
            currency_code: currency.to_owned(),
            units,
            nanos,
        }
    };
    let (kind, refunded_transaction_id) = match t.kind {
        TransactionKind::Purchase => (pb::TransactionKind::Purchase, String::new()),
        TransactionKind::Refund { of } => (pb::TransactionKind::Refund, of.into_string()),
    };
    pb::Transaction {
        customer_id: t.customer_id.into_string(),
        transaction_id: t.transaction_id.into_string(),
        occurred_at: Some(prost_types::Timestamp {
            seconds: t.occurred_at.timestamp(),
            nanos: t.occurred_at.timestamp_subsec_nanos() as i32,
        }),
        kind: kind as i32,
        amount: Some(money(t.amount)),
        cost: t.cost.map(money),
        refunded_transaction_id,
    }
}

/// A time cell as seconds and nanos since the epoch (see the module doc).
pub fn parse_time(text: &str, zone: Tz) -> Result<(i64, i32), String> {
    let s = text.trim();
    let at: DateTime<Utc> = if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        t.with_timezone(&Utc)
    } else {
        let local = if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            d.and_hms_opt(0, 0, 0)
        } else {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
                .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f"))
                .ok()
        }
        .ok_or_else(|| {
            format!(
                "{s:?} is not a time: expected RFC 3339 (2026-10-31T12:00:00Z), \
                 YYYY-MM-DD HH:MM:SS or a date YYYY-MM-DD"
            )
        })?;
        zone.from_local_datetime(&local)
            .earliest()
            .ok_or_else(|| format!("{s:?} does not exist in the time zone {zone}"))?
            .with_timezone(&Utc)
    };
    Ok((at.timestamp(), at.timestamp_subsec_nanos() as i32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_every_accepted_form() {
        let utc = |y, m, d, h| {
            NaiveDate::from_ymd_opt(y, m, d)
                .unwrap()
                .and_hms_opt(h, 0, 0)
                .unwrap()
                .and_utc()
                .timestamp()
        };
        assert_eq!(
            parse_time("1997-01-01", Tz::UTC),
            Ok((utc(1997, 1, 1, 0), 0))
        );
        assert_eq!(
            parse_time("1997-01-01 05:00:00", Tz::UTC),
            Ok((utc(1997, 1, 1, 5), 0))
        );
        assert_eq!(
            parse_time("1997-01-01T05:00:00.25", Tz::UTC),
            Ok((utc(1997, 1, 1, 5), 250_000_000))
        );
        assert_eq!(
            parse_time("1997-01-01T05:00:00+02:00", Tz::UTC),
            Ok((utc(1997, 1, 1, 3), 0))
        );
        // A date is midnight of that day in the zone given.
        assert_eq!(
            parse_time("1997-07-01", chrono_tz::Europe::Paris),
            Ok((utc(1997, 6, 30, 22), 0))
        );
        assert!(parse_time("2026-03-29 02:30:00", chrono_tz::Europe::Paris)
            .unwrap_err()
            .contains("does not exist"));
        assert!(parse_time("01/02/1997", Tz::UTC)
            .unwrap_err()
            .contains("RFC 3339"));
    }
}
