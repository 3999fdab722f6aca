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
pub mod import;
pub mod models;
pub mod output;
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
    /// How results are printed.
    #[arg(
        long,
        short = 'o',
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
}

/// Whether `name` (the first argument) is a client command.
pub fn is_client_command(name: &str) -> bool {
    <ClientCommand as Subcommand>::has_subcommand(name)
}

/// Runs one client command to completion.
pub async fn run(cli: ClientCli) -> anyhow::Result<()> {
    let ClientCli {
        connection,
        output,
        command,
    } = cli;
    match command {
        ClientCommand::Import(args) => import::run(&connection, output, args).await,
        ClientCommand::Models(args) => models::run(&connection, output, args).await,
    }
}
