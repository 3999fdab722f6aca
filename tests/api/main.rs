//! Integration tests: the real server over a socket, a real PostgreSQL.

mod helpers;
mod oracle;

mod admission;
mod auth;
mod cancellation;
mod delete_customer;
mod faults;
pub mod feedback;
mod health;
mod import_stream;
mod ingest_concurrency;
mod ingest_property;
mod ingest_semantics;
mod ingest_validation;
mod limits;
pub mod models;
mod observability;
mod process;
mod refit;
mod reflection;
pub mod report_cohorts;
mod report_loyalty;
mod report_model;
mod report_oracle;
mod schema;
mod scoring;
