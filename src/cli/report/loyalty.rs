//! `clvd report loyalty`: acquisition, retention, value and satisfaction
//! over one period (GetLoyaltySummary), field by field.

use chrono::{Duration, Utc};

use crate::{
    cli::{
        output::{money_cell, number_cell, status_error, time_cell, Section},
        time::parse_instant,
        Connection, Format, Table,
    },
    pb,
};

/// Flags of `clvd report loyalty`. The period is the business days from
/// --start's day up to, not including, --end's day.
#[derive(Debug, Clone, clap::Args)]
pub struct LoyaltyArgs {
    /// Start of the period (start_time): RFC 3339, or a date (its day is
    /// the first of the period). Default: 30 days before --end.
    #[arg(long, value_parser = parse_instant)]
    pub start: Option<prost_types::Timestamp>,
    /// End of the period, its day excluded (end_time): RFC 3339, or a date.
    /// Default: now (today excluded).
    #[arg(long, value_parser = parse_instant)]
    pub end: Option<prost_types::Timestamp>,
}

pub async fn run(conn: &Connection, format: Format, args: LoyaltyArgs) -> anyhow::Result<()> {
    let end = args.end.unwrap_or_else(|| {
        let now = Utc::now();
        prost_types::Timestamp {
            seconds: now.timestamp(),
            nanos: 0,
        }
    });
    let start = args.start.unwrap_or(prost_types::Timestamp {
        seconds: end.seconds - Duration::days(30).num_seconds(),
        nanos: end.nanos,
    });
    let s = conn
        .connect()
        .await?
        .reports()
        .get_loyalty_summary(pb::GetLoyaltySummaryRequest {
            start_time: Some(start),
            end_time: Some(end),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    let mut t = Table::new([
        "start_time",
        "end_time",
        "time_zone",
        "customers",
        "new_customers",
        "active_customers",
        "retention_rate",
        "churn_rate",
        "repeat_purchase_rate",
        "revenue",
        "acquisition_spend",
        "cac",
        "average_historical_clv",
        "average_predicted_clv",
        "ltv_to_cac",
        "top_20_percent_revenue_share",
        "nps",
        "csat",
        "ces",
        "model_version",
    ]);
    t.push(vec![
        time_cell(&s.start_time),
        time_cell(&s.end_time),
        s.time_zone.clone().into(),
        s.customers.into(),
        s.new_customers.into(),
        s.active_customers.into(),
        number_cell(s.retention_rate),
        number_cell(s.churn_rate),
        number_cell(s.repeat_purchase_rate),
        money_cell(&s.revenue),
        money_cell(&s.acquisition_spend),
        money_cell(&s.cac),
        money_cell(&s.average_historical_clv),
        money_cell(&s.average_predicted_clv),
        number_cell(s.ltv_to_cac),
        number_cell(s.top_20_percent_revenue_share),
        number_cell(s.nps),
        number_cell(s.csat),
        number_cell(s.ces),
        s.model_version.into(),
    ]);
    Section::Record(t).print(format)
}
