//! One typed configuration, from flags and environment variables
//! (12-factor). `Display` prints it with secrets redacted.

use std::{fmt, net::SocketAddr, path::PathBuf, time::Duration};

use chrono_tz::Tz;
use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::{auth::ApiKeyHash, domain::PageTokenKey};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "clvd",
    version,
    about = "Customer lifetime value service (gRPC over PostgreSQL)",
    after_help = "The command-line client: clvd import | fit | model | models | evaluate | value | churn | at-risk | report (see `clvd <command> --help`)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the gRPC server (the default).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Read an API key on standard input and print the SHA-256 hex that
    /// CLVD_API_KEYS takes (the key itself is never configured).
    HashKey,
    /// Ask the server at CLVD_LISTEN_ADDR (0.0.0.0 means loopback) for its
    /// gRPC health (grpc.health.v1, plaintext, no API key); exit 0 only
    /// when SERVING. For container health checks.
    Healthcheck(HealthcheckArgs),
}

/// `clvd healthcheck`'s own flags.
#[derive(Debug, Clone, Args)]
pub struct HealthcheckArgs {
    /// Health service to ask: "" (the default) is readiness, which follows
    /// the database; "liveness" is the process alone.
    #[arg(long = "health-service", default_value = "")]
    pub service: String,
    /// Seconds to wait for the answer.
    #[arg(long = "health-timeout-seconds", default_value_t = 5)]
    pub timeout_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Whether calls must carry an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    On,
    /// Every caller may call every method: only for a trusted network or
    /// local use; start-up logs a warning.
    Off,
}

#[derive(Clone, Args)]
pub struct Settings {
    /// Address the gRPC server listens on (port 0 picks a free port).
    #[arg(
        long,
        env = "CLVD_LISTEN_ADDR",
        default_value = "127.0.0.1:50051",
        global = true
    )]
    pub listen_addr: SocketAddr,

    /// PostgreSQL to use. Unset: start a private PostgreSQL in --data-dir.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,

    /// Data directory of the embedded PostgreSQL (when DATABASE_URL is unset).
    /// Default: /var/lib/clvd/postgres as root, else ~/.local/share/clvd/postgres.
    #[arg(long, env = "CLVD_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,

    /// Directory holding the PostgreSQL server binaries (initdb, postgres).
    /// Default: found under /usr/lib/postgresql/*/bin, or on PATH.
    #[arg(long, env = "CLVD_PG_BIN_DIR", global = true)]
    pub pg_bin_dir: Option<PathBuf>,

    /// Reporting currency (ISO 4217); transactions in others are rejected.
    #[arg(long, env = "CLVD_CURRENCY", default_value = "USD", global = true)]
    pub currency: String,

    /// Business time zone (IANA name): purchase occasions are its calendar days.
    #[arg(long, env = "CLVD_TIME_ZONE", default_value = "UTC", global = true)]
    pub time_zone: Tz,

    /// Most transactions per ImportTransactions message.
    #[arg(long, env = "CLVD_MAX_BATCH", default_value_t = 10_000, global = true)]
    pub max_batch: usize,

    /// Earliest accepted time (RFC 3339) of a transaction, feedback answer
    /// or acquisition spend; earlier ones are refused, naming the field.
    /// From year -4712 (PostgreSQL's earliest timestamps) up to now.
    #[arg(
        long,
        env = "CLVD_EARLIEST_TRANSACTION_TIME",
        default_value = crate::domain::DEFAULT_EARLIEST,
        value_parser = parse_earliest_time,
        global = true
    )]
    pub earliest_transaction_time: chrono::DateTime<chrono::Utc>,

    /// Largest database connection pool.
    #[arg(
        long,
        env = "CLVD_DB_MAX_CONNECTIONS",
        default_value_t = 16,
        global = true
    )]
    pub db_max_connections: u32,

    /// Database transactions that concurrent RecordTransaction calls, grouped
    /// into shared commits, may hold at once. A group takes a slot beyond the
    /// first only after its first call has waited 10 ms for one.
    #[arg(
        long,
        env = "CLVD_GROUP_COMMIT_SLOTS",
        default_value_t = 2,
        global = true
    )]
    pub group_commit_slots: usize,

    /// Database reads that concurrent GetChurnRisk / GetCustomerValue calls,
    /// grouped into shared queries, may run at once. Fewer make larger
    /// groups (less database work per call) at some latency.
    #[arg(
        long,
        env = "CLVD_SCORE_READ_SLOTS",
        default_value_t = 1,
        global = true
    )]
    pub score_read_slots: usize,

    /// Threads of the server's async runtime (unset: one per core). CPU-heavy
    /// work (fits, evaluations, cohort forecasts) runs on blocking threads
    /// outside this count; an import batch's planning runs on these
    /// workers. On two cores shared with PostgreSQL, one worker cost 0-20%
    /// less CPU per scoring call than two in small runs, with no clear gain
    /// in calls per second, and at full size no gain and a worse p99
    /// (docs/benchmarks.md, issue 15 fifth session).
    #[arg(
        long,
        env = "CLVD_WORKER_THREADS",
        value_parser = clap::value_parser!(u16).range(1..=1024),
        global = true
    )]
    pub worker_threads: Option<u16>,

    /// Seconds a call waits for a database connection before UNAVAILABLE.
    #[arg(
        long,
        env = "CLVD_DB_ACQUIRE_TIMEOUT_SECONDS",
        default_value_t = 5,
        global = true
    )]
    pub db_acquire_timeout_seconds: u64,

    /// Churn risk (1 − P(alive)) at or above which a customer is in the
    /// MEDIUM band.
    #[arg(
        long,
        env = "CLVD_CHURN_MEDIUM_THRESHOLD",
        default_value_t = 0.3,
        global = true
    )]
    pub churn_medium_threshold: f64,

    /// Churn risk at or above which a customer is in the HIGH band (at risk).
    #[arg(
        long,
        env = "CLVD_CHURN_HIGH_THRESHOLD",
        default_value_t = 0.6,
        global = true
    )]
    pub churn_high_threshold: f64,

    /// ListAtRiskCustomers leaves out customers whose P(alive) is below this:
    /// a customer almost surely gone is not one a retention action can save.
    #[arg(
        long,
        env = "CLVD_AT_RISK_MIN_PROBABILITY_ALIVE",
        default_value_t = 0.05,
        value_parser = parse_probability,
        global = true
    )]
    pub at_risk_min_probability_alive: f64,

    /// Level of the central intervals on scores (P(alive), purchases, spend,
    /// value), in (0, 1) exclusive; a request's interval_level overrides it.
    #[arg(
        long,
        env = "CLVD_INTERVAL_LEVEL",
        default_value_t = 0.9,
        value_parser = parse_interval_level,
        global = true
    )]
    pub interval_level: f64,

    /// Window of the probability of no purchase served with churn risk, days.
    #[arg(
        long,
        env = "CLVD_NO_PURCHASE_WINDOW_DAYS",
        default_value_t = 90,
        global = true
    )]
    pub no_purchase_window_days: u32,

    /// Refit the models when the newest version is this many seconds old
    /// (0: never by age).
    #[arg(
        long,
        env = "CLVD_REFIT_INTERVAL_SECONDS",
        default_value_t = 86_400,
        global = true
    )]
    pub refit_interval_seconds: u64,

    /// Refit when this many transactions arrived since the newest version
    /// (0: never by volume).
    #[arg(
        long,
        env = "CLVD_REFIT_MIN_NEW_TRANSACTIONS",
        default_value_t = 100_000,
        global = true
    )]
    pub refit_min_new_transactions: u64,

    /// How a fit chooses the purchase family to activate: `bic` (fit every
    /// family, activate the lowest BIC), `aic` (lowest AIC), `holdout`
    /// (lowest holdout mean absolute error when the data spans at least 112
    /// days, its last quarter held out; else the lowest BIC), or a family
    /// name (`bg_nbd`, `mbg_nbd`, `pareto_nbd`) to fit and activate that one
    /// alone. A FitModel request that names families or a selection
    /// overrides it for that fit.
    #[arg(
        long,
        env = "CLVD_MODEL_SELECTION",
        default_value = "bic",
        value_parser = parse_model_selection,
        global = true
    )]
    pub model_selection: crate::domain::ModelSelection,

    /// Seconds between checks of whether a refit is due.
    #[arg(
        long,
        env = "CLVD_REFIT_CHECK_SECONDS",
        default_value_t = 30,
        global = true
    )]
    pub refit_check_seconds: u64,

    /// Milliseconds between rounds of the background job that keeps the
    /// cohort report aggregates current (0: no background job; a report
    /// without as_of still catches up in full before it reads).
    #[arg(
        long,
        env = "CLVD_REPORT_AGGREGATE_INTERVAL_MS",
        default_value_t = 1_000,
        global = true
    )]
    pub report_aggregate_interval_ms: u64,

    /// Report queue entries one background round takes (each customer
    /// recomputed once however often it is queued among them).
    #[arg(
        long,
        env = "CLVD_REPORT_AGGREGATE_ROUND",
        default_value_t = 500,
        value_parser = clap::value_parser!(i64).range(1..=1_000_000),
        global = true
    )]
    pub report_aggregate_round: i64,

    /// Seconds between database health checks (grpc.health.v1).
    #[arg(
        long,
        env = "CLVD_HEALTH_INTERVAL_SECONDS",
        default_value_t = 2,
        global = true
    )]
    pub health_interval_seconds: u64,

    /// Seconds in-flight calls get to finish after SIGTERM/SIGINT.
    #[arg(
        long,
        env = "CLVD_SHUTDOWN_GRACE_SECONDS",
        default_value_t = 10,
        global = true
    )]
    pub shutdown_grace_seconds: u64,

    /// Seconds between reporting NOT_SERVING on SIGTERM/SIGINT and closing
    /// the listener, still serving new calls, so that load balancers and
    /// Kubernetes endpoints stop sending before the port closes. The grace
    /// for in-flight calls starts after it.
    #[arg(
        long,
        env = "CLVD_SHUTDOWN_DRAIN_SECONDS",
        default_value_t = 0,
        global = true
    )]
    pub shutdown_drain_seconds: u64,

    /// API keys: `off` lets every caller call every method (a warning is
    /// logged at start-up); `on` needs --api-keys.
    #[arg(long, env = "CLVD_AUTH", value_enum, default_value_t = AuthMode::On, global = true)]
    pub auth: AuthMode,

    /// Accepted API keys as `<sha256 hex of the key>:<scopes>`, scopes
    /// `ingest`, `read`, `admin` joined by `+`, entries by commas. Make a
    /// hash with `clvd hash-key`.
    #[arg(
        long,
        env = "CLVD_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true,
        global = true
    )]
    pub api_keys: Vec<ApiKeyHash>,

    /// grpc.health.v1.Health answers without an API key (false: needs the
    /// read scope).
    #[arg(long, env = "CLVD_AUTH_OPEN_HEALTH", default_value_t = true, action = ArgAction::Set, global = true)]
    pub auth_open_health: bool,

    /// Server reflection answers without an API key (false: needs the read
    /// scope).
    #[arg(long, env = "CLVD_AUTH_OPEN_REFLECTION", default_value_t = true, action = ArgAction::Set, global = true)]
    pub auth_open_reflection: bool,

    /// PEM certificate chain of the server: serve gRPC over TLS (with
    /// --tls-key).
    #[arg(long, env = "CLVD_TLS_CERT", requires = "tls_key", global = true)]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, env = "CLVD_TLS_KEY", requires = "tls_cert", global = true)]
    pub tls_key: Option<PathBuf>,

    /// PEM CA certificate(s): clients must present a certificate signed by
    /// one (mutual TLS). Needs --tls-cert.
    #[arg(long, env = "CLVD_TLS_CLIENT_CA", requires = "tls_cert", global = true)]
    pub tls_client_ca: Option<PathBuf>,

    /// Largest request message accepted, bytes (larger: OUT_OF_RANGE).
    #[arg(
        long,
        env = "CLVD_MAX_DECODING_MESSAGE_BYTES",
        default_value_t = 16 * 1024 * 1024,
        global = true
    )]
    pub max_decoding_message_bytes: usize,

    /// Largest response message sent, bytes (larger: OUT_OF_RANGE).
    #[arg(
        long,
        env = "CLVD_MAX_ENCODING_MESSAGE_BYTES",
        default_value_t = 64 * 1024 * 1024,
        global = true
    )]
    pub max_encoding_message_bytes: usize,

    /// clv.v1 calls served at once, over all connections; calls beyond it
    /// get RESOURCE_EXHAUSTED at once (0: no limit). Health and reflection
    /// are not counted.
    #[arg(
        long,
        env = "CLVD_MAX_CONCURRENT_CALLS",
        default_value_t = 256,
        global = true
    )]
    pub max_concurrent_calls: usize,

    /// Percent of --max-concurrent-calls that one caller (an API key; with
    /// authentication off, a connection) may hold at once; its calls beyond
    /// get RESOURCE_EXHAUSTED while other callers are admitted.
    #[arg(
        long,
        env = "CLVD_MAX_CALLER_SHARE_PERCENT",
        default_value_t = 50,
        value_parser = clap::value_parser!(u8).range(1..=100),
        global = true
    )]
    pub max_caller_share_percent: u8,

    /// Seconds for which every call slot may stay held, with no call
    /// ending, before health reports NOT_SERVING (0: never for this reason).
    #[arg(
        long,
        env = "CLVD_ADMISSION_STALL_SECONDS",
        default_value_t = 10,
        global = true
    )]
    pub admission_stall_seconds: u64,

    /// Seconds a client stream (ImportTransactions) may go without a
    /// message before the call is ended with DEADLINE_EXCEEDED (0: no limit).
    #[arg(
        long,
        env = "CLVD_STREAM_IDLE_SECONDS",
        default_value_t = 30,
        global = true
    )]
    pub stream_idle_seconds: u64,

    /// Longest any call may run, seconds, whatever deadline the caller set
    /// (0: only the caller's deadline).
    #[arg(
        long,
        env = "CLVD_MAX_CALL_SECONDS",
        default_value_t = 0,
        global = true
    )]
    pub max_call_seconds: u64,

    /// Seconds an unused database connection is kept before it is closed.
    #[arg(
        long,
        env = "CLVD_DB_IDLE_TIMEOUT_SECONDS",
        default_value_t = 300,
        global = true
    )]
    pub db_idle_timeout_seconds: u64,

    /// Seconds after which a database connection is replaced, so that none
    /// outlives a failover or a server-side limit.
    #[arg(
        long,
        env = "CLVD_DB_MAX_LIFETIME_SECONDS",
        default_value_t = 1800,
        global = true
    )]
    pub db_max_lifetime_seconds: u64,

    /// Seconds any one SQL statement may run before PostgreSQL cancels it
    /// (`statement_timeout`; 0: no limit); the call then fails with
    /// DEADLINE_EXCEEDED naming this setting. The longest statements are a
    /// fit's reads and its COPY of the scores: well under a minute for
    /// 1,000,000 customers.
    #[arg(
        long,
        env = "CLVD_DB_STATEMENT_TIMEOUT_SECONDS",
        default_value_t = 300,
        global = true
    )]
    pub db_statement_timeout_seconds: u64,

    /// Seconds a database session may sit idle inside a transaction before
    /// PostgreSQL ends it (`idle_in_transaction_session_timeout`; 0: no
    /// limit): a safety net, as clvd never leaves a transaction open.
    #[arg(
        long,
        env = "CLVD_DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS",
        default_value_t = 60,
        global = true
    )]
    pub db_idle_in_transaction_timeout_seconds: u64,

    /// Address of the Prometheus metrics endpoint (`GET /metrics`, plain
    /// HTTP; port 0 picks a free port); unset: no endpoint.
    #[arg(long, env = "CLVD_METRICS_ADDR", global = true)]
    pub metrics_addr: Option<SocketAddr>,

    /// Key that signs page tokens (ListAtRiskCustomers), as hex, at least
    /// 64 digits (32 bytes); every replica behind one load balancer needs
    /// the same. Unset: a random key kept in the database (table
    /// service_settings), which every replica on that database shares.
    #[arg(
        long,
        env = "CLVD_PAGE_TOKEN_KEY",
        hide_env_values = true,
        global = true
    )]
    pub page_token_key: Option<PageTokenKey>,

    /// Log format: text for people, json for log pipelines.
    #[arg(long, env = "CLVD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

impl Settings {
    pub fn db_acquire_timeout(&self) -> Duration {
        Duration::from_secs(self.db_acquire_timeout_seconds)
    }

    pub fn health_interval(&self) -> Duration {
        Duration::from_secs(self.health_interval_seconds.max(1))
    }

    pub fn refit_policy(&self) -> crate::service::RefitPolicy {
        crate::service::RefitPolicy {
            interval: (self.refit_interval_seconds > 0)
                .then(|| Duration::from_secs(self.refit_interval_seconds)),
            min_new_transactions: (self.refit_min_new_transactions > 0)
                .then_some(self.refit_min_new_transactions),
        }
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds)
    }

    pub fn max_call(&self) -> Option<Duration> {
        (self.max_call_seconds > 0).then(|| Duration::from_secs(self.max_call_seconds))
    }

    /// Threads of the async runtime: `worker_threads`, else one per core.
    pub fn worker_threads(&self) -> usize {
        self.worker_threads.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            usize::from,
        )
    }

    pub fn pool_settings(&self) -> crate::storage::PoolSettings {
        crate::storage::PoolSettings {
            max_connections: self.db_max_connections,
            acquire_timeout: self.db_acquire_timeout(),
            idle_timeout: Duration::from_secs(self.db_idle_timeout_seconds),
            max_lifetime: Duration::from_secs(self.db_max_lifetime_seconds),
            statement_timeout: Duration::from_secs(self.db_statement_timeout_seconds),
            idle_in_transaction_timeout: Duration::from_secs(
                self.db_idle_in_transaction_timeout_seconds,
            ),
        }
    }

    /// How long a client stream may stay silent; `None`: no limit.
    pub fn stream_idle(&self) -> Option<Duration> {
        (self.stream_idle_seconds > 0).then(|| Duration::from_secs(self.stream_idle_seconds))
    }

    /// How long every call slot may stay held before health says
    /// NOT_SERVING; `None`: never for that reason.
    pub fn admission_stall(&self) -> Option<Duration> {
        (self.admission_stall_seconds > 0)
            .then(|| Duration::from_secs(self.admission_stall_seconds))
    }

    /// Settings for tests and tools: the defaults with the given database, a
    /// free port, no background refits and authentication off.
    pub fn for_database(database_url: String) -> Self {
        let mut s = Cli::parse_from(["clvd"]).settings;
        s.database_url = Some(database_url);
        s.listen_addr = SocketAddr::from(([127, 0, 0, 1], 0));
        // No background refits unless a test asks for them.
        s.refit_interval_seconds = 0;
        s.refit_min_new_transactions = 0;
        // Tests of other behaviour call without keys; the auth tests turn
        // it back on with their own keys.
        s.auth = AuthMode::Off;
        s
    }
}

/// A probability: a number in [0, 1].
fn parse_probability(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        Ok(_) => Err("must be in [0, 1]".into()),
        Err(e) => Err(format!("must be a number in [0, 1]: {e}")),
    }
}

/// CLVD_INTERVAL_LEVEL: a level strictly between 0 and 1.
fn parse_interval_level(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(p) if p > 0.0 && p < 1.0 => Ok(p),
        Ok(_) => Err("CLVD_INTERVAL_LEVEL must be in (0, 1), e.g. 0.9".into()),
        Err(e) => Err(format!(
            "CLVD_INTERVAL_LEVEL must be a number in (0, 1): {e}"
        )),
    }
}

/// CLVD_MODEL_SELECTION: `bic`, `aic`, `holdout` or a family name.
fn parse_model_selection(s: &str) -> Result<crate::domain::ModelSelection, String> {
    s.parse()
}

/// CLVD_EARLIEST_TRANSACTION_TIME: RFC 3339, not before year -4712 (4713
/// BC, near PostgreSQL's earliest timestamptz, so every accepted time can
/// be stored) and not in the future.
fn parse_earliest_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    use chrono::Datelike;
    let t = chrono::DateTime::parse_from_rfc3339(s.trim())
        .map_err(|e| format!("must be an RFC 3339 time such as 1900-01-01T00:00:00Z: {e}"))?
        .to_utc();
    if t.year() < -4712 {
        return Err("must not be before year -4712 (PostgreSQL's range)".into());
    }
    if t > chrono::Utc::now() {
        return Err("must not be in the future".into());
    }
    Ok(t)
}

/// The database URL with any password replaced by `***`.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let db = match &self.database_url {
            Some(url) => redact_url(url),
            None => "embedded".to_owned(),
        };
        write!(
            f,
            "listen_addr={} database={} data_dir={} currency={} time_zone={} max_batch={} \
             earliest_transaction_time={} \
             db_max_connections={} group_commit_slots={} score_read_slots={} worker_threads={} db_acquire_timeout={}s \
             churn_thresholds={}/{} no_purchase_window={}d refit_interval={}s \
             refit_min_new_transactions={} refit_check={}s health_interval={}s shutdown_grace={}s shutdown_drain={}s log_format={:?} \
             auth={:?} api_keys={:?} auth_open_health={} auth_open_reflection={} tls={} mtls={} \
             max_decoding_message_bytes={} max_encoding_message_bytes={} max_concurrent_calls={} \
             max_caller_share={}% admission_stall={}s stream_idle={}s \
             max_call={}s db_idle_timeout={}s db_max_lifetime={}s db_statement_timeout={}s \
             db_idle_in_transaction_timeout={}s metrics_addr={}",
            self.listen_addr,
            db,
            self.data_dir.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "default".into()),
            self.currency,
            self.time_zone,
            self.max_batch,
            self.earliest_transaction_time.to_rfc3339(),
            self.db_max_connections,
            self.group_commit_slots,
            self.score_read_slots,
            self.worker_threads(),
            self.db_acquire_timeout_seconds,
            self.churn_medium_threshold,
            self.churn_high_threshold,
            self.no_purchase_window_days,
            self.refit_interval_seconds,
            self.refit_min_new_transactions,
            self.refit_check_seconds,
            self.health_interval_seconds,
            self.shutdown_grace_seconds,
            self.shutdown_drain_seconds,
            self.log_format,
            self.auth,
            self.api_keys,
            self.auth_open_health,
            self.auth_open_reflection,
            self.tls_cert.is_some(),
            self.tls_client_ca.is_some(),
            self.max_decoding_message_bytes,
            self.max_encoding_message_bytes,
            self.max_concurrent_calls,
            self.max_caller_share_percent,
            self.admission_stall_seconds,
            self.stream_idle_seconds,
            self.max_call_seconds,
            self.db_idle_timeout_seconds,
            self.db_max_lifetime_seconds,
            self.db_statement_timeout_seconds,
            self.db_idle_in_transaction_timeout_seconds,
            self.metrics_addr.map(|a| a.to_string()).unwrap_or_else(|| "off".into()),
        )?;
        // The key itself is never shown.
        write!(
            f,
            " page_token_key={}",
            if self.page_token_key.is_some() {
                "set"
            } else {
                "database"
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_token_key_is_never_displayed() {
        let key = "0123456789abcdef".repeat(4);
        let cli = Cli::parse_from(["clvd", "--page-token-key", &key]);
        let shown = cli.settings.to_string();
        assert!(shown.contains("page_token_key=set"), "{shown}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert!(Cli::try_parse_from(["clvd", "--page-token-key", "abcd"]).is_err());
        let default = Cli::parse_from(["clvd"]).settings.to_string();
        assert!(default.contains("page_token_key=database"), "{default}");
    }

    #[test]
    fn worker_threads_are_as_set_else_one_per_core_and_never_zero() {
        let set = Cli::parse_from(["clvd", "--worker-threads", "3"]).settings;
        assert_eq!(set.worker_threads(), 3);
        assert!(set.to_string().contains("worker_threads=3"), "{set}");
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let default = Cli::parse_from(["clvd"]).settings.worker_threads();
        assert_eq!(default, cores);
        for bad in ["0", "-1", "two", "1025"] {
            assert!(
                Cli::try_parse_from(["clvd", "--worker-threads", bad]).is_err(),
                "{bad} was accepted"
            );
        }
    }

    #[test]
    fn the_interval_level_lies_strictly_between_zero_and_one() {
        assert_eq!(parse_interval_level("0.95"), Ok(0.95));
        for bad in ["0", "1", "-0.2", "1.5", "NaN", "ninety"] {
            let e = parse_interval_level(bad).unwrap_err();
            assert!(e.contains("CLVD_INTERVAL_LEVEL"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_earliest_transaction_time_is_rfc3339_in_range() {
        let default = Cli::parse_from(["clvd"]).settings;
        assert_eq!(
            default.earliest_transaction_time.to_rfc3339(),
            "1900-01-01T00:00:00+00:00"
        );
        let set = Cli::parse_from([
            "clvd",
            "--earliest-transaction-time",
            "1990-01-01T02:00:00+02:00",
        ]);
        assert_eq!(
            set.settings.earliest_transaction_time.to_rfc3339(),
            "1990-01-01T00:00:00+00:00"
        );
        for bad in [
            "1990-01-01",
            "9999-01-01T00:00:00Z",
            "-5000-01-01T00:00:00Z",
        ] {
            assert!(
                Cli::try_parse_from(["clvd", "--earliest-transaction-time", bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn redacts_passwords_in_database_urls() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact_url("postgres:///db?host=/tmp"),
            "postgres:///db?host=/tmp"
        );
    }
}
