//! Use-cases shared by the gRPC API and background jobs. They speak domain
//! types, call storage, and know nothing of gRPC. Each use-case has its
//! own error, whose variants say what happened; the API maps them to
//! statuses in one table (`api::status`).

mod batcher;
mod evaluation_cache;
mod fit_stages;
mod group_commit;
mod holdout_selection;
mod ingest;
mod models;
mod no_model;
mod page_token_key;
mod point_reads;
mod population;
mod reports;
mod scoring;

pub use batcher::{BackendError, ShuttingDown};
pub use fit_stages::{FitStage, FitStageMetric};
pub use ingest::{BatchRecorded, Entry, Ingest, IngestError, Recorded};
pub use models::{
    Comparison, Evaluation, FamilyHoldout, FitChoice, HoldoutFigures, Models, ModelsError,
    ModelsPage, RefitOutcome, RefitPolicy,
};
pub use no_model::NoActiveModel;
pub use page_token_key::{PageTokenKeyError, PageTokenKeys};
pub use reports::{
    CohortOutcome, Loyalty, ReportError, Reports, SegmentShare, Segments, CATCH_UP_AT_MOST,
};
pub use scoring::{
    AtRiskPage, AtRiskQuery, Band, Caveat, ChurnPolicy, IntervalRequest, LookAhead, ModelEpoch,
    NoPrediction, PointInTime, Prediction, PredictionIntervals, Score, Scoring, ScoringError,
    MODEL_REFRESH,
};
