//! `clvd fit`, `clvd model` and `clvd evaluate`: fit a model version
//! (FitModel), show one (GetModel), and check a calibration fit against a
//! holdout period (EvaluateModel; with `--svg FILE`, its calibration chart
//! as a standalone SVG).

use serde_json::Value;

use super::{
    output::{
        enum_cell, number_cell, print_sections, seconds_cell, status_error, time_cell, Section,
    },
    time::parse_instant,
    Connection, Format, Table,
};
use crate::pb;

/// The unit of alpha and the log-likelihood in an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Unit {
    /// alpha per day (TIME_UNIT_DAY).
    Days,
    /// alpha per week (TIME_UNIT_WEEK).
    Weeks,
}

impl Unit {
    fn pb(self) -> i32 {
        match self {
            Unit::Days => pb::TimeUnit::Day as i32,
            Unit::Weeks => pb::TimeUnit::Week as i32,
        }
    }
}

/// Flags of `clvd fit`.
#[derive(Debug, Clone, clap::Args)]
pub struct FitArgs {
    /// End of the observation window (FitModelRequest.as_of): RFC 3339, or
    /// a date meaning the end of that day UTC. Default: now.
    #[arg(long, value_parser = parse_instant)]
    pub as_of: Option<prost_types::Timestamp>,
    /// Unit of alpha and the log-likelihood printed (time_unit); the fit
    /// is the same.
    #[arg(long, value_enum, default_value = "days")]
    pub time_unit: Unit,
}

/// Flags of `clvd model`.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// The version (GetModelRequest.version). Default: the active one.
    pub version: Option<i64>,
    /// Unit of alpha and the log-likelihood printed (time_unit).
    #[arg(long, value_enum, default_value = "days")]
    pub time_unit: Unit,
}

/// Flags of `clvd evaluate`.
#[derive(Debug, Clone, clap::Args)]
pub struct EvaluateArgs {
    /// The calibration fit sees the data up to this instant
    /// (calibration_end): RFC 3339, or a date meaning the end of that day
    /// UTC.
    #[arg(long, value_parser = parse_instant)]
    pub calibration_end: prost_types::Timestamp,
    /// End of the holdout period (holdout_end), after --calibration-end and
    /// not in the future; same forms.
    #[arg(long, value_parser = parse_instant)]
    pub holdout_end: prost_types::Timestamp,
    /// Unit of alpha and the log-likelihood printed (time_unit).
    #[arg(long, value_enum, default_value = "days")]
    pub time_unit: Unit,
    /// Write the calibration-versus-holdout chart to this file as a
    /// standalone SVG instead of printing the tables.
    #[arg(long)]
    pub svg: Option<std::path::PathBuf>,
}

/// Every field of a model version as one record.
pub fn model_record(m: &pb::Model) -> Table {
    let bg = m.bgnbd.as_ref();
    let gg = m.gamma_gamma.as_ref();
    let bg_se = m.bgnbd_standard_errors.as_ref();
    let gg_se = m.gamma_gamma_standard_errors.as_ref();
    let state = pb::ModelState::try_from(m.state).unwrap_or(pb::ModelState::Unspecified);
    let unit = pb::TimeUnit::try_from(m.time_unit).unwrap_or(pb::TimeUnit::Unspecified);
    let mut t = Table::new([
        "version",
        "state",
        "active",
        "created_at",
        "as_of",
        "time_unit",
        "customers",
        "spend_customers",
        "r",
        "alpha",
        "a",
        "b",
        "p",
        "q",
        "gamma",
        "r_se",
        "alpha_se",
        "a_se",
        "b_se",
        "p_se",
        "q_se",
        "gamma_se",
        "log_likelihood",
        "gamma_gamma_log_likelihood",
        "frequency_spend_correlation",
        "converged",
        "iterations",
        "fit_seconds",
        "failure",
    ]);
    t.push(vec![
        m.version.into(),
        enum_cell(state.as_str_name(), "MODEL_STATE_"),
        m.active.into(),
        time_cell(&m.created_at),
        time_cell(&m.as_of),
        enum_cell(unit.as_str_name(), "TIME_UNIT_"),
        m.customers.into(),
        m.spend_customers.into(),
        number_cell(bg.map(|p| p.r)),
        number_cell(bg.map(|p| p.alpha)),
        number_cell(bg.map(|p| p.a)),
        number_cell(bg.map(|p| p.b)),
        number_cell(gg.map(|p| p.p)),
        number_cell(gg.map(|p| p.q)),
        number_cell(gg.map(|p| p.gamma)),
        number_cell(bg_se.map(|p| p.r)),
        number_cell(bg_se.map(|p| p.alpha)),
        number_cell(bg_se.map(|p| p.a)),
        number_cell(bg_se.map(|p| p.b)),
        number_cell(gg_se.map(|p| p.p)),
        number_cell(gg_se.map(|p| p.q)),
        number_cell(gg_se.map(|p| p.gamma)),
        m.log_likelihood.into(),
        m.gamma_gamma_log_likelihood.into(),
        m.frequency_spend_correlation.into(),
        m.converged.into(),
        m.iterations.into(),
        seconds_cell(&m.fit_duration),
        m.failure.clone().into(),
    ]);
    t
}

pub async fn fit(conn: &Connection, format: Format, args: FitArgs) -> anyhow::Result<()> {
    let model = conn
        .connect()
        .await?
        .models()
        .fit_model(pb::FitModelRequest {
            as_of: args.as_of,
            time_unit: args.time_unit.pb(),
            families: Vec::new(),
            selection: 0,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    Section::Record(model_record(&model)).print(format)
}

pub async fn model(conn: &Connection, format: Format, args: ModelArgs) -> anyhow::Result<()> {
    let model = conn
        .connect()
        .await?
        .models()
        .get_model(pb::GetModelRequest {
            version: args.version.unwrap_or(0),
            time_unit: args.time_unit.pb(),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    Section::Record(model_record(&model)).print(format)
}

/// The columns of a holdout comparison row.
fn comparison_table() -> Table {
    Table::new([
        "repeat_occasions",
        "customers",
        "actual",
        "predicted",
        "absolute_error",
        "percentage_error",
        "actual_per_customer",
        "predicted_per_customer",
    ])
}

fn comparison_row(label: Value, c: &pb::HoldoutComparison) -> Vec<Value> {
    vec![
        label,
        c.customers.into(),
        c.actual.into(),
        c.predicted.into(),
        c.absolute_error.into(),
        c.percentage_error.into(),
        c.actual_per_customer.into(),
        c.predicted_per_customer.into(),
    ]
}

pub async fn evaluate(conn: &Connection, format: Format, args: EvaluateArgs) -> anyhow::Result<()> {
    let e = conn
        .connect()
        .await?
        .models()
        .evaluate_model(pb::EvaluateModelRequest {
            calibration_end: Some(args.calibration_end),
            holdout_end: Some(args.holdout_end),
            time_unit: args.time_unit.pb(),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    if let Some(path) = &args.svg {
        let svg = super::report::charts::calibration::calibration_chart(&e)?;
        return std::fs::write(path, svg)
            .map_err(|err| anyhow::anyhow!("--svg {}: cannot write: {err}", path.display()));
    }
    let bg = e.bgnbd.as_ref();
    let total = e.total.unwrap_or_default();
    let unit = pb::TimeUnit::try_from(e.time_unit).unwrap_or(pb::TimeUnit::Unspecified);
    let mut summary = Table::new([
        "calibration_end",
        "holdout_end",
        "holdout_days",
        "time_unit",
        "customers",
        "r",
        "alpha",
        "a",
        "b",
        "log_likelihood",
        "actual",
        "predicted",
        "absolute_error",
        "percentage_error",
        "mean_absolute_error_per_customer",
    ]);
    summary.push(vec![
        time_cell(&e.calibration_end),
        time_cell(&e.holdout_end),
        e.holdout_days.into(),
        enum_cell(unit.as_str_name(), "TIME_UNIT_"),
        e.customers.into(),
        number_cell(bg.map(|p| p.r)),
        number_cell(bg.map(|p| p.alpha)),
        number_cell(bg.map(|p| p.a)),
        number_cell(bg.map(|p| p.b)),
        e.log_likelihood.into(),
        total.actual.into(),
        total.predicted.into(),
        total.absolute_error.into(),
        total.percentage_error.into(),
        e.mean_absolute_error_per_customer.into(),
    ]);
    let mut groups = comparison_table();
    for c in &e.by_calibration_repeat_occasions {
        let label = if c.and_more {
            format!("{}+", c.repeat_occasions)
        } else {
            c.repeat_occasions.to_string()
        };
        groups.push(comparison_row(label.into(), c));
    }
    groups.push(comparison_row("total".into(), &total));
    print_sections(
        format,
        &[
            ("summary", Section::Record(summary)),
            ("by_calibration_repeat_occasions", Section::Rows(groups)),
        ],
    )
}
