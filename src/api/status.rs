//! The one table from errors to gRPC statuses. Internal causes are logged
//! here with their chain and never sent to the client.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{domain::FieldViolation, service::IngestError, storage::StorageError};

/// INVALID_ARGUMENT with a google.rpc.BadRequest listing every violation.
pub fn invalid_argument(violations: &[FieldViolation]) -> Status {
    let summary = violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ");
    let mut details = ErrorDetails::new();
    for v in violations {
        details.add_bad_request_violation(v.field.clone(), v.description.clone());
    }
    Status::with_error_details(
        Code::InvalidArgument,
        format!("invalid request: {summary}"),
        details,
    )
}

impl From<StorageError> for Status {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                Status::unavailable("the database is unavailable; retry later")
            }
            StorageError::Database(cause) => {
                tracing::error!(error = ?cause, "database error");
                Status::internal("internal error")
            }
            StorageError::Migrate(cause) => {
                tracing::error!(error = ?cause, "migration error");
                Status::internal("internal error")
            }
            StorageError::TotalOutOfRange { column } => {
                tracing::warn!(column, "a total exceeds what Money can express");
                Status::out_of_range(format!(
                    "a total in this answer exceeds the largest amount Money can express \
                     ({} units); narrow the request",
                    i64::MAX
                ))
            }
        }
    }
}

impl From<IngestError> for Status {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Invalid(violations) => invalid_argument(&violations),
            IngestError::AlreadyExists { index, key } => Status::already_exists(format!(
                "transactions[{index}]: {key} was already recorded with other content; nothing was changed"
            )),
            IngestError::KeyTaken { what } => Status::already_exists(format!(
                "{what} was already recorded with other content; nothing was changed"
            )),
            IngestError::Storage(s) => s.into(),
        }
    }
}
