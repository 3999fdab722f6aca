//! `clvd report <kind>`: the ReportService reports, one file per report
//! (cohorts, loyalty, segments). A group of subcommands, so that further
//! kinds and output forms fit beside these: `html` writes all of them as
//! one self-contained page, drawn by [`charts`].

pub mod charts;
pub mod cohorts;
pub mod html;
pub mod loyalty;
pub mod segments;

use clap::Subcommand;

use super::{Connection, Format};

/// The reports.
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Acquisition cohorts period by period (GetCohortReport): a table of
    /// cohorts by period, the retention rate (or --metric) in each cell.
    Cohorts(cohorts::CohortsArgs),
    /// Acquisition, retention, value and satisfaction over one period
    /// (GetLoyaltySummary).
    Loyalty(loyalty::LoyaltyArgs),
    /// Customers per RFM segment and per value tier under the active model
    /// (GetSegmentReport); with -o svg, the Pareto curve of value.
    Segments(segments::SegmentsArgs),
    /// One self-contained HTML page (inline SVG figures and CSS, no script,
    /// nothing fetched): cohorts, loyalty, the model and its calibration
    /// against a holdout, segments and value tiers, customers at risk.
    Html(html::HtmlArgs),
}

/// Runs one report command.
pub async fn run(conn: &Connection, format: Format, command: ReportCommand) -> anyhow::Result<()> {
    match command {
        ReportCommand::Cohorts(args) => cohorts::run(conn, format, args).await,
        ReportCommand::Loyalty(args) => loyalty::run(conn, format, args).await,
        ReportCommand::Segments(args) => segments::run(conn, format, args).await,
        ReportCommand::Html(args) => html::run(conn, args).await,
    }
}
