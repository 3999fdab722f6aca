//! Sending: one lane per concurrent ImportTransactions stream, each lane
//! carrying its own customers in file order (so a refund follows its
//! purchase). A lane opens a stream, sends batches until
//! [`STREAM_ROWS`] rows are in it (or no batch came for [`IDLE`], well
//! under the server's idle limit), closes it and reads the totals.
//!
//! The server commits a stream's batches in order, each atomically, and
//! when one fails it says which (ErrorInfo `batch`) and what the batches
//! before it recorded; nothing after it was processed. The lane then
//! counts what committed and resends the rest in a new stream:
//! - a batch refused for some of its rows (INVALID_ARGUMENT,
//!   ALREADY_EXISTS, FAILED_PRECONDITION naming `transactions[i]`): those
//!   rows become rejects with the server's reason, the others are resent;
//!   a refusal that names no row halves the batch (bisection), down to one
//!   row, which is then rejected with the server's message;
//! - a passing failure (UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED,
//!   ABORTED, CANCELLED) resends after a pause, up to [`MAX_RETRIES`] times
//!   in a row;
//! - anything else ends the import with the server's error.
//!
//! Every resend is of whole transactions under the same ids, so the server
//! stores each once. When the server did not say what committed (the
//! connection broke), the lane resends every batch of the stream: rows it
//! had stored are then counted as duplicates (recorded + duplicates stays
//! exact, the split between them does not).

use std::{collections::VecDeque, time::Duration};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use super::reader::Outgoing;
use crate::{
    cli::{connect::Server, output::status_error},
    pb::ImportTransactionsRequest,
};

/// Rows sent in one stream before it is closed: the lane keeps a copy of
/// each until the stream's totals confirm it.
pub const STREAM_ROWS: usize = 200_000;
/// A stream with no batch to send for this long is closed (the server's
/// idle limit, CLVD_STREAM_IDLE_SECONDS, is 30 s by default).
pub const IDLE: Duration = Duration::from_secs(10);
/// Passing failures in a row before the import gives up.
pub const MAX_RETRIES: u32 = 8;

/// A row the server refused.
#[derive(Debug, Clone)]
pub struct ServerReject {
    pub file: usize,
    pub line: u64,
    /// The violated field relative to the transaction (`amount.units`), or
    /// empty.
    pub field: String,
    pub reason: String,
}

/// What one lane achieved.
#[derive(Debug, Default)]
pub struct LaneTotals {
    pub recorded: u64,
    pub duplicates: u64,
    pub rejects: Vec<ServerReject>,
}

/// Sends everything `input` yields; returns when it is all stored,
/// duplicate or rejected.
pub async fn lane(
    server: Server,
    mut input: mpsc::Receiver<Outgoing>,
) -> anyhow::Result<LaneTotals> {
    let mut totals = LaneTotals::default();
    let mut pending: VecDeque<Outgoing> = VecDeque::new();
    let mut input_done = false;
    let mut retries = 0u32;
    loop {
        if pending.is_empty() {
            // Opens a stream only once there is something to send.
            match input.recv().await {
                Some(b) => pending.push_back(b),
                None => break,
            }
        }
        let (to_stream, stream) = mpsc::channel::<ImportTransactionsRequest>(1);
        let mut client = server.ingest().max_encoding_message_size(64 << 20);
        let mut call = tokio::spawn(async move {
            client
                .import_transactions(ReceiverStream::new(stream))
                .await
                .map(tonic::Response::into_inner)
        });
        let mut in_flight: Vec<Outgoing> = Vec::new();
        let mut rows = 0;
        let mut ended = None;
        while rows < STREAM_ROWS {
            let next = match pending.pop_front() {
                Some(b) => Some(b),
                None if input_done => None,
                None => match tokio::time::timeout(IDLE, input.recv()).await {
                    Ok(Some(b)) => Some(b),
                    Ok(None) => {
                        input_done = true;
                        None
                    }
                    Err(_) => None,
                },
            };
            let Some(batch) = next else { break };
            let message = ImportTransactionsRequest {
                transactions: batch.transactions.clone(),
            };
            rows += batch.transactions.len();
            in_flight.push(batch);
            tokio::select! {
                sent = to_stream.send(message) => if sent.is_err() { break },
                result = &mut call => { ended = Some(result); break }
            }
        }
        drop(to_stream);
        let result = match ended {
            Some(r) => r,
            None => call.await,
        }?;
        match result {
            Ok(r) => {
                totals.recorded += r.recorded;
                totals.duplicates += r.duplicates;
                retries = 0;
            }
            Err(status) => {
                let progressed = failed(status, in_flight, &mut pending, &mut totals)?;
                if progressed {
                    retries = 0;
                } else {
                    retries += 1;
                    if retries > MAX_RETRIES {
                        anyhow::bail!(
                            "the server kept failing; gave up after {MAX_RETRIES} retries"
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(250 << retries.min(5))).await;
                }
            }
        }
        if pending.is_empty() && input_done {
            break;
        }
    }
    Ok(totals)
}

/// Handles a failed stream: counts what committed, rejects the rows the
/// server refused, and puts the rest back in front of `pending`. Returns
/// whether anything moved forward (rows committed or rejected); an error
/// when the failure is not one to resend.
fn failed(
    status: Status,
    mut in_flight: Vec<Outgoing>,
    pending: &mut VecDeque<Outgoing>,
    totals: &mut LaneTotals,
) -> anyhow::Result<bool> {
    let info = status
        .get_details_error_info()
        .filter(|i| i.reason == "IMPORT_BATCH_FAILED");
    let number = |key: &str| {
        info.as_ref()
            .and_then(|i| i.metadata.get(key))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let (failed, recorded, duplicates) =
        match (number("batch"), number("recorded"), number("duplicates")) {
            (Some(b), Some(r), Some(d)) => (b as usize, r, d),
            // The server did not say: nothing is known to be committed.
            _ => (0, 0, 0),
        };
    totals.recorded += recorded;
    totals.duplicates += duplicates;
    let mut progressed = recorded + duplicates > 0;
    let mut rest = if failed < in_flight.len() {
        in_flight.split_off(failed)
    } else {
        Vec::new()
    };
    let passing = matches!(
        status.code(),
        Code::Unavailable
            | Code::ResourceExhausted
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::Cancelled
    );
    let refused = matches!(
        status.code(),
        Code::InvalidArgument | Code::AlreadyExists | Code::FailedPrecondition | Code::OutOfRange
    );
    if refused && info.is_some() && !rest.is_empty() {
        let batch = rest.remove(0);
        let prefix = format!("batches[{failed}].transactions[");
        let named = named_entries(&status, &prefix, batch.transactions.len());
        let mut front = Vec::new();
        if !named.is_empty() {
            let mut kept = Outgoing {
                file: batch.file,
                lines: Vec::new(),
                transactions: Vec::new(),
            };
            for (i, (line, t)) in batch.lines.into_iter().zip(batch.transactions).enumerate() {
                match named.iter().find(|(entry, _, _)| *entry == i) {
                    Some((_, field, reason)) => totals.rejects.push(ServerReject {
                        file: batch.file,
                        line,
                        field: field.clone(),
                        reason: reason.clone(),
                    }),
                    None => {
                        kept.lines.push(line);
                        kept.transactions.push(t);
                    }
                }
            }
            if !kept.transactions.is_empty() {
                front.push(kept);
            }
        } else if batch.transactions.len() > 1 {
            // Refused without naming a row: halve it to find the row.
            let half = batch.transactions.len() / 2;
            let mut first = batch;
            let second = Outgoing {
                file: first.file,
                lines: first.lines.split_off(half),
                transactions: first.transactions.split_off(half),
            };
            front.push(first);
            front.push(second);
        } else {
            totals.rejects.push(ServerReject {
                file: batch.file,
                line: batch.lines.first().copied().unwrap_or_default(),
                field: String::new(),
                reason: status.message().to_owned(),
            });
        }
        progressed = true;
        front.extend(rest);
        requeue(pending, front);
        return Ok(progressed);
    }
    if passing || (info.is_none() && status.code() == Code::Unknown) {
        // Resend what did not commit (all of it when the server did not say).
        let again = if info.is_some() {
            rest
        } else {
            in_flight.into_iter().chain(rest).collect()
        };
        requeue(pending, again);
        return Ok(progressed);
    }
    Err(status_error(status).context("the server refused the import"))
}

fn requeue(pending: &mut VecDeque<Outgoing>, front: Vec<Outgoing>) {
    for b in front.into_iter().rev() {
        pending.push_front(b);
    }
}

/// The entries of the failed batch the error names (`prefix` is
/// `batches[N].transactions[`), each with the field relative to the
/// transaction and the reason: from the BadRequest violations, else (for
/// ALREADY_EXISTS, which names the entry in the message) from the message.
fn named_entries(status: &Status, prefix: &str, len: usize) -> Vec<(usize, String, String)> {
    let mut out: Vec<(usize, String, String)> = Vec::new();
    let split = |path: &str| -> Option<(usize, String)> {
        let rest = path.strip_prefix(prefix)?;
        let (index, field) = rest.split_once(']')?;
        let index = index.parse::<usize>().ok().filter(|&i| i < len)?;
        Some((index, field.trim_start_matches('.').to_owned()))
    };
    if let Some(bad) = status.get_details_bad_request() {
        for v in bad.field_violations {
            if let Some((i, field)) = split(&v.field) {
                match out.iter_mut().find(|(e, _, _)| *e == i) {
                    Some((_, _, reason)) => {
                        reason.push_str("; ");
                        reason.push_str(&v.description);
                    }
                    None => out.push((i, field, v.description)),
                }
            }
        }
    }
    if out.is_empty() {
        let message = status.message();
        if let Some(at) = message.find(prefix) {
            if let Some((i, field)) = split(&message[at..]) {
                let reason = message[at..]
                    .split_once("]: ")
                    .map_or(message, |(_, r)| r)
                    .to_owned();
                let field = field
                    .split(':')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
                out.push((i, field, reason));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::{ErrorDetails, StatusExt};

    fn import_failure(code: Code, message: &str, violations: &[(&str, &str)]) -> Status {
        let mut details = ErrorDetails::new();
        details.set_error_info(
            "IMPORT_BATCH_FAILED",
            "clvd",
            [
                ("batch".to_owned(), "1".to_owned()),
                ("recorded".to_owned(), "7".to_owned()),
                ("duplicates".to_owned(), "3".to_owned()),
            ],
        );
        for (f, d) in violations {
            details.add_bad_request_violation(*f, *d);
        }
        Status::with_error_details(code, message, details)
    }

    fn batch(file: usize, lines: std::ops::Range<u64>) -> Outgoing {
        Outgoing {
            file,
            lines: lines.clone().collect(),
            transactions: lines
                .map(|l| crate::pb::Transaction {
                    transaction_id: format!("t{l}"),
                    ..Default::default()
                })
                .collect(),
        }
    }

    #[test]
    fn a_named_row_is_rejected_and_the_rest_resent_in_order() {
        let status = import_failure(
            Code::InvalidArgument,
            "batch 1 (0-based) failed",
            &[(
                "batches[1].transactions[2].refunded_transaction_id",
                "names no recorded purchase",
            )],
        );
        let mut pending = VecDeque::from([batch(0, 100..102)]);
        let mut totals = LaneTotals::default();
        let in_flight = vec![batch(0, 0..5), batch(0, 5..10), batch(0, 10..15)];
        assert!(failed(status, in_flight, &mut pending, &mut totals).unwrap());
        assert_eq!((totals.recorded, totals.duplicates), (7, 3));
        assert_eq!(totals.rejects.len(), 1);
        assert_eq!(totals.rejects[0].line, 7);
        assert_eq!(totals.rejects[0].field, "refunded_transaction_id");
        let order: Vec<Vec<u64>> = pending.iter().map(|b| b.lines.clone()).collect();
        assert_eq!(
            order,
            [vec![5, 6, 8, 9], (10..15).collect(), vec![100, 101]]
        );
    }

    #[test]
    fn already_exists_is_read_from_the_message_and_an_unnamed_refusal_bisects() {
        let status = import_failure(
            Code::AlreadyExists,
            "batch 1 (0-based) failed and nothing of it was stored; batches committed before it: \
             1 (10 transactions: 7 recorded, 3 duplicates); batches[1].transactions[0]: k/t was \
             already recorded with other content; nothing was changed",
            &[],
        );
        let mut pending = VecDeque::new();
        let mut totals = LaneTotals::default();
        failed(
            status,
            vec![batch(0, 0..5), batch(0, 5..9)],
            &mut pending,
            &mut totals,
        )
        .unwrap();
        assert_eq!(totals.rejects[0].line, 5);
        assert_eq!(totals.rejects[0].field, "");
        assert!(totals.rejects[0]
            .reason
            .starts_with("k/t was already recorded"));

        let status = import_failure(
            Code::InvalidArgument,
            "batch 1 (0-based) failed",
            &[(
                "batches[1].transactions",
                "a batch must hold 1 to 2 transactions, got 4",
            )],
        );
        let mut pending = VecDeque::new();
        let mut totals = LaneTotals::default();
        failed(
            status,
            vec![batch(0, 0..5), batch(0, 5..9)],
            &mut pending,
            &mut totals,
        )
        .unwrap();
        assert!(totals.rejects.is_empty());
        let order: Vec<Vec<u64>> = pending.iter().map(|b| b.lines.clone()).collect();
        assert_eq!(order, [vec![5, 6], vec![7, 8]]);
    }

    #[test]
    fn a_passing_failure_resends_and_others_end_the_import() {
        let status = import_failure(Code::Unavailable, "the database is unavailable", &[]);
        let mut pending = VecDeque::new();
        let mut totals = LaneTotals::default();
        failed(
            status,
            vec![batch(0, 0..5), batch(0, 5..9)],
            &mut pending,
            &mut totals,
        )
        .unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].lines, vec![5, 6, 7, 8]);
        // Without ErrorInfo nothing is known committed: everything again.
        let mut pending = VecDeque::new();
        failed(
            Status::unavailable("connection reset"),
            vec![batch(0, 0..5), batch(0, 5..9)],
            &mut pending,
            &mut totals,
        )
        .unwrap();
        assert_eq!(pending.len(), 2);
        assert!(failed(
            Status::unauthenticated("no key"),
            vec![batch(0, 0..5)],
            &mut VecDeque::new(),
            &mut totals
        )
        .is_err());
    }
}
