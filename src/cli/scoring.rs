//! `clvd value`, `clvd churn` and `clvd at-risk`: customer scores
//! (GetCustomerValue / BatchGetCustomerValues, GetChurnRisk) and the
//! customers at risk (ListAtRiskCustomers, every page up to a limit).

use serde_json::Value;

use super::{
    output::{enum_cell, money_cell, number_cell, status_error, time_cell, Section},
    time::parse_instant,
    Connection, Format, Table,
};
use crate::pb;

/// Ids per BatchGetCustomerValues call (the API's limit).
const BATCH: usize = 1_000;

/// Flags of `clvd value`.
#[derive(Debug, Clone, clap::Args)]
pub struct ValueArgs {
    /// Customer ids. One: GetCustomerValue, printed field by field. More:
    /// BatchGetCustomerValues (1,000 per call), one row per customer; ids
    /// with no recorded purchase are listed on stderr and the exit status
    /// is 1 after the known ones are printed.
    #[arg(required = true)]
    pub customers: Vec<String>,
    /// Prediction horizon in model months of 30 days, 1 to 120
    /// (horizon_months). Default: the server's, 12.
    #[arg(long)]
    pub horizon_months: Option<i32>,
    /// Annual discount rate in [0, 1), e.g. 0.1 (annual_discount_rate).
    /// Default: the server's, 0.10.
    #[arg(long)]
    pub discount_rate: Option<f64>,
    /// Point-in-time score: what the service would have answered at this
    /// past instant (as_of): RFC 3339, or a date meaning the end of that
    /// day UTC. Default: now.
    #[arg(long, value_parser = parse_instant)]
    pub as_of: Option<prost_types::Timestamp>,
    /// Score with this fitted model version (model_version) instead of the
    /// one active at --as-of. Default: 0, the active one.
    #[arg(long, default_value_t = 0)]
    pub model_version: i64,
    /// Level of the score intervals, strictly between 0 and 1, e.g. 0.95
    /// (interval_level). Default: the server's, CLVD_INTERVAL_LEVEL (0.9).
    #[arg(long)]
    pub interval_level: Option<f64>,
}

/// Flags of `clvd churn`.
#[derive(Debug, Clone, clap::Args)]
pub struct ChurnArgs {
    /// The customer id (customer_id).
    pub customer: String,
    /// Point-in-time score at this past instant (as_of): RFC 3339, or a
    /// date meaning the end of that day UTC. Default: now.
    #[arg(long, value_parser = parse_instant)]
    pub as_of: Option<prost_types::Timestamp>,
    /// Score with this fitted model version (model_version). Default: 0,
    /// the active one.
    #[arg(long, default_value_t = 0)]
    pub model_version: i64,
    /// Level of the P(alive) and churn-risk intervals, strictly between 0
    /// and 1 (interval_level). Default: the server's, CLVD_INTERVAL_LEVEL.
    #[arg(long)]
    pub interval_level: Option<f64>,
}

/// Flags of `clvd at-risk`.
#[derive(Debug, Clone, clap::Args)]
pub struct AtRiskArgs {
    /// At most this many customers, highest value at risk first (pages of
    /// up to 1,000 are followed until then).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Only customers with churn risk (1 - P(alive)) at least this, 0 to 1
    /// (min_churn_risk). Default: the server's HIGH band threshold.
    #[arg(long)]
    pub min_churn_risk: Option<f64>,
    /// Only customers whose predicted value is at least this many currency
    /// units, e.g. 25.50 (min_predicted_value). Default: 0.
    #[arg(long)]
    pub min_value: Option<f64>,
}

fn band(raw: i32) -> Value {
    let b = pb::ChurnRiskBand::try_from(raw).unwrap_or(pb::ChurnRiskBand::Unspecified);
    if b == pb::ChurnRiskBand::Unspecified {
        Value::Null
    } else {
        enum_cell(b.as_str_name(), "CHURN_RISK_BAND_")
    }
}

const VALUE_COLUMNS: [&str; 39] = [
    "customer_id",
    "as_of",
    "first_purchase_time",
    "last_purchase_time",
    "purchase_occasions",
    "transaction_count",
    "historical_value",
    "average_order_value",
    "probability_alive",
    "churn_risk",
    "churn_risk_band",
    "probability_no_purchase",
    "no_purchase_window_days",
    "expected_purchases",
    "expected_average_order_value",
    "predicted_value",
    "total_value",
    "horizon_months",
    "annual_discount_rate",
    "model_version",
    "family",
    "prediction_available",
    "prediction_note",
    "rfm_recency",
    "rfm_frequency",
    "rfm_monetary",
    "segment",
    "value_tier",
    "cohort",
    "interval_level",
    "probability_alive_lower",
    "probability_alive_upper",
    "expected_purchases_lower",
    "expected_purchases_upper",
    "predicted_value_lower",
    "predicted_value_upper",
    "next_purchase_median_days",
    "next_purchase_mean_days",
    "purchase_within_window_probability",
];

/// The lower and upper ends of an interval (nulls when the answer has
/// none: no prediction, or a version stored without its covariances).
fn interval_cells(i: Option<&pb::Interval>) -> [Value; 2] {
    [
        number_cell(i.map(|i| i.lower)),
        number_cell(i.map(|i| i.upper)),
    ]
}

/// The level of the first interval an answer carries (they share it).
fn level_cell(intervals: &[Option<&pb::Interval>]) -> Value {
    number_cell(intervals.iter().flatten().next().map(|i| i.level))
}

/// The columns a terminal shows for several customers (CSV and JSON keep
/// every one of [`VALUE_COLUMNS`]).
const VALUE_SUMMARY: [&str; 10] = [
    "customer_id",
    "historical_value",
    "predicted_value",
    "total_value",
    "expected_purchases",
    "probability_alive",
    "churn_risk_band",
    "segment",
    "value_tier",
    "model_version",
];

fn value_row(v: &pb::CustomerValue) -> Vec<Value> {
    let rfm = v.rfm.as_ref();
    let mut row = vec![
        v.customer_id.clone().into(),
        time_cell(&v.as_of),
        time_cell(&v.first_purchase_time),
        time_cell(&v.last_purchase_time),
        v.purchase_occasions.into(),
        v.transaction_count.into(),
        money_cell(&v.historical_value),
        money_cell(&v.average_order_value),
        number_cell(v.probability_alive),
        number_cell(v.churn_risk),
        band(v.churn_risk_band),
        number_cell(v.probability_no_purchase),
        v.no_purchase_window_days.into(),
        number_cell(v.expected_purchases),
        money_cell(&v.expected_average_order_value),
        money_cell(&v.predicted_value),
        money_cell(&v.total_value),
        v.horizon_months.into(),
        v.annual_discount_rate.into(),
        v.model_version.into(),
        super::fit::family_name(v.family).into(),
        v.prediction_available.into(),
        v.prediction_note.clone().into(),
        number_cell(rfm.map(|r| r.recency)),
        number_cell(rfm.map(|r| r.frequency)),
        number_cell(rfm.map(|r| r.monetary)),
        v.segment.clone().into(),
        v.value_tier.clone().into(),
        v.cohort.clone().into(),
    ];
    let alive = v.probability_alive_interval.as_ref();
    let purchases = v.expected_purchases_interval.as_ref();
    let value = v.predicted_value_interval.as_ref();
    let next = v.next_purchase.as_ref();
    row.push(level_cell(&[alive, purchases]));
    row.extend(interval_cells(alive));
    row.extend(interval_cells(purchases));
    row.push(money_cell(&value.and_then(|i| i.lower.clone())));
    row.push(money_cell(&value.and_then(|i| i.upper.clone())));
    row.push(number_cell(next.map(|n| n.median_days_if_alive)));
    row.push(number_cell(next.and_then(|n| n.mean_days_if_alive)));
    row.push(number_cell(next.map(|n| n.probability_within_window)));
    row
}

/// Only the named columns of `t`.
fn select(t: &Table, columns: &[&str]) -> Table {
    let index: Vec<usize> = columns
        .iter()
        .filter_map(|c| t.headers.iter().position(|h| h == c))
        .collect();
    let mut out = Table::new(index.iter().map(|&i| t.headers[i].clone()));
    for row in &t.rows {
        out.push(index.iter().map(|&i| row[i].clone()).collect());
    }
    out
}

pub async fn value(conn: &Connection, format: Format, args: ValueArgs) -> anyhow::Result<()> {
    let mut client = conn.connect().await?.scoring();
    let mut table = Table::new(VALUE_COLUMNS);
    if let [customer] = args.customers.as_slice() {
        let v = client
            .get_customer_value(pb::GetCustomerValueRequest {
                customer_id: customer.clone(),
                horizon_months: args.horizon_months,
                annual_discount_rate: args.discount_rate,
                as_of: args.as_of,
                model_version: args.model_version,
                interval_level: args.interval_level,
            })
            .await
            .map_err(status_error)?
            .into_inner();
        table.push(value_row(&v));
        return Section::Record(table).print(format);
    }
    let mut unknown = Vec::new();
    for ids in args.customers.chunks(BATCH) {
        let answer = client
            .batch_get_customer_values(pb::BatchGetCustomerValuesRequest {
                customer_ids: ids.to_vec(),
                horizon_months: args.horizon_months,
                annual_discount_rate: args.discount_rate,
                as_of: args.as_of,
                model_version: args.model_version,
                interval_level: args.interval_level,
            })
            .await
            .map_err(status_error)?
            .into_inner();
        for v in &answer.values {
            table.push(value_row(v));
        }
        unknown.extend(answer.unknown_customer_ids);
    }
    if format == Format::Table {
        select(&table, &VALUE_SUMMARY).print(format)?;
    } else {
        table.print(format)?;
    }
    anyhow::ensure!(
        unknown.is_empty(),
        "NotFound: no recorded purchase for {} of the ids: {}",
        unknown.len(),
        unknown.join(", ")
    );
    Ok(())
}

pub async fn churn(conn: &Connection, format: Format, args: ChurnArgs) -> anyhow::Result<()> {
    let c = conn
        .connect()
        .await?
        .scoring()
        .get_churn_risk(pb::GetChurnRiskRequest {
            customer_id: args.customer,
            as_of: args.as_of,
            model_version: args.model_version,
            interval_level: args.interval_level,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    let mut t = Table::new([
        "customer_id",
        "probability_alive",
        "churn_risk",
        "probability_no_purchase",
        "no_purchase_window_days",
        "churn_risk_band",
        "at_risk",
        "predicted_value",
        "value_tier",
        "model_version",
        "family",
        "prediction_available",
        "prediction_note",
        "interval_level",
        "probability_alive_lower",
        "probability_alive_upper",
        "churn_risk_lower",
        "churn_risk_upper",
    ]);
    let available = c.prediction_available;
    let num = |v: f64| {
        if available {
            Value::from(v)
        } else {
            Value::Null
        }
    };
    let mut row = vec![
        c.customer_id.clone().into(),
        num(c.probability_alive),
        num(c.churn_risk),
        num(c.probability_no_purchase),
        c.no_purchase_window_days.into(),
        band(c.churn_risk_band),
        c.at_risk.into(),
        money_cell(&c.predicted_value),
        c.value_tier.clone().into(),
        c.model_version.into(),
        super::fit::family_name(c.family).into(),
        c.prediction_available.into(),
        c.prediction_note.clone().into(),
    ];
    let alive = c.probability_alive_interval.as_ref();
    let churn = c.churn_risk_interval.as_ref();
    row.push(level_cell(&[alive, churn]));
    row.extend(interval_cells(alive));
    row.extend(interval_cells(churn));
    t.push(row);
    Section::Record(t).print(format)
}

pub async fn at_risk(conn: &Connection, format: Format, args: AtRiskArgs) -> anyhow::Result<()> {
    let mut client = conn.connect().await?.scoring();
    let mut table = Table::new([
        "customer_id",
        "churn_risk",
        "probability_alive",
        "probability_no_purchase",
        "predicted_value",
        "value_at_risk",
        "historical_value",
        "rfm_recency",
        "rfm_frequency",
        "rfm_monetary",
        "segment",
        "value_tier",
        "model_version",
        "family",
    ]);
    let mut page_token = String::new();
    while table.rows.len() < args.limit {
        let page = client
            .list_at_risk_customers(pb::ListAtRiskCustomersRequest {
                page_size: (args.limit - table.rows.len()).min(BATCH) as i32,
                page_token,
                min_churn_risk: args.min_churn_risk,
                min_predicted_value: args.min_value,
            })
            .await
            .map_err(status_error)?
            .into_inner();
        for c in &page.customers {
            let rfm = c.rfm.as_ref();
            table.push(vec![
                c.customer_id.clone().into(),
                c.churn_risk.into(),
                c.probability_alive.into(),
                c.probability_no_purchase.into(),
                money_cell(&c.predicted_value),
                money_cell(&c.value_at_risk),
                money_cell(&c.historical_value),
                number_cell(rfm.map(|r| r.recency)),
                number_cell(rfm.map(|r| r.frequency)),
                number_cell(rfm.map(|r| r.monetary)),
                c.segment.clone().into(),
                c.value_tier.clone().into(),
                page.model_version.into(),
                super::fit::family_name(page.family).into(),
            ]);
        }
        if page.next_page_token.is_empty() || page.customers.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    table.print(format)
}
