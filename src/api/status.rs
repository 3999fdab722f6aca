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

use super::{convert::entry_path, pb};
use crate::{
    domain::FieldViolation,
    service::{
        BackendError, IngestError, ModelsError, PageTokenKeyError, ReportError, ScoringError,
    },
    storage::StorageError,
};

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

    /// INVALID_ARGUMENT for one field.
    fn invalid_field(field: &str, description: impl Into<String>) -> Self {
        Self::invalid(vec![FieldViolation::new(field, description)])
    }

    /// INTERNAL: the cause is logged here with its chain of sources; the
    /// caller is told nothing of it.
    fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        let mut chain = cause.to_string();
        let mut source = cause.source();
        while let Some(s) = source {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            source = s.source();
        }
        tracing::error!(error = %chain, "internal error");
        Self::new(Code::Internal, "internal error")
    }

    /// A failure that is not the caller's: an unavailable database or an
    /// internal error. Logged here; only the code reaches the caller.
    fn storage(e: &StorageError) -> Self {
        match e {
            StorageError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                Self::new(
                    Code::Unavailable,
                    "the database is unavailable; retry later",
                )
            }
            StorageError::TimedOut(cause) => {
                tracing::warn!(error = %cause, "statement timeout");
                Self::new(
                    Code::DeadlineExceeded,
                    "a database query took longer than the configured limit \
                     (CLVD_DB_STATEMENT_TIMEOUT_SECONDS) and was cancelled; retry later, or \
                     narrow the request",
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
                tracing::warn!(%column, "a total exceeds what Money can express");
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

// The table: every error of the use-cases, and what the caller is told.

impl From<StorageError> for Failure {
    fn from(e: StorageError) -> Self {
        Failure::storage(&e)
    }
}

impl From<IngestError> for Failure {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Rejected { entry, violation } => {
                Failure::invalid(vec![violation.under(&entry_path(entry))])
            }
            IngestError::AlreadyExists { entry, what } => Failure {
                // A call's only transaction is named by its key alone.
                subject: entry.map(|i| entry_path(Some(i))),
                ..Failure::new(
                    Code::AlreadyExists,
                    format!("{what} was already recorded with other content; nothing was changed"),
                )
            },
            IngestError::Backend(b) => b.into(),
        }
    }
}

impl From<ModelsError> for Failure {
    fn from(e: ModelsError) -> Self {
        match e {
            ModelsError::NoActiveModel(_) | ModelsError::NoSuchVersion(_) => {
                Failure::new(Code::NotFound, e.to_string())
            }
            ModelsError::FitFailed { .. } | ModelsError::CannotEvaluate(_) => {
                Failure::new(Code::FailedPrecondition, e.to_string())
            }
            ModelsError::Abandoned => Failure::new(Code::Cancelled, e.to_string()),
            ModelsError::BadPageToken(_) => Failure::invalid_field("page_token", e.to_string()),
            ModelsError::TaskFailed { .. } => Failure::internal(&e),
            ModelsError::PageTokenKey(k) => k.into(),
            ModelsError::Storage(s) => s.into(),
        }
    }
}

impl From<ScoringError> for Failure {
    fn from(e: ScoringError) -> Self {
        match e {
            ScoringError::NotFound(_) | ScoringError::NoSuchVersion(_) => {
                Failure::new(Code::NotFound, e.to_string())
            }
            ScoringError::NoActiveModel(_) | ScoringError::FailedVersion { .. } => {
                Failure::new(Code::FailedPrecondition, e.to_string())
            }
            ScoringError::BadPageToken(_)
            | ScoringError::TokenForOtherFilters
            | ScoringError::UnlistableVersion(_) => {
                Failure::invalid_field("page_token", e.to_string())
            }
            ScoringError::PageTokenKey(k) => k.into(),
            ScoringError::Backend(b) => b.into(),
        }
    }
}

impl From<ReportError> for Failure {
    fn from(e: ReportError) -> Self {
        match e {
            ReportError::NoActiveModel(_) => Failure::new(Code::FailedPrecondition, e.to_string()),
            ReportError::TotalOutOfRange(_) => {
                Failure::new(Code::OutOfRange, format!("{e}; narrow the request"))
            }
            ReportError::Storage(s) => s.into(),
        }
    }
}

impl From<PageTokenKeyError> for Failure {
    fn from(e: PageTokenKeyError) -> Self {
        match e {
            PageTokenKeyError::Storage(s) => s.into(),
            PageTokenKeyError::NoRandomness(_) | PageTokenKeyError::StoredKeyUnusable(_) => {
                Failure::internal(&e)
            }
        }
    }
}

impl From<BackendError> for Failure {
    fn from(e: BackendError) -> Self {
        match e {
            // A dispatcher of grouped calls is gone: the server is stopping.
            BackendError::ShuttingDown(_) => Failure::new(
                Code::Unavailable,
                "the server is shutting down; retry later",
            ),
            BackendError::Storage(s) => Failure::storage(&s),
            BackendError::Internal(_) => Failure::internal(&e),
        }
    }
}

/// A reflection request that could not be built (INTERNAL).
impl From<http::Error> for Failure {
    fn from(e: http::Error) -> Self {
        Failure::internal(&e)
    }
}

impl From<Failure> for Status {
    fn from(f: Failure) -> Self {
        f.into_status()
    }
}

/// Every error a handler returns with `?` becomes its [`Failure`], then
/// its `Status`.
macro_rules! status_from {
    ($($error:ty),*) => {$(
        impl From<$error> for Status {
            fn from(e: $error) -> Self {
                Failure::from(e).into_status()
            }
        }
    )*};
}

status_from!(
    StorageError,
    BackendError,
    IngestError,
    ModelsError,
    ScoringError,
    ReportError,
    PageTokenKeyError
);

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
            entry: Some(3),
            what: "c/t".into(),
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

    /// Every error variant of the use-cases, and what the caller is told.
    mod table {

        use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

        use super::*;
        use crate::{
            domain::{CustomerId, KeyError, TokenError, TotalOutOfRange},
            service::{NoActiveModel, ShuttingDown},
        };

        /// What the caller must see: the code and the exact message, or
        /// `None` for an internal error, whose cause must not be sent.
        type Expected = (Code, Option<&'static str>);

        const INTERNAL: Expected = (Code::Internal, None);

        /// A database error as storage classifies it: sqlx's own answer to
        /// a malformed URL (no `sqlx::Error` is built here).
        fn database_error() -> StorageError {
            let e = "postgres://db:not-a-port/clv"
                .parse::<PgConnectOptions>()
                .expect_err("a malformed URL");
            let e = StorageError::from(e);
            assert!(matches!(e, StorageError::Database(_)), "{e:?}");
            e
        }

        /// An unreachable database as storage classifies it: sqlx's answer
        /// from a closed pool.
        async fn unavailable() -> StorageError {
            let pool = PgPoolOptions::new()
                .connect_lazy("postgres://clvd@127.0.0.1:1/clv")
                .expect("a lazy pool");
            pool.close().await;
            let e = StorageError::from(pool.acquire().await.expect_err("a closed pool"));
            assert!(matches!(e, StorageError::Unavailable(_)), "{e:?}");
            e
        }

        async fn join_error() -> tokio::task::JoinError {
            let task = tokio::spawn(std::future::pending::<()>());
            task.abort();
            task.await.expect_err("an aborted task")
        }

        fn model_error() -> clv_model::ModelError {
            clv_model::CustomerSummary::new(-1.0, 0.0, 0.0, 0.0).expect_err("x < 0")
        }

        /// The code and exact message a caller must see.
        fn says(code: Code, message: &'static str) -> Expected {
            (code, Some(message))
        }

        const NO_MODEL: &str = "no model has been fitted yet: call ModelService.FitModel";
        const UNAVAILABLE: &str = "the database is unavailable; retry later";

        // The variant's name: an exhaustive match, so that a new variant
        // does not compile until it has a row below.

        fn ingest_variant(e: &IngestError) -> &'static str {
            match e {
                IngestError::Rejected { .. } => "Rejected",
                IngestError::AlreadyExists { .. } => "AlreadyExists",
                IngestError::Backend(_) => "Backend",
            }
        }

        fn backend_variant(e: &BackendError) -> &'static str {
            match e {
                BackendError::ShuttingDown(_) => "ShuttingDown",
                BackendError::Storage(_) => "Storage",
                BackendError::Internal(_) => "Internal",
            }
        }

        fn models_variant(e: &ModelsError) -> &'static str {
            match e {
                ModelsError::NoActiveModel(_) => "NoActiveModel",
                ModelsError::NoSuchVersion(_) => "NoSuchVersion",
                ModelsError::FitFailed { .. } => "FitFailed",
                ModelsError::CannotEvaluate(_) => "CannotEvaluate",
                ModelsError::Abandoned => "Abandoned",
                ModelsError::BadPageToken(_) => "BadPageToken",
                ModelsError::TaskFailed { .. } => "TaskFailed",
                ModelsError::PageTokenKey(_) => "PageTokenKey",
                ModelsError::Storage(_) => "Storage",
            }
        }

        fn scoring_variant(e: &ScoringError) -> &'static str {
            match e {
                ScoringError::NotFound(_) => "NotFound",
                ScoringError::NoActiveModel(_) => "NoActiveModel",
                ScoringError::NoSuchVersion(_) => "NoSuchVersion",
                ScoringError::FailedVersion { .. } => "FailedVersion",
                ScoringError::BadPageToken(_) => "BadPageToken",
                ScoringError::TokenForOtherFilters => "TokenForOtherFilters",
                ScoringError::UnlistableVersion(_) => "UnlistableVersion",
                ScoringError::PageTokenKey(_) => "PageTokenKey",
                ScoringError::Backend(_) => "Backend",
            }
        }

        fn report_variant(e: &ReportError) -> &'static str {
            match e {
                ReportError::NoActiveModel(_) => "NoActiveModel",
                ReportError::TotalOutOfRange(_) => "TotalOutOfRange",
                ReportError::Storage(_) => "Storage",
            }
        }

        fn key_variant(e: &PageTokenKeyError) -> &'static str {
            match e {
                PageTokenKeyError::NoRandomness(_) => "NoRandomness",
                PageTokenKeyError::StoredKeyUnusable(_) => "StoredKeyUnusable",
                PageTokenKeyError::Storage(_) => "Storage",
            }
        }

        /// Checks one row: the code, the message (or, for an internal
        /// error, that neither the error's text nor its source's is sent),
        /// and that the details repeat the status line.
        fn check(row: &str, cause: String, failure: Failure, expected: Expected) {
            let status = failure.into_status();
            assert_eq!(status.code(), expected.0, "{row}: {status:?}");
            match expected.1 {
                Some(message) => assert_eq!(status.message(), message, "{row}"),
                None => {
                    assert_eq!(status.message(), "internal error", "{row}");
                    assert!(!cause.is_empty());
                    assert!(!status.message().contains(&cause), "{row}");
                    assert!(
                        !String::from_utf8_lossy(status.details()).contains(&cause),
                        "{row}"
                    );
                }
            }
            let inner = inner(&status);
            assert_eq!(inner.code, status.code() as i32, "{row}");
            assert_eq!(inner.message, status.message(), "{row}");
        }

        /// Runs the rows of one error type and checks that they name every
        /// variant.
        fn run<E: std::fmt::Display>(
            rows: Vec<(E, Expected)>,
            variant: fn(&E) -> &'static str,
            all: &[&str],
        ) where
            Failure: From<E>,
        {
            let mut seen = std::collections::BTreeSet::new();
            for (e, expected) in rows {
                let name = variant(&e);
                seen.insert(name);
                let cause = e.to_string();
                check(name, cause, Failure::from(e), expected);
            }
            let all: std::collections::BTreeSet<_> = all.iter().copied().collect();
            assert_eq!(seen, all, "every variant has a row");
        }

        #[tokio::test]
        async fn every_ingest_and_backend_error() {
            let amount = || FieldViolation::new("amount", "must be >= 0");
            let rejected = |entry| IngestError::Rejected {
                entry,
                violation: amount(),
            };
            let taken = |entry, what: &str| IngestError::AlreadyExists {
                entry,
                what: what.into(),
            };
            run(
                vec![
                    (
                        rejected(Some(2)),
                        says(
                            Code::InvalidArgument,
                            "invalid request: transactions[2].amount: must be >= 0",
                        ),
                    ),
                    (
                        rejected(None),
                        says(
                            Code::InvalidArgument,
                            "invalid request: transaction.amount: must be >= 0",
                        ),
                    ),
                    (
                        taken(Some(3), "c/t"),
                        says(
                            Code::AlreadyExists,
                            "transactions[3]: c/t was already recorded with other content; \
                             nothing was changed",
                        ),
                    ),
                    (
                        taken(None, "feedback c/f"),
                        says(
                            Code::AlreadyExists,
                            "feedback c/f was already recorded with other content; nothing \
                             was changed",
                        ),
                    ),
                    (IngestError::from(database_error()), INTERNAL),
                ],
                ingest_variant,
                &["Rejected", "AlreadyExists", "Backend"],
            );
            run(
                vec![
                    (
                        BackendError::from(ShuttingDown),
                        says(
                            Code::Unavailable,
                            "the server is shutting down; retry later",
                        ),
                    ),
                    (BackendError::Internal("secret cause 7f3a".into()), INTERNAL),
                    (BackendError::from(database_error()), INTERNAL),
                    (
                        BackendError::from(unavailable().await),
                        says(Code::Unavailable, UNAVAILABLE),
                    ),
                ],
                backend_variant,
                &["ShuttingDown", "Storage", "Internal"],
            );
        }

        #[tokio::test]
        async fn every_models_error() {
            let bad_key = PageTokenKeyError::StoredKeyUnusable(KeyError::TooShort(3));
            run(
                vec![
                    (
                        ModelsError::from(NoActiveModel::default()),
                        says(Code::NotFound, NO_MODEL),
                    ),
                    (
                        ModelsError::NoSuchVersion(9),
                        says(Code::NotFound, "model version 9 does not exist"),
                    ),
                    (
                        ModelsError::FitFailed {
                            version: 4,
                            reason: "too few customers".into(),
                        },
                        says(
                            Code::FailedPrecondition,
                            "the data cannot support a fit (recorded as failed version 4; the \
                             active model is unchanged): too few customers",
                        ),
                    ),
                    (
                        ModelsError::CannotEvaluate(model_error()),
                        says(
                            Code::FailedPrecondition,
                            "the calibration data cannot support a fit: invalid customer \
                             summary (x=-1, t_x=0, T=0, m=0): x must be a non-negative whole \
                             number",
                        ),
                    ),
                    (
                        ModelsError::Abandoned,
                        says(
                            Code::Cancelled,
                            "the caller left before the fit started; nothing was fitted",
                        ),
                    ),
                    (
                        ModelsError::BadPageToken(TokenError::BadTag),
                        says(
                            Code::InvalidArgument,
                            "invalid request: page_token: was altered, or issued by a server \
                             with another key",
                        ),
                    ),
                    (
                        ModelsError::TaskFailed {
                            task: "fit",
                            cause: join_error().await,
                        },
                        INTERNAL,
                    ),
                    (ModelsError::from(bad_key), INTERNAL),
                    (ModelsError::from(database_error()), INTERNAL),
                ],
                models_variant,
                &[
                    "NoActiveModel",
                    "NoSuchVersion",
                    "FitFailed",
                    "CannotEvaluate",
                    "Abandoned",
                    "BadPageToken",
                    "TaskFailed",
                    "PageTokenKey",
                    "Storage",
                ],
            );
        }

        #[tokio::test]
        async fn every_scoring_error() {
            let id = CustomerId::parse("c-1").expect("an id");
            let no_random = PageTokenKeyError::NoRandomness(getrandom::Error::UNSUPPORTED);
            let too_big = StorageError::TotalOutOfRange {
                column: "net_revenue".into(),
            };
            run(
                vec![
                    (
                        ScoringError::NotFound(id),
                        says(Code::NotFound, "customer c-1 has no recorded purchase"),
                    ),
                    (
                        ScoringError::from(NoActiveModel::default()),
                        says(Code::FailedPrecondition, NO_MODEL),
                    ),
                    (
                        ScoringError::NoSuchVersion(9),
                        says(Code::NotFound, "model version 9 does not exist"),
                    ),
                    (
                        ScoringError::FailedVersion {
                            version: 4,
                            failure: "no customers".into(),
                        },
                        says(
                            Code::FailedPrecondition,
                            "model version 4 failed to fit (no customers): name a version that \
                             fitted",
                        ),
                    ),
                    (
                        ScoringError::from(TokenError::Malformed),
                        says(
                            Code::InvalidArgument,
                            "invalid request: page_token: is not a page token this service \
                             issued",
                        ),
                    ),
                    (
                        ScoringError::TokenForOtherFilters,
                        says(
                            Code::InvalidArgument,
                            "invalid request: page_token: was issued for other filters",
                        ),
                    ),
                    (
                        ScoringError::UnlistableVersion(5),
                        says(
                            Code::InvalidArgument,
                            "invalid request: page_token: names model version 5, whose scores \
                             are gone (two newer versions were fitted) or never existed: start \
                             the listing again without a token",
                        ),
                    ),
                    (ScoringError::from(no_random), INTERNAL),
                    (
                        ScoringError::from(too_big),
                        says(
                            Code::OutOfRange,
                            "a total in this answer exceeds the largest amount Money can \
                             express (9223372036854775807 units); narrow the request",
                        ),
                    ),
                ],
                scoring_variant,
                &[
                    "NotFound",
                    "NoActiveModel",
                    "NoSuchVersion",
                    "FailedVersion",
                    "BadPageToken",
                    "TokenForOtherFilters",
                    "UnlistableVersion",
                    "PageTokenKey",
                    "Backend",
                ],
            );
        }

        #[tokio::test]
        async fn every_report_and_key_error() {
            run(
                vec![
                    (
                        ReportError::from(NoActiveModel::default()),
                        says(Code::FailedPrecondition, NO_MODEL),
                    ),
                    (
                        ReportError::TotalOutOfRange(TotalOutOfRange),
                        says(
                            Code::OutOfRange,
                            "the total exceeds the largest amount the API can express \
                             (9223372036854775807 units in absolute value); narrow the request",
                        ),
                    ),
                    (ReportError::from(database_error()), INTERNAL),
                ],
                report_variant,
                &["NoActiveModel", "TotalOutOfRange", "Storage"],
            );
            run(
                vec![
                    (
                        PageTokenKeyError::NoRandomness(getrandom::Error::UNSUPPORTED),
                        INTERNAL,
                    ),
                    (
                        PageTokenKeyError::StoredKeyUnusable(KeyError::TooShort(3)),
                        INTERNAL,
                    ),
                    (
                        PageTokenKeyError::from(unavailable().await),
                        says(Code::Unavailable, UNAVAILABLE),
                    ),
                ],
                key_variant,
                &["NoRandomness", "StoredKeyUnusable", "Storage"],
            );
        }
    }
}
