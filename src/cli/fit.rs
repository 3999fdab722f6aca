//! `clvd fit`, `clvd model` and `clvd evaluate`: fit a model version
//! (FitModel), show one (GetModel; with `-o svg`, its frequency/recency
//! matrix of P(alive) or expected purchases), and check a calibration fit
//! against a holdout period (EvaluateModel; with `-o svg` or `--svg FILE`,
//! its calibration chart). The figures are those of `clvd report html`, as
//! standalone SVG.

use serde_json::Value;

use super::family_values::FamilyValues;
use super::{
    figure::FigureArgs,
    output::{
        enum_cell, number_cell, print_sections, seconds_cell, status_error, time_cell, Section,
    },
    time::parse_instant,
    Connection, Format, Table,
};
use crate::pb;

use super::report::charts::alive;

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
    /// Lowest holdout error, else lowest BIC (MODEL_SELECTION_HOLDOUT).
    Holdout,
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
    /// Unit of alpha and the log-likelihood printed (time_unit). The
    /// figure (-o svg) always asks for days.
    #[arg(long, value_enum, default_value = "days")]
    pub time_unit: Unit,
    /// With -o svg: where the figure goes.
    #[command(flatten)]
    pub figure: FigureArgs,
    /// The matrix -o svg draws.
    #[arg(long, value_enum, default_value = "p-alive")]
    pub chart: ModelChart,
    /// For the matrix: days from the customers' first purchase to the
    /// model's as-of time (T; the columns' recencies are slices of it),
    /// 1 to 36500.
    #[arg(long, default_value_t = 365)]
    pub age_days: u32,
    /// For the expected-purchases matrix: the horizon, in days, 1 to 3650.
    #[arg(long, default_value_t = 90)]
    pub horizon_days: u32,
}

/// The matrices of `clvd model -o svg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelChart {
    /// P(alive) by repeat purchases and recency.
    PAlive,
    /// Purchases expected over --horizon-days, by the same.
    Expected,
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
    /// Purchase families to compare on the same holdout as well
    /// (EvaluateModelRequest.families), repeated or comma-separated; their
    /// figures are printed as a third table, `families`.
    #[arg(long = "family", value_enum, value_delimiter = ',')]
    pub families: Vec<Family>,
    /// With -o svg (or --svg FILE): where the calibration-versus-holdout
    /// chart goes.
    #[command(flatten)]
    pub figure: FigureArgs,
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
                    FamilyValues::of(c.bgnbd.as_ref(), c.mbgnbd.as_ref(), c.pareto_nbd.as_ref());
                for (name, v) in params.iter().flat_map(FamilyValues::pairs) {
                    o.insert(name.into(), v.into());
                }
                o.insert("log_likelihood".into(), c.log_likelihood.into());
                o.insert("aic".into(), c.aic.into());
                o.insert("bic".into(), c.bic.into());
                o.insert("converged".into(), c.converged.into());
                if let Some(h) = &c.holdout {
                    o.insert("holdout_days".into(), h.holdout_days.into());
                    o.insert(
                        "holdout_mean_absolute_error".into(),
                        h.mean_absolute_error_per_customer.into(),
                    );
                    o.insert("holdout_correlation".into(), h.correlation.into());
                }
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
    let gg = m.gamma_gamma.as_ref();
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
    let params = FamilyValues::of_model(m);
    let errors = FamilyValues::standard_errors_of_model(m);
    let param = |name: &str| params.and_then(|p| p.get(name));
    let error = |name: &str| errors.and_then(|p| p.get(name));
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
        number_cell(param("r")),
        number_cell(param("alpha")),
        number_cell(param("a")),
        number_cell(param("b")),
        number_cell(param("s")),
        number_cell(param("beta")),
        number_cell(gg.map(|p| p.p)),
        number_cell(gg.map(|p| p.q)),
        number_cell(gg.map(|p| p.gamma)),
        number_cell(error("r")),
        number_cell(error("alpha")),
        number_cell(error("a")),
        number_cell(error("b")),
        number_cell(error("s")),
        number_cell(error("beta")),
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
                Some(Selection::Holdout) => pb::ModelSelection::Holdout,
            } as i32,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    Section::Record(model_record(&model)).print(format)
}

pub async fn model(conn: &Connection, format: Format, args: ModelArgs) -> anyhow::Result<()> {
    let target = args.figure.target(format)?;
    if target.is_some() {
        anyhow::ensure!(
            (1..=36_500).contains(&args.age_days),
            "--age-days must be 1 to 36500, not {}",
            args.age_days
        );
        anyhow::ensure!(
            (1..=3_650).contains(&args.horizon_days),
            "--horizon-days must be 1 to 3650, not {}",
            args.horizon_days
        );
    }
    let model = conn
        .connect()
        .await?
        .models()
        .get_model(pb::GetModelRequest {
            version: args.version.unwrap_or(0),
            // The matrices are drawn in days.
            time_unit: if target.is_some() {
                pb::TimeUnit::Day as i32
            } else {
                args.time_unit.pb()
            },
        })
        .await
        .map_err(status_error)?
        .into_inner();
    if let Some(target) = target {
        anyhow::ensure!(
            model.bgnbd.is_some(),
            "model version {} has no BG/NBD parameters to draw (state {:?})",
            model.version,
            pb::ModelState::try_from(model.state).unwrap_or(pb::ModelState::Unspecified)
        );
        let measure = match args.chart {
            ModelChart::PAlive => alive::Measure::Alive,
            ModelChart::Expected => alive::Measure::Expected,
        };
        let svg = alive::matrix(
            &model,
            measure,
            f64::from(args.age_days),
            f64::from(args.horizon_days),
        )?;
        return target.write(&svg);
    }
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
    let target = args.figure.target(format)?;
    let e = conn
        .connect()
        .await?
        .models()
        .evaluate_model(pb::EvaluateModelRequest {
            calibration_end: Some(args.calibration_end),
            holdout_end: Some(args.holdout_end),
            time_unit: args.time_unit.pb(),
            families: args.families.iter().map(|f| f.pb()).collect(),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    if let Some(target) = target {
        let svg = super::report::charts::calibration::calibration_chart(&e)?;
        return target.write(&svg);
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
    let mut sections = vec![
        ("summary", Section::Record(summary)),
        ("by_calibration_repeat_occasions", Section::Rows(groups)),
    ];
    if !e.families.is_empty() {
        let mut families = Table::new([
            "family",
            "log_likelihood",
            "aic",
            "bic",
            "actual",
            "predicted",
            "mean_absolute_error_per_customer",
            "correlation",
            "failure",
        ]);
        for f in &e.families {
            let fitted = f.failure.is_empty();
            let num = |v: f64| if fitted { Value::from(v) } else { Value::Null };
            families.push(vec![
                family_name(f.family).into(),
                num(f.log_likelihood),
                num(f.aic),
                num(f.bic),
                num(f.actual),
                num(f.predicted),
                num(f.mean_absolute_error_per_customer),
                num(f.correlation),
                f.failure.clone().into(),
            ]);
        }
        sections.push(("families", Section::Rows(families)));
    }
    print_sections(format, &sections)
}
