//! `clvd report cohorts`: GetCohortReport as a cohort table in a terminal
//! (one row per cohort, one column per period k, the chosen metric in each
//! cell, partial and forecast cells marked, a legend and the forecast note
//! below), and as the long form in CSV and JSON (one row per cohort and
//! period with every field, so nothing is lost). With `-o svg` (or
//! `--svg FILE`), one of the figures of `clvd report html` instead, as a
//! standalone SVG.

use serde_json::Value;

use crate::{
    cli::{
        figure::FigureArgs,
        output::{money_cell, number_cell, status_error, time_cell},
        time::parse_instant,
        Connection, Format, Table,
    },
    pb,
};

/// The calendar period of cohorts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Granularity {
    /// ISO weeks, Monday to Sunday (GRANULARITY_WEEK).
    Week,
    /// Calendar months (GRANULARITY_MONTH).
    Month,
    /// Calendar quarters (GRANULARITY_QUARTER).
    Quarter,
}

/// What a cell of the terminal table shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Metric {
    /// active_customers / size, as a percent (retention_rate).
    Retention,
    /// Customers with a purchase occasion in the period (active_customers).
    Active,
    /// Net revenue of the cohort in the period (revenue).
    Revenue,
    /// Revenue / size (revenue_per_customer).
    RevenuePerCustomer,
    /// Revenue of periods 0..k / size (cumulative_revenue_per_customer).
    Cumulative,
    /// Purchases in the period (orders).
    Orders,
    /// Revenue - cost, when every purchase has a cost (margin).
    Margin,
}

/// Flags of `clvd report cohorts`.
#[derive(Debug, Clone, clap::Args)]
pub struct CohortsArgs {
    /// The cohorts' calendar period (granularity), in the server's business
    /// time zone.
    #[arg(long, value_enum, default_value = "month")]
    pub granularity: Granularity,
    /// The first cohort is the period containing this instant
    /// (first_cohort): RFC 3339, or a date.
    #[arg(long, value_parser = parse_instant)]
    pub first_cohort: prost_types::Timestamp,
    /// The last cohort is the period containing this instant
    /// (last_cohort); default: the period of --as-of. At most 60 cohorts.
    #[arg(long, value_parser = parse_instant)]
    pub last_cohort: Option<prost_types::Timestamp>,
    /// Observation time (as_of): transactions after it are left out;
    /// RFC 3339, or a date meaning the end of that day UTC. Default: now.
    #[arg(long, value_parser = parse_instant)]
    pub as_of: Option<prost_types::Timestamp>,
    /// Periods per cohort, k = 0..N-1, at most 60 (periods). Default: 0,
    /// up to the period of --as-of.
    #[arg(long, default_value_t = 0)]
    pub periods: u32,
    /// Project the periods after --as-of from the active model
    /// (include_forecast).
    #[arg(long)]
    pub forecast: bool,
    /// What each cell of the terminal table shows (CSV and JSON carry every
    /// metric).
    #[arg(long, value_enum, default_value = "retention")]
    pub metric: Metric,
    /// With -o svg (or --svg FILE): where the figure goes.
    #[command(flatten)]
    pub figure: FigureArgs,
    /// The figure -o svg draws.
    #[arg(long, value_enum, default_value = "retention")]
    pub chart: Chart,
}

/// The figures of `-o svg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Chart {
    /// The retention heatmap: cohorts by periods, share active.
    Retention,
    /// Revenue per customer, cumulative, one line per cohort.
    Revenue,
}

impl Granularity {
    pub(crate) fn pb(self) -> i32 {
        match self {
            Granularity::Week => pb::Granularity::Week as i32,
            Granularity::Month => pb::Granularity::Month as i32,
            Granularity::Quarter => pb::Granularity::Quarter as i32,
        }
    }
}

pub async fn run(conn: &Connection, format: Format, args: CohortsArgs) -> anyhow::Result<()> {
    let target = args.figure.target(format)?;
    let report = conn
        .connect()
        .await?
        .reports()
        .get_cohort_report(pb::GetCohortReportRequest {
            granularity: args.granularity.pb(),
            first_cohort: Some(args.first_cohort),
            last_cohort: args.last_cohort,
            as_of: args.as_of,
            periods: args.periods,
            include_forecast: args.forecast,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    if let Some(target) = target {
        let svg = match args.chart {
            Chart::Retention => super::charts::heatmap::retention_heatmap(&report)?,
            Chart::Revenue => super::charts::revenue::cumulative_revenue(&report)?,
        };
        target.write(&svg)?;
        if !report.forecast_note.is_empty() {
            eprintln!("clvd: no forecast: {}", report.forecast_note);
        }
        return Ok(());
    }
    if format == Format::Table {
        cohort_table(&report, args.metric).print(format)?;
        for line in legend(&report, args.metric) {
            println!("{line}");
        }
    } else {
        long_form(&report).print(format)?;
        if !report.forecast_note.is_empty() {
            eprintln!("clvd: no forecast: {}", report.forecast_note);
        }
    }
    Ok(())
}

/// A Money amount rounded to cents (half away from zero), without its
/// currency (the legend names it); CSV and JSON keep it exact.
pub fn amount(m: &Option<pb::Money>) -> Option<String> {
    m.as_ref().map(|m| {
        let nanos = i128::from(m.units) * 1_000_000_000 + i128::from(m.nanos);
        let cents = (nanos.abs() + 5_000_000) / 10_000_000 * nanos.signum();
        let sign = if cents < 0 { "-" } else { "" };
        format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
    })
}

/// The text of one cell: the metric, `*` after it for a partial period,
/// `~` before it for a forecast.
pub fn cell(c: &pb::Cohort, p: &pb::CohortPeriod, metric: Metric) -> String {
    let value = if p.forecast {
        // The model forecasts purchases and spend, not who is active: a
        // forecast cell of a count or a rate shows expected purchase
        // occasions (per customer for the rate), as the legend says.
        let expected = p.expected_purchases.unwrap_or(0.0);
        match metric {
            Metric::Retention => (c.size > 0).then(|| format!("{:.2}", expected / c.size as f64)),
            Metric::Active | Metric::Orders => Some(format!("{expected:.1}")),
            Metric::Revenue => amount(&p.revenue),
            Metric::RevenuePerCustomer => amount(&p.revenue_per_customer),
            Metric::Cumulative => amount(&p.cumulative_revenue_per_customer),
            Metric::Margin => None,
        }
        .map(|v| format!("~{v}"))
    } else {
        match metric {
            Metric::Retention => p.retention_rate.map(percent),
            Metric::Active => Some(p.active_customers.to_string()),
            Metric::Revenue => amount(&p.revenue),
            Metric::RevenuePerCustomer => amount(&p.revenue_per_customer),
            Metric::Cumulative => amount(&p.cumulative_revenue_per_customer),
            Metric::Orders => Some(p.orders.to_string()),
            Metric::Margin => amount(&p.margin),
        }
    };
    match value {
        Some(v) if p.partial => format!("{v}*"),
        Some(v) => v,
        None => String::new(),
    }
}

/// A rate as a percent with one decimal, `45.0%`.
pub fn percent(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

/// One row per cohort: its label and size, then a column per period k.
fn cohort_table(report: &pb::CohortReport, metric: Metric) -> Table {
    let periods = report
        .cohorts
        .iter()
        .map(|c| c.periods.len())
        .max()
        .unwrap_or(0);
    let mut table = Table::new(
        ["cohort".to_owned(), "size".to_owned()]
            .into_iter()
            .chain((0..periods).map(|k| k.to_string())),
    );
    for c in &report.cohorts {
        let mut row: Vec<Value> = vec![c.period_label.clone().into(), c.size.into()];
        row.extend((0..periods).map(|k| {
            Value::String(
                c.periods
                    .get(k)
                    .map_or(String::new(), |p| cell(c, p, metric)),
            )
        }));
        table.push(row);
    }
    table
}

/// The lines under the terminal table: what the cells are, the marks, and
/// the forecast note.
fn legend(report: &pb::CohortReport, metric: Metric) -> Vec<String> {
    let currency = report
        .cohorts
        .iter()
        .flat_map(|c| &c.periods)
        .find_map(|p| p.revenue.as_ref())
        .map(|m| m.currency_code.clone())
        .unwrap_or_default();
    let currency = format!("{currency}, rounded to cents");
    let what = match metric {
        Metric::Retention => "share of the cohort with a purchase occasion in period k".to_owned(),
        Metric::Active => "customers with a purchase occasion in period k".to_owned(),
        Metric::Revenue => format!("net revenue in period k, {currency}"),
        Metric::RevenuePerCustomer => format!("net revenue in period k per customer, {currency}"),
        Metric::Cumulative => format!("net revenue in periods 0..k per customer, {currency}"),
        Metric::Orders => "purchases in period k".to_owned(),
        Metric::Margin => format!("revenue - cost in period k, {currency}"),
    };
    let as_of = match time_cell(&report.as_of) {
        Value::String(s) => s,
        _ => String::new(),
    };
    let mut lines = vec![format!(
        "cells: {what}; as of {as_of}, periods in {}",
        report.time_zone
    )];
    let any =
        |f: fn(&pb::CohortPeriod) -> bool| report.cohorts.iter().flat_map(|c| &c.periods).any(f);
    if any(|p| p.partial) {
        lines.push("*: partial period (not ended at as of)".to_owned());
    }
    if any(|p| p.forecast) {
        let unit = match metric {
            Metric::Retention => "expected purchase occasions per customer",
            Metric::Active | Metric::Orders => "expected purchase occasions",
            _ => "expected",
        };
        lines.push(format!(
            "~: forecast by model version {} ({unit})",
            report.model_version
        ));
    }
    if !report.forecast_note.is_empty() {
        lines.push(format!("no forecast: {}", report.forecast_note));
    }
    lines
}

/// One row per cohort and period, every field.
fn long_form(report: &pb::CohortReport) -> Table {
    let mut table = Table::new([
        "cohort",
        "cohort_start",
        "size",
        "repeat_purchase_rate",
        "acquisition_spend",
        "cac",
        "ltv_to_cac",
        "payback_period",
        "nps",
        "nps_respondents",
        "k",
        "period_start",
        "active_customers",
        "retention_rate",
        "revenue",
        "revenue_per_customer",
        "cumulative_revenue_per_customer",
        "orders",
        "margin",
        "partial",
        "forecast",
        "expected_purchases",
        "model_version",
    ]);
    for c in &report.cohorts {
        for p in &c.periods {
            table.push(vec![
                c.period_label.clone().into(),
                time_cell(&c.period_start),
                c.size.into(),
                number_cell(c.repeat_purchase_rate),
                money_cell(&c.acquisition_spend),
                money_cell(&c.cac),
                number_cell(c.ltv_to_cac),
                number_cell(c.payback_period),
                number_cell(c.nps),
                c.nps_respondents.into(),
                p.k.into(),
                time_cell(&p.period_start),
                p.active_customers.into(),
                number_cell(p.retention_rate),
                money_cell(&p.revenue),
                money_cell(&p.revenue_per_customer),
                money_cell(&p.cumulative_revenue_per_customer),
                p.orders.into(),
                money_cell(&p.margin),
                p.partial.into(),
                p.forecast.into(),
                number_cell(p.expected_purchases),
                report.model_version.into(),
            ]);
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_amounts_round_to_cents_half_away_from_zero() {
        let m = |units, nanos| {
            Some(pb::Money {
                currency_code: "USD".into(),
                units,
                nanos,
            })
        };
        assert_eq!(amount(&m(65, 628_348_624)).as_deref(), Some("65.63"));
        assert_eq!(amount(&m(0, 5_000_000)).as_deref(), Some("0.01"));
        assert_eq!(amount(&m(-1, -994_999_999)).as_deref(), Some("-1.99"));
        assert_eq!(amount(&m(-1, -995_000_000)).as_deref(), Some("-2.00"));
        assert_eq!(amount(&None), None);
    }
}
