//! Test harness: one private PostgreSQL per test binary (started from the
//! machine's binaries, stopped by the kernel when the binary exits), a fresh
//! database per test, and the real server on 127.0.0.1:0.

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        OnceLock,
    },
    time::Duration,
};

use chrono::{DateTime, TimeZone, Utc};
use clvd::{
    api::pb::{self, ingest_service_client::IngestServiceClient},
    config::Settings,
    domain::{ModelSelection, PurchaseFamily},
    embedded_postgres::{EmbeddedOptions, EmbeddedPostgres},
    startup::Application,
    storage::{CustomerSummary, Storage},
};
use sqlx::{postgres::PgPoolOptions, PgPool};
use tonic::transport::Channel;
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};

struct Cluster {
    pg: EmbeddedPostgres,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static NEXT_DB: AtomicU64 = AtomicU64::new(0);

fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("clvd-test-{}", std::process::id()));
        remove_stale_clusters();
        let _ = std::fs::remove_dir_all(&dir);
        // Started on a thread of its own: the cluster must outlive the
        // runtime of whichever test gets here first.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let pg = rt
                .block_on(EmbeddedPostgres::start(&EmbeddedOptions {
                    data_dir: dir,
                    bin_dir: None,
                    unsafe_fast: true,
                }))
                .expect("start the test PostgreSQL");
            Cluster { pg }
        })
        .join()
        .expect("cluster thread")
    })
}

/// Data directories of earlier test runs whose process is gone.
fn remove_stale_clusters() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name
            .strip_prefix("clvd-test-")
            .and_then(|p| p.parse::<u32>().ok())
        {
            if !PathBuf::from(format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// A fresh, migrated database on the test cluster.
pub async fn fresh_database() -> (String, PgPool) {
    let c = cluster();
    let name = format!(
        "t{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::SeqCst)
    );
    c.pg.ensure_database(&name)
        .await
        .expect("create test database");
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(c.pg.connect_options(&name))
        .await
        .expect("connect test database");
    Storage::from_pool(pool.clone())
        .migrate()
        .await
        .expect("migrate");
    (c.pg.url(&name), pool)
}

pub struct TestApp {
    pub addr: std::net::SocketAddr,
    /// The Prometheus endpoint, when the test configured one.
    pub metrics_addr: Option<std::net::SocketAddr>,
    pub database_url: String,
    pub pool: PgPool,
    pub storage: Storage,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn ingest(&self) -> IngestServiceClient<Channel> {
        IngestServiceClient::connect(self.endpoint())
            .await
            .expect("connect")
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .expect("count query")
    }

    pub async fn transactions_stored(&self) -> i64 {
        self.count("SELECT count(*) FROM transactions").await
    }

    /// A transaction holding `customer`'s row lock, as a batch in progress
    /// would; the lock goes when it commits or is dropped.
    pub async fn hold_customer_lock(
        &self,
        customer: &str,
    ) -> sqlx::Transaction<'static, sqlx::Postgres> {
        let mut holder = self.pool.begin().await.expect("begin");
        sqlx::query("SELECT 1 FROM customers WHERE customer_id = $1 FOR UPDATE")
            .bind(customer)
            .execute(&mut *holder)
            .await
            .expect("lock the customer's row");
        holder
    }

    /// Sessions of this database waiting for a lock, once `want` of them are
    /// (or after 5 s, whatever the count then).
    pub async fn lock_waiters(&self, want: i64) -> i64 {
        let mut waiting = 0;
        for _ in 0..200 {
            waiting = self
                .count(
                    "SELECT count(*) FROM pg_stat_activity
                      WHERE datname = current_database() AND wait_event_type = 'Lock'",
                )
                .await;
            if waiting >= want {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        waiting
    }

    /// Every table's row count: used to show that nothing was stored.
    pub async fn row_counts(&self) -> (i64, i64, i64) {
        (
            self.count("SELECT count(*) FROM transactions").await,
            self.count("SELECT count(*) FROM customer_days").await,
            self.count("SELECT count(*) FROM customers").await,
        )
    }

    pub async fn summary(&self, customer: &str) -> Option<CustomerSummary> {
        let id = clvd::domain::CustomerId::parse(customer).expect("customer id");
        self.storage.customer_summary(&id).await.expect("summary")
    }

    /// Stops the server (as on SIGTERM) and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server result");
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the real server on a fresh database, after `configure` adjusts
/// the settings, and waits until it reports SERVING.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let app = start_app_with(configure).await;
    wait_serving(&app.endpoint()).await;
    app
}

/// [`spawn_app_with`] without the wait: for servers that a plain client
/// cannot reach (TLS), whose tests wait their own way.
pub async fn start_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let (database_url, pool) = fresh_database().await;
    spawn_app_at(database_url, pool, configure).await
}

/// Starts the real server on a given (migrated) database.
pub async fn spawn_app_at(
    database_url: String,
    pool: PgPool,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    let mut settings = Settings::for_database(database_url.clone());
    // The suite's tests of fitting and scoring compare with BG/NBD; the
    // tests of the other families and of selection (families.rs) set their
    // own selection.
    settings.model_selection = ModelSelection::Pinned(PurchaseFamily::BgNbd);
    configure(&mut settings);
    let app = Application::build(settings)
        .await
        .expect("build application");
    let addr = app.local_addr();
    let metrics_addr = app.metrics_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        metrics_addr,
        database_url,
        storage: Storage::from_pool(pool.clone()),
        pool,
        stop: Some(stop),
        server: Some(server),
    }
}

pub async fn channel(endpoint: &str) -> Result<Channel, tonic::transport::Error> {
    Channel::from_shared(endpoint.to_owned())
        .expect("endpoint")
        .connect()
        .await
}

pub async fn wait_serving(endpoint: &str) {
    wait_serving_over(|| channel(endpoint)).await
}

/// Waits until the server that `connect` reaches reports SERVING.
pub async fn wait_serving_over<F, Fut>(connect: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Channel, tonic::transport::Error>>,
{
    for _ in 0..200 {
        if let Ok(mut health) = connect().await.map(HealthClient::new) {
            if let Ok(r) = health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
            {
                if r.into_inner().status == ServingStatus::Serving as i32 {
                    return;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server never reported SERVING");
}

/// GetChurnRisk for `customer`, every other field at its default (the
/// live score under the active model); panics on an error status.
pub async fn churn_risk(
    client: &mut pb::scoring_service_client::ScoringServiceClient<Channel>,
    customer: &str,
) -> pb::ChurnRisk {
    client
        .get_churn_risk(pb::GetChurnRiskRequest {
            customer_id: customer.to_owned(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|status| panic!("GetChurnRisk {customer}: {status}"))
        .into_inner()
}

pub fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .expect("valid test time")
}

pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

/// USD from integer cents.
pub fn usd_cents(cents: i64) -> pb::Money {
    pb::Money {
        currency_code: "USD".into(),
        units: cents / 100,
        nanos: ((cents % 100) * 10_000_000) as i32,
    }
}

pub fn purchase(customer: &str, id: &str, when: DateTime<Utc>, cents: i64) -> pb::Transaction {
    pb::Transaction {
        customer_id: customer.into(),
        transaction_id: id.into(),
        occurred_at: Some(timestamp(when)),
        kind: pb::TransactionKind::Purchase as i32,
        amount: Some(usd_cents(cents)),
        cost: None,
        refunded_transaction_id: String::new(),
    }
}

pub fn refund(
    customer: &str,
    id: &str,
    of: &str,
    when: DateTime<Utc>,
    cents: i64,
) -> pb::Transaction {
    pb::Transaction {
        kind: pb::TransactionKind::Refund as i32,
        refunded_transaction_id: of.into(),
        ..purchase(customer, id, when, cents)
    }
}

pub fn record(t: pb::Transaction) -> pb::RecordTransactionRequest {
    pb::RecordTransactionRequest {
        transaction: Some(t),
    }
}

/// RecordTransaction of `t` in a task of its own (for a call that is to
/// wait, e.g. on a customer's lock, while the test goes on).
pub fn record_in_background(
    client: &IngestServiceClient<Channel>,
    t: pb::Transaction,
) -> tokio::task::JoinHandle<Result<tonic::Response<pb::RecordTransactionResponse>, tonic::Status>>
{
    let mut client = client.clone();
    tokio::spawn(async move { client.record_transaction(record(t)).await })
}

/// Nanos of an amount given in cents.
pub fn nanos(cents: i64) -> i64 {
    cents * 10_000_000
}

/// The field paths of a status's google.rpc.BadRequest.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// The text of `GET /metrics` at `addr`, over plain HTTP/1.0.
pub async fn scrape(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: clvd\r\n\r\n")
        .await
        .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    body.to_owned()
}

/// The value of the sample `name` whose labels include every `labels` pair
/// (0 when there is none: a counter not yet incremented).
pub fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|l| {
            l.rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .expect("a sample value")
        })
        .sum()
}

/// The one line a failed `clvd` printed on stderr (it must be one line).
pub fn failure_line(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "clvd did not fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    lines[0].to_owned()
}

/// A port nothing listens on right now, for a server process of a test.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// grpcurl from PATH, or `None` (the caller skips) when it is absent and
/// not required. `.ci/run` installs it and sets CLVD_REQUIRE_GRPCURL=1, so
/// CI cannot skip a test that needs it.
pub fn grpcurl() -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("grpcurl"))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var("CLVD_REQUIRE_GRPCURL").is_err(),
            "grpcurl is required but not on PATH"
        );
        eprintln!("grpcurl not on PATH: skipped");
    }
    found
}
