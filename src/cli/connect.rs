//! Where the server is and how to reach it: address, TLS (a CA to trust, a
//! client certificate for mutual TLS) and the API key, from flags or the
//! environment.

use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use tonic::{
    metadata::AsciiMetadataValue,
    service::{interceptor::InterceptedService, Interceptor},
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
    Request, Status,
};

use crate::pb::{
    ingest_service_client::IngestServiceClient, model_service_client::ModelServiceClient,
    report_service_client::ReportServiceClient, scoring_service_client::ScoringServiceClient,
};

/// The connection flags every client command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Connection {
    /// The server: `http://host:port`, or `https://host:port` for TLS.
    #[arg(
        long,
        env = "CLVD_SERVER",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    pub server: String,

    /// PEM CA certificate to trust for an https server (default: the
    /// public web roots).
    #[arg(long, env = "CLVD_CA_CERT", global = true)]
    pub ca_cert: Option<PathBuf>,

    /// PEM client certificate, for a server that requires mutual TLS.
    #[arg(long, env = "CLVD_CLIENT_CERT", requires = "client_key", global = true)]
    pub client_cert: Option<PathBuf>,

    /// PEM private key of --client-cert.
    #[arg(long, env = "CLVD_CLIENT_KEY", requires = "client_cert", global = true)]
    pub client_key: Option<PathBuf>,

    /// API key, sent as `authorization: Bearer <key>`. Prefer the
    /// environment variable: flags show in process listings.
    #[arg(long, env = "CLVD_API_KEY", hide_env_values = true, global = true)]
    pub api_key: Option<String>,

    /// Deadline of each call, in seconds (fits of large bases take longer).
    #[arg(
        long,
        env = "CLVD_CALL_TIMEOUT_SECONDS",
        default_value_t = 600,
        global = true
    )]
    pub timeout_seconds: u64,
}

/// Adds the API key to every call.
#[derive(Debug, Clone)]
pub struct BearerKey(Option<AsciiMetadataValue>);

impl Interceptor for BearerKey {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

type Authed = InterceptedService<Channel, BearerKey>;

/// A connected server: one HTTP/2 connection shared by every client.
#[derive(Debug, Clone)]
pub struct Server {
    channel: Channel,
    key: BearerKey,
}

impl Server {
    pub fn ingest(&self) -> IngestServiceClient<Authed> {
        IngestServiceClient::with_interceptor(self.channel.clone(), self.key.clone())
            .max_decoding_message_size(64 << 20)
    }
    pub fn scoring(&self) -> ScoringServiceClient<Authed> {
        ScoringServiceClient::with_interceptor(self.channel.clone(), self.key.clone())
            .max_decoding_message_size(64 << 20)
    }
    pub fn models(&self) -> ModelServiceClient<Authed> {
        ModelServiceClient::with_interceptor(self.channel.clone(), self.key.clone())
            .max_decoding_message_size(64 << 20)
    }
    pub fn reports(&self) -> ReportServiceClient<Authed> {
        ReportServiceClient::with_interceptor(self.channel.clone(), self.key.clone())
            .max_decoding_message_size(64 << 20)
    }
}

impl Connection {
    /// Connects (and fails here, naming the server, when it cannot).
    pub async fn connect(&self) -> anyhow::Result<Server> {
        let mut endpoint = Endpoint::from_shared(self.server.clone())
            .with_context(|| format!("--server {:?} is not a URL", self.server))?
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(self.timeout_seconds))
            .tcp_nodelay(true);
        if self.server.starts_with("https://") {
            let mut tls = ClientTlsConfig::new();
            tls = match &self.ca_cert {
                Some(path) => tls.ca_certificate(Certificate::from_pem(read(path, "--ca-cert")?)),
                None => tls.with_webpki_roots(),
            };
            if let (Some(cert), Some(key)) = (&self.client_cert, &self.client_key) {
                tls = tls.identity(Identity::from_pem(
                    read(cert, "--client-cert")?,
                    read(key, "--client-key")?,
                ));
            }
            endpoint = endpoint
                .tls_config(tls)
                .context("the TLS settings are not usable")?;
        } else {
            anyhow::ensure!(
                self.ca_cert.is_none() && self.client_cert.is_none(),
                "--ca-cert and --client-cert need an https:// --server"
            );
        }
        let key = match &self.api_key {
            Some(k) => Some(
                AsciiMetadataValue::try_from(format!("Bearer {}", k.trim()))
                    .context("the API key has characters a header cannot carry")?,
            ),
            None => None,
        };
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("cannot connect to {}", self.server))?;
        Ok(Server {
            channel,
            key: BearerKey(key),
        })
    }
}

fn read(path: &PathBuf, flag: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{flag} {}: cannot read", path.display()))
}
