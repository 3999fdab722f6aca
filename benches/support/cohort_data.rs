//! A customer base written with SQL inside PostgreSQL, for the benches
//! that read reports (`reports`, `report_html`). Included by those benches
//! only (`#[path]`), so that the others do not carry it.
//!
//! Importing millions of transactions over gRPC takes far longer than the
//! benches themselves, so the rows are generated with `generate_series`, in
//! exactly the shape ingest stores: transactions (purchases and refunds,
//! refunds booked on their purchase), per-day rollups, customer summaries.
//!
//! The purchases follow the Pareto/NBD story, which the service's models
//! can identify (an earlier base with one spread of purchases for everybody
//! and constant amounts could not be fitted). Customer `c` makes a first
//! purchase at a pseudo-random instant of the 24 months FIRST_MONTH .. END;
//! stays for an exponential lifetime whose rate is Gamma(shape 2) around a
//! mean of a year; and, while there (up to END), buys at a rate drawn from
//! Gamma(shape 2), scaled so that the base has about `transactions`
//! purchases, the repeat purchases at uniform instants of that window (a
//! Poisson process given its count). Spend varies between and within
//! customers as the Gamma-Gamma model assumes: each customer's mean spend
//! per purchase is drawn from Gamma(shape 3, scale $15) (mean $45), and
//! each purchase's amount from Gamma(shape 4) around that mean, rounded to
//! cents (at least one cent). Every draw is a product of uniforms made by
//! `hashint8` of the customer or purchase number (a sum of logarithms for a
//! gamma of integer shape), so the same knobs always give the same base,
//! with no session state such as `setseed` to keep on one connection.
//! Every 20th purchase is half refunded a day later; half of the purchases
//! carry a cost.

use std::time::Instant;

use anyhow::Context;
use chrono::NaiveDate;
use clvd::api::pb::{self, ingest_service_client::IngestServiceClient};
use tonic::transport::Channel;

use crate::support::money;

use sqlx::PgPool;

/// The 24 months of data and of cohorts: 2024-11 .. 2026-10.
const FIRST_MONTH: &str = "2024-11-01";
const END: &str = "2026-11-01";

/// A uniform draw in (0, 1) from `hashint8(<expr>)`, parenthesised.
fn uniform(expr: &str) -> String {
    format!("(((hashint8({expr})::int8 & 2147483647) + 1) / 2147483649.0::float8)")
}

/// Writes about `transactions` purchases (plus 1 in 20 refunded) of
/// `customers` customers, their day rollups and summaries, printing each
/// step's time.
pub async fn load(pool: &PgPool, customers: i64, transactions: i64) -> anyhow::Result<()> {
    let u = |salt: u32| uniform(&format!("c * 101 + {salt}"));
    // Customer c's mean spend, dollars: 15 * Gamma(3) = -15 ln(u1 u2 u3).
    let mean = format!("(-15.0 * ln({} * {} * {}))", u(1), u(2), u(3));
    // Purchase (c, k)'s number, for its own draws.
    let i = "(c * 1048576 + k)";
    let v = |salt: u32| uniform(&format!("{i} * 13 + {salt}"));
    // Its amount: mean * Gamma(4) / 4, in nanos, whole cents.
    let amount = format!(
        "greatest(1, round({mean} * -ln({} * {} * {} * {}) / 4.0 * 100))::int8 * 10000000",
        v(5),
        v(6),
        v(7),
        v(8)
    );
    let steps = [
        format!(
            "INSERT INTO transactions (customer_id, transaction_id, kind, occurred_at, occasion_day,
                                       amount_nanos, cost_nanos, refunded_transaction_id, refunded_nanos)
             WITH span AS (
                 SELECT extract(epoch FROM timestamptz '{END}' - timestamptz '{FIRST_MONTH}')::int8 AS span
             ), drawn AS (
                 -- first: seconds after FIRST_MONTH; alive_for: seconds from
                 -- it to the lifetime's end or END; rate: Gamma(2), relative.
                 SELECT c, first,
                        least(span - first, -ln({life}) * 365 * 86400 / (-ln({m1} * {m2}) / 2)) AS alive_for,
                        -ln({r1} * {r2}) AS rate
                   FROM (SELECT c, (hashint8(c * 31)::int8 & 2147483647) % span AS first, span
                           FROM generate_series(0::int8, {n} - 1) AS c, span) f
             ), counted AS (
                 SELECT c, first, alive_for,
                        floor(rate * alive_for * greatest(0, {t} - {n}) / sum(rate * alive_for) OVER ()
                              + {extra})::int8 AS repeats
                   FROM drawn
             ), purchases AS (
                 SELECT c, k, {amount} AS amount,
                        timestamptz '{FIRST_MONTH}'
                          + (first + CASE WHEN k = 0 THEN 0 ELSE {when} * alive_for END)
                            * interval '1 second' AS at
                   FROM counted, generate_series(0::int8, repeats) AS k
             )
             SELECT 'c' || c, 't' || c || '-' || k, 1, at, (at AT TIME ZONE 'UTC')::date, amount,
                    CASE WHEN (c + k) % 2 = 0 THEN amount / 3 END, NULL,
                    CASE WHEN (c + k) % 20 = 0 THEN amount / 2 ELSE 0 END
               FROM purchases",
            n = customers,
            t = transactions,
            life = u(4),
            m1 = u(5),
            m2 = u(6),
            r1 = u(7),
            r2 = u(8),
            extra = u(9),
            when = v(9),
        ),
        "INSERT INTO transactions (customer_id, transaction_id, kind, occurred_at, occasion_day,
                                   amount_nanos, refunded_transaction_id)
         SELECT customer_id, 'r' || transaction_id, 2, occurred_at + interval '1 day',
                ((occurred_at + interval '1 day') AT TIME ZONE 'UTC')::date, refunded_nanos, transaction_id
           FROM transactions WHERE kind = 1 AND refunded_nanos > 0"
            .into(),
        "INSERT INTO customer_days (customer_id, day, purchases, refunds, net_nanos, cost_nanos,
                                    uncosted_purchases, first_purchase_at, last_purchase_at)
         SELECT customer_id, occasion_day, count(*), count(*) FILTER (WHERE refunded_nanos > 0),
                sum(amount_nanos - refunded_nanos), coalesce(sum(cost_nanos), 0),
                count(*) FILTER (WHERE cost_nanos IS NULL), min(occurred_at), max(occurred_at)
           FROM transactions WHERE kind = 1 GROUP BY 1, 2"
            .into(),
        "INSERT INTO customers (customer_id, first_purchase_day, last_purchase_day, first_purchase_at,
                                last_purchase_at, purchase_occasions, purchase_count, refund_count,
                                net_revenue_nanos, repeat_value_nanos, cost_nanos, uncosted_purchases)
         SELECT customer_id, min(day), max(day), min(first_purchase_at), max(last_purchase_at), count(*),
                sum(purchases), sum(refunds), sum(net_nanos),
                sum(net_nanos) - (array_agg(net_nanos ORDER BY day))[1], sum(cost_nanos),
                sum(uncosted_purchases)
           FROM customer_days GROUP BY customer_id"
            .into(),
    ];
    for step in steps {
        let started = Instant::now();
        let done = sqlx::query(&step).execute(pool).await?.rows_affected();
        println!(
            "  setup: {done} rows in {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// $1,000,000 of acquisition spend for each cohort month, so that the
/// cohorts' CAC, LTV:CAC and payback are computed too.
pub async fn record_monthly_spend(channel: Channel) -> anyhow::Result<()> {
    let mut ingest = IngestServiceClient::new(channel);
    let first = NaiveDate::from_ymd_opt(2024, 11, 1).context("a date")?;
    let at = |d: NaiveDate| prost_types::Timestamp {
        seconds: d
            .and_hms_opt(0, 0, 0)
            .map_or(0, |t| t.and_utc().timestamp()),
        nanos: 0,
    };
    for m in 0..24u32 {
        let start = first + chrono::Months::new(m);
        ingest
            .record_acquisition_spend(pb::RecordAcquisitionSpendRequest {
                spend: Some(pb::AcquisitionSpend {
                    spend_id: format!("month-{m}"),
                    start_time: Some(at(start)),
                    end_time: Some(at(start + chrono::Months::new(1))),
                    amount: Some(money(100_000_000)),
                    channel: String::new(),
                }),
            })
            .await?;
    }
    Ok(())
}
