//! `clvd <command>`: the command-line client, a client of the public gRPC
//! API only (it never opens the database). Each command lives in its own
//! file; [`connect`] holds the connection flags, [`output`] the table, CSV
//! and JSON printing shared by all of them.
//!
//! The client commands are parsed apart from the server's settings
//! ([`crate::config::Cli`]), so that `clvd import --help` lists what the
//! client takes, not forty server settings; `main` decides which parser
//! applies from the first argument ([`is_client_command`]).

pub mod connect;
pub mod family_values;
pub mod figure;
pub mod fit;
pub mod import;
pub mod models;
pub mod output;
pub mod report;
pub mod scoring;
pub mod time;

use clap::{Parser, Subcommand};

pub use connect::{Connection, Server};
pub use output::{Format, Table};

/// The client's command line.
#[derive(Debug, Parser)]
#[command(
    name = "clvd",
    version,
    about = "clvd's command-line client: import, fit, score and report over gRPC"
)]
pub struct ClientCli {
    #[command(flatten)]
    pub connection: Connection,
    /// How results are printed (`--format` is the same flag). `svg`: the
    /// command's figure instead of its table, where it draws one (report
    /// cohorts, report segments, model, evaluate), to --out FILE or
    /// standard output; the other commands refuse it.
    #[arg(
        long,
        short = 'o',
        visible_alias = "format",
        env = "CLVD_OUTPUT",
        default_value = "table",
        global = true
    )]
    pub output: Format,
    #[command(subcommand)]
    pub command: ClientCommand,
}

/// The client commands (beside the server's `serve`, `migrate`, `hash-key`).
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Import transactions from CSV files (optionally gzip), checked
    /// locally first; bad rows go to a rejects file.
    Import(import::ImportArgs),
    /// List the fitted model versions, newest first.
    Models(models::ModelsArgs),
    /// Fit a new model version on the data as of a time (FitModel); it
    /// becomes the active one.
    Fit(fit::FitArgs),
    /// Show one model version, by default the active one (GetModel).
    Model(fit::ModelArgs),
    /// Fit on a calibration period and compare its predictions with the
    /// holdout period (EvaluateModel).
    Evaluate(fit::EvaluateArgs),
    /// Customer value: history, predictions, churn risk, segment
    /// (GetCustomerValue; several ids: BatchGetCustomerValues).
    Value(scoring::ValueArgs),
    /// One customer's churn risk (GetChurnRisk).
    Churn(scoring::ChurnArgs),
    /// Customers at risk, highest value at risk first
    /// (ListAtRiskCustomers).
    AtRisk(scoring::AtRiskArgs),
    /// Reports: cohorts, loyalty, segments.
    #[command(subcommand)]
    Report(report::ReportCommand),
}

/// Whether `name` (the first argument) is a client command.
pub fn is_client_command(name: &str) -> bool {
    <ClientCommand as Subcommand>::has_subcommand(name)
}

/// Whether the command can print its answer as a figure (`-o svg`).
pub fn draws_figure(command: &ClientCommand) -> bool {
    matches!(
        command,
        ClientCommand::Model(_)
            | ClientCommand::Evaluate(_)
            | ClientCommand::Report(
                report::ReportCommand::Cohorts(_) | report::ReportCommand::Segments(_)
            )
    )
}

/// Runs one client command to completion.
pub async fn run(cli: ClientCli) -> anyhow::Result<()> {
    let ClientCli {
        connection,
        output,
        command,
    } = cli;
    // Refused before any call, so that nothing is done (a fit, an import)
    // only to fail at printing.
    anyhow::ensure!(
        output != Format::Svg || draws_figure(&command),
        "-o/--format svg: this command draws no figure (the figures: report cohorts, \
         report segments, model, evaluate; report html writes them all into its page); \
         use table, csv or json"
    );
    match command {
        ClientCommand::Import(args) => import::run(&connection, output, args).await,
        ClientCommand::Models(args) => models::run(&connection, output, args).await,
        ClientCommand::Fit(args) => fit::fit(&connection, output, args).await,
        ClientCommand::Model(args) => fit::model(&connection, output, args).await,
        ClientCommand::Evaluate(args) => fit::evaluate(&connection, output, args).await,
        ClientCommand::Value(args) => scoring::value(&connection, output, args).await,
        ClientCommand::Churn(args) => scoring::churn(&connection, output, args).await,
        ClientCommand::AtRisk(args) => scoring::at_risk(&connection, output, args).await,
        ClientCommand::Report(command) => report::run(&connection, output, command).await,
    }
}
