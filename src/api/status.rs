//! The one table from errors to gRPC statuses. Internal causes are logged
//! here with their chain and never sent to the client.
//!
//! Every error becomes a [`Failure`] first (code, what to say, offending
//! fields), and a `Status` only once, with its final message: its
//! `grpc-status-details-bin` is a google.rpc.Status whose code and message
//! are exactly the status line's (gRPC's Python and C++ status helpers
//! refuse a mismatch; grpcurl prints the details' message). Its size is
//! bounded whatever the input: at most [`MAX_LISTED_VIOLATIONS`] violations
//! are listed (the rest are counted), quoted values are cut, and the message
//! never exceeds [`MAX_MESSAGE_BYTES`], so the whole error stays well under
//! 8 KiB of headers (C-core clients refuse more than 16 KiB).

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::pb;
use crate::{domain::FieldViolation, service::IngestError, storage::StorageError};

/// Most violations one error lists; the rest are counted.
pub const MAX_LISTED_VIOLATIONS: usize = 10;
/// Longest message sent, bytes of UTF-8. Percent-encoded (3 bytes for each
/// non-ASCII byte, space or control) and repeated base64-encoded in the
/// details with the listed violations, an error stays under 7 KiB.
pub const MAX_MESSAGE_BYTES: usize = 1024;
/// Longest violation description sent, bytes (they may quote input).
const MAX_DESCRIPTION_BYTES: usize = 160;
/// Longest field path sent, bytes (paths are built by clvd, so this only
/// guards against a path that quotes input).
const MAX_FIELD_BYTES: usize = 128;
/// The google.rpc.ErrorInfo domain of clvd's errors.
const ERROR_DOMAIN: &str = "clvd";

/// A status whose details are the google.rpc.Status of `code` and
/// `message` alone: for every error that names no field.
pub fn error(code: Code, message: impl Into<String>) -> Status {
    Failure::new(code, message).into_status()
}

/// INVALID_ARGUMENT with a google.rpc.BadRequest listing the first
/// violations, the rest counted in the message.
pub fn invalid_argument(violations: &[FieldViolation]) -> Status {
    Failure::invalid(violations.to_vec()).into_status()
}

/// An error on its way to the caller, not yet a `Status`: turned into one,
/// once, by [`Failure::into_status`] or [`Failure::in_import`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    code: Code,
    /// The field the message is about (`transactions[3]`), said before it.
    subject: Option<String>,
    message: String,
    /// Offending fields, sent as a google.rpc.BadRequest.
    violations: Vec<FieldViolation>,
}

impl Failure {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            subject: None,
            message: message.into(),
            violations: Vec::new(),
        }
    }

    /// INVALID_ARGUMENT for the given fields.
    pub fn invalid(violations: Vec<FieldViolation>) -> Self {
        Self {
            violations,
            ..Self::new(Code::InvalidArgument, "invalid request")
        }
    }

    /// A failure of the single transaction of a call: ALREADY_EXISTS names
    /// its key, not the entry of a batch.
    pub fn of_single(e: IngestError) -> Self {
        match e {
            IngestError::AlreadyExists { key, .. } => Self::new(
                Code::AlreadyExists,
                format!("{key} was already recorded with other content; nothing was changed"),
            ),
            other => other.into(),
        }
    }

    /// A failure that is not the caller's: an unavailable database or an
    /// internal error. Logged here; only the code reaches the caller.
    fn storage(e: StorageError) -> Self {
        match e {
            StorageError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                Self::new(
                    Code::Unavailable,
                    "the database is unavailable; retry later",
                )
            }
            StorageError::Database(cause) => {
                tracing::error!(error = ?cause, "database error");
                Self::new(Code::Internal, "internal error")
            }
            StorageError::Migrate(cause) => {
                tracing::error!(error = ?cause, "migration error");
                Self::new(Code::Internal, "internal error")
            }
            StorageError::TotalOutOfRange { column } => {
                tracing::warn!(column, "a total exceeds what Money can express");
                Self::new(
                    Code::OutOfRange,
                    format!(
                        "a total in this answer exceeds the largest amount Money can express \
                         ({} units); narrow the request",
                        i64::MAX
                    ),
                )
            }
        }
    }

    pub fn code(&self) -> Code {
        self.code
    }

    /// The status, for a call that failed as a whole.
    pub fn into_status(self) -> Status {
        self.build("", ErrorDetails::new())
    }

    /// The status of an ImportTransactions stream that failed at batch
    /// `committed.batches` (0-based), `committed` being the totals of the
    /// batches before it: the message says so first, field paths start
    /// with `batches[N].`, and a google.rpc.ErrorInfo (reason
    /// `IMPORT_BATCH_FAILED`) carries the same numbers for programs.
    pub fn in_import(self, committed: &pb::ImportTransactionsResponse) -> Status {
        let batch = committed.batches;
        let at = format!("batches[{batch}]");
        let transactions = committed.recorded + committed.duplicates;
        let lead = format!(
            "batch {batch} (0-based) failed and nothing of it was stored; batches committed \
             before it: {batch} ({transactions} transactions: {} recorded, {} duplicates); ",
            committed.recorded, committed.duplicates
        );
        let failure = Self {
            subject: self.subject.map(|s| format!("{at}.{s}")),
            violations: self.violations.into_iter().map(|v| v.under(&at)).collect(),
            ..self
        };
        let metadata = HashMap::from([
            ("batch".to_owned(), batch.to_string()),
            ("committed_batches".to_owned(), batch.to_string()),
            (
                "committed_transactions".to_owned(),
                transactions.to_string(),
            ),
            ("recorded".to_owned(), committed.recorded.to_string()),
            ("duplicates".to_owned(), committed.duplicates.to_string()),
        ]);
        let mut details = ErrorDetails::new();
        details.set_error_info("IMPORT_BATCH_FAILED", ERROR_DOMAIN, metadata);
        failure.build(&lead, details)
    }

    /// The one place a `Status` is made: message and details together.
    fn build(self, lead: &str, mut details: ErrorDetails) -> Status {
        let mut message = match &self.subject {
            Some(subject) => format!("{lead}{}: {}", clip(subject, MAX_FIELD_BYTES), self.message),
            None => format!("{lead}{}", self.message),
        };
        if !self.violations.is_empty() {
            let listed = list(&self.violations, &mut message);
            for v in listed {
                details.add_bad_request_violation(v.field, v.description);
            }
        }
        let message = clip(&message, MAX_MESSAGE_BYTES);
        Status::with_error_details(self.code, message, details)
    }
}

/// Appends `: f1: d1; f2: d2; and N more violations` to `message` while it
/// stays within [`MAX_MESSAGE_BYTES`], and returns the violations listed.
fn list(violations: &[FieldViolation], message: &mut String) -> Vec<FieldViolation> {
    // Room kept for the count of the rest.
    const COUNT_ROOM: usize = "; and 18,446,744,073,709,551,615 more violations".len();
    let mut listed = Vec::new();
    for (i, v) in violations.iter().enumerate() {
        let v = FieldViolation::new(
            clip(&v.field, MAX_FIELD_BYTES),
            clip(&v.description, MAX_DESCRIPTION_BYTES),
        );
        let entry = format!(
            "{}{}: {}",
            if i == 0 { ": " } else { "; " },
            v.field,
            v.description
        );
        if i == MAX_LISTED_VIOLATIONS
            || (i > 0 && message.len() + entry.len() + COUNT_ROOM > MAX_MESSAGE_BYTES)
        {
            break;
        }
        message.push_str(&entry);
        listed.push(v);
    }
    let rest = violations.len() - listed.len();
    if rest > 0 {
        message.push_str(&format!(
            "; and {} more violation{}",
            thousands(rest),
            if rest == 1 { "" } else { "s" }
        ));
    }
    listed
}

/// `s` cut to at most `max` bytes on a character boundary, `…` marking a
/// cut. (`str::floor_char_boundary` is newer than the supported Rust.)
fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// `4990` as `4,990`: a count in a message. (Six lines; a formatting crate
/// for this one use would cost more than it saves.)
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl From<StorageError> for Failure {
    fn from(e: StorageError) -> Self {
        Failure::storage(e)
    }
}

impl From<IngestError> for Failure {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Invalid(violations) => Failure::invalid(violations),
            IngestError::AlreadyExists { index, key } => Failure {
                subject: Some(format!("transactions[{index}]")),
                ..Failure::new(
                    Code::AlreadyExists,
                    format!("{key} was already recorded with other content; nothing was changed"),
                )
            },
            IngestError::KeyTaken { what } => Failure::new(
                Code::AlreadyExists,
                format!("{what} was already recorded with other content; nothing was changed"),
            ),
            IngestError::Storage(s) => s.into(),
        }
    }
}

impl From<Failure> for Status {
    fn from(f: Failure) -> Self {
        f.into_status()
    }
}

impl From<StorageError> for Status {
    fn from(e: StorageError) -> Self {
        Failure::from(e).into_status()
    }
}

impl From<IngestError> for Status {
    fn from(e: IngestError) -> Self {
        Failure::from(e).into_status()
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    fn violations(n: usize, description: &str) -> Vec<FieldViolation> {
        (0..n)
            .map(|i| FieldViolation::new(format!("transactions[{i}].amount"), description))
            .collect()
    }

    fn inner(status: &Status) -> tonic_types::pb::Status {
        tonic_types::pb::Status::decode(status.details()).expect("a google.rpc.Status")
    }

    #[test]
    fn the_details_repeat_the_code_and_the_message() {
        for status in [
            error(Code::NotFound, "customer c has no recorded purchase"),
            invalid_argument(&violations(3, "must be >= 0")),
            Failure::invalid(violations(2, "x")).in_import(&pb::ImportTransactionsResponse {
                batches: 4,
                recorded: 7,
                duplicates: 1,
            }),
        ] {
            let inner = inner(&status);
            assert_eq!(inner.code, status.code() as i32);
            assert_eq!(inner.message, status.message());
        }
    }

    #[test]
    fn many_violations_list_the_first_and_count_the_rest() {
        let status = invalid_argument(&violations(5_000, "must be >= 0"));
        let listed = status.get_details_bad_request().unwrap().field_violations;
        assert_eq!(listed.len(), MAX_LISTED_VIOLATIONS);
        assert_eq!(listed[9].field, "transactions[9].amount");
        assert!(status.message().ends_with("; and 4,990 more violations"));
        assert!(status
            .message()
            .contains("transactions[9].amount: must be >= 0"));
        assert!(!status.message().contains("transactions[10]"));
    }

    #[test]
    fn long_descriptions_are_cut_and_the_message_is_bounded() {
        let long = "é".repeat(10_000);
        let status = invalid_argument(&violations(50, &long));
        assert!(status.message().len() <= MAX_MESSAGE_BYTES);
        let listed = status.get_details_bad_request().unwrap().field_violations;
        assert!(!listed.is_empty());
        for v in &listed {
            assert!(v.description.len() <= MAX_DESCRIPTION_BYTES);
            assert!(v.description.ends_with('…'));
        }
        assert!(status
            .message()
            .ends_with(&format!("and {} more violations", 50 - listed.len())));
        let plain = error(Code::FailedPrecondition, long);
        assert!(plain.message().len() <= MAX_MESSAGE_BYTES);
        assert_eq!(inner(&plain).message, plain.message());
    }

    #[test]
    fn an_import_failure_names_the_batch_and_what_was_committed() {
        let progress = pb::ImportTransactionsResponse {
            batches: 2,
            recorded: 15,
            duplicates: 5,
        };
        let status = Failure::from(IngestError::AlreadyExists {
            index: 3,
            key: "c/t".into(),
        })
        .in_import(&progress);
        assert_eq!(status.code(), Code::AlreadyExists);
        assert_eq!(
            status.message(),
            "batch 2 (0-based) failed and nothing of it was stored; batches committed before it: \
             2 (20 transactions: 15 recorded, 5 duplicates); batches[2].transactions[3]: c/t was \
             already recorded with other content; nothing was changed"
        );
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.reason, "IMPORT_BATCH_FAILED");
        assert_eq!(info.metadata["committed_transactions"], "20");
        let status = Failure::invalid(violations(1, "x")).in_import(&progress);
        assert_eq!(
            status.get_details_bad_request().unwrap().field_violations[0].field,
            "batches[2].transactions[0].amount"
        );
    }

    #[test]
    fn counts_have_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(4_990), "4,990");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
