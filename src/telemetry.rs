//! Tracing: a subscriber built separately from being installed, so tests
//! and tools can choose.

use tracing::Subscriber;
use tracing_subscriber::{fmt, layer::SubscriberExt, EnvFilter, Registry};

use crate::config::LogFormat;

/// Logs to stderr; `RUST_LOG` overrides the default filter (`info`).
pub fn get_subscriber(format: LogFormat) -> Box<dyn Subscriber + Send + Sync> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let registry = Registry::default().with(filter);
    match format {
        LogFormat::Json => Box::new(
            registry.with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_writer(std::io::stderr),
            ),
        ),
        LogFormat::Text => Box::new(registry.with(fmt::layer().with_writer(std::io::stderr))),
    }
}

pub fn init_subscriber(subscriber: Box<dyn Subscriber + Send + Sync>) {
    // A second initialisation (tests) keeps the first subscriber.
    let _ = tracing::subscriber::set_global_default(subscriber);
}
