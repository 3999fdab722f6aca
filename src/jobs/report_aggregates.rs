//! Keeps the cohort report aggregates current in the background, at a
//! bounded pace: every `every`, one step over at most `per_round` queue
//! entries (`--report-aggregate-interval-ms`, `--report-aggregate-round`).
//! Aggregation runs on the same CPUs as ingest; the bound keeps it from
//! taking their share under sustained ingest (a backlog is worked off when
//! ingest slows down, or by the next report without as_of, which catches
//! up in full before it reads).

use std::{sync::Arc, time::Duration};

use tokio::sync::watch;

use crate::service::Reports;

/// Runs until `stop` turns true. Errors (an unreachable database, say) are
/// logged and the next round tries again.
pub async fn run_until_stopped(
    reports: Arc<Reports>,
    every: Duration,
    per_round: i64,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        match reports.aggregate_some(per_round).await {
            Ok(0) => {}
            Ok(customers) => tracing::debug!(customers, "report aggregates brought up to date"),
            Err(e) => tracing::warn!(error = %e, "report aggregation failed; will retry"),
        }
    }
}
