//! `clvd report segments`: customers per RFM segment and per value tier
//! under the active model (GetSegmentReport), each a table in a terminal;
//! one long table (a `group` column: segment or value_tier) in CSV and
//! JSON; with `-o svg`, the Pareto curve of value (the page's figure).

use serde_json::Value;

use crate::{
    cli::{
        figure::FigureArgs,
        output::{money_cell, print_sections, status_error, time_cell, Section},
        Connection, Format, Table,
    },
    pb,
};

/// Flags of `clvd report segments`.
#[derive(Debug, Clone, clap::Args)]
pub struct SegmentsArgs {
    #[command(flatten)]
    pub figure: FigureArgs,
}

fn table() -> Table {
    Table::new([
        "group",
        "name",
        "customers",
        "share_of_revenue",
        "average_value",
        "average_churn_risk",
        "model_version",
        "model_as_of",
    ])
}

pub async fn run(conn: &Connection, format: Format, args: SegmentsArgs) -> anyhow::Result<()> {
    let target = args.figure.target(format)?;
    let report = conn
        .connect()
        .await?
        .reports()
        .get_segment_report(pb::GetSegmentReportRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    if let Some(target) = target {
        let svg = super::charts::pareto::pareto_chart(&report)?.ok_or_else(|| {
            anyhow::anyhow!("no Pareto curve: the customers' total value is not positive")
        })?;
        return target.write(&svg);
    }
    let rows = |group: &str, rows: &[pb::SegmentRow]| {
        let mut t = table();
        for r in rows {
            t.push(vec![
                group.into(),
                r.name.clone().into(),
                r.customers.into(),
                r.share_of_revenue.into(),
                money_cell(&r.average_value),
                r.average_churn_risk.into(),
                report.model_version.into(),
                time_cell(&report.model_as_of),
            ]);
        }
        t
    };
    let segments = rows("segment", &report.segments);
    let tiers = rows("value_tier", &report.value_tiers);
    if format != Format::Table {
        let mut all = segments;
        all.rows.extend(tiers.rows);
        return all.print(format);
    }
    // In a terminal the model is said once, above the two tables.
    let terminal = |t: Table| {
        let mut t = t;
        t.headers.truncate(6);
        t.headers.remove(0);
        for row in &mut t.rows {
            row.truncate(6);
            row.remove(0);
        }
        t
    };
    let model_as_of = match time_cell(&report.model_as_of) {
        Value::String(s) => s,
        _ => String::new(),
    };
    let title = format!(
        "segments (model version {}, as of {model_as_of})",
        report.model_version
    );
    print_sections(
        format,
        &[
            (title.as_str(), Section::Rows(terminal(segments))),
            ("value tiers", Section::Rows(terminal(tiers))),
        ],
    )
}
