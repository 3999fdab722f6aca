//! pgbench, the baseline of the ingest and scoring benches. Included by
//! those benches only (`#[path]`), so that the others do not carry it.

use std::process::Command;

use anyhow::{bail, Context};
use clvd::embedded_postgres::EmbeddedPostgres;

/// Runs pgbench with `script` against the bench database (`-n -M prepared
/// -j 2`, `clients` clients for `seconds`) and returns its tps.
/// `configure` adds what one bench needs (options, environment, working
/// directory) before the common arguments.
pub fn pgbench(
    pg: &EmbeddedPostgres,
    script: &std::path::Path,
    clients: usize,
    seconds: u64,
    configure: impl FnOnce(&mut Command),
) -> anyhow::Result<f64> {
    let mut command = Command::new(pg.bin_dir().join("pgbench"));
    configure(&mut command);
    let out = command
        .args([
            "-n",
            "-M",
            "prepared",
            "-j",
            "2",
            "-c",
            &clients.to_string(),
        ])
        .args(["-T", &seconds.to_string(), "-f"])
        .arg(script)
        .arg("-h")
        .arg(pg.data_dir())
        .args(["-p", "5432", "-U", "postgres", "bench"])
        .output()
        .context("run pgbench")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "pgbench failed: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    text.lines()
        .find_map(|l| {
            l.strip_prefix("tps = ")
                .and_then(|r| r.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .context("pgbench printed no tps")
}
