//! The business's vocabulary as validated types: identifiers, money,
//! transactions and the rules that turn raw input into them.
//!
//! Nothing here knows about gRPC or SQL. Input is parsed once, at the edge,
//! into types that cannot be invalid ("parse, don't validate"); every
//! rejection is a [`FieldViolation`] naming the offending field relative to
//! the value being parsed, so the API layer only prefixes the request path.

mod cohorts;
mod feedback;
mod ids;
mod metrics;
mod model_version;
mod money;
mod page_token;
mod periods;
mod plan;
mod rules;
mod segments;
mod summary;
mod transaction;
mod value_curve;
mod violation;

pub use cohorts::{
    build_cohorts, Activity, Cohort, CohortFacts, CohortPeriod, CohortRange, CohortSize, Projection,
};
pub use feedback::{AcquisitionSpend, Feedback, Scores, UncheckedFeedback, UncheckedSpend};
pub use ids::{CustomerId, IdempotencyKey, TransactionId, MAX_ID_BYTES};
pub use metrics::{ltv_to_cac, per_customer, rate, NpsCounts};
pub use model_version::{
    select_candidate, CandidateFit, CandidateHoldout, Criterion, FamilyCandidate, FitFailure,
    FittedModels, ModelSelection, ModelVersion, NewModelVersion, PurchaseFamily,
    PurchaseParameters, SelectedBy, SpendParameters,
};
pub use money::{Amount, Total, TotalOutOfRange, MAX_AMOUNT_UNITS, MAX_TOTAL_NANOS};
pub use page_token::{
    open as open_page_token, seal as seal_page_token, AtRiskCursor, KeyError, ModelsCursor,
    PageTokenKey, TokenError, TokenKind, MIN_KEY_BYTES,
};
pub use periods::{business_day, start_of_day, Granularity, MAX_PERIODS};
pub use plan::{
    plan_batch, Atomicity, DayDelta, EntryOutcome, Key, NewRow, Plan, PlanError, StoredState,
    StoredTransaction,
};
pub use rules::{IngestRules, DEFAULT_EARLIEST};
pub use segments::{
    quintiles, report_order, value_tiers, PopulationScore, Segment, Segmentation, ValueTier,
};
pub use summary::CustomerSummary;
pub use transaction::{
    dedupe_batch, Batch, BatchEntry, Transaction, TransactionKind, UncheckedKind, UncheckedMoney,
    UncheckedTransaction,
};
pub use value_curve::{value_curve, ValueCurvePoint};
pub use violation::FieldViolation;
