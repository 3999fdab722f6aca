//! Integration tests: the real server over a socket, a real PostgreSQL.

mod helpers;
mod oracle;

mod admission;
mod auth;
mod cancellation;
mod cdnow;
mod delete_customer;
mod error_shape;
mod faults;
pub mod feedback;
mod health;
mod history;
mod identifiers;
mod import_stream;
mod ingest_concurrency;
mod ingest_property;
mod ingest_semantics;
mod ingest_validation;
mod limits;
pub mod models;
pub mod money_limits;
mod money_property;
mod observability;
mod page_tokens;
mod process;
mod refit;
mod reflection;
pub mod report_cohorts;
mod report_limits;
mod report_loyalty;
mod report_model;
mod report_oracle;
mod schema;
mod scoring;
mod stock_clients;
