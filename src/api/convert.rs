//! Protobuf messages to and from domain types. Every message is
//! destructured field by field, so a new proto field does not compile until
//! it is handled here.

use chrono::{DateTime, Utc};

use super::pb;
use crate::{
    domain::{
        Criterion, CustomerId, FieldViolation, IngestRules, PurchaseFamily, Total, Transaction,
        UncheckedFeedback, UncheckedKind, UncheckedMoney, UncheckedSpend, UncheckedTransaction,
    },
    service::Entry,
};

/// The request field of RecordTransaction's one transaction.
const SINGLE: &str = "transaction";
/// The request field of an import batch's transactions.
const BATCH: &str = "transactions";

/// The field path of a transaction of a call, the one place it is built:
/// `transaction` for RecordTransaction's, `transactions[i]` for entry `i`
/// of a batch.
pub fn entry_path(entry: Entry) -> String {
    match entry {
        None => SINGLE.to_owned(),
        Some(i) => format!("{BATCH}[{i}]"),
    }
}

pub fn unchecked_transaction(t: pb::Transaction) -> UncheckedTransaction {
    let pb::Transaction {
        customer_id,
        transaction_id,
        occurred_at,
        kind,
        amount,
        cost,
        refunded_transaction_id,
    } = t;
    UncheckedTransaction {
        customer_id,
        transaction_id,
        occurred_at: occurred_at.map(|ts| (ts.seconds, ts.nanos)),
        kind: match pb::TransactionKind::try_from(kind) {
            Ok(pb::TransactionKind::Purchase) => UncheckedKind::Purchase,
            Ok(pb::TransactionKind::Refund) => UncheckedKind::Refund,
            Ok(pb::TransactionKind::Unspecified) => UncheckedKind::Unspecified,
            Err(_) => UncheckedKind::Unknown(kind),
        },
        amount: amount.map(unchecked_money),
        cost: cost.map(unchecked_money),
        refunded_transaction_id,
    }
}

pub fn unchecked_feedback(f: pb::Feedback) -> UncheckedFeedback {
    let pb::Feedback {
        customer_id,
        feedback_id,
        occurred_at,
        nps,
        csat,
        ces,
    } = f;
    UncheckedFeedback {
        customer_id,
        feedback_id,
        occurred_at: occurred_at.map(|ts| (ts.seconds, ts.nanos)),
        nps,
        csat,
        ces,
    }
}

pub fn unchecked_spend(s: pb::AcquisitionSpend) -> UncheckedSpend {
    let pb::AcquisitionSpend {
        spend_id,
        start_time,
        end_time,
        amount,
        channel,
    } = s;
    UncheckedSpend {
        spend_id,
        start_time: start_time.map(|ts| (ts.seconds, ts.nanos)),
        end_time: end_time.map(|ts| (ts.seconds, ts.nanos)),
        amount: amount.map(unchecked_money),
        channel,
    }
}

fn unchecked_money(m: pb::Money) -> UncheckedMoney {
    let pb::Money {
        currency_code,
        units,
        nanos,
    } = m;
    UncheckedMoney {
        currency_code,
        units,
        nanos,
    }
}

/// Validates one transaction of a call; violations are named by
/// [`entry_path`].
pub fn transaction(
    rules: &IngestRules,
    entry: Entry,
    raw: pb::Transaction,
    now: DateTime<Utc>,
) -> Result<Transaction, Vec<FieldViolation>> {
    rules
        .parse_transaction(unchecked_transaction(raw), now)
        .map_err(|vs| under(&entry_path(entry), vs))
}

/// Validates a batch of transactions, named `transactions[i]`. All
/// entries are checked, so the caller sees every problem.
pub fn transactions(
    rules: &IngestRules,
    raw: Vec<pb::Transaction>,
    now: DateTime<Utc>,
) -> Result<Vec<Transaction>, Vec<FieldViolation>> {
    let mut parsed = Vec::with_capacity(raw.len());
    let mut violations = Vec::new();
    for (i, t) in raw.into_iter().enumerate() {
        match transaction(rules, Some(i), t, now) {
            Ok(t) => parsed.push(t),
            Err(vs) => violations.extend(vs),
        }
    }
    if violations.is_empty() {
        Ok(parsed)
    } else {
        Err(violations)
    }
}

/// Violations of the message at `field`, named from the request's root.
pub fn under(field: &str, violations: Vec<FieldViolation>) -> Vec<FieldViolation> {
    violations.into_iter().map(|v| v.under(field)).collect()
}

/// A page size: `default` for 0, at most `max`; negative is refused.
pub fn page_size(
    raw: i32,
    default: usize,
    max: usize,
    violations: &mut Vec<FieldViolation>,
) -> Option<usize> {
    match usize::try_from(raw) {
        Ok(0) => Some(default),
        Ok(n) => Some(n.min(max)),
        Err(_) => {
            violations.push(FieldViolation::new("page_size", "must not be negative"));
            None
        }
    }
}

pub fn customer_id(field: &str, raw: &str) -> Result<CustomerId, FieldViolation> {
    CustomerId::parse(raw).map_err(|d| FieldViolation::new(field, d))
}

/// A customer id by the rules ids were ever stored under, so that one
/// stored before the current rules can still be erased.
pub fn stored_customer_id(field: &str, raw: &str) -> Result<CustomerId, FieldViolation> {
    CustomerId::from_stored(raw).map_err(|d| FieldViolation::new(field, d))
}

/// A UTC instant as a protobuf timestamp.
pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

/// A required timestamp, or a violation naming `field` (or `field.nanos`).
pub fn instant(
    field: &str,
    raw: Option<prost_types::Timestamp>,
    violations: &mut Vec<FieldViolation>,
) -> Option<DateTime<Utc>> {
    let Some(ts) = raw else {
        violations.push(FieldViolation::new(field, "is required"));
        return None;
    };
    if !(0..1_000_000_000).contains(&ts.nanos) {
        violations.push(FieldViolation::new(
            format!("{field}.nanos"),
            "must be in [0, 1e9)",
        ));
        return None;
    }
    let t = DateTime::from_timestamp(ts.seconds, ts.nanos as u32);
    if t.is_none() {
        violations.push(FieldViolation::new(field, "is out of range"));
    }
    t
}

/// A required timestamp that is not after `now`.
pub fn past_instant(
    field: &str,
    raw: Option<prost_types::Timestamp>,
    now: DateTime<Utc>,
    violations: &mut Vec<FieldViolation>,
) -> Option<DateTime<Utc>> {
    let t = instant(field, raw, violations)?;
    if t > now {
        violations.push(FieldViolation::new(field, "must not be in the future"));
        return None;
    }
    Some(t)
}

/// An optional timestamp that is not after `now`; `None` when not given.
pub fn optional_past_instant(
    field: &str,
    raw: Option<prost_types::Timestamp>,
    now: DateTime<Utc>,
    violations: &mut Vec<FieldViolation>,
) -> Option<Option<DateTime<Utc>>> {
    match raw {
        None => Some(None),
        raw => past_instant(field, raw, now, violations).map(Some),
    }
}

/// An exact amount or total in the reporting currency.
pub fn money(currency: &str, a: impl Into<Total>) -> pb::Money {
    let (units, nanos) = a.into().units_nanos();
    pb::Money {
        currency_code: currency.to_owned(),
        units,
        nanos,
    }
}

/// A predicted amount (currency units), rounded to the nano and clamped
/// to what Money can carry.
pub fn predicted_money(currency: &str, v: f64) -> pb::Money {
    money(currency, Total::saturating_from_units_f64(v))
}

/// A score's interval at `level`.
pub fn interval(i: clv_model::Interval, level: f64) -> pb::Interval {
    pb::Interval {
        lower: i.lower,
        upper: i.upper,
        level,
    }
}

/// A predicted amount's interval at `level` (currency units, each end as
/// [`predicted_money`]).
pub fn money_interval(currency: &str, i: clv_model::Interval, level: f64) -> pb::MoneyInterval {
    pb::MoneyInterval {
        lower: Some(predicted_money(currency, i.lower)),
        upper: Some(predicted_money(currency, i.upper)),
        level,
    }
}

/// A purchase family as the API names it.
pub fn family(f: PurchaseFamily) -> pb::ModelFamily {
    match f {
        PurchaseFamily::BgNbd => pb::ModelFamily::BgNbd,
        PurchaseFamily::MbgNbd => pb::ModelFamily::MbgNbd,
        PurchaseFamily::ParetoNbd => pb::ModelFamily::ParetoNbd,
    }
}

/// The families a request names (`field`), each at most once; an unknown
/// or unspecified value is a violation naming `field[i]`.
pub fn families(field: &str, raw: &[i32]) -> Result<Vec<PurchaseFamily>, Vec<FieldViolation>> {
    let mut out = Vec::with_capacity(raw.len());
    let mut violations = Vec::new();
    for (i, &value) in raw.iter().enumerate() {
        let path = format!("{field}[{i}]");
        match pb::ModelFamily::try_from(value) {
            Ok(pb::ModelFamily::BgNbd) => out.push(PurchaseFamily::BgNbd),
            Ok(pb::ModelFamily::MbgNbd) => out.push(PurchaseFamily::MbgNbd),
            Ok(pb::ModelFamily::ParetoNbd) => out.push(PurchaseFamily::ParetoNbd),
            Ok(pb::ModelFamily::Unspecified) | Err(_) => violations.push(FieldViolation::new(
                path,
                format!(
                    "unknown family {value}: use MODEL_FAMILY_BG_NBD, MODEL_FAMILY_MBG_NBD or \
                     MODEL_FAMILY_PARETO_NBD"
                ),
            )),
        }
    }
    if let Some(f) = out
        .iter()
        .enumerate()
        .find_map(|(i, f)| out[..i].contains(f).then_some(f))
    {
        violations.push(FieldViolation::new(
            field,
            format!("names {} more than once", f.paper_name()),
        ));
    }
    if violations.is_empty() {
        Ok(out)
    } else {
        Err(violations)
    }
}

/// A request's selection override (`None`: the server's setting).
pub fn criterion(field: &str, raw: i32) -> Result<Option<Criterion>, FieldViolation> {
    match pb::ModelSelection::try_from(raw) {
        Ok(pb::ModelSelection::Unspecified) => Ok(None),
        Ok(pb::ModelSelection::Bic) => Ok(Some(Criterion::Bic)),
        Ok(pb::ModelSelection::Aic) => Ok(Some(Criterion::Aic)),
        Ok(pb::ModelSelection::Holdout) => Ok(Some(Criterion::Holdout)),
        Err(_) => Err(FieldViolation::new(
            field,
            format!("unknown value {raw}: use MODEL_SELECTION_BIC or MODEL_SELECTION_AIC"),
        )),
    }
}
