//! `clvd import FILE...`: CSV transactions into ImportTransactions.
//! (Being built: issue 12.)

use std::path::PathBuf;

use super::{Connection, Format};

/// Flags of `clvd import`.
#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// CSV files (`.gz` is read as gzip).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

pub async fn run(_conn: &Connection, _format: Format, _args: ImportArgs) -> anyhow::Result<()> {
    anyhow::bail!("clvd import is not built yet")
}
