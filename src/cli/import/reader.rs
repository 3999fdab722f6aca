//! Reading the files: gzip or plain (by the magic bytes, whatever the
//! name), the header mapped to columns, each file's identity when its ids
//! are derived, and the reader thread that checks every row and hands the
//! good ones to the sending lanes in batches.

use std::{
    fs::File,
    hash::{DefaultHasher, Hash, Hasher},
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use anyhow::Context;
use chrono_tz::Tz;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::{
    columns::{ColumnFlags, Columns},
    progress::Progress,
    rejects::Reject,
    rows::RowChecker,
};
use crate::{domain::IngestRules, pb};

/// Hex digits of the file's SHA-256 kept in derived ids (64 bits).
const IDENTITY_HEX: usize = 16;

/// One input file, its header checked before anything is sent.
#[derive(Debug, Clone)]
pub struct InputFile {
    pub path: PathBuf,
    pub columns: Columns,
    /// Set when the file has no transaction id column.
    pub identity: Option<String>,
    /// Bytes on disk (compressed, for gzip): what progress counts.
    pub size: u64,
}

/// Good rows of one file for one lane, with the line each starts on.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub file: usize,
    pub lines: Vec<u64>,
    pub transactions: Vec<pb::Transaction>,
}

/// Counts the bytes read from the file itself (before decompression).
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The file's content, decompressed when it starts with gzip's magic bytes.
pub fn open(path: &Path, read: Arc<AtomicU64>) -> anyhow::Result<Box<dyn Read + Send>> {
    let file = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut buffered = BufReader::with_capacity(1 << 16, Counting { inner: file, read });
    let head = buffered
        .fill_buf()
        .with_context(|| format!("{}: cannot read", path.display()))?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(BufReader::with_capacity(
            1 << 16,
            flate2::bufread::MultiGzDecoder::new(buffered),
        ))
    } else {
        Box::new(buffered)
    })
}

/// A CSV reader over `path` with the import's dialect.
pub fn csv_reader(
    path: &Path,
    delimiter: u8,
    read: Arc<AtomicU64>,
) -> anyhow::Result<csv::Reader<Box<dyn Read + Send>>> {
    Ok(csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .flexible(true)
        .from_reader(open(path, read)?))
}

impl InputFile {
    /// Opens `path`, maps its header, and derives its identity if needed.
    pub fn prepare(path: &Path, flags: &ColumnFlags) -> anyhow::Result<Self> {
        let size = std::fs::metadata(path)
            .with_context(|| format!("{}: cannot read", path.display()))?
            .len();
        let mut reader = csv_reader(path, flags.delimiter, Arc::default())?;
        let header: Vec<String> = reader
            .headers()
            .with_context(|| format!("{}: cannot read the header row", path.display()))?
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let h = if i == 0 {
                    h.trim_start_matches('\u{feff}')
                } else {
                    h
                };
                h.trim().to_owned()
            })
            .collect();
        let columns =
            Columns::map(&header, flags).with_context(|| format!("{}", path.display()))?;
        let identity = match columns.transaction {
            Some(_) => None,
            None => Some(identity(path)?),
        };
        Ok(Self {
            path: path.to_owned(),
            columns,
            identity,
            size,
        })
    }
}

/// The first [`IDENTITY_HEX`] hex digits of the SHA-256 of the file's
/// (decompressed) content: the same content, however compressed, is the
/// same file.
fn identity(path: &Path) -> anyhow::Result<String> {
    let mut hasher = Sha256::new();
    std::io::copy(&mut open(path, Arc::default())?, &mut hasher)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let mut hex = hex::encode(hasher.finalize());
    hex.truncate(IDENTITY_HEX);
    Ok(hex)
}

/// What the reader needs besides the files.
pub struct ReadPlan {
    pub files: Vec<InputFile>,
    pub delimiter: u8,
    pub rules: IngestRules,
    pub time_zone: Tz,
    pub currency: String,
    pub batch_size: usize,
}

/// What the reader saw: rows read and the rows it refused.
#[derive(Debug, Default)]
pub struct ReadTotals {
    pub rows: u64,
    pub rejects: Vec<Reject>,
}

/// Reads every file in order, checks each row, and sends the good ones to
/// `lanes` (a customer always to the same lane, so that a refund follows
/// its purchase) in batches of `batch_size`. Runs on a blocking thread.
pub fn read_all(
    plan: &ReadPlan,
    lanes: &[mpsc::Sender<Outgoing>],
    progress: &Progress,
) -> anyhow::Result<ReadTotals> {
    let mut totals = ReadTotals::default();
    for (index, file) in plan.files.iter().enumerate() {
        let mut reader = csv_reader(&file.path, plan.delimiter, progress.bytes_counter())?;
        let mut checker = RowChecker::new(
            file.columns.clone(),
            plan.rules.clone(),
            plan.time_zone,
            plan.currency.clone(),
            file.identity.clone(),
        );
        let mut pending: Vec<Outgoing> = (0..lanes.len())
            .map(|_| Outgoing::empty(index, plan.batch_size))
            .collect();
        let mut record = csv::ByteRecord::new();
        loop {
            match reader.read_byte_record(&mut record) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    // A malformed row (unbalanced quotes are read to the
                    // end): refused with its line, the rest still read.
                    let line = e.position().map_or(0, csv::Position::line);
                    totals.rows += 1;
                    totals.rejects.push(Reject::local(
                        index,
                        line,
                        String::new(),
                        format!("cannot be read as CSV: {e}"),
                        None,
                    ));
                    if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                        return Err(e).with_context(|| format!("{}", file.path.display()));
                    }
                    continue;
                }
            }
            totals.rows += 1;
            let line = record.position().map_or(0, csv::Position::line);
            match checker.check(&record, line) {
                Ok(t) => {
                    let lane = lane_of(&t.customer_id, lanes.len());
                    let out = &mut pending[lane];
                    out.lines.push(line);
                    out.transactions.push(t);
                    if out.transactions.len() >= plan.batch_size {
                        let full = std::mem::replace(out, Outgoing::empty(index, plan.batch_size));
                        send(&lanes[lane], full)?;
                        progress.rows_read(totals.rows);
                    }
                }
                Err(problems) => totals.rejects.push(Reject::from_problems(
                    index,
                    line,
                    problems,
                    Some(row_text(&record, plan.delimiter)),
                )),
            }
        }
        for (lane, out) in pending.into_iter().enumerate() {
            if !out.transactions.is_empty() {
                send(&lanes[lane], out)?;
            }
        }
        progress.rows_read(totals.rows);
    }
    Ok(totals)
}

impl Outgoing {
    fn empty(file: usize, capacity: usize) -> Self {
        Self {
            file,
            lines: Vec::with_capacity(capacity),
            transactions: Vec::with_capacity(capacity),
        }
    }
}

fn send(lane: &mpsc::Sender<Outgoing>, batch: Outgoing) -> anyhow::Result<()> {
    lane.blocking_send(batch)
        .map_err(|_| anyhow::anyhow!("sending stopped"))
}

/// The lane of a customer: all of its rows go through one stream, in order.
pub fn lane_of(customer: &str, lanes: usize) -> usize {
    let mut h = DefaultHasher::new();
    customer.hash(&mut h);
    (h.finish() % lanes.max(1) as u64) as usize
}

/// A row as CSV text again (for the rejects file).
pub fn row_text(record: &csv::ByteRecord, delimiter: u8) -> String {
    let mut w = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let _ = w.write_byte_record(record);
    let bytes = w.into_inner().unwrap_or_default();
    String::from_utf8_lossy(&bytes)
        .trim_end_matches('\n')
        .to_owned()
}

/// The rows on `lines` (sorted) of a file, as CSV text: for rows the
/// server refused, whose text was not kept while they were in flight.
pub fn rows_at(
    file: &InputFile,
    delimiter: u8,
    lines: &[u64],
) -> anyhow::Result<Vec<(u64, String)>> {
    let mut reader = csv_reader(&file.path, delimiter, Arc::default())?;
    let mut record = csv::ByteRecord::new();
    let mut out = Vec::with_capacity(lines.len());
    let mut wanted = lines.iter().peekable();
    while wanted.peek().is_some() {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(_) => continue,
        }
        let line = record.position().map_or(0, csv::Position::line);
        while wanted.peek().is_some_and(|&&l| l < line) {
            wanted.next();
        }
        if wanted.peek() == Some(&&line) {
            out.push((line, row_text(&record, delimiter)));
            wanted.next();
        }
    }
    Ok(out)
}
