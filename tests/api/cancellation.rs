//! Cancellation: hundreds of calls of every long RPC (FitModel,
//! ImportTransactions mid-stream, GetCohortReport, GetLoyaltySummary,
//! EvaluateModel) abandoned at random points, by a short deadline or by
//! dropping the call. Afterwards the pool serves every call correctly (the
//! same answers as a fresh server on the same database), PostgreSQL shows
//! no session idle in transaction and no lock held, and the stored data is
//! what was acknowledged: acknowledged imports fully stored, and a resend
//! of every stream counts nothing twice.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::NaiveDate;
use clvd::api::pb::{
    self, ingest_service_client::IngestServiceClient, model_service_client::ModelServiceClient,
    report_service_client::ReportServiceClient,
};
use futures::StreamExt;
use rand::{rngs::StdRng, Rng, SeedableRng};
use tokio::sync::Semaphore;
use tonic::{transport::Channel, Request};

use crate::{
    helpers::*,
    models::{fit_as_of, fit_request, import, simulated_purchases},
};

/// Calls abandoned, in total over the five kinds.
const ABANDONED: usize = 300;
/// Abandoned calls in flight at once.
const AT_ONCE: usize = 12;
/// Batches per import stream, and purchases per batch.
const IMPORT_BATCHES: usize = 3;
const IMPORT_BATCH: usize = 100;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Fit,
    Import,
    Cohorts,
    Loyalty,
    Evaluate,
}

const KINDS: [Kind; 5] = [
    Kind::Fit,
    Kind::Import,
    Kind::Cohorts,
    Kind::Loyalty,
    Kind::Evaluate,
];

/// The purchases of import stream `i`, batch by batch: each of its
/// customers buys twice, on two days.
fn import_stream(i: usize) -> Vec<pb::ImportTransactionsRequest> {
    (0..IMPORT_BATCHES)
        .map(|b| pb::ImportTransactionsRequest {
            transactions: (0..IMPORT_BATCH)
                .map(|k| {
                    let n = b * IMPORT_BATCH + k;
                    purchase(
                        &format!("imp{i}-c{}", n / 2),
                        &format!("imp{i}-t{n}"),
                        at(2024, 9, 1 + (n % 2) as u32 * 10, 10, 0),
                        1_000 + n as i64,
                    )
                })
                .collect(),
        })
        .collect()
}

/// Fits end before the imported purchases (September 2024), so that every
/// fit sees the same data.
fn fit_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 8, 31).expect("a date")
}

fn cohort_request() -> pb::GetCohortReportRequest {
    pb::GetCohortReportRequest {
        granularity: pb::Granularity::Month as i32,
        first_cohort: Some(timestamp(at(2024, 1, 1, 0, 0))),
        last_cohort: Some(timestamp(at(2024, 12, 1, 0, 0))),
        periods: 12,
        include_forecast: true,
        ..Default::default()
    }
}

fn loyalty_request() -> pb::GetLoyaltySummaryRequest {
    pb::GetLoyaltySummaryRequest {
        start_time: Some(timestamp(at(2024, 3, 1, 0, 0))),
        end_time: Some(timestamp(at(2024, 9, 1, 0, 0))),
    }
}

fn evaluate_request() -> pb::EvaluateModelRequest {
    pb::EvaluateModelRequest {
        calibration_end: Some(timestamp(at(2024, 8, 31, 23, 59))),
        holdout_end: Some(timestamp(at(2024, 12, 31, 23, 59))),
        time_unit: pb::TimeUnit::Day as i32,
        families: Vec::new(),
    }
}

/// How a call is abandoned.
#[derive(Debug, Clone, Copy)]
enum Abandon {
    /// A `grpc-timeout` the server enforces (and the client too).
    Deadline(Duration),
    /// The client drops the call (HTTP/2 RST_STREAM) after this long.
    Drop(Duration),
}

/// Runs one call of `kind`, abandoned as `how`; `Some(totals)` when an
/// import was acknowledged.
async fn abandoned_call(
    channel: Channel,
    kind: Kind,
    stream: usize,
    how: Abandon,
) -> Option<pb::ImportTransactionsResponse> {
    fn req<T>(message: T, how: Abandon) -> Request<T> {
        let mut r = Request::new(message);
        if let Abandon::Deadline(d) = how {
            r.set_timeout(d);
        }
        r
    }
    let call = async move {
        match kind {
            Kind::Fit => ModelServiceClient::new(channel)
                .fit_model(req(fit_request(fit_day(), pb::TimeUnit::Day), how))
                .await
                .map(|_| None),
            Kind::Import => {
                // Batches 5 ms apart, so that the call ends mid-stream.
                let batches = futures::stream::iter(import_stream(stream)).then(|b| async {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    b
                });
                IngestServiceClient::new(channel)
                    .import_transactions(req(batches, how))
                    .await
                    .map(|r| Some(r.into_inner()))
            }
            Kind::Cohorts => ReportServiceClient::new(channel)
                .get_cohort_report(req(cohort_request(), how))
                .await
                .map(|_| None),
            Kind::Loyalty => ReportServiceClient::new(channel)
                .get_loyalty_summary(req(loyalty_request(), how))
                .await
                .map(|_| None),
            Kind::Evaluate => ModelServiceClient::new(channel)
                .evaluate_model(req(evaluate_request(), how))
                .await
                .map(|_| None),
        }
    };
    match how {
        Abandon::Deadline(_) => call.await.ok().flatten(),
        Abandon::Drop(after) => tokio::time::timeout(after, call)
            .await
            .ok()
            .and_then(Result::ok)
            .flatten(),
    }
}

/// Sessions of the app's database, other than the asking one, that are
/// idle in a transaction, and locks they hold (advisory, or on relations).
async fn leftovers(app: &TestApp) -> (i64, i64, Vec<String>) {
    let idle_in_transaction = app
        .count(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND pid <> pg_backend_pid()
                AND state LIKE 'idle in transaction%'",
        )
        .await;
    let locks = app
        .count(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
              WHERE a.datname = current_database() AND l.pid <> pg_backend_pid()
                AND l.locktype IN ('advisory', 'relation', 'transactionid')",
        )
        .await;
    let active: Vec<String> = sqlx::query_scalar(
        "SELECT state || ': ' || left(query, 80) FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle'",
    )
    .fetch_all(&app.pool)
    .await
    .expect("pg_stat_activity");
    (idle_in_transaction, locks, active)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_abandoned_at_random_points_leave_every_connection_and_all_acknowledged_data_intact()
{
    let app = spawn_app().await;
    let base = simulated_purchases();
    import(&app, &base).await;
    let started = Instant::now();
    fit_as_of(&app, fit_day()).await;
    let fit_time = started.elapsed();
    let channel = channel(&app.endpoint()).await.unwrap();

    // Abandon ABANDONED calls at random points, AT_ONCE at a time.
    let mut rng = StdRng::seed_from_u64(10);
    let slots = Arc::new(Semaphore::new(AT_ONCE));
    let mut calls = futures::stream::FuturesUnordered::new();
    let mut streams = 0;
    for i in 0..ABANDONED {
        let kind = KINDS[i % KINDS.len()];
        // Fits are abandoned anywhere in their run (waiting for the lock,
        // reading, fitting, writing the scores), the rest within 150 ms.
        let latest = match kind {
            Kind::Fit => (fit_time.as_millis() as u64 * 6 / 5).max(150),
            _ => 150,
        };
        let after = Duration::from_millis(rng.random_range(5..=latest));
        let how = if rng.random_bool(0.5) {
            Abandon::Deadline(after)
        } else {
            Abandon::Drop(after)
        };
        let stream = streams;
        if matches!(kind, Kind::Import) {
            streams += 1;
        }
        let permit = slots.clone().acquire_owned().await.unwrap();
        let channel = channel.clone();
        calls.push(tokio::spawn(async move {
            let acknowledged = abandoned_call(channel, kind, stream, how).await;
            drop(permit);
            (stream, acknowledged)
        }));
    }
    let mut acknowledged = BTreeMap::new();
    while let Some(done) = calls.next().await {
        if let (stream, Some(totals)) = done.expect("call task") {
            acknowledged.insert(stream, totals);
        }
    }
    for totals in acknowledged.values() {
        assert_eq!(
            (totals.batches, totals.recorded + totals.duplicates),
            (
                IMPORT_BATCHES as u64,
                (IMPORT_BATCHES * IMPORT_BATCH) as u64
            )
        );
    }

    // Work the callers left finishes or rolls back: nothing stays idle in a
    // transaction, and no lock stays held.
    let settle = Instant::now();
    let mut left = leftovers(&app).await;
    while (left.0, left.1) != (0, 0) && settle.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        left = leftovers(&app).await;
    }
    assert_eq!(
        (left.0, left.1),
        (0, 0),
        "sessions idle in transaction, locks held; sessions not idle: {:?}",
        left.2
    );

    // A fit that lost its caller finished (it is active, its scores
    // written) or never started: no version is left stored but inactive.
    let half_done: Vec<i64> = sqlx::query_scalar(
        "SELECT version FROM models WHERE state = 'succeeded' AND activated_at IS NULL",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(
        half_done.is_empty(),
        "fits left half-done: versions {half_done:?}"
    );

    // Every later call of every kind succeeds, many at once (so that every
    // pooled connection serves some), with the answers a fresh server on
    // the same database gives.
    let fresh = spawn_app_at(app.database_url.clone(), app.pool.clone(), |_| {}).await;
    wait_serving(&fresh.endpoint()).await;
    let fresh_channel = crate::helpers::channel(&fresh.endpoint()).await.unwrap();
    let mut reads = Vec::new();
    for _ in 0..24 {
        let channel = channel.clone();
        reads.push(tokio::spawn(async move {
            let mut reports = ReportServiceClient::new(channel);
            let loyalty = reports
                .get_loyalty_summary(loyalty_request())
                .await
                .expect("GetLoyaltySummary after the abandoned calls")
                .into_inner();
            let cohorts = reports
                .get_cohort_report(pb::GetCohortReportRequest {
                    include_forecast: false,
                    ..cohort_request()
                })
                .await
                .expect("GetCohortReport after the abandoned calls")
                .into_inner();
            (loyalty, cohorts)
        }));
    }
    let mut writes = Vec::new();
    for i in 0..48 {
        let mut ingest = IngestServiceClient::new(channel.clone());
        writes.push(tokio::spawn(async move {
            ingest
                .record_transaction(record(purchase(
                    &format!("after-{}", i % 7),
                    &format!("after-t{i}"),
                    at(2024, 10, 1 + (i % 20) as u32, 9, 0),
                    500 + i as i64,
                )))
                .await
                .expect("RecordTransaction after the abandoned calls")
                .into_inner()
        }));
    }
    for w in writes {
        assert!(!w.await.unwrap().duplicate);
    }
    let mut fresh_reports = ReportServiceClient::new(fresh_channel.clone());
    // Loyalty's period ends before the writes, and the cohort report is
    // compared as the fresh server computes it after them.
    let want_loyalty = fresh_reports
        .get_loyalty_summary(loyalty_request())
        .await
        .unwrap()
        .into_inner();
    for r in reads {
        let (loyalty, _) = r.await.unwrap();
        assert_eq!(loyalty, want_loyalty);
    }
    let cohorts_request = pb::GetCohortReportRequest {
        include_forecast: false,
        as_of: Some(timestamp(at(2025, 1, 1, 0, 0))),
        ..cohort_request()
    };
    let got = ReportServiceClient::new(channel.clone())
        .get_cohort_report(cohorts_request)
        .await
        .expect("GetCohortReport")
        .into_inner();
    let want = fresh_reports
        .get_cohort_report(cohorts_request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, want);
    let got = ModelServiceClient::new(channel.clone())
        .evaluate_model(evaluate_request())
        .await
        .expect("EvaluateModel")
        .into_inner();
    let want = ModelServiceClient::new(fresh_channel.clone())
        .evaluate_model(evaluate_request())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, want);
    ModelServiceClient::new(channel.clone())
        .fit_model(fit_request(fit_day(), pb::TimeUnit::Day))
        .await
        .expect("FitModel after the abandoned calls");

    // Resending every stream stores what was missing and counts nothing
    // twice; acknowledged streams were fully stored already.
    for stream in 0..streams {
        let totals = IngestServiceClient::new(channel.clone())
            .import_transactions(futures::stream::iter(import_stream(stream)))
            .await
            .expect("resend")
            .into_inner();
        assert_eq!(
            totals.recorded + totals.duplicates,
            (IMPORT_BATCHES * IMPORT_BATCH) as u64
        );
        if acknowledged.contains_key(&stream) {
            assert_eq!(totals.recorded, 0, "stream {stream} was acknowledged");
        }
    }
    let per_stream = (IMPORT_BATCHES * IMPORT_BATCH) as i64;
    assert_eq!(
        app.transactions_stored().await,
        base.len() as i64 + streams as i64 * per_stream + 48
    );
    // Each imported customer: two purchases on two days.
    let (occasions, revenue): (i64, i64) = sqlx::query_as(
        "SELECT sum(purchase_occasions)::bigint, sum(net_revenue_nanos)::bigint
           FROM customers WHERE customer_id LIKE 'imp%'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let revenue_per_stream: i64 = (0..per_stream).map(|n| nanos(1_000 + n)).sum();
    assert_eq!(occasions, streams as i64 * per_stream);
    assert_eq!(revenue, streams as i64 * revenue_per_stream);
    fresh.stop().await;
}

/// Versions stored so far, and how many of them are active-able (succeeded
/// and activated).
async fn versions(app: &TestApp) -> (i64, i64) {
    (
        app.count("SELECT count(*) FROM models").await,
        app.count(
            "SELECT count(*) FROM models WHERE state = 'succeeded' AND activated_at IS NOT NULL",
        )
        .await,
    )
}

#[tokio::test]
async fn a_fit_whose_caller_leaves_while_another_fit_holds_the_lock_waits_on_no_connection_and_fits_nothing(
) {
    let app = spawn_app().await;
    import(&app, &simulated_purchases()).await;
    // Another replica's fit holds the lock.
    let other_replica = app.storage.fit_lock(false).await.unwrap().expect("free");
    let mut request = Request::new(fit_request(fit_day(), pb::TimeUnit::Day));
    request.set_timeout(Duration::from_millis(300));
    let status = ModelServiceClient::new(channel(&app.endpoint()).await.unwrap())
        .fit_model(request)
        .await
        .expect_err("the deadline passes while the fit waits");
    assert!(
        matches!(
            status.code(),
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
        ),
        "{status:?}"
    );
    // Nobody waits for the lock on a database session (the caller is gone,
    // and waiting never held a connection).
    let mut settled = false;
    for _ in 0..40 {
        let waiting = app
            .count(
                "SELECT count(*) FROM pg_stat_activity
                  WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .await;
        if waiting == 0 {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(settled, "a session still waits for the fit lock");
    other_replica.release().await.unwrap();
    // The abandoned fit does not run once the lock is free.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(versions(&app).await, (0, 0));
    // And the next fit runs at once.
    fit_as_of(&app, fit_day()).await;
    assert_eq!(versions(&app).await, (1, 1));
}

#[tokio::test]
async fn a_fit_whose_caller_leaves_after_it_started_finishes_in_the_background() {
    let app = spawn_app().await;
    import(&app, &simulated_purchases()).await;
    let mut client = ModelServiceClient::new(channel(&app.endpoint()).await.unwrap());
    let call = tokio::spawn(async move {
        client
            .fit_model(fit_request(fit_day(), pb::TimeUnit::Day))
            .await
    });
    // Once the fit holds its lock (it has started), the caller drops the
    // call (HTTP/2 RST_STREAM).
    let mut started = false;
    for _ in 0..2_000 {
        let held = app
            .count(
                "SELECT count(*) FROM pg_locks
                  WHERE locktype = 'advisory' AND granted
                    AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            )
            .await;
        if held > 0 {
            started = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(started, "the fit never took its lock");
    call.abort();
    // It was stored, scored and activated all the same.
    let mut done = (0, 0);
    for _ in 0..200 {
        done = versions(&app).await;
        if done == (1, 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(done, (1, 1), "the started fit was not finished");
    assert_eq!(
        app.count("SELECT count(*) FROM customer_scores WHERE model_version = 1")
            .await,
        1_500
    );
}
