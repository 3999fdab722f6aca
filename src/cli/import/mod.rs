//! `clvd import FILE...`: CSV transactions (optionally gzip) into
//! ImportTransactions, checked locally with the service's own rules first.
//!
//! - [`columns`]: the header row mapped by the `--*-column` flags;
//! - [`decimal`]: amounts as written (`12.34`) into units and nanos;
//! - [`rows`]: one row into a checked transaction (times, derived ids);
//! - [`reader`]: files (gzip sniffed), identities, the reader thread;
//! - [`send`]: the streams, and what a refused batch turns into;
//! - [`rejects`]: the rejects file; [`progress`]: the progress bar.
//!
//! Exit status: 0 when every row was stored or was already stored
//! (duplicates); [`EXIT_REJECTED`] when some rows were rejected (the others
//! are stored); 1 on any other error (server unreachable, unreadable file,
//! a header without a required column: nothing is sent then).

pub mod columns;
pub mod decimal;
pub mod progress;
pub mod reader;
pub mod rejects;
pub mod rows;
pub mod send;

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono_tz::Tz;
use serde_json::Value;
use tokio::sync::mpsc;

use self::{
    columns::ColumnFlags,
    progress::Progress,
    reader::{InputFile, ReadPlan},
    rejects::Reject,
};
use super::{Connection, Format, Table};
use crate::domain::IngestRules;

/// The exit status of an import that rejected some rows.
pub const EXIT_REJECTED: u8 = 3;

/// Flags of `clvd import`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_long_help = "\
Transaction ids: a file without a transaction id column gets derived ids, \
`<16 hex digits of the SHA-256 of the file's content>:<line>`. Rerunning the \
same file is then a no-op (every row a duplicate); an edited file is a new \
identity, whose rows are all new. A refund in such a file names its purchase \
as `line:<N>` (an earlier purchase row of the same customer) or by a stored id.

Exit status: 0 every row stored or a duplicate; 3 some rows rejected (listed \
in the rejects file, the others stored); 1 any other error. Interrupted, a \
rerun of the same command completes without counting anything twice.")]
pub struct ImportArgs {
    /// CSV files with a header row (gzip is recognised by its magic bytes).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,

    // Boxed: the flags are most of the size of the client's commands enum.
    #[command(flatten)]
    pub columns: Box<ColumnFlags>,

    /// Time zone of times without an offset and of dates alone (a date is
    /// midnight at the start of that day there).
    #[arg(long, default_value = "UTC", help_heading = "Import")]
    pub time_zone: Tz,

    /// ISO 4217 code sent with every amount, so that the server refuses
    /// the rows if it is not its reporting currency. Default: none sent,
    /// which means the server's reporting currency.
    #[arg(long, help_heading = "Import")]
    pub currency: Option<String>,

    /// Where refused rows go (one file for all inputs) [default:
    /// `<file>.rejects.csv` beside each input]. Written only when there are
    /// rejects; a stale one at the default place is removed.
    #[arg(long, help_heading = "Import")]
    pub rejects: Option<PathBuf>,

    /// Transactions per ImportTransactions message (the server takes at
    /// most 10,000 by default).
    #[arg(long, help_heading = "Import", default_value_t = 5_000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_size: u32,

    /// Concurrent streams; each customer's rows go through one of them, in
    /// file order.
    #[arg(long, help_heading = "Import", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub streams: u32,

    /// No progress bar.
    #[arg(long, short, help_heading = "Import")]
    pub quiet: bool,

    /// Check every row and write the rejects file, but send nothing (no
    /// server is contacted; recorded and duplicates are 0).
    #[arg(long, help_heading = "Import")]
    pub dry_run: bool,
}

/// Some rows were rejected (exit status [`EXIT_REJECTED`]).
#[derive(Debug, thiserror::Error)]
#[error("{rejected} rows rejected: see {}", rejects_files.join(", "))]
pub struct RowsRejected {
    pub rejected: u64,
    pub rejects_files: Vec<String>,
}

pub async fn run(conn: &Connection, format: Format, args: ImportArgs) -> anyhow::Result<()> {
    // Every header is checked before anything is sent.
    let files = args
        .files
        .iter()
        .map(|p| InputFile::prepare(p, &args.columns))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let server = match args.dry_run {
        true => None,
        false => Some(conn.connect().await?),
    };
    let progress = Progress::new(files.iter().map(|f| f.size).sum(), args.quiet);

    let mut senders = Vec::new();
    let mut lanes = Vec::new();
    for _ in 0..args.streams {
        let (tx, rx) = mpsc::channel(2);
        senders.push(tx);
        lanes.push(match &server {
            Some(server) => tokio::spawn(send::lane(server.clone(), rx)),
            None => tokio::spawn(drain(rx)),
        });
    }
    let plan = ReadPlan {
        files,
        delimiter: args.columns.delimiter,
        rules: IngestRules {
            currency: args.currency.clone().unwrap_or_default(),
            ..IngestRules::default()
        },
        time_zone: args.time_zone,
        currency: args.currency.clone().unwrap_or_default(),
        batch_size: args.batch_size as usize,
    };
    let reading = {
        let progress = progress.clone();
        tokio::task::spawn_blocking(move || {
            let read = reader::read_all(&plan, &senders, &progress);
            (plan, read)
        })
    };
    let (plan, read) = reading.await.context("the reader thread failed")?;
    let mut sent = send::LaneTotals::default();
    let mut lane_error = None;
    for lane in lanes {
        match lane.await.context("a sending task failed")? {
            Ok(t) => {
                sent.recorded += t.recorded;
                sent.duplicates += t.duplicates;
                sent.rejects.extend(t.rejects);
            }
            Err(e) => lane_error = lane_error.or(Some(e)),
        }
    }
    progress.finish();
    if let Some(e) = lane_error {
        return Err(e.context(format!(
            "import stopped; committed before the error: {} recorded, {} duplicates \
             (rerun the same command to complete it)",
            sent.recorded, sent.duplicates
        )));
    }
    let read = read?;

    let mut all = read.rejects;
    for r in sent.rejects {
        all.push(Reject {
            column: plan.files[r.file].columns.of_field(&r.field),
            by_server: true,
            ..Reject::local(r.file, r.line, String::new(), r.reason, None)
        });
    }
    fill_rows(&plan, &mut all)?;
    all.sort_by_key(|r| (r.file, r.line));
    let rejects_files = write_rejects(&plan.files, args.rejects.as_deref(), &all)?;

    let mut table = Table::new(["files", "rows", "recorded", "duplicates", "rejected"]);
    table.push(vec![
        Value::from(plan.files.len()),
        read.rows.into(),
        sent.recorded.into(),
        sent.duplicates.into(),
        all.len().into(),
    ]);
    table.print(format)?;
    if all.is_empty() {
        Ok(())
    } else {
        Err(RowsRejected {
            rejected: all.len() as u64,
            rejects_files,
        }
        .into())
    }
}

/// A lane of a dry run: takes the checked rows and sends nothing.
async fn drain(mut rx: mpsc::Receiver<reader::Outgoing>) -> anyhow::Result<send::LaneTotals> {
    while rx.recv().await.is_some() {}
    Ok(send::LaneTotals::default())
}

/// The text of the rows the server refused, read again from their files.
fn fill_rows(plan: &ReadPlan, rejects: &mut [Reject]) -> anyhow::Result<()> {
    for (index, file) in plan.files.iter().enumerate() {
        let mut lines: Vec<u64> = rejects
            .iter()
            .filter(|r| r.file == index && r.row.is_none())
            .map(|r| r.line)
            .collect();
        if lines.is_empty() {
            continue;
        }
        lines.sort_unstable();
        lines.dedup();
        let rows = reader::rows_at(file, plan.delimiter, &lines)?;
        for r in rejects
            .iter_mut()
            .filter(|r| r.file == index && r.row.is_none())
        {
            if let Ok(at) = rows.binary_search_by_key(&r.line, |(l, _)| *l) {
                r.row = Some(rows[at].1.clone());
            }
        }
    }
    Ok(())
}

/// Writes the rejects files; returns the paths written.
fn write_rejects(
    files: &[InputFile],
    to: Option<&Path>,
    rejects: &[Reject],
) -> anyhow::Result<Vec<String>> {
    let paths: Vec<&Path> = files.iter().map(|f| f.path.as_path()).collect();
    let mut written = Vec::new();
    if let Some(path) = to {
        if !rejects.is_empty() {
            rejects::write(path, &paths, &rejects.iter().collect::<Vec<_>>())?;
            written.push(path.display().to_string());
        }
        return Ok(written);
    }
    for (index, file) in files.iter().enumerate() {
        let mut path = file.path.clone().into_os_string();
        path.push(".rejects.csv");
        let path = PathBuf::from(path);
        let mine: Vec<&Reject> = rejects.iter().filter(|r| r.file == index).collect();
        if mine.is_empty() {
            if path.exists() {
                std::fs::remove_file(&path).with_context(|| {
                    format!("{}: cannot remove the old rejects", path.display())
                })?;
            }
        } else {
            rejects::write(&path, &paths, &mine)?;
            written.push(path.display().to_string());
        }
    }
    Ok(written)
}
