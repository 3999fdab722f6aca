//! `clvd report html --out FILE`: one self-contained HTML page built from
//! the live service's answers: the cohort figures (GetCohortReport), the
//! loyalty summary (GetLoyaltySummary), the model (GetModel, and the
//! calibration-versus-holdout chart from EvaluateModel), the segments and
//! value tiers with the Pareto curve of value (GetSegmentReport) and the
//! top customers at risk
//! (ListAtRiskCustomers). The figures are inline SVG (see [`super::charts`]),
//! the style an inline `<style>`: no script, and no `src` or `href` other
//! than the page's own `#` anchors, so it opens offline and can be mailed.
//!
//! The page is also well-formed XML (every element closed, only the five
//! XML escapes), so that tests and other tools can parse it as such.
//!
//! The cohort report is required: if it fails, the command fails. Any other
//! answer that fails (say, no model yet) leaves its section saying why, and
//! the command warns on standard error.

use std::{fmt::Write as _, path::PathBuf};

use anyhow::Context;
use chrono::{Duration, Utc};

use super::{
    charts::{alive, calibration, heatmap, instant, pareto, revenue},
    cohorts::{amount, percent, Granularity},
};
use crate::{
    cli::{output::status_error, time::parse_instant, Connection},
    pb,
};

/// Flags of `clvd report html`.
#[derive(Debug, Clone, clap::Args)]
pub struct HtmlArgs {
    /// Where to write the page (an existing file is replaced).
    #[arg(long)]
    pub out: PathBuf,
    /// The cohorts' calendar period, in the server's business time zone.
    #[arg(long, value_enum, default_value = "month")]
    pub granularity: Granularity,
    /// The first cohort is the period containing this instant: RFC 3339,
    /// or a date.
    #[arg(long, value_parser = parse_instant)]
    pub first_cohort: prost_types::Timestamp,
    /// The last cohort is the period containing this instant; default: the
    /// period of --as-of. At most 60 cohorts.
    #[arg(long, value_parser = parse_instant)]
    pub last_cohort: Option<prost_types::Timestamp>,
    /// Observation time: transactions after it are left out of the cohorts
    /// and the loyalty summary; RFC 3339, or a date meaning the end of that
    /// day UTC. Default: now.
    #[arg(long, value_parser = parse_instant)]
    pub as_of: Option<prost_types::Timestamp>,
    /// Periods per cohort, at most 60. Default: 0, up to the period of
    /// --as-of.
    #[arg(long, default_value_t = 0)]
    pub periods: u32,
    /// Project the cohort periods after --as-of from the active model.
    #[arg(long)]
    pub forecast: bool,
    /// Days of the loyalty summary's period, which ends at --as-of's day
    /// (excluded).
    #[arg(long, default_value_t = 90)]
    pub loyalty_days: i64,
    /// End of the calibration period of the calibration-versus-holdout
    /// chart (EvaluateModel). Default: 26 weeks before --holdout-end.
    #[arg(long, value_parser = parse_instant)]
    pub calibration_end: Option<prost_types::Timestamp>,
    /// End of the holdout period. Default: --as-of (or now).
    #[arg(long, value_parser = parse_instant)]
    pub holdout_end: Option<prost_types::Timestamp>,
    /// Leave out the calibration chart (EvaluateModel fits a model, which
    /// takes a while on a large base).
    #[arg(long)]
    pub no_evaluation: bool,
    /// Horizon of the expected-purchases matrix, in days (1 to 3650);
    /// --horizon-months sets it instead.
    #[arg(long, default_value_t = 90)]
    pub horizon_days: u32,
    /// Horizon of the value figures, in model months of 30 days (1 to
    /// 120): the customers of the at-risk table are re-scored over it
    /// (BatchGetCustomerValues) and the expected-purchases matrix covers
    /// it. The segments, value tiers and Pareto curve keep the fit's scores
    /// (12 months, 10 %), and say so. Default: not re-scored.
    #[arg(long, conflicts_with = "horizon_days")]
    pub horizon_months: Option<u32>,
    /// Annual discount rate of the re-scored values, at least 0 and below 1
    /// (0.1: 10 % a year); with it alone the horizon is the API's default,
    /// 12 months. Default: not re-scored.
    #[arg(long)]
    pub discount_rate: Option<f64>,
    /// Customers in the at-risk table (highest value at risk first), at
    /// most 1,000.
    #[arg(long, default_value_t = 20)]
    pub at_risk: u32,
}

/// The service's answers a page is made of. Only the cohort report is
/// required; each other answer is the error message when it failed.
#[derive(Debug, Clone)]
pub struct Answers {
    pub server: String,
    pub cohorts: pb::CohortReport,
    pub loyalty: Result<pb::LoyaltySummary, String>,
    pub model: Result<pb::Model, String>,
    /// `None` when left out (--no-evaluation).
    pub evaluation: Option<Result<pb::ModelEvaluation, String>>,
    pub segments: Result<pb::SegmentReport, String>,
    pub at_risk: Result<pb::ListAtRiskCustomersResponse, String>,
    /// The at-risk customers re-scored over --horizon-months and
    /// --discount-rate; `None` when neither was given.
    pub rescored: Option<Result<pb::BatchGetCustomerValuesResponse, String>>,
    /// Horizon of the expected-purchases matrix, in days.
    pub horizon_days: u32,
}

fn now() -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: Utc::now().timestamp(),
        nanos: 0,
    }
}

fn days_before(t: &prost_types::Timestamp, days: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.seconds - Duration::days(days).num_seconds(),
        nanos: t.nanos,
    }
}

/// A failed call as the one line a section prints.
fn failure(status: tonic::Status) -> String {
    status_error(status).to_string()
}

/// The requests a page is made of (all independent of each other), as
/// `clvd report html` sends them; public so that the bench times the same
/// calls one by one.
#[derive(Debug, Clone)]
pub struct Requests {
    pub cohorts: pb::GetCohortReportRequest,
    pub loyalty: pb::GetLoyaltySummaryRequest,
    pub model: pb::GetModelRequest,
    /// `None` with --no-evaluation.
    pub evaluation: Option<pb::EvaluateModelRequest>,
    pub segments: pb::GetSegmentReportRequest,
    pub at_risk: pb::ListAtRiskCustomersRequest,
}

impl HtmlArgs {
    /// Checks the flags the server does not see, naming the flag.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=1_000).contains(&self.at_risk),
            "--at-risk must be 1 to 1000, not {}",
            self.at_risk
        );
        anyhow::ensure!(
            (1..=3_650).contains(&self.horizon_days),
            "--horizon-days must be 1 to 3650, not {}",
            self.horizon_days
        );
        if let Some(months) = self.horizon_months {
            anyhow::ensure!(
                (1..=120).contains(&months),
                "--horizon-months must be 1 to 120 (model months of 30 days), not {months}"
            );
        }
        if let Some(rate) = self.discount_rate {
            anyhow::ensure!(
                (0.0..1.0).contains(&rate),
                "--discount-rate must be at least 0 and below 1 (an annual rate: 0.1 is \
                 10 % a year), not {rate}"
            );
        }
        anyhow::ensure!(
            self.loyalty_days >= 1,
            "--loyalty-days must be at least 1, not {}",
            self.loyalty_days
        );
        Ok(())
    }

    /// Days the expected-purchases matrix covers: --horizon-months of 30
    /// days, or --horizon-days.
    pub fn matrix_horizon_days(&self) -> u32 {
        self.horizon_months.map_or(self.horizon_days, |m| {
            m * clv_model::DAYS_PER_MODEL_MONTH as u32
        })
    }

    /// The re-scoring of the at-risk table's customers, when
    /// --horizon-months or --discount-rate asks for it.
    pub fn rescore(
        &self,
        at_risk: &pb::ListAtRiskCustomersResponse,
    ) -> Option<pb::BatchGetCustomerValuesRequest> {
        if self.horizon_months.is_none() && self.discount_rate.is_none() {
            return None;
        }
        Some(pb::BatchGetCustomerValuesRequest {
            customer_ids: at_risk
                .customers
                .iter()
                .map(|c| c.customer_id.clone())
                .collect(),
            horizon_months: self.horizon_months.map(|m| m as i32),
            annual_discount_rate: self.discount_rate,
            as_of: self.as_of,
            ..Default::default()
        })
    }

    /// The page's requests; instants left to default are taken from now.
    pub fn requests(&self) -> Requests {
        let as_of = self.as_of.unwrap_or_else(now);
        let holdout_end = self.holdout_end.unwrap_or(as_of);
        let calibration_end = self
            .calibration_end
            .unwrap_or_else(|| days_before(&holdout_end, 26 * 7));
        Requests {
            cohorts: pb::GetCohortReportRequest {
                granularity: self.granularity.pb(),
                first_cohort: Some(self.first_cohort),
                last_cohort: self.last_cohort,
                // Without --as-of, everything recorded: the server reads its
                // cohort aggregates instead of recomputing the cohorts from
                // every transaction (seconds on a large base).
                as_of: self.as_of,
                periods: self.periods,
                include_forecast: self.forecast,
            },
            loyalty: pb::GetLoyaltySummaryRequest {
                start_time: Some(days_before(&as_of, self.loyalty_days)),
                end_time: Some(as_of),
            },
            model: pb::GetModelRequest {
                version: 0,
                time_unit: pb::TimeUnit::Day as i32,
            },
            evaluation: (!self.no_evaluation).then_some(pb::EvaluateModelRequest {
                calibration_end: Some(calibration_end),
                holdout_end: Some(holdout_end),
                time_unit: pb::TimeUnit::Day as i32,
                families: Vec::new(),
            }),
            segments: pb::GetSegmentReportRequest {},
            at_risk: pb::ListAtRiskCustomersRequest {
                page_size: self.at_risk as i32,
                ..Default::default()
            },
        }
    }
}

pub async fn run(conn: &Connection, args: HtmlArgs) -> anyhow::Result<()> {
    args.validate()?;
    let requests = args.requests();
    let server = conn.connect().await?;
    // The calls are independent: made at once, over one connection.
    let mut reports = server.reports();
    let mut reports2 = server.reports();
    let mut reports3 = server.reports();
    let mut models = server.models();
    let mut models2 = server.models();
    let mut scoring = server.scoring();
    let cohorts = reports.get_cohort_report(requests.cohorts);
    let loyalty = reports2.get_loyalty_summary(requests.loyalty);
    let model = models.get_model(requests.model);
    let evaluation = async {
        match requests.evaluation {
            None => None,
            Some(request) => Some(models2.evaluate_model(request).await),
        }
    };
    let segments = reports3.get_segment_report(requests.segments);
    let at_risk = scoring.list_at_risk_customers(requests.at_risk);
    let (cohorts, loyalty, model, evaluation, segments, at_risk) =
        tokio::join!(cohorts, loyalty, model, evaluation, segments, at_risk);
    let at_risk = at_risk.map(|r| r.into_inner()).map_err(failure);
    // Dependent on the list: its customers, re-scored.
    let rescored = match at_risk.as_ref().ok().and_then(|r| args.rescore(r)) {
        Some(request) if !request.customer_ids.is_empty() => Some(
            scoring
                .batch_get_customer_values(request)
                .await
                .map(|r| r.into_inner())
                .map_err(failure),
        ),
        _ => None,
    };
    let answers = Answers {
        server: conn.server.clone(),
        cohorts: cohorts.map_err(status_error)?.into_inner(),
        loyalty: loyalty.map(|r| r.into_inner()).map_err(failure),
        model: model.map(|r| r.into_inner()).map_err(failure),
        evaluation: evaluation.map(|e| e.map(|r| r.into_inner()).map_err(failure)),
        segments: segments.map(|r| r.into_inner()).map_err(failure),
        at_risk,
        rescored,
        horizon_days: args.matrix_horizon_days(),
    };
    for (section, error) in [
        ("loyalty summary", answers.loyalty.as_ref().err()),
        ("model", answers.model.as_ref().err()),
        (
            "calibration chart",
            answers.evaluation.as_ref().and_then(|e| e.as_ref().err()),
        ),
        ("segments", answers.segments.as_ref().err()),
        ("customers at risk", answers.at_risk.as_ref().err()),
        (
            "re-scored values",
            answers.rescored.as_ref().and_then(|r| r.as_ref().err()),
        ),
    ] {
        if let Some(error) = error {
            eprintln!("clvd: the {section} section is left out: {error}");
        }
    }
    let page = render(&answers)?;
    std::fs::write(&args.out, page)
        .with_context(|| format!("--out {}: cannot write", args.out.display()))?;
    Ok(())
}

/// Escapes text for an element or an attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page's style: system fonts only, figures scaled to the page width.
const STYLE: &str = "
body { font-family: sans-serif; color: #222; margin: 0 auto; max-width: 1280px; padding: 16px 24px; line-height: 1.4; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; border-bottom: 1px solid #ccc; padding-bottom: 4px; margin-top: 36px; }
nav a { margin-right: 14px; color: #08519c; }
.facts { color: #555; font-size: 14px; }
figure { margin: 16px 0; }
figure svg { max-width: 100%; height: auto; display: block; }
table { border-collapse: collapse; font-size: 14px; margin: 8px 0 16px; }
th, td { border: 1px solid #ddd; padding: 4px 10px; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f4f6f8; }
.missing { color: #a33; }
";

/// The page.
pub fn render(a: &Answers) -> Result<String, super::charts::ChartError> {
    let mut page = String::new();
    let model_version = match &a.model {
        Ok(m) => m.version.to_string(),
        Err(_) => "none".to_owned(),
    };
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n\
<title>clvd customer-value report as of {as_of}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
<h1>Customer-value report</h1>\n<p class=\"facts\">As of {as_of} (business time zone {tz}); \
active model version {model_version}; from the clvd service at {server}; made {made}. \
Amounts are rounded to cents.</p>\n\
<nav><a href=\"#cohorts\">Cohorts</a><a href=\"#loyalty\">Loyalty</a><a href=\"#model\">Model</a>\
<a href=\"#segments\">Segments and value tiers</a><a href=\"#at-risk\">Customers at risk</a></nav>\n",
        as_of = escape(&instant(&a.cohorts.as_of)),
        tz = escape(&a.cohorts.time_zone),
        server = escape(&a.server),
        made = escape(&instant(&Some(now()))),
    );
    cohorts_section(&mut page, &a.cohorts)?;
    loyalty_section(&mut page, &a.loyalty);
    model_section(&mut page, a)?;
    segments_section(&mut page, &a.segments)?;
    at_risk_section(&mut page, &a.at_risk, &a.rescored);
    page.push_str("</body>\n</html>\n");
    Ok(page)
}

/// A figure; its title and how-to-read sentence are in the SVG itself (so
/// that a figure saved alone keeps them), not repeated around it.
fn figure(page: &mut String, id: &str, svg: &str) {
    let _ = write!(page, "<figure id=\"{id}\">\n{svg}\n</figure>\n");
}

fn missing(page: &mut String, what: &str, error: &str) {
    let _ = writeln!(
        page,
        "<p class=\"missing\">No {} in this report: {}</p>",
        escape(what),
        escape(error)
    );
}

/// Strips the XML declaration plotters may put before `<svg`, so the
/// figure can sit inside the page.
fn inline(svg: &str) -> &str {
    svg.find("<svg").map_or(svg, |i| &svg[i..])
}

fn cohorts_section(
    page: &mut String,
    report: &pb::CohortReport,
) -> Result<(), super::charts::ChartError> {
    page.push_str("<section id=\"cohorts\">\n<h2>Cohorts</h2>\n");
    if !report.forecast_note.is_empty() {
        let _ = writeln!(
            page,
            "<p class=\"facts\">No forecast: {}</p>",
            escape(&report.forecast_note)
        );
    }
    let heat = heatmap::retention_heatmap(report)?;
    figure(page, "retention-heatmap", inline(&heat));
    let lines = revenue::cumulative_revenue(report)?;
    figure(page, "cumulative-revenue", inline(&lines));
    page.push_str("</section>\n");
    Ok(())
}

/// A table of `(figure, value, meaning)` rows.
fn record_table(page: &mut String, rows: &[(&str, String, &str)]) {
    page.push_str("<table>\n<tr><th>figure</th><th>value</th><th>what it is</th></tr>\n");
    for (name, value, meaning) in rows {
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            escape(name),
            escape(value),
            escape(meaning)
        );
    }
    page.push_str("</table>\n");
}

fn opt_percent(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), percent)
}

fn opt_number(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.decimals$}"))
}

/// Money rounded to cents, with its currency (the page is for reading;
/// `clvd report ... -o json` keeps every digit).
fn opt_money(m: &Option<pb::Money>) -> String {
    match (amount(m), m) {
        (Some(a), Some(m)) => format!("{a} {}", m.currency_code),
        _ => "–".to_owned(),
    }
}

fn loyalty_section(page: &mut String, loyalty: &Result<pb::LoyaltySummary, String>) {
    page.push_str("<section id=\"loyalty\">\n<h2>Loyalty summary</h2>\n");
    match loyalty {
        Err(e) => missing(page, "loyalty summary", e),
        Ok(s) => {
            let predicted_meaning = format!(
                "mean {} by the active model",
                super::charts::scored_at_fit()
            );
            let _ = writeln!(
                page,
                "<p class=\"facts\">The period: business days from {} up to, not including, {} ({}). \
Model version behind the predicted value: {}. A dash: no data for the figure.</p>",
                escape(&instant(&s.start_time)),
                escape(&instant(&s.end_time)),
                escape(&s.time_zone),
                s.model_version
            );
            record_table(
                page,
                &[
                    (
                        "customers",
                        s.customers.to_string(),
                        "customers with a first purchase before the period's end",
                    ),
                    (
                        "new customers",
                        s.new_customers.to_string(),
                        "of them, first purchase in the period",
                    ),
                    (
                        "active customers",
                        s.active_customers.to_string(),
                        "customers with a purchase in the period",
                    ),
                    (
                        "repeat purchase rate",
                        opt_percent(s.repeat_purchase_rate),
                        "share of customers with two or more purchase occasions",
                    ),
                    (
                        "retention rate",
                        opt_percent(s.retention_rate),
                        "of customers acquired before the period, the share active in it",
                    ),
                    (
                        "churn rate",
                        opt_percent(s.churn_rate),
                        "1 - retention rate",
                    ),
                    (
                        "revenue",
                        opt_money(&s.revenue),
                        "net revenue of the period",
                    ),
                    (
                        "average historical value",
                        opt_money(&s.average_historical_clv),
                        "net revenue before the period's end per customer",
                    ),
                    (
                        "average predicted value",
                        opt_money(&s.average_predicted_clv),
                        &predicted_meaning,
                    ),
                    (
                        "acquisition spend",
                        opt_money(&s.acquisition_spend),
                        "spend starting in the period",
                    ),
                    (
                        "CAC",
                        opt_money(&s.cac),
                        "acquisition spend / new customers",
                    ),
                    (
                        "LTV / CAC",
                        opt_number(s.ltv_to_cac, 2),
                        "(historical + predicted value) / CAC",
                    ),
                    (
                        "top 20 % revenue share",
                        opt_percent(s.top_20_percent_revenue_share),
                        "share of the period's revenue from its top 20 % of active customers",
                    ),
                    (
                        "NPS",
                        opt_number(s.nps, 1),
                        "latest answer per customer: % 9-10 minus % 0-6, -100 to 100",
                    ),
                    (
                        "CSAT",
                        opt_percent(s.csat),
                        "share of satisfaction answers that are 4 or 5",
                    ),
                    ("CES", opt_number(s.ces, 2), "mean customer effort answer"),
                ],
            );
        }
    }
    page.push_str("</section>\n");
}

fn model_section(page: &mut String, a: &Answers) -> Result<(), super::charts::ChartError> {
    page.push_str("<section id=\"model\">\n<h2>Model</h2>\n");
    match &a.model {
        Err(e) => missing(page, "model", e),
        Ok(m) => {
            let params = alive::purchase_params(m).and_then(Result::ok);
            let family = params.map_or("no purchase model", |p| p.family().paper_name());
            let _ = writeln!(
                page,
                "<p class=\"facts\">Version {}, fitted on the data as of {} over {} customers \
({}converged). Family: {family} for purchases and P(alive) (chosen: {}), Gamma-Gamma for spend \
per purchase. Time unit of alpha and beta: days.</p>",
                m.version,
                escape(&instant(&m.as_of)),
                m.customers,
                if m.converged { "" } else { "not " },
                escape(if m.selection.is_empty() {
                    "by default"
                } else {
                    &m.selection
                }),
            );
            let p = |v: Option<f64>| opt_number(v, 4);
            let gg = m.gamma_gamma.as_ref();
            let names: [(&str, &str); 4] = match params.map(|p| p.family()) {
                Some(clv_model::PurchaseFamily::ParetoNbd) => [
                    ("r", "shape of the purchase-rate distribution"),
                    ("alpha", "scale of the purchase-rate distribution, days"),
                    ("s", "shape of the dropout-rate distribution"),
                    ("beta", "scale of the dropout-rate distribution, days"),
                ],
                _ => [
                    ("r", "shape of the purchase-rate distribution"),
                    ("alpha", "scale of the purchase-rate distribution, days"),
                    ("a", "dropout probability, first shape"),
                    ("b", "dropout probability, second shape"),
                ],
            };
            let values = params.map(|p| p.values());
            let mut rows: Vec<(&str, String, String)> = names
                .iter()
                .enumerate()
                .map(|(i, (name, what))| {
                    (*name, p(values.map(|v| v[i])), format!("{family}: {what}"))
                })
                .collect();
            for (name, value, what) in [
                (
                    "p",
                    gg.map(|g| g.p),
                    "Gamma-Gamma: shape of spend per purchase",
                ),
                (
                    "q",
                    gg.map(|g| g.q),
                    "Gamma-Gamma: shape of the customers' mean spend",
                ),
                (
                    "gamma",
                    gg.map(|g| g.gamma),
                    "Gamma-Gamma: scale of the customers' mean spend",
                ),
            ] {
                rows.push((name, p(value), what.to_owned()));
            }
            let rows: Vec<(&str, String, &str)> = rows
                .iter()
                .map(|(n, v, w)| (*n, v.clone(), w.as_str()))
                .collect();
            record_table(page, &rows);
        }
    }
    match &a.evaluation {
        None => page.push_str(
            "<p class=\"facts\">The calibration chart was left out (--no-evaluation).</p>\n",
        ),
        Some(Err(e)) => missing(page, "calibration chart", e),
        Some(Ok(e)) => {
            let svg = calibration::calibration_chart(e)?;
            figure(page, "calibration", inline(&svg));
        }
    }
    // The matrices, for a customer first seen at the first cohort's start.
    let first = a.cohorts.cohorts.first().and_then(|c| c.period_start);
    if let (Ok(m), Some(first)) = (&a.model, first) {
        let as_of = m.as_of.unwrap_or(first);
        let t_days = (as_of.seconds - first.seconds) as f64 / 86_400.0;
        if t_days > 0.0 && alive::purchase_params(m).is_some_and(|p| p.is_ok()) {
            let horizon = f64::from(a.horizon_days);
            let svg = alive::matrix(m, alive::Measure::Alive, t_days, horizon)?;
            figure(page, "p-alive", inline(&svg));
            let svg = alive::matrix(m, alive::Measure::Expected, t_days, horizon)?;
            figure(page, "expected-purchases", inline(&svg));
        }
    }
    page.push_str("</section>\n");
    Ok(())
}

fn segments_section(
    page: &mut String,
    segments: &Result<pb::SegmentReport, String>,
) -> Result<(), super::charts::ChartError> {
    page.push_str("<section id=\"segments\">\n<h2>Segments and value tiers</h2>\n");
    match segments {
        Err(e) => missing(page, "segment report", e),
        Ok(r) => {
            let _ = writeln!(
                page,
                "<p class=\"facts\">As scored by model version {} (as of {}). Value: historical \
plus {} (--horizon-months and --discount-rate do not change it); churn risk: \
1 - P(alive).</p>",
                r.model_version,
                escape(&instant(&r.model_as_of)),
                escape(&super::charts::scored_at_fit())
            );
            for (title, rows) in [("RFM segment", &r.segments), ("value tier", &r.value_tiers)] {
                let _ = writeln!(
                    page,
                    "<table>\n<tr><th>{title}</th><th>customers</th><th>share of revenue</th>\
<th>average value</th><th>average churn risk</th></tr>"
                );
                for row in rows {
                    let _ = writeln!(
                        page,
                        "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
<td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                        escape(&row.name.replace('_', " ")),
                        row.customers,
                        percent(row.share_of_revenue),
                        escape(&opt_money(&row.average_value)),
                        percent(row.average_churn_risk),
                    );
                }
                page.push_str("</table>\n");
            }
            match pareto::pareto_chart(r)? {
                Some(svg) => figure(page, "pareto", inline(&svg)),
                None => missing(
                    page,
                    "Pareto curve",
                    "the customers' total value is not positive",
                ),
            }
        }
    }
    page.push_str("</section>\n");
    Ok(())
}

/// The value at risk of a re-scored customer, in currency units: churn
/// risk × predicted value, as the service defines it for the at-risk list.
pub fn value_at_risk(v: &pb::CustomerValue) -> Option<f64> {
    let churn_risk = v.churn_risk?;
    let predicted = v.predicted_value.as_ref()?;
    Some(churn_risk * (predicted.units as f64 + f64::from(predicted.nanos) / 1e9))
}

fn at_risk_section(
    page: &mut String,
    at_risk: &Result<pb::ListAtRiskCustomersResponse, String>,
    rescored: &Option<Result<pb::BatchGetCustomerValuesResponse, String>>,
) {
    page.push_str("<section id=\"at-risk\">\n<h2>Customers at risk</h2>\n");
    match at_risk {
        Err(e) => missing(page, "list of customers at risk", e),
        Ok(r) => {
            let _ = writeln!(
                page,
                "<p class=\"facts\">The {} customers with the highest value at risk (churn risk \
× predicted value) among those in the high churn-risk band who are still likely reachable \
(P(alive) at least the server's floor), as scored by model version {}: {}.</p>",
                r.customers.len(),
                r.model_version,
                escape(&super::charts::scored_at_fit())
            );
            let rescored = match rescored {
                None => None,
                Some(Err(e)) => {
                    missing(page, "re-scored values", e);
                    None
                }
                Some(Ok(b)) => {
                    let first = b.values.first();
                    let months = first.map_or(0, |v| v.horizon_months);
                    let rate = first.map_or(0.0, |v| v.annual_discount_rate);
                    let _ = writeln!(
                        page,
                        "<p class=\"facts\">The last two columns re-score these customers now \
(BatchGetCustomerValues) over {months} model months (of 30 days) at a {} % annual discount \
rate: their predicted value, and their value at risk (churn risk × predicted value / P(alive)).</p>",
                        rate * 100.0
                    );
                    Some((b, months, rate))
                }
            };
            page.push_str(
                "<table>\n<tr><th>customer</th><th>churn risk</th><th>value at risk</th>\
<th>predicted value</th><th>historical value</th><th>segment</th><th>value tier</th>",
            );
            if let Some((_, months, rate)) = &rescored {
                let _ = write!(
                    page,
                    "<th>predicted value, {months} months at {} %</th>\
<th>value at risk, {months} months at {} %</th>",
                    rate * 100.0,
                    rate * 100.0
                );
            }
            page.push_str("</tr>\n");
            for c in &r.customers {
                let _ = write!(
                    page,
                    "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
<td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td>",
                    escape(&c.customer_id),
                    percent(c.churn_risk),
                    escape(&opt_money(&c.value_at_risk)),
                    escape(&opt_money(&c.predicted_value)),
                    escape(&opt_money(&c.historical_value)),
                    escape(&c.segment.replace('_', " ")),
                    escape(&c.value_tier.replace('_', " ")),
                );
                if let Some((b, _, _)) = &rescored {
                    let v = b.values.iter().find(|v| v.customer_id == c.customer_id);
                    let predicted =
                        v.map_or_else(|| "–".to_owned(), |v| opt_money(&v.predicted_value));
                    let at_risk = v.and_then(|v| {
                        let currency = v.predicted_value.as_ref()?.currency_code.clone();
                        value_at_risk(v).map(|x| format!("{x:.2} {currency}"))
                    });
                    let _ = write!(
                        page,
                        "<td class=\"n\">{}</td><td class=\"n\">{}</td>",
                        escape(&predicted),
                        escape(&at_risk.unwrap_or_else(|| "–".to_owned()))
                    );
                }
                page.push_str("</tr>\n");
            }
            page.push_str("</table>\n");
        }
    }
    page.push_str("</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn sections_whose_call_failed_say_why() {
        let answers = Answers {
            server: "http://127.0.0.1:1".into(),
            cohorts: pb::CohortReport::default(),
            loyalty: Err("Unavailable: <down>".into()),
            model: Err("NotFound: no model yet".into()),
            evaluation: None,
            segments: Err("FailedPrecondition: no model yet".into()),
            at_risk: Err("FailedPrecondition: no model yet".into()),
            rescored: None,
            horizon_days: 90,
        };
        let page = render(&answers).expect("a page");
        assert!(page.contains("No loyalty summary in this report: Unavailable: &lt;down&gt;"));
        assert!(page.contains("No model in this report: NotFound: no model yet"));
        assert!(!page.contains("<script"));
    }
}
