//! PostgreSQL storage: owns the pool, the migrations and every SQL statement
//! of the service. Callers get domain types and [`StorageError`]s back; no
//! SQL leaves this module.
//!
//! Every statement names the columns it reads (no `*`). A read returns
//! `sqlx::FromRow` structs, each converted to its domain type in one place
//! (a `decode` beside the struct); money totals are read as exact text
//! ([`money`]). Writes bind structs whose fields are named for their
//! columns ([`columns`]), never a hand-numbered list of parameters.

mod aggregates;
mod columns;
mod copy_binary;
mod customers;
mod error;
mod evaluations;
mod feedback;
mod fit_data;
mod held;
mod ingest;
mod models;
mod money;
mod reports;
mod scores;
mod settings;
mod summaries_as_of;

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use held::Held;

pub use crate::domain::CustomerSummary;
pub use customers::DeletedCustomer;
pub use error::{RecordError, StorageError};
pub use evaluations::{EvaluationKey, ScoreAggregates};
pub use feedback::Written;
pub use fit_data::{FitData, HoldoutGroup, PurchaseGroup, SpendGroup};
pub use ingest::BatchOutcome;
pub use models::FitLock;
pub use reports::{CohortHistory, DaysAsOf, LatestCells, LoyaltyCounts, SegmentRow};
pub use scores::ScoringSummary;

/// Embedded migrations, applied at start-up and by `clvd migrate`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("src/storage/migrations");

/// Pool settings the service exposes as configuration.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// How long a call waits for a connection before failing UNAVAILABLE.
    pub acquire_timeout: Duration,
    /// Unused connections are closed after this long.
    pub idle_timeout: Duration,
    /// Connections are replaced after this long, so that none outlives a
    /// failover or a server-side limit.
    pub max_lifetime: Duration,
    /// PostgreSQL cancels any statement running longer (zero: no limit).
    pub statement_timeout: Duration,
    /// PostgreSQL ends a session idle in a transaction this long (zero: no
    /// limit); clvd never leaves one open, so this is a safety net.
    pub idle_in_transaction_timeout: Duration,
}

/// The database behind the service. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Storage {
    /// Writes and bulk reads: planned for each call's actual arrays.
    pool: PgPool,
    /// Point reads on the scoring path: their plans are cached per
    /// connection (re-planning a primary-key read costs more than the read).
    reads: PgPool,
    /// `pool`'s connections kept between ingest batches and commit groups.
    held_writes: Held,
    /// `reads`' connections kept between groups of point reads.
    held_reads: Held,
}

/// Idle connections each hot path keeps out of its pool (of
/// `CLVD_DB_MAX_CONNECTIONS` each): enough for the default commit and read
/// slots and two import streams.
const HELD_PER_PATH: usize = 4;

impl Storage {
    /// A lazily connecting pool: the service starts (and reports
    /// NOT_SERVING) even while the database is still down.
    pub fn connect_lazy(options: PgConnectOptions, settings: &PoolSettings) -> Self {
        let pool_options = || {
            PgPoolOptions::new()
                .max_connections(settings.max_connections)
                .acquire_timeout(settings.acquire_timeout)
                .idle_timeout(settings.idle_timeout)
                .max_lifetime(settings.max_lifetime)
                // No round trip before each use (it would double the cost of
                // a point read): sqlx pings a connection when it is given
                // back and closes it if that fails, so one that died with
                // the database is evicted after the one call it failed.
                .test_before_acquire(false)
        };
        let options = Self::bounded(options, settings);
        let reads = pool_options().connect_lazy_with(options.clone());
        let pool = pool_options().connect_lazy_with(Self::tuned(options));
        Self::with_pools(pool, reads)
    }

    fn with_pools(pool: PgPool, reads: PgPool) -> Self {
        Self {
            held_writes: Held::new(pool.clone(), HELD_PER_PATH),
            held_reads: Held::new(reads.clone(), HELD_PER_PATH),
            pool,
            reads,
        }
    }

    /// Session settings of the connections that write.
    ///
    /// `plan_cache_mode = force_custom_plan`: the ingest statements take
    /// arrays of any length (1 to 10,000 rows); a generic plan, made without
    /// knowing the length, can pick sequential scans that grow with the
    /// table. Planning with the actual arrays costs well under a millisecond.
    pub fn tuned(options: PgConnectOptions) -> PgConnectOptions {
        options.options([("plan_cache_mode", "force_custom_plan")])
    }

    /// Server-side bounds of every session: no statement runs longer than
    /// `statement_timeout` (PostgreSQL cancels it), and no session stays
    /// idle inside a transaction longer than `idle_in_transaction_timeout`
    /// (PostgreSQL ends it, releasing its locks). Calls never abandon a
    /// statement half-way (see `api::layers::detach`); these bound what a
    /// call whose caller left may still cost.
    pub fn bounded(options: PgConnectOptions, settings: &PoolSettings) -> PgConnectOptions {
        let ms = |d: Duration| d.as_millis().to_string();
        options.options([
            ("statement_timeout", ms(settings.statement_timeout)),
            (
                "idle_in_transaction_session_timeout",
                ms(settings.idle_in_transaction_timeout),
            ),
        ])
    }

    pub fn from_pool(pool: PgPool) -> Self {
        Self::with_pools(pool.clone(), pool)
    }

    /// Applies the migrations, free of the sessions' statement timeout (a
    /// migration may rewrite a large table).
    pub async fn migrate(&self) -> Result<(), StorageError> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query("SET statement_timeout = 0")
            .execute(&mut *conn)
            .await?;
        let applied = MIGRATOR
            .run_direct(&mut *conn)
            .await
            .map_err(StorageError::Migrate);
        sqlx::query("RESET statement_timeout")
            .execute(&mut *conn)
            .await?;
        applied
    }

    /// A round trip to the database, for health checks.
    pub async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        // Both pools are marked closed before the held connections are
        // given back, so none is kept again and all of them close now.
        let (pool, reads) = (self.pool.close(), self.reads.close());
        self.held_writes.release();
        self.held_reads.release();
        pool.await;
        reads.await;
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Whether a line of SQL reads every column with a star: a select list
    /// or RETURNING of a bare or qualified star (`count(*)` is not one).
    /// The patterns below are split so that this file passes its own test.
    fn star(line: &str) -> bool {
        let upper = line.to_ascii_uppercase();
        let after = |i: usize| upper[i..].trim_start().starts_with('*');
        let keyword = |k: &str| upper.match_indices(k).any(|(i, _)| after(i + k.len()));
        let qualified = upper.match_indices(".*").any(|(i, _)| {
            upper[..i]
                .chars()
                .last()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        keyword("SELECT") || keyword("RETURNING") || qualified
    }

    fn lines_with_star(dir: &Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("storage sources are readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                lines_with_star(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("a source file");
                for (n, line) in text.lines().enumerate().filter(|(_, l)| star(l)) {
                    found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
            }
        }
    }

    /// A row's shape is what its statement names, never what the table
    /// holds today: no statement of storage reads columns with `*`.
    #[test]
    fn every_statement_names_its_columns() {
        assert!(star(concat!("SELECT", " * FROM t")) && star(concat!("select", "\t *")));
        assert!(star(concat!("RETURNING c.", "*, x")) && star(concat!("RETURNING", " *")));
        assert!(!star("SELECT count(*) FROM t") && !star("SELECT a, b FROM t"));
        let mut found = Vec::new();
        lines_with_star(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/storage"),
            &mut found,
        );
        assert!(found.is_empty(), "statements reading `*`: {found:#?}");
    }
}
