//! The embedded default: a private PostgreSQL started from the machine's
//! PostgreSQL binaries in a data directory of clvd's own.
//!
//! The server process runs as a child of clvd (as the unprivileged
//! `postgres` user, or `nobody`, when clvd runs as root, since PostgreSQL
//! refuses to run as root). It listens only on a Unix socket inside its data
//! directory, so nothing else on the machine can reach it. It stops when
//! clvd stops: by a fast shutdown on [`EmbeddedPostgres::stop`], and by the
//! kernel's parent-death signal if clvd dies. Nothing is ever deleted: the
//! data directory stays for the next start.

use std::{
    fs,
    io::Read,
    os::unix::{fs::PermissionsExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{kill, Signal},
    unistd::{Gid, Pid, Uid, User},
};
use sqlx::{postgres::PgConnectOptions, ConnectOptions, Connection, PgConnection};

/// The socket's port number (it only names the socket file: no TCP).
const PORT: u16 = 5432;
/// Longest Unix socket path Linux accepts.
const MAX_SOCKET_PATH: usize = 107;
const SUPERUSER: &str = "postgres";

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "PostgreSQL server binaries (initdb, postgres) not found: install them \
         (Debian/Ubuntu: `apt-get install postgresql`), point CLVD_PG_BIN_DIR at them, \
         or set DATABASE_URL to an existing PostgreSQL"
    )]
    BinariesNotFound,
    #[error(
        "clvd runs as root, and PostgreSQL must not: create an unprivileged `postgres` user \
         (`useradd --system postgres`) or set DATABASE_URL"
    )]
    NoUnprivilegedUser,
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("socket path {0} is longer than {MAX_SOCKET_PATH} bytes: choose a shorter --data-dir")]
    SocketPathTooLong(PathBuf),
    #[error("initdb failed ({status}): {output}")]
    Initdb { status: String, output: String },
    #[error("could not start postgres: {0}")]
    Spawn(std::io::Error),
    #[error("postgres did not become ready within {seconds}s; its log {log} ends with:\n{tail}")]
    NotReady {
        seconds: u64,
        log: PathBuf,
        tail: String,
    },
    #[error("could not create database {name}: {source}")]
    CreateDatabase { name: String, source: sqlx::Error },
}

/// Where and how to run the embedded PostgreSQL.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    pub data_dir: PathBuf,
    pub bin_dir: Option<PathBuf>,
    /// Trade durability for speed (fsync off): for throwaway test clusters only.
    pub unsafe_fast: bool,
}

/// A running private PostgreSQL.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    data_dir: PathBuf,
    bin_dir: PathBuf,
    pid: Pid,
    exited: Arc<AtomicBool>,
    keeper: Option<JoinHandle<()>>,
}

/// The default data directory: /var/lib/clvd/postgres as root (the
/// unprivileged server user must be able to reach it), else under the
/// user's data home.
pub fn default_data_dir() -> PathBuf {
    if Uid::effective().is_root() {
        return PathBuf::from("/var/lib/clvd/postgres");
    }
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("clvd/postgres")
}

fn find_binaries(bin_dir: Option<&Path>) -> Result<PathBuf, EmbeddedError> {
    let has_both = |d: &Path| d.join("initdb").is_file() && d.join("postgres").is_file();
    if let Some(d) = bin_dir {
        return if has_both(d) {
            Ok(d.to_owned())
        } else {
            Err(EmbeddedError::BinariesNotFound)
        };
    }
    // Debian/Ubuntu layout: /usr/lib/postgresql/<major>/bin; newest first.
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            Some((
                e.file_name().to_str()?.parse::<u32>().ok()?,
                e.path().join("bin"),
            ))
        })
        .filter(|(_, d)| has_both(d))
        .collect();
    versions.sort();
    if let Some((_, d)) = versions.pop() {
        return Ok(d);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .find(|d| has_both(d))
        .ok_or(EmbeddedError::BinariesNotFound)
}

/// The account the server runs as: ourselves, or an unprivileged user when
/// we are root.
fn server_account() -> Result<Option<(Uid, Gid)>, EmbeddedError> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    for name in ["postgres", "nobody"] {
        if let Ok(Some(u)) = User::from_name(name) {
            return Ok(Some((u.uid, u.gid)));
        }
    }
    Err(EmbeddedError::NoUnprivilegedUser)
}

fn command(program: PathBuf, account: Option<(Uid, Gid)>) -> Command {
    let mut cmd = Command::new(program);
    if let Some((uid, gid)) = account {
        cmd.uid(uid.as_raw()).gid(gid.as_raw());
    }
    cmd.env("LC_ALL", "C").env_remove("PGDATA");
    cmd
}

impl EmbeddedPostgres {
    /// Initialises the data directory if it is new, starts the server and
    /// waits until it accepts connections.
    pub async fn start(options: &EmbeddedOptions) -> Result<Self, EmbeddedError> {
        let bin = find_binaries(options.bin_dir.as_deref())?;
        let account = server_account()?;
        let data_dir = prepare_data_dir(&options.data_dir, account)?;
        let socket = data_dir.join(format!(".s.PGSQL.{PORT}"));
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(EmbeddedError::SocketPathTooLong(socket));
        }
        if !data_dir.join("PG_VERSION").exists() {
            tracing::info!(data_dir = %data_dir.display(), "initialising a new PostgreSQL cluster");
            let mut initdb = command(bin.join("initdb"), account);
            initdb.args(["-D"]).arg(&data_dir).args([
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
            ]);
            if options.unsafe_fast {
                initdb.arg("--no-sync");
            }
            let out = initdb.output().map_err(EmbeddedError::Spawn)?;
            if !out.status.success() {
                return Err(EmbeddedError::Initdb {
                    status: out.status.to_string(),
                    output: String::from_utf8_lossy(&[out.stdout, out.stderr].concat())
                        .into_owned(),
                });
            }
        }

        let log_path = data_dir.join("postgres.log");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|source| EmbeddedError::DataDir {
                path: log_path.clone(),
                source,
            })?;
        let mut postgres = command(bin.join("postgres"), account);
        postgres
            .arg("-D")
            .arg(&data_dir)
            .arg("-k")
            .arg(&data_dir)
            .args([
                "-p",
                &PORT.to_string(),
                "-c",
                "listen_addresses=",
                "-c",
                "unix_socket_permissions=0700",
            ])
            .args(["-c", "max_connections=200"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(EmbeddedError::Spawn)?)
            .stderr(log);
        if options.unsafe_fast {
            postgres.args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]);
        }
        // SAFETY: prctl is async-signal-safe; it runs in the child after the
        // uid switch (a credential change would clear the setting).
        unsafe {
            postgres.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGINT).map_err(std::io::Error::from)
            });
        }

        // The parent-death signal fires when the spawning *thread* ends, so
        // a dedicated thread spawns the server and lives exactly as long.
        let exited = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let flag = exited.clone();
        let keeper = std::thread::Builder::new()
            .name("postgres-keeper".into())
            .spawn(move || match postgres.spawn() {
                Ok(mut child) => {
                    let _ = tx.send(Ok(child.id()));
                    let status = child.wait();
                    flag.store(true, Ordering::SeqCst);
                    tracing::info!(?status, "embedded postgres exited");
                }
                Err(e) => {
                    flag.store(true, Ordering::SeqCst);
                    let _ = tx.send(Err(e));
                }
            })
            .map_err(EmbeddedError::Spawn)?;
        let pid = rx
            .recv()
            .map_err(|_| EmbeddedError::Spawn(std::io::Error::other("keeper thread died")))?
            .map_err(EmbeddedError::Spawn)?;

        let this = Self {
            data_dir,
            bin_dir: bin,
            pid: Pid::from_raw(pid as i32),
            exited,
            keeper: Some(keeper),
        };
        this.wait_ready(Duration::from_secs(60), &log_path).await?;
        tracing::info!(data_dir = %this.data_dir.display(), "embedded PostgreSQL is ready");
        Ok(this)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Where the PostgreSQL binaries (psql, pgbench, ...) are.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// Options to connect to `database` as the superuser over the socket.
    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(&self.data_dir)
            .port(PORT)
            .username(SUPERUSER)
            .database(database)
            .log_statements(tracing::log::LevelFilter::Trace)
    }

    /// A URL for tools such as psql and pgbench.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgresql:///{database}?host={}&port={PORT}&user={SUPERUSER}",
            self.data_dir.display()
        )
    }

    /// Creates `name` unless it exists.
    pub async fn ensure_database(&self, name: &str) -> Result<(), EmbeddedError> {
        let err = |source| EmbeddedError::CreateDatabase {
            name: name.to_owned(),
            source,
        };
        let mut conn = PgConnection::connect_with(&self.connect_options("postgres"))
            .await
            .map_err(err)?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(name)
                .fetch_one(&mut conn)
                .await
                .map_err(err)?;
        if !exists {
            let quoted = format!("\"{}\"", name.replace('"', "\"\""));
            sqlx::query(&format!("CREATE DATABASE {quoted}"))
                .execute(&mut conn)
                .await
                .map_err(err)?;
        }
        Ok(())
    }

    async fn wait_ready(&self, limit: Duration, log: &Path) -> Result<(), EmbeddedError> {
        let started = Instant::now();
        let options = self.connect_options("postgres");
        loop {
            if let Ok(conn) = PgConnection::connect_with(&options).await {
                let _ = conn.close().await;
                return Ok(());
            }
            if self.exited.load(Ordering::SeqCst) || started.elapsed() > limit {
                return Err(EmbeddedError::NotReady {
                    seconds: limit.as_secs(),
                    log: log.to_owned(),
                    tail: tail(log, 2000),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Fast shutdown: disconnects clients, checkpoints, exits.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        if let Some(keeper) = self.keeper.take() {
            if !self.exited.load(Ordering::SeqCst) {
                let _ = kill(self.pid, Signal::SIGINT);
            }
            let _ = keeper.join();
        }
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

fn prepare_data_dir(dir: &Path, account: Option<(Uid, Gid)>) -> Result<PathBuf, EmbeddedError> {
    let io = |source| EmbeddedError::DataDir {
        path: dir.to_owned(),
        source,
    };
    fs::create_dir_all(dir).map_err(io)?;
    let dir = dir.canonicalize().map_err(io)?;
    if let Some((uid, gid)) = account {
        nix::unistd::chown(&dir, Some(uid), Some(gid)).map_err(|e| io(e.into()))?;
    }
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(io)?;
    Ok(dir)
}

fn tail(path: &Path, bytes: usize) -> String {
    let mut s = String::new();
    if let Ok(mut f) = fs::File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    let start = s.len().saturating_sub(bytes);
    let start = (start..s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    s[start..].to_owned()
}
