//! The gRPC transport: one file per service. Each method validates and
//! converts the request ([`convert`]), calls the use-case in
//! [`crate::service`], and converts the answer; every error becomes a
//! `Status` in one place ([`status`]).

pub mod convert;
mod ingest;
pub mod layers;
mod model;
mod reflection;
mod report;
mod scoring;
pub mod status;

pub use ingest::IngestApi;
pub use model::ModelApi;
pub use reflection::{InStreamReflectionV1, InStreamReflectionV1alpha};
pub use report::ReportApi;
pub use scoring::ScoringApi;

/// Code generated from `proto/` (package `clv.v1`): [`crate::pb`], here
/// under the name the handlers use.
pub use crate::pb;
