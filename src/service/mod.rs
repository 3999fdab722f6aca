//! Use-cases shared by the gRPC API and background jobs. They speak domain
//! types, call storage, and know nothing of gRPC.

mod batcher;
mod group_commit;
mod ingest;
mod models;
mod page_token_key;
mod point_reads;
mod population;
mod reports;
mod scoring;

pub use ingest::{BatchRecorded, Ingest, IngestError, Recorded};
pub use models::{Evaluation, Models, ModelsError, RefitOutcome, RefitPolicy};
pub use page_token_key::PageTokenKeys;
pub use reports::{CohortOutcome, Loyalty, ReportError, Reports, Segments};
pub use scoring::{
    Band, ChurnPolicy, ModelEpoch, Prediction, Score, Scoring, ScoringError, MODEL_REFRESH,
};
