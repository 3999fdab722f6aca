//! The background refit: every `check_every`, if a refit is due (by age or
//! by new transactions) and no other replica is fitting, fit and store a new
//! version. Replicas pick the new version up by themselves (the scoring
//! cache re-reads the active model every few seconds).

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use tokio::sync::watch;

use crate::service::{Models, RefitOutcome, RefitPolicy};

/// Runs until `stop` turns true. Errors (an unreachable database, say) are
/// logged and the next check tries again.
pub async fn run_until_stopped(
    models: Arc<Models>,
    policy: RefitPolicy,
    check_every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(check_every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        match models.refit_if_due(policy, Utc::now()).await {
            Ok(RefitOutcome::Fitted { version, why }) => {
                tracing::info!(version, %why, "background refit done")
            }
            Ok(RefitOutcome::Failed { version, reason }) => {
                tracing::warn!(version, %reason, "background refit failed; the active model stays")
            }
            Ok(RefitOutcome::Busy | RefitOutcome::NotDue) => {}
            Err(e) => tracing::warn!(error = %e, "background refit check failed; will retry"),
        }
    }
}
