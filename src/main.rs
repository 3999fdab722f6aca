//! The `clvd` binary: the server (`serve`, `migrate`, `hash-key`,
//! `healthcheck`: the server's configuration, telemetry, then the command)
//! or, when the first argument names a client command, the command-line
//! client ([`clvd::cli`]).

use anyhow::Context;
use clap::Parser;
use clvd::{
    config::{Cli, Command},
    startup::{database, Application},
    storage::{PoolSettings, Storage},
    telemetry::{get_subscriber, init_subscriber},
};

fn main() -> std::process::ExitCode {
    let client = std::env::args()
        .nth(1)
        .is_some_and(|first| clvd::cli::is_client_command(&first));
    let result = if client {
        let cli = clvd::cli::ClientCli::parse();
        runtime(None).and_then(|rt| rt.block_on(clvd::cli::run(cli)))
    } else {
        let cli = Cli::parse();
        runtime(Some(cli.settings.worker_threads())).and_then(|rt| rt.block_on(run(cli)))
    };
    clvd::telemetry::flush();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line with the whole cause chain, for people and for logs.
            eprintln!("clvd: {e:#}");
            if e.is::<clvd::cli::import::RowsRejected>() {
                std::process::ExitCode::from(clvd::cli::import::EXIT_REJECTED)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}

/// The async runtime: the server's `CLVD_WORKER_THREADS` workers
/// ([`clvd::config::Settings::worker_threads`]); the command-line client
/// keeps tokio's default (one per core, or `TOKIO_WORKER_THREADS`).
fn runtime(worker_threads: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(n) = worker_threads {
        builder.worker_threads(n);
    }
    builder.build().context("cannot start the async runtime")
}

async fn run(Cli { command, settings }: Cli) -> anyhow::Result<()> {
    // A probe's output is its exit code and one line: no start-up logging.
    if let Some(Command::Healthcheck(args)) = &command {
        let timeout = std::time::Duration::from_secs(args.timeout_seconds);
        clvd::healthcheck::check(&settings, &args.service, timeout).await?;
        println!("SERVING");
        return Ok(());
    }
    init_subscriber(get_subscriber(settings.log_format));
    tracing::info!(config = %settings, "clvd {} starting", env!("CARGO_PKG_VERSION"));
    match command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(settings).await?;
            app.run_until_stopped(clvd::shutdown::signal_received())
                .await
        }
        Command::Migrate => {
            let (options, embedded) = database(&settings).await?;
            let storage = Storage::connect_lazy(
                options,
                &PoolSettings {
                    max_connections: 1,
                    ..settings.pool_settings()
                },
            );
            storage.migrate().await.context("migrations failed")?;
            storage.close().await;
            tracing::info!("migrations applied");
            if let Some(pg) = embedded {
                pg.stop();
            }
            Ok(())
        }
        Command::HashKey => print_key_hash(),
        // Answered above, before any logging.
        Command::Healthcheck(_) => Ok(()),
    }
}

/// `clvd hash-key`: the key comes on standard input, not as an argument,
/// so that it stays out of shell history and process listings.
fn print_key_hash() -> anyhow::Result<()> {
    let mut key = String::new();
    std::io::stdin()
        .read_line(&mut key)
        .context("cannot read the key on standard input")?;
    let key = key.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(!key.is_empty(), "no key on standard input");
    println!("{}", clvd::auth::hash_key(key));
    Ok(())
}
