//! How the gRPC server is exposed: TLS (and mutual TLS), API keys, limits,
//! deadlines and per-call telemetry, prepared from the settings before
//! anything starts so that a bad configuration stops start-up with its
//! reason. [`crate::startup`] adds the services.

use std::{fs, path::Path, sync::Arc};

use anyhow::Context;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tower::layer::util::{Identity as NoLayer, Stack};

use crate::{
    api::layers::{
        admission::{AdmissionLayer, AdmissionState},
        deadline::DeadlineLayer,
        detach::DetachLayer,
        details::DetailsLayer,
        guard::{GuardLayer, Policy},
        telemetry::TelemetryLayer,
    },
    auth::ApiKeys,
    config::{AuthMode, Settings},
    metrics::Metrics,
};

/// The layers around every call, outermost first: every error status
/// leaves with its details; telemetry sees every call, refused ones
/// included; the guard refuses before a call takes a slot of the
/// concurrency limit; the deadline covers the handler, which runs detached
/// (to its end, holding its slot, whoever stops waiting).
pub type CallLayers = Stack<
    DetachLayer,
    Stack<
        DeadlineLayer,
        Stack<
            AdmissionLayer,
            Stack<GuardLayer, Stack<TelemetryLayer, Stack<DetailsLayer, NoLayer>>>,
        >,
    >,
>;

/// The checked exposure settings.
#[derive(Clone)]
pub struct Exposure {
    policy: Option<Policy>,
    tls: Option<ServerTlsConfig>,
    /// The concurrency limit, shared by every connection (and read by health).
    admission: AdmissionLayer,
    max_call: Option<std::time::Duration>,
}

impl Exposure {
    /// Checks the settings: keys unless authentication is explicitly off,
    /// readable certificates and keys.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let policy = match settings.auth {
            AuthMode::Off => {
                tracing::warn!(
                    "authentication is OFF (CLVD_AUTH=off): every caller may call every method"
                );
                None
            }
            AuthMode::On => {
                let keys = ApiKeys::new(settings.api_keys.clone());
                anyhow::ensure!(
                    !keys.is_empty(),
                    "no API keys configured: set CLVD_API_KEYS (hashes from `clvd hash-key`) or, \
                     to run without authentication, CLVD_AUTH=off"
                );
                Some(Policy {
                    keys: Arc::new(keys),
                    open_health: settings.auth_open_health,
                    open_reflection: settings.auth_open_reflection,
                })
            }
        };
        let tls = match (&settings.tls_cert, &settings.tls_key) {
            (Some(cert), Some(key)) => {
                let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(
                    read_pem(cert, "TLS certificate")?,
                    read_pem(key, "TLS key")?,
                ));
                if let Some(ca) = &settings.tls_client_ca {
                    tls = tls.client_ca_root(Certificate::from_pem(read_pem(ca, "client CA")?));
                }
                // Parsed now, so that a bad file stops start-up.
                Server::builder()
                    .tls_config(tls.clone())
                    .context("invalid TLS certificate, key or client CA")?;
                Some(tls)
            }
            _ => None,
        };
        Ok(Self {
            policy,
            tls,
            admission: AdmissionLayer::new(
                settings.max_concurrent_calls,
                settings.max_caller_share_percent,
            ),
            max_call: settings.max_call(),
        })
    }

    /// A server builder with TLS and the call layers.
    pub fn server(&self, metrics: &Metrics) -> anyhow::Result<Server<Stack<CallLayers, NoLayer>>> {
        let mut builder = Server::builder();
        if let Some(tls) = &self.tls {
            builder = builder.tls_config(tls.clone())?;
        }
        let layers = tower::ServiceBuilder::new()
            .layer(DetailsLayer)
            .layer(TelemetryLayer::new(metrics.clone()))
            .layer(GuardLayer::new(self.policy.clone()))
            .layer(self.admission.clone())
            .layer(DeadlineLayer::new(self.max_call))
            .layer(DetachLayer)
            .into_inner();
        Ok(builder.layer(layers))
    }

    /// The concurrency limit's state, for health.
    pub fn admission(&self) -> AdmissionState {
        self.admission.state()
    }
}

fn read_pem(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("cannot read the {what} {}", path.display()))
}

/// Applies the configured message size limits to a generated service.
#[macro_export]
macro_rules! sized {
    ($settings:expr, $service:expr) => {
        $service
            .max_decoding_message_size($settings.max_decoding_message_bytes)
            .max_encoding_message_size($settings.max_encoding_message_bytes)
    };
}
