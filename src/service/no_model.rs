//! The one error every use-case gives when it needs the active model and
//! no fit has succeeded yet: one type, one message.

/// No model has been fitted yet. Each service's error carries it as its
/// own variant; the gRPC code depends on the call (NOT_FOUND for the model
/// itself, FAILED_PRECONDITION for what needs one), the message does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no model has been fitted yet: call ModelService.FitModel")]
pub struct NoActiveModel;
