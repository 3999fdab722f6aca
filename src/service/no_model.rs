//! The one error every use-case gives when it needs the active model and
//! none exists: one type, one message. When fits were attempted and the
//! newest failed, the message says so, with its version and why.

use crate::storage::{Storage, StorageError};

/// No successful model is active. Each service's error carries it as its
/// own variant; the gRPC code depends on the call (NOT_FOUND for the model
/// itself, FAILED_PRECONDITION for what needs one), the message does not.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct NoActiveModel {
    /// The newest fit attempt, when it failed: (version, why).
    pub last_failed_fit: Option<(i64, String)>,
}

impl NoActiveModel {
    /// Why there is no active model, from the newest fit attempt. Read only
    /// when a model is missing, so it costs nothing while one exists.
    pub async fn read(storage: &Storage) -> Result<Self, StorageError> {
        let last_failed_fit = storage
            .latest_model()
            .await?
            .and_then(|m| match m.fit.outcome {
                Ok(_) => None,
                Err(failure) => Some((m.version, failure.to_string())),
            });
        Ok(Self { last_failed_fit })
    }

    fn describe(&self) -> String {
        match &self.last_failed_fit {
            None => "no model has been fitted yet: call ModelService.FitModel".to_owned(),
            Some((version, why)) => format!(
                "no model is active: the last fit, version {version}, failed: {why}; \
                 call ModelService.FitModel again once that is resolved"
            ),
        }
    }
}
