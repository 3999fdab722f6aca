//! Keeps the cohort report aggregates current in the background: every
//! `every`, it brings the queued customers up to date, so that a report
//! finds little or nothing left to do.

use std::{sync::Arc, time::Duration};

use tokio::sync::watch;

use crate::service::Reports;

/// Runs until `stop` turns true. Errors (an unreachable database, say) are
/// logged and the next round tries again.
pub async fn run_until_stopped(
    reports: Arc<Reports>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        match reports.catch_up().await {
            Ok(0) => {}
            Ok(customers) => tracing::debug!(customers, "report aggregates brought up to date"),
            Err(e) => tracing::warn!(error = %e, "report aggregation failed; will retry"),
        }
    }
}
