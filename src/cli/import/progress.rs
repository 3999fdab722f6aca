//! The progress bar on standard error: bytes of the files read (which
//! gives the time left), rows checked and sent, rows per second. Hidden
//! when standard error is not a terminal, or with `--quiet`.

use std::{
    io::IsTerminal,
    sync::{atomic::AtomicU64, Arc},
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Shared by the reader thread (bytes, rows) and the end of the run.
#[derive(Clone)]
pub struct Progress {
    bar: ProgressBar,
    bytes: Arc<AtomicU64>,
    started: Instant,
}

impl Progress {
    /// A bar over `total_bytes` of input.
    pub fn new(total_bytes: u64, quiet: bool) -> Self {
        let target = if quiet || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr_with_hz(4)
        };
        let bar = ProgressBar::with_draw_target(Some(total_bytes), target);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:30} {percent:>3}% {msg} · {elapsed_precise} elapsed, {eta} left",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(250));
        Self {
            bar,
            bytes: Arc::default(),
            started: Instant::now(),
        }
    }

    /// The counter the file readers add the bytes they read to.
    pub fn bytes_counter(&self) -> Arc<AtomicU64> {
        self.bytes.clone()
    }

    /// `rows` read so far (called once per batch).
    pub fn rows_read(&self, rows: u64) {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        self.bar
            .set_position(self.bytes.load(std::sync::atomic::Ordering::Relaxed));
        self.bar
            .set_message(format!("{rows} rows, {:.0} rows/s", rows as f64 / secs));
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
