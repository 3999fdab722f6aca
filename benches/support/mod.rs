//! Pieces both bench binaries use: knobs from the environment, medians,
//! connecting to a starting server, money, and the machine's description.
//! Each bench includes it with `mod support;`.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use clvd::api::pb::{self, ingest_service_client::IngestServiceClient};
use clvd::embedded_postgres::{EmbeddedOptions, EmbeddedPostgres};
use sqlx::{postgres::PgPoolOptions, PgPool};
use tonic::transport::Channel;

pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub async fn connect(endpoint: &str, n: usize) -> anyhow::Result<Vec<Channel>> {
    let started = Instant::now();
    loop {
        let mut out = Vec::new();
        for _ in 0..n {
            match Channel::from_shared(endpoint.to_owned())?.connect().await {
                Ok(c) => out.push(c),
                Err(_) => break,
            }
        }
        if out.len() == n {
            // The server migrates on start; wait until a call succeeds.
            let mut client = IngestServiceClient::new(out[0].clone());
            let probe = client
                .delete_customer(pb::DeleteCustomerRequest {
                    customer_id: "probe".into(),
                })
                .await;
            if probe.is_ok() {
                return Ok(out);
            }
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("clvd did not come up at {endpoint}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn num_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

pub fn money(cents: i64) -> pb::Money {
    pb::Money {
        currency_code: "USD".into(),
        units: cents / 100,
        nanos: ((cents % 100) * 10_000_000) as i32,
    }
}

/// The release `clvd` binary as its own process on `database_url`, on a
/// free port, with background refits off (a bench measures what it calls,
/// alone) and authentication off (the bench client sends no key). Returns
/// the process and its endpoint. `BENCH_CLVD_BIN` runs another build
/// instead (to compare two versions under the same conditions).
#[allow(dead_code)] // Not every bench that includes this module calls it.
pub fn spawn_clvd(database_url: &str, max_connections: usize) -> anyhow::Result<(Server, String)> {
    spawn_clvd_with(database_url, max_connections, &[])
}

/// [`spawn_clvd`] with more environment settings for the server.
pub fn spawn_clvd_with(
    database_url: &str,
    max_connections: usize,
    settings: &[(&str, &str)],
) -> anyhow::Result<(Server, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let binary =
        std::env::var("BENCH_CLVD_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_clvd").to_owned());
    let server = Command::new(binary)
        .env("DATABASE_URL", database_url)
        .env("CLVD_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("CLVD_DB_MAX_CONNECTIONS", max_connections.to_string())
        .env("CLVD_REFIT_INTERVAL_SECONDS", "0")
        .env("CLVD_REFIT_MIN_NEW_TRANSACTIONS", "0")
        .env("CLVD_AUTH", "off")
        .env("RUST_LOG", "warn")
        .envs(settings.iter().copied())
        .stdout(Stdio::null())
        .spawn()
        .context("start clvd")?;
    Ok((Server(server), format!("http://127.0.0.1:{port}")))
}

/// A `clvd` process that is killed when dropped, so that a bench that
/// fails half-way leaves no server running (and taking CPU from the next
/// bench). Derefs to the [`Child`].
pub struct Server(Child);

impl std::ops::Deref for Server {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Server {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A private PostgreSQL in a fresh temporary directory named after the
/// bench, with a database `bench` and a small pool on it. `unsafe_fast`
/// turns durability off (for benches that time only reads).
pub async fn start_postgres(
    bench: &str,
    unsafe_fast: bool,
) -> anyhow::Result<(std::path::PathBuf, EmbeddedPostgres, PgPool)> {
    let dir = std::env::temp_dir().join(format!("clvd-bench-{bench}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let pg = EmbeddedPostgres::start(&EmbeddedOptions {
        data_dir: dir.clone(),
        bin_dir: None,
        unsafe_fast,
    })
    .await?;
    pg.ensure_database("bench").await?;
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(pg.connect_options("bench"))
        .await?;
    Ok((dir, pg, pool))
}
