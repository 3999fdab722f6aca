//! The application: database (given or embedded), migrations, the gRPC
//! server with health and reflection, the health-check job, and graceful
//! shutdown. `main` and the tests both build it with [`Application::build`].

use std::{future::Future, net::SocketAddr, str::FromStr, sync::Arc, time::Duration};

use anyhow::Context;
use sqlx::postgres::PgConnectOptions;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use tonic::transport::server::{Router, TcpIncoming};
use tonic_health::{server::HealthReporter, ServingStatus};
use tower::layer::util::{Identity, Stack};

use crate::{
    api::{
        layers::admission::AdmissionState, pb, InStreamReflectionV1, InStreamReflectionV1alpha,
        IngestApi, ModelApi, ReportApi, ScoringApi,
    },
    config::Settings,
    domain::IngestRules,
    embedded_postgres::{default_data_dir, EmbeddedOptions, EmbeddedPostgres},
    metrics::Metrics,
    server::{CallLayers, Exposure},
    service::{ChurnPolicy, Ingest, ModelEpoch, Models, PageTokenKeys, Reports, Scoring},
    storage::Storage,
};

/// Services whose health follows the database's.
const DATABASE_BACKED: &[&str] = &[
    "",
    "clv.v1.IngestService",
    "clv.v1.ModelService",
    "clv.v1.ReportService",
    "clv.v1.ScoringService",
];
/// A health service that is SERVING while the process serves at all,
/// whatever the database's state: for liveness probes, which should not
/// restart a process that recovers by itself when the database is back.
pub const LIVENESS: &str = "liveness";
const EMBEDDED_DATABASE: &str = "clvd";

/// Where the database comes from: the user's, or our embedded one.
pub async fn database(
    settings: &Settings,
) -> anyhow::Result<(PgConnectOptions, Option<EmbeddedPostgres>)> {
    if let Some(url) = &settings.database_url {
        let options = PgConnectOptions::from_str(url)
            .context("DATABASE_URL is not a valid PostgreSQL URL")?;
        return Ok((options, None));
    }
    let data_dir = settings.data_dir.clone().unwrap_or_else(default_data_dir);
    let pg = EmbeddedPostgres::start(&EmbeddedOptions {
        data_dir,
        bin_dir: settings.pg_bin_dir.clone(),
        unsafe_fast: false,
    })
    .await?;
    pg.ensure_database(EMBEDDED_DATABASE).await?;
    tracing::info!(
        data_dir = %pg.data_dir().display(),
        psql = %format!("psql '{}'", pg.url(EMBEDDED_DATABASE)),
        "using the embedded PostgreSQL (set DATABASE_URL to use another)"
    );
    Ok((pg.connect_options(EMBEDDED_DATABASE), Some(pg)))
}

pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    /// TLS, keys, limits: checked before anything started.
    exposure: Exposure,
    /// The Prometheus endpoint's listener, when configured.
    metrics_listener: Option<TcpListener>,
    settings: Settings,
    storage: Storage,
    /// Kept so that the embedded server stops when the application does.
    embedded: Option<EmbeddedPostgres>,
}

impl Application {
    /// Connects (lazily: a database that is down does not stop start-up),
    /// binds the listener and records the real port (port 0 works).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let exposure = Exposure::from_settings(&settings)?;
        let (options, embedded) = database(&settings).await?;
        let storage = Storage::connect_lazy(options, &settings.pool_settings());
        // Migrations run here when the database is up; a database that is
        // down is waited for in the background (NOT_SERVING meanwhile), but
        // a schema that cannot be migrated stops start-up with the reason.
        match storage.migrate().await {
            Ok(()) => tracing::info!("database migrations applied"),
            Err(e) if e.is_unavailable() => {
                tracing::warn!(error = %e, "database unreachable at start-up; serving NOT_SERVING until it is")
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context("cannot migrate the database schema"))
            }
        }
        let listener = TcpListener::bind(settings.listen_addr)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen_addr))?;
        let local_addr = listener.local_addr()?;
        let metrics_listener = match settings.metrics_addr {
            Some(addr) => Some(crate::metrics::bind(addr).await?),
            None => None,
        };
        Ok(Self {
            listener,
            local_addr,
            exposure,
            metrics_listener,
            settings,
            storage,
            embedded,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// Where `GET /metrics` is served, when configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` resolves, then reports NOT_SERVING, lets
    /// in-flight calls finish within the configured grace, and returns.
    /// Three steps: [`wire`] the services, [`Jobs::start`] the background
    /// jobs, [`serve_with_shutdown`]; then the jobs are awaited and the
    /// database released.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            listener,
            local_addr,
            exposure,
            metrics_listener,
            settings,
            storage,
            embedded,
        } = self;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let wiring = wire(&settings, &storage, &exposure).await?;
        let jobs = Jobs::start(
            &settings,
            &storage,
            &exposure,
            &wiring,
            metrics_listener,
            &stop_rx,
        );
        let stopping = Stopping {
            reporter: wiring.reporter.clone(),
            stop: stop_tx,
            drain: Duration::from_secs(settings.shutdown_drain_seconds),
            grace: settings.shutdown_grace(),
        };
        serve_with_shutdown(
            wiring.router,
            listener,
            local_addr,
            shutdown,
            stop_rx,
            &stopping,
        )
        .await?;
        let _ = stopping.stop.send(true);
        jobs.join().await;
        release(storage, embedded, settings.shutdown_grace()).await?;
        tracing::info!("clvd stopped");
        Ok(())
    }
}

/// The gRPC router: every service behind the call layers.
type CallRouter = Router<Stack<CallLayers, Identity>>;

/// What [`wire`] builds: the router, and what the background jobs share
/// with the services.
struct Wiring {
    /// Every service, ready to serve.
    router: CallRouter,
    /// Health statuses (NOT_SERVING until the database is reachable).
    reporter: HealthReporter,
    /// The Prometheus registry the call layers count into.
    metrics: Metrics,
    /// Fitting, shared with the refit job.
    models: Arc<Models>,
    /// Reports, shared with the aggregates job.
    reports: Arc<Reports>,
}

/// Step 1, wiring: health (NOT_SERVING until the database answers, the
/// liveness service SERVING), reflection, the use-cases and the gRPC
/// services over them, with the call layers of [`Exposure`].
async fn wire(
    settings: &Settings,
    storage: &Storage,
    exposure: &Exposure,
) -> anyhow::Result<Wiring> {
    let (reporter, health_service) = tonic_health::server::health_reporter();
    set_health(&reporter, ServingStatus::NotServing).await;
    reporter
        .set_service_status(LIVENESS, ServingStatus::Serving)
        .await;

    // Answering unknown names in-stream, as the protocol says (see
    // `api::reflection`).
    let reflection_v1 =
        tonic_reflection::pb::v1::server_reflection_server::ServerReflectionServer::new(
            InStreamReflectionV1::new(reflection().build_v1()?),
        );
    let reflection_v1alpha =
        tonic_reflection::pb::v1alpha::server_reflection_server::ServerReflectionServer::new(
            InStreamReflectionV1alpha::new(reflection().build_v1alpha()?),
        );

    let rules = IngestRules {
        currency: settings.currency.clone(),
        time_zone: settings.time_zone,
        max_batch: settings.max_batch,
        earliest: settings.earliest_transaction_time,
        ..IngestRules::default()
    };
    let max_future_skew = rules.max_future_skew;
    let metrics = Metrics::new();
    let ingest = IngestApi::new(
        Ingest::new(storage.clone(), rules, settings.group_commit_slots),
        metrics.clone(),
    )
    .with_stream_idle(settings.stream_idle());

    let epoch = ModelEpoch::default();
    let models = Arc::new(
        Models::new(
            storage.clone(),
            settings.time_zone,
            epoch.clone(),
            settings.model_selection,
        )
        .with_high_risk_at(settings.churn_high_threshold)
        .with_fit_stages(crate::service::FitStageMetric::new(
            metrics.fit_stage_seconds(),
        )),
    );

    // One key for every listing's page tokens.
    let token_keys = Arc::new(PageTokenKeys::new(
        storage.clone(),
        settings.page_token_key.clone(),
    ));
    let policy = ChurnPolicy {
        medium_at: settings.churn_medium_threshold,
        high_at: settings.churn_high_threshold,
        no_purchase_window_days: settings.no_purchase_window_days,
        at_risk_min_probability_alive: settings.at_risk_min_probability_alive,
    };
    let scoring = ScoringApi::new(
        Scoring::new(
            storage.clone(),
            settings.time_zone,
            policy,
            epoch,
            settings.score_read_slots,
        ),
        settings.currency.clone(),
        token_keys.clone(),
        max_future_skew,
        settings.interval_level,
    );
    let reports = Arc::new(Reports::new(storage.clone(), settings.time_zone));

    let router = exposure
        .server(&metrics)?
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(crate::sized!(settings, ingest.into_server()))
        .add_service(crate::sized!(
            settings,
            ModelApi::new(models.clone(), token_keys.clone()).into_server()
        ))
        .add_service(crate::sized!(settings, scoring.into_server()))
        .add_service(crate::sized!(
            settings,
            ReportApi::new(reports.clone(), settings.currency.clone(), max_future_skew)
                .into_server()
        ));
    Ok(Wiring {
        router,
        reporter,
        metrics,
        models,
        reports,
    })
}

/// A reflection service's builder with every descriptor clvd serves:
/// its own, health's and the rich error details'.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
}

/// The background jobs, each stopped by the same watch channel.
struct Jobs {
    /// Health in step with the database and the admission stall.
    health: JoinHandle<()>,
    /// The cohort report aggregates, unless turned off.
    aggregates: Option<JoinHandle<()>>,
    /// The scheduled refit, when a policy is configured.
    refit: Option<JoinHandle<()>>,
    /// The Prometheus endpoint, when configured.
    metrics: Option<JoinHandle<()>>,
}

impl Jobs {
    /// Step 2, background jobs: health, the scheduled refit (when
    /// configured), the metrics endpoint (when configured) and the report
    /// aggregates.
    fn start(
        settings: &Settings,
        storage: &Storage,
        exposure: &Exposure,
        wiring: &Wiring,
        metrics_listener: Option<TcpListener>,
        stop: &watch::Receiver<bool>,
    ) -> Self {
        let health = tokio::spawn(watch_database(
            storage.clone(),
            wiring.reporter.clone(),
            settings.health_interval(),
            (exposure.admission(), settings.admission_stall()),
            stop.clone(),
        ));

        let policy = settings.refit_policy();
        let refit =
            (policy.interval.is_some() || policy.min_new_transactions.is_some()).then(|| {
                tokio::spawn(crate::jobs::refit::run_until_stopped(
                    wiring.models.clone(),
                    policy,
                    Duration::from_secs(settings.refit_check_seconds.max(1)),
                    stop.clone(),
                ))
            });

        let metrics = metrics_listener.map(|listener| {
            tracing::info!(addr = ?listener.local_addr().ok(), "serving Prometheus metrics at /metrics");
            tokio::spawn(crate::metrics::serve(
                listener,
                wiring.metrics.clone(),
                storage.clone(),
                stop.clone(),
            ))
        });

        let aggregates = (settings.report_aggregate_interval_ms > 0).then(|| {
            tokio::spawn(crate::jobs::report_aggregates::run_until_stopped(
                wiring.reports.clone(),
                Duration::from_millis(settings.report_aggregate_interval_ms),
                settings.report_aggregate_round,
                stop.clone(),
            ))
        });
        Self {
            health,
            aggregates,
            refit,
            metrics,
        }
    }

    /// Waits for every job to end (after the stop was sent).
    async fn join(self) {
        let _ = self.health.await;
        for job in [self.aggregates, self.refit, self.metrics]
            .into_iter()
            .flatten()
        {
            let _ = job.await;
        }
    }
}

/// How a shutdown proceeds once asked for.
struct Stopping {
    /// Turned NOT_SERVING first, so that balancers stop sending.
    reporter: HealthReporter,
    /// Stops the server's accept loop and every job.
    stop: watch::Sender<bool>,
    /// How long NOT_SERVING is shown before the server stops accepting.
    drain: Duration,
    /// How long in-flight calls may take after that.
    grace: Duration,
}

/// Step 3, serve with shutdown: serves until the server fails or
/// `shutdown` resolves; then NOT_SERVING, the drain, the stop, and in-flight
/// calls get the grace period before the server is aborted.
async fn serve_with_shutdown(
    router: CallRouter,
    listener: TcpListener,
    local_addr: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
    mut server_stop: watch::Receiver<bool>,
    stopping: &Stopping,
) -> anyhow::Result<()> {
    let server = router.serve_with_incoming_shutdown(
        TcpIncoming::from(listener).with_nodelay(Some(true)),
        async move {
            let _ = server_stop.wait_for(|stop| *stop).await;
        },
    );
    tracing::info!(%local_addr, "clvd is listening");

    let mut server = tokio::spawn(server);
    tokio::select! {
        result = &mut server => {
            result.context("server task failed")?.context("server failed")?;
        }
        () = shutdown => {
            let Stopping { reporter, stop, drain, grace } = stopping;
            tracing::info!(?drain, ?grace, "shutting down: NOT_SERVING, draining in-flight calls");
            set_health(reporter, ServingStatus::NotServing).await;
            tokio::time::sleep(*drain).await;
            let _ = stop.send(true);
            match tokio::time::timeout(*grace, &mut server).await {
                Ok(result) => result.context("server task failed")?.context("server failed")?,
                Err(_) => {
                    tracing::warn!("in-flight calls did not finish within the grace period; stopping anyway");
                    server.abort();
                }
            }
        }
    }
    Ok(())
}

/// Closes the pool and stops the embedded PostgreSQL. Closing waits for
/// every connection to come back, including those of work whose caller
/// left (it runs to its end: see `api::layers::detach`), such as a fit in
/// the background; bounded by `grace`.
async fn release(
    storage: Storage,
    embedded: Option<EmbeddedPostgres>,
    grace: Duration,
) -> anyhow::Result<()> {
    if tokio::time::timeout(grace, storage.close()).await.is_err() {
        tracing::warn!("database work still running after the grace period; stopping anyway");
    }
    if let Some(pg) = embedded {
        tokio::task::spawn_blocking(move || pg.stop()).await?;
    }
    Ok(())
}

async fn set_health(reporter: &HealthReporter, status: ServingStatus) {
    for service in DATABASE_BACKED {
        reporter.set_service_status(service, status).await;
    }
}

/// Applies the migrations as soon as the database is reachable, then keeps
/// health in step with the database: NOT_SERVING while it cannot be
/// reached, and while the server admits no work (every call slot held, and
/// none freed, for the stall bound: see [`AdmissionState::stalled_for`]).
async fn watch_database(
    storage: Storage,
    reporter: HealthReporter,
    interval: Duration,
    (admission, stall): (AdmissionState, Option<Duration>),
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut migrated = storage.migrate().await.is_ok();
    let mut serving = None;
    loop {
        if !migrated {
            match storage.migrate().await {
                Ok(()) => {
                    migrated = true;
                    tracing::info!("database migrations applied");
                }
                Err(e) if e.is_unavailable() => {
                    tracing::warn!(error = %e, "cannot apply migrations yet; will retry")
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot migrate the database schema; will retry")
                }
            }
        }
        let database = migrated && storage.ping().await.is_ok();
        let stalled = stall.is_some_and(|bound| admission.stalled_for(bound));
        let healthy = database && !stalled;
        if serving != Some(healthy) && !*stop.borrow() {
            if healthy {
                tracing::info!("database reachable, calls admitted: SERVING");
            } else if !database {
                tracing::warn!("database unreachable: NOT_SERVING");
            } else {
                tracing::warn!(
                    "every call slot is held and none has been freed for the stall bound \
                     (CLVD_ADMISSION_STALL_SECONDS): NOT_SERVING"
                );
            }
            let status = if healthy {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            set_health(&reporter, status).await;
            serving = Some(healthy);
        }
        let wait = if migrated {
            interval
        } else {
            Duration::from_millis(500)
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
