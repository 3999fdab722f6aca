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

/// A purchase family to fit (FitModelRequest.families).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Family {
    /// BG/NBD (MODEL_FAMILY_BG_NBD).
    #[value(name = "bg_nbd", alias = "bg-nbd")]
    BgNbd,
    /// MBG/NBD (MODEL_FAMILY_MBG_NBD).
    #[value(name = "mbg_nbd", alias = "mbg-nbd")]
    MbgNbd,
    /// Pareto/NBD (MODEL_FAMILY_PARETO_NBD).
    #[value(name = "pareto_nbd", alias = "pareto-nbd")]
    ParetoNbd,
}

impl Family {
    fn pb(self) -> i32 {
        let family = match self {
            Family::BgNbd => pb::ModelFamily::BgNbd,
            Family::MbgNbd => pb::ModelFamily::MbgNbd,
            Family::ParetoNbd => pb::ModelFamily::ParetoNbd,
        };
        family as i32
    }
}

/// How the family to activate is chosen (FitModelRequest.selection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Selection {
    /// Lowest BIC (MODEL_SELECTION_BIC).
    Bic,
    /// Lowest AIC (MODEL_SELECTION_AIC).
    Aic,
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
    /// Purchase families to fit (FitModelRequest.families), repeated or
    /// comma-separated; one alone is activated. Default: the server's
    /// (every family, or the one CLVD_MODEL_SELECTION pins).
    #[arg(long = "family", value_enum, value_delimiter = ',')]
    pub families: Vec<Family>,
    /// Choose the family by this criterion (FitModelRequest.selection).
    /// Default: the server's CLVD_MODEL_SELECTION.
    #[arg(long, value_enum)]
    pub selection: Option<Selection>,
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

/// A family's name as printed ("bg_nbd", "mbg_nbd", "pareto_nbd"; empty
/// when unset).
pub fn family_name(raw: i32) -> String {
    match pb::ModelFamily::try_from(raw) {
        Ok(pb::ModelFamily::Unspecified) | Err(_) => String::new(),
        Ok(f) => f
            .as_str_name()
            .trim_start_matches("MODEL_FAMILY_")
            .to_ascii_lowercase(),
    }
}

/// The purchase parameters of a family's messages as (name, value) pairs,
/// in the family's order.
fn family_parameters(
    bg: Option<&pb::BgNbdParameters>,
    mbg: Option<&pb::MbgNbdParameters>,
    pareto: Option<&pb::ParetoNbdParameters>,
) -> Vec<(&'static str, f64)> {
    match (bg, mbg, pareto) {
        (Some(p), _, _) => vec![("r", p.r), ("alpha", p.alpha), ("a", p.a), ("b", p.b)],
        (_, Some(p), _) => vec![("r", p.r), ("alpha", p.alpha), ("a", p.a), ("b", p.b)],
        (_, _, Some(p)) => vec![("r", p.r), ("alpha", p.alpha), ("s", p.s), ("beta", p.beta)],
        _ => Vec::new(),
    }
}

/// Every family fitted for a version, as a JSON array (text in a table).
pub fn candidates_cell(m: &pb::Model) -> Value {
    m.candidates
        .iter()
        .map(|c| {
            let mut o = serde_json::Map::new();
            o.insert("family".into(), family_name(c.family).into());
            o.insert("selected".into(), c.selected.into());
            if c.failure.is_empty() {
                let params =
                    family_parameters(c.bgnbd.as_ref(), c.mbgnbd.as_ref(), c.pareto_nbd.as_ref());
                for (name, v) in params {
                    o.insert(name.into(), v.into());
                }
                o.insert("log_likelihood".into(), c.log_likelihood.into());
                o.insert("aic".into(), c.aic.into());
                o.insert("bic".into(), c.bic.into());
                o.insert("converged".into(), c.converged.into());
            } else {
                o.insert("failure".into(), c.failure.clone().into());
            }
            Value::Object(o)
        })
        .collect::<Vec<_>>()
        .into()
}

/// Every field of a model version as one record.
pub fn model_record(m: &pb::Model) -> Table {
    let bg = m.bgnbd.as_ref();
    let mbg = m.mbgnbd.as_ref();
    let pareto = m.pareto_nbd.as_ref();
    let gg = m.gamma_gamma.as_ref();
    let bg_se = m.bgnbd_standard_errors.as_ref();
    let mbg_se = m.mbgnbd_standard_errors.as_ref();
    let pareto_se = m.pareto_nbd_standard_errors.as_ref();
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
        "family",
        "selection",
        "r",
        "alpha",
        "a",
        "b",
        "s",
        "beta",
        "p",
        "q",
        "gamma",
        "r_se",
        "alpha_se",
        "a_se",
        "b_se",
        "s_se",
        "beta_se",
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
        "candidates",
    ]);
    // r and alpha are every family's; a, b BG/NBD's and MBG/NBD's; s, beta
    // Pareto/NBD's.
    let r = bg.map(|p| p.r).or(mbg.map(|p| p.r)).or(pareto.map(|p| p.r));
    let alpha = bg
        .map(|p| p.alpha)
        .or(mbg.map(|p| p.alpha))
        .or(pareto.map(|p| p.alpha));
    let a = bg.map(|p| p.a).or(mbg.map(|p| p.a));
    let b = bg.map(|p| p.b).or(mbg.map(|p| p.b));
    let r_se = bg_se
        .map(|p| p.r)
        .or(mbg_se.map(|p| p.r))
        .or(pareto_se.map(|p| p.r));
    let alpha_se = bg_se
        .map(|p| p.alpha)
        .or(mbg_se.map(|p| p.alpha))
        .or(pareto_se.map(|p| p.alpha));
    let a_se = bg_se.map(|p| p.a).or(mbg_se.map(|p| p.a));
    let b_se = bg_se.map(|p| p.b).or(mbg_se.map(|p| p.b));
    t.push(vec![
        m.version.into(),
        enum_cell(state.as_str_name(), "MODEL_STATE_"),
        m.active.into(),
        time_cell(&m.created_at),
        time_cell(&m.as_of),
        enum_cell(unit.as_str_name(), "TIME_UNIT_"),
        m.customers.into(),
        m.spend_customers.into(),
        family_name(m.family).into(),
        m.selection.clone().into(),
        number_cell(r),
        number_cell(alpha),
        number_cell(a),
        number_cell(b),
        number_cell(pareto.map(|p| p.s)),
        number_cell(pareto.map(|p| p.beta)),
        number_cell(gg.map(|p| p.p)),
        number_cell(gg.map(|p| p.q)),
        number_cell(gg.map(|p| p.gamma)),
        number_cell(r_se),
        number_cell(alpha_se),
        number_cell(a_se),
        number_cell(b_se),
        number_cell(pareto_se.map(|p| p.s)),
        number_cell(pareto_se.map(|p| p.beta)),
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
        candidates_cell(m),
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
            families: args.families.iter().map(|f| f.pb()).collect(),
            selection: match args.selection {
                None => pb::ModelSelection::Unspecified,
                Some(Selection::Bic) => pb::ModelSelection::Bic,
                Some(Selection::Aic) => pb::ModelSelection::Aic,
            } as i32,
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
