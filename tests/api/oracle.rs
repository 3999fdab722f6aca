//! An independent, straightforward computation of customer summaries from
//! raw transactions (UTC calendar days), to check what the service keeps.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use clvd::api::pb;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub first_purchase_day: NaiveDate,
    pub last_purchase_day: NaiveDate,
    pub first_purchase_at: DateTime<Utc>,
    pub last_purchase_at: DateTime<Utc>,
    pub purchase_occasions: i32,
    pub purchase_count: i32,
    pub refund_count: i32,
    pub net_revenue_nanos: i128,
    pub repeat_value_nanos: i128,
    pub cost_nanos: i128,
    pub uncosted_purchases: i32,
}

/// Nanos of a Money (0 when absent), exact for any Money.
pub fn money_nanos(m: &Option<pb::Money>) -> i128 {
    m.as_ref()
        .map(|m| i128::from(m.units) * 1_000_000_000 + i128::from(m.nanos))
        .unwrap_or(0)
}

fn time(t: &pb::Transaction) -> DateTime<Utc> {
    let ts = t.occurred_at.as_ref().expect("timestamp");
    DateTime::from_timestamp(ts.seconds, ts.nanos as u32).expect("valid")
}

/// Summaries per customer of a set of valid transactions (each key once).
pub fn expected(transactions: &[pb::Transaction]) -> HashMap<String, Expected> {
    let mut by_customer: BTreeMap<&str, Vec<&pb::Transaction>> = BTreeMap::new();
    for t in transactions {
        by_customer.entry(&t.customer_id).or_default().push(t);
    }
    let mut out = HashMap::new();
    for (customer, ts) in by_customer {
        let purchases: Vec<_> = ts
            .iter()
            .filter(|t| t.kind == pb::TransactionKind::Purchase as i32)
            .collect();
        let refunds: Vec<_> = ts
            .iter()
            .filter(|t| t.kind == pb::TransactionKind::Refund as i32)
            .collect();
        if purchases.is_empty() {
            continue;
        }
        let refunded = |purchase: &str| -> i128 {
            refunds
                .iter()
                .filter(|r| r.refunded_transaction_id == purchase)
                .map(|r| money_nanos(&r.amount))
                .sum()
        };
        let days: BTreeSet<NaiveDate> = purchases.iter().map(|p| time(p).date_naive()).collect();
        let first_day = *days.first().expect("a day");
        let net: i128 = purchases
            .iter()
            .map(|p| money_nanos(&p.amount) - refunded(&p.transaction_id))
            .sum();
        let repeat: i128 = purchases
            .iter()
            .filter(|p| time(p).date_naive() != first_day)
            .map(|p| money_nanos(&p.amount) - refunded(&p.transaction_id))
            .sum();
        out.insert(
            customer.to_owned(),
            Expected {
                first_purchase_day: first_day,
                last_purchase_day: *days.last().expect("a day"),
                first_purchase_at: purchases.iter().map(|p| time(p)).min().expect("one"),
                last_purchase_at: purchases.iter().map(|p| time(p)).max().expect("one"),
                purchase_occasions: days.len() as i32,
                purchase_count: purchases.len() as i32,
                refund_count: refunds.len() as i32,
                net_revenue_nanos: net,
                repeat_value_nanos: repeat,
                cost_nanos: purchases.iter().map(|p| money_nanos(&p.cost)).sum(),
                uncosted_purchases: purchases.iter().filter(|p| p.cost.is_none()).count() as i32,
            },
        );
    }
    out
}

/// The service's summary in the oracle's shape.
pub fn observed(s: &clvd::storage::CustomerSummary) -> Expected {
    Expected {
        first_purchase_day: s.first_purchase_day,
        last_purchase_day: s.last_purchase_day,
        first_purchase_at: s.first_purchase_at,
        last_purchase_at: s.last_purchase_at,
        purchase_occasions: s.purchase_occasions,
        purchase_count: s.purchase_count,
        refund_count: s.refund_count,
        net_revenue_nanos: s.net_revenue.nanos(),
        repeat_value_nanos: s.repeat_value.nanos(),
        cost_nanos: s.cost.nanos(),
        uncosted_purchases: s.uncosted_purchases,
    }
}
