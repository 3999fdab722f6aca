//! clvd: customer lifetime value as a gRPC service over PostgreSQL.
//!
//! Other systems send purchase transactions; clvd records each exactly once
//! and keeps every customer's purchase summary current, from which the
//! models (BG/NBD and Gamma-Gamma, in the `clv-model` crate) answer with
//! lifetime value, churn risk and segments.
//!
//! # Layout
//! - [`api`]: the gRPC transport (tonic). Validate → convert → call a
//!   use-case → convert back; every error becomes a `Status` in
//!   [`api::status`].
//! - [`service`]: use-cases shared by the API and background jobs; no gRPC,
//!   no SQL.
//! - [`domain`]: validated types (ids, money, transactions) and the pure
//!   rules of ingest (batch planning: duplicates, conflicts, refunds).
//! - [`storage`]: PostgreSQL; owns every SQL statement and the migrations.
//! - `clv-model` (workspace crate `model/`): pure numerics, no I/O.
//! - [`jobs`]: background work (the model refit, the cohort report
//!   aggregates), each a loop around a step that tests call directly.
//! - [`server`]: how the gRPC server is exposed: TLS, API keys ([`auth`]),
//!   limits, deadlines and per-call telemetry, as the tower layers of
//!   [`api::layers`]; [`metrics`] is the Prometheus registry and endpoint.
//!   Both name methods by [`grpc_method::GrpcMethod`], which sits below
//!   them (metrics does not import the transport).
//! - [`cli`]: the command-line client (`clvd import`, `clvd models`, ...),
//!   a client of the public gRPC API only.
//! - [`pb`]: the code generated from `proto/`, below everything (the
//!   transport re-exports it as `api::pb`).
//! - [`startup`]: wires everything into an [`startup::Application`];
//!   [`embedded_postgres`] is the private PostgreSQL used when no
//!   `DATABASE_URL` is given; [`config`], [`telemetry`] and [`shutdown`] do
//!   what they say; [`healthcheck`] is `clvd healthcheck`, the probe for
//!   containers.

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod domain;
pub mod embedded_postgres;
pub mod grpc_method;
pub mod healthcheck;
pub mod jobs;
pub mod metrics;
pub mod pb;
pub mod run_to_end;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod startup;
pub mod storage;
pub mod telemetry;
