//! Background jobs. Each is a loop (`run_until_stopped`) around a step that
//! tests can call on its own.

pub mod refit;
pub mod report_aggregates;
