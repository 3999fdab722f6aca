//! Background refits: one replica fits at a time, every replica serves the
//! new version within seconds, and the job's step says what it did.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use chrono::Utc;
use clvd::{
    api::pb::{self, scoring_service_client::ScoringServiceClient},
    domain::{ModelSelection, PurchaseFamily},
    service::{Models, RefitOutcome, RefitPolicy},
};

use crate::{helpers::*, models::*};

struct Replica {
    child: Child,
    endpoint: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real clvd process on `database_url`, checking every second whether a
/// refit is due (by 100 new transactions; never by age), fitting BG/NBD.
async fn replica(database_url: &str) -> Replica {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_clvd"))
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .env("CLVD_AUTH", "off")
        .args(["--listen-addr", &format!("127.0.0.1:{port}")])
        // BG/NBD alone, as the in-process harness fits (families.rs tests
        // the selection).
        .args(["--model-selection", "bg_nbd"])
        .args([
            "--refit-check-seconds",
            "1",
            "--refit-interval-seconds",
            "0",
            "--refit-min-new-transactions",
            "100",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    wait_serving(&endpoint).await;
    Replica { child, endpoint }
}

async fn served_version(endpoint: &str, customer: &str) -> i64 {
    let mut client = ScoringServiceClient::new(channel(endpoint).await.unwrap());
    client
        .get_churn_risk(pb::GetChurnRiskRequest {
            customer_id: customer.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .model_version
}

async fn wait_for(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_fit_once_and_both_serve_each_new_version() {
    let app = spawn_app().await;
    import(&app, &simulated_purchases()).await;
    let (a, b) = (
        replica(&app.database_url).await,
        replica(&app.database_url).await,
    );

    wait_for("a background fit", Duration::from_secs(30), async || {
        app.count("SELECT count(*) FROM models").await > 0
    })
    .await;
    // Both replicas keep checking every second; the data did not change,
    // so nobody fits again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        app.count("SELECT count(*) FROM models").await,
        1,
        "exactly one replica fitted"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM models WHERE state = 'succeeded'")
            .await,
        1
    );
    for r in [&a, &b] {
        wait_for(
            "the replica serving version 1",
            Duration::from_secs(5),
            async || served_version(&r.endpoint, "sim-1").await == 1,
        )
        .await;
    }

    // A fit through one replica is served by the other within seconds.
    let mut client =
        pb::model_service_client::ModelServiceClient::new(channel(&a.endpoint).await.unwrap());
    let v2 = client
        .fit_model(pb::FitModelRequest::default())
        .await
        .unwrap()
        .into_inner()
        .version;
    assert_eq!(v2, 2);
    wait_for(
        "the other replica serving version 2",
        Duration::from_secs(5),
        async || served_version(&b.endpoint, "sim-1").await == 2,
    )
    .await;
}

#[tokio::test]
async fn the_refit_step_reports_not_due_busy_and_fitted() {
    let app = spawn_app().await;
    let models = Models::new(
        app.storage.clone(),
        chrono_tz::UTC,
        Default::default(),
        ModelSelection::Pinned(PurchaseFamily::BgNbd),
    );
    let by_volume = RefitPolicy {
        interval: None,
        min_new_transactions: Some(100),
    };
    // No data: nothing to fit.
    assert_eq!(
        models.refit_if_due(by_volume, Utc::now()).await.unwrap(),
        RefitOutcome::NotDue
    );

    import(&app, &simulated_purchases()).await;
    let held = app
        .storage
        .fit_lock(false)
        .await
        .unwrap()
        .expect("the lock is free");
    assert_eq!(
        models.refit_if_due(by_volume, Utc::now()).await.unwrap(),
        RefitOutcome::Busy
    );
    held.release().await.unwrap();

    let RefitOutcome::Fitted { version, .. } =
        models.refit_if_due(by_volume, Utc::now()).await.unwrap()
    else {
        panic!("expected a fit")
    };
    assert_eq!(version, 1);
    assert_eq!(
        models.refit_if_due(by_volume, Utc::now()).await.unwrap(),
        RefitOutcome::NotDue
    );
    // By age: a day later the same version is due again.
    let by_age = RefitPolicy {
        interval: Some(Duration::from_secs(86_400)),
        min_new_transactions: None,
    };
    assert_eq!(
        models.refit_if_due(by_age, Utc::now()).await.unwrap(),
        RefitOutcome::NotDue
    );
    let tomorrow = Utc::now() + chrono::Duration::days(1);
    assert!(matches!(
        models.refit_if_due(by_age, tomorrow).await.unwrap(),
        RefitOutcome::Fitted { version: 2, .. }
    ));
}
