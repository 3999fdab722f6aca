//! The rejects file: one CSV row per refused input row, with the file,
//! the line it starts on, the column (empty: the row as a whole), the
//! reason, and the row as it was. Refused locally (the service's rules
//! checked before sending) or by the server (its reason as it gave it).

use std::path::Path;

use anyhow::Context;

use super::rows::Problem;

/// One refused row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// Index of the file in the command line.
    pub file: usize,
    pub line: u64,
    pub column: String,
    pub reason: String,
    /// The row as CSV text (filled in after the run for server refusals).
    pub row: Option<String>,
    /// Refused by the server rather than by the local checks.
    pub by_server: bool,
}

impl Reject {
    pub fn local(
        file: usize,
        line: u64,
        column: String,
        reason: String,
        row: Option<String>,
    ) -> Self {
        Self {
            file,
            line,
            column,
            reason,
            row,
            by_server: false,
        }
    }

    /// A row with one or more problems: their columns joined with `;`,
    /// their reasons with `; `.
    pub fn from_problems(
        file: usize,
        line: u64,
        problems: Vec<Problem>,
        row: Option<String>,
    ) -> Self {
        let mut columns: Vec<&str> = Vec::new();
        for p in &problems {
            if !columns.contains(&p.column.as_str()) {
                columns.push(&p.column);
            }
        }
        let column = columns.join(";");
        let reason = problems
            .iter()
            .map(|p| p.reason.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        Self::local(file, line, column, reason, row)
    }
}

/// Writes `rejects` (sorted by file and line) to `path`, with a header row.
pub fn write(path: &Path, files: &[&Path], rejects: &[&Reject]) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_path(path)
        .with_context(|| format!("{}: cannot write the rejects file", path.display()))?;
    w.write_record(["file", "line", "column", "reason", "row"])?;
    for r in rejects {
        let file = files
            .get(r.file)
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        w.write_record([
            file.as_str(),
            &r.line.to_string(),
            &r.column,
            &r.reason,
            r.row.as_deref().unwrap_or_default(),
        ])?;
    }
    w.flush()
        .with_context(|| format!("{}: cannot write the rejects file", path.display()))?;
    Ok(())
}
