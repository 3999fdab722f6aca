//! Survey answers (NPS, CSAT, CES) and acquisition spend records, and the
//! rules that turn raw input into them. Like transactions, every offending
//! field is reported at once and a record is stored only when valid.

use chrono::{DateTime, Utc};

use super::{
    money::Amount, transaction::UncheckedMoney, CustomerId, FieldViolation, IdempotencyKey,
    IngestRules, MAX_ID_BYTES,
};

/// The answers of one survey response; at least one is present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scores {
    /// 0-10: 9-10 promoter, 7-8 passive, 0-6 detractor.
    pub nps: Option<i16>,
    /// 1-5: 4-5 satisfied.
    pub csat: Option<i16>,
    /// 1-7: lower is less effort.
    pub ces: Option<i16>,
}

/// A validated survey answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feedback {
    pub customer_id: CustomerId,
    pub feedback_id: IdempotencyKey,
    pub occurred_at: DateTime<Utc>,
    pub scores: Scores,
}

/// A validated acquisition spend record over `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcquisitionSpend {
    pub spend_id: IdempotencyKey,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub amount: Amount,
    /// Empty when not attributed to a channel.
    pub channel: String,
}

#[derive(Debug, Clone, Default)]
pub struct UncheckedFeedback {
    pub customer_id: String,
    pub feedback_id: String,
    pub occurred_at: Option<(i64, i32)>,
    pub nps: Option<i32>,
    pub csat: Option<i32>,
    pub ces: Option<i32>,
}

#[derive(Debug, Clone, Default)]
pub struct UncheckedSpend {
    pub spend_id: String,
    pub start_time: Option<(i64, i32)>,
    pub end_time: Option<(i64, i32)>,
    pub amount: Option<UncheckedMoney>,
    pub channel: String,
}

/// Collects violations while the fields are parsed one by one.
#[derive(Default)]
struct Violations(Vec<FieldViolation>);

impl Violations {
    fn take<T>(&mut self, field: &str, r: Result<T, String>) -> Option<T> {
        r.map_err(|d| self.0.push(FieldViolation::new(field, d)))
            .ok()
    }

    fn take_violation<T>(&mut self, r: Result<T, FieldViolation>) -> Option<T> {
        r.map_err(|v| self.0.push(v)).ok()
    }
}

/// A score in `[low, high]`, or absent.
fn score(raw: Option<i32>, low: i16, high: i16) -> Result<Option<i16>, String> {
    match raw {
        None => Ok(None),
        Some(v) if (i32::from(low)..=i32::from(high)).contains(&v) => Ok(Some(v as i16)),
        Some(v) => Err(format!("must be in {low}..={high}, got {v}")),
    }
}

impl IngestRules {
    pub fn parse_feedback(
        &self,
        raw: UncheckedFeedback,
        now: DateTime<Utc>,
    ) -> Result<Feedback, Vec<FieldViolation>> {
        let mut v = Violations::default();
        let customer_id = v.take("customer_id", CustomerId::parse(&raw.customer_id));
        let feedback_id = v.take("feedback_id", IdempotencyKey::parse(&raw.feedback_id));
        let occurred_at = v.take_violation(self.parse_instant("occurred_at", raw.occurred_at, now));
        let nps = v.take("nps", score(raw.nps, 0, 10));
        let csat = v.take("csat", score(raw.csat, 1, 5));
        let ces = v.take("ces", score(raw.ces, 1, 7));
        if raw.nps.is_none() && raw.csat.is_none() && raw.ces.is_none() {
            for field in ["nps", "csat", "ces"] {
                v.0.push(FieldViolation::new(
                    field,
                    "at least one of nps, csat and ces is required",
                ));
            }
        }
        match (customer_id, feedback_id, occurred_at, nps, csat, ces) {
            (
                Some(customer_id),
                Some(feedback_id),
                Some(occurred_at),
                Some(nps),
                Some(csat),
                Some(ces),
            ) if v.0.is_empty() => Ok(Feedback {
                customer_id,
                feedback_id,
                occurred_at,
                scores: Scores { nps, csat, ces },
            }),
            _ => Err(v.0),
        }
    }

    pub fn parse_spend(
        &self,
        raw: UncheckedSpend,
        now: DateTime<Utc>,
    ) -> Result<AcquisitionSpend, Vec<FieldViolation>> {
        let mut v = Violations::default();
        let spend_id = v.take("spend_id", IdempotencyKey::parse(&raw.spend_id));
        let start = v.take_violation(self.parse_instant("start_time", raw.start_time, now));
        let end = v.take_violation(self.parse_instant("end_time", raw.end_time, now));
        if let (Some(s), Some(e)) = (start, end) {
            if e <= s {
                v.0.push(FieldViolation::new("end_time", "must be after start_time"));
            }
        }
        let amount = v.take_violation(self.parse_money(raw.amount.as_ref(), "amount", true));
        if amount.is_some_and(Amount::is_negative) {
            v.0.push(FieldViolation::new("amount", "must be >= 0"));
        }
        if raw.channel.len() > MAX_ID_BYTES || raw.channel.chars().any(char::is_control) {
            v.0.push(FieldViolation::new(
                "channel",
                format!("must be at most {MAX_ID_BYTES} bytes without control characters"),
            ));
        }
        match (spend_id, start, end, amount) {
            (Some(spend_id), Some(start), Some(end), Some(amount)) if v.0.is_empty() => {
                Ok(AcquisitionSpend {
                    spend_id,
                    start,
                    end,
                    amount,
                    channel: raw.channel,
                })
            }
            _ => Err(v.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(vs: &[FieldViolation]) -> Vec<&str> {
        vs.iter().map(|v| v.field.as_str()).collect()
    }

    #[test]
    fn feedback_names_every_out_of_range_score() {
        let now = Utc::now();
        let raw = UncheckedFeedback {
            customer_id: "c".into(),
            feedback_id: "f".into(),
            occurred_at: Some((now.timestamp(), 0)),
            nps: Some(11),
            csat: Some(0),
            ces: Some(8),
        };
        let e = IngestRules::default().parse_feedback(raw, now).unwrap_err();
        assert_eq!(fields(&e), ["nps", "csat", "ces"]);
    }

    #[test]
    fn feedback_needs_at_least_one_score_and_accepts_the_bounds() {
        let now = Utc::now();
        let mut raw = UncheckedFeedback {
            customer_id: "c".into(),
            feedback_id: "f".into(),
            occurred_at: Some((now.timestamp(), 0)),
            ..Default::default()
        };
        let e = IngestRules::default()
            .parse_feedback(raw.clone(), now)
            .unwrap_err();
        assert_eq!(fields(&e), ["nps", "csat", "ces"]);
        raw.nps = Some(0);
        raw.ces = Some(7);
        let f = IngestRules::default().parse_feedback(raw, now).unwrap();
        assert_eq!(
            f.scores,
            Scores {
                nps: Some(0),
                csat: None,
                ces: Some(7)
            }
        );
    }

    #[test]
    fn spend_needs_an_ordered_period_and_a_non_negative_amount() {
        let now = Utc::now();
        let raw = UncheckedSpend {
            spend_id: String::new(),
            start_time: Some((now.timestamp(), 0)),
            end_time: Some((now.timestamp(), 0)),
            amount: Some(UncheckedMoney {
                currency_code: "USD".into(),
                units: -1,
                nanos: 0,
            }),
            channel: "a\nb".into(),
        };
        let e = IngestRules::default().parse_spend(raw, now).unwrap_err();
        assert_eq!(fields(&e), ["spend_id", "end_time", "amount", "channel"]);
    }
}
