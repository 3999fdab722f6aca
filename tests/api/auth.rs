//! API keys and scopes, over plain HTTP/2, TLS and mutual TLS, with
//! certificates made for each test (rcgen).

use std::{
    io::Write,
    path::PathBuf,
    process::{Command, Stdio},
    sync::atomic::{AtomicU64, Ordering},
};

use clvd::{
    api::pb::{self, ingest_service_client::IngestServiceClient},
    auth::hash_key,
    config::AuthMode,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use tonic::{
    transport::{Certificate, Channel, ClientTlsConfig, Identity},
    Code, Request,
};
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};

use crate::helpers::*;

pub const INGEST_KEY: &str = "ingest-key-5f0c2e9a";
pub const READ_KEY: &str = "read-key-81d7b3c4";
pub const ADMIN_KEY: &str = "admin-key-2a6e90f1";

/// How the test server is reached.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Transport {
    Plain,
    Tls,
    MutualTls,
}

/// A CA, a server certificate for `localhost` and a client certificate,
/// written as PEM files into a directory of their own.
pub struct Pki {
    dir: PathBuf,
}

impl Pki {
    pub(crate) fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "clvd-pki-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let leaf = |name: &str, purpose| {
            let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
            params.extended_key_usages = vec![purpose];
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &ca).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth);
        let (client_cert, client_key) = leaf("test-client", ExtendedKeyUsagePurpose::ClientAuth);
        for (name, pem) in [
            ("ca.pem", ca.pem()),
            ("server.pem", server_cert),
            ("server.key", server_key),
            ("client.pem", client_cert),
            ("client.key", client_key),
        ] {
            std::fs::write(dir.join(name), pem).unwrap();
        }
        Self { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn key_entries() -> Vec<clvd::auth::ApiKeyHash> {
    [
        (INGEST_KEY, "ingest"),
        (READ_KEY, "read"),
        (ADMIN_KEY, "admin"),
    ]
    .iter()
    .map(|(key, scopes)| format!("{}:{scopes}", hash_key(key)).parse().unwrap())
    .collect()
}

/// A server with the three keys, reached over `transport`.
async fn secured(transport: Transport, pki: &Pki) -> (TestApp, impl Fn() -> ChannelFuture + '_) {
    let app = start_app_with(|s| {
        s.auth = AuthMode::On;
        s.api_keys = key_entries();
        if transport != Transport::Plain {
            s.tls_cert = Some(pki.path("server.pem"));
            s.tls_key = Some(pki.path("server.key"));
        }
        if transport == Transport::MutualTls {
            s.tls_client_ca = Some(pki.path("ca.pem"));
        }
    })
    .await;
    let addr = app.addr;
    let connect = move || -> ChannelFuture {
        let endpoint = match transport {
            Transport::Plain => Channel::from_shared(format!("http://{addr}")).unwrap(),
            Transport::Tls | Transport::MutualTls => {
                let mut tls = ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(pki.read("ca.pem")))
                    .domain_name("localhost");
                if transport == Transport::MutualTls {
                    tls = tls.identity(Identity::from_pem(
                        pki.read("client.pem"),
                        pki.read("client.key"),
                    ));
                }
                Channel::from_shared(format!("https://{addr}"))
                    .unwrap()
                    .tls_config(tls)
                    .unwrap()
            }
        };
        Box::pin(async move { endpoint.connect().await })
    };
    wait_serving_over(&connect).await;
    (app, connect)
}

type ChannelFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Channel, tonic::transport::Error>> + Send>,
>;

fn with_key<T>(message: T, key: Option<&str>) -> Request<T> {
    with_authorization(message, key.map(|k| format!("Bearer {k}")))
}

fn with_authorization<T>(message: T, value: Option<String>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(value) = value {
        request
            .metadata_mut()
            .insert("authorization", value.parse().unwrap());
    }
    request
}

/// Every case of the guard, on one server: no key, a wrong key, a key
/// without the scope, a key with it; health open without a key.
async fn each_auth_case(channel: Channel, app: &TestApp) {
    let mut ingest = IngestServiceClient::new(channel.clone());
    let mut models = pb::model_service_client::ModelServiceClient::new(channel.clone());
    let record_request = |id: &str| record(purchase("c-auth", id, at(2026, 1, 5, 10, 0), 1_000));
    let record = |id: &str, key| with_key(record_request(id), key);

    let no_key = ingest
        .record_transaction(record("t0", None))
        .await
        .unwrap_err();
    assert_eq!(no_key.code(), Code::Unauthenticated, "{no_key:?}");
    // The right key under another scheme is no bearer token.
    let basic = ingest
        .record_transaction(with_authorization(
            record_request("t0"),
            Some(format!("Basic {INGEST_KEY}")),
        ))
        .await
        .unwrap_err();
    assert_eq!(basic.code(), Code::Unauthenticated, "{basic:?}");
    let wrong = ingest
        .record_transaction(record("t1", Some("not-a-configured-key")))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated, "{wrong:?}");
    let unscoped = ingest
        .record_transaction(record("t2", Some(READ_KEY)))
        .await
        .unwrap_err();
    assert_eq!(unscoped.code(), Code::PermissionDenied, "{unscoped:?}");
    assert_eq!(
        app.transactions_stored().await,
        0,
        "refused calls store nothing"
    );

    ingest
        .record_transaction(record("t3", Some(INGEST_KEY)))
        .await
        .unwrap();
    // The scheme's case does not matter.
    ingest
        .record_transaction(with_authorization(
            record_request("t4"),
            Some(format!("bearer {INGEST_KEY}")),
        ))
        .await
        .unwrap();
    assert_eq!(app.transactions_stored().await, 2);

    // FitModel needs admin: ingest and read keys are refused; the admin key
    // passes the guard and reaches the handler (too little data to fit).
    for key in [INGEST_KEY, READ_KEY] {
        let denied = models
            .fit_model(with_key(pb::FitModelRequest::default(), Some(key)))
            .await
            .unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied, "{key}: {denied:?}");
    }
    let admitted = models
        .fit_model(with_key(pb::FitModelRequest::default(), Some(ADMIN_KEY)))
        .await
        .unwrap_err();
    assert_eq!(admitted.code(), Code::FailedPrecondition, "{admitted:?}");
    // Reading a model is the read scope's.
    let read = models
        .get_model(with_key(pb::GetModelRequest::default(), Some(READ_KEY)))
        .await
        .unwrap_err();
    assert_eq!(read.code(), Code::NotFound, "{read:?}");

    let health = HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .unwrap();
    assert_eq!(health.into_inner().status, ServingStatus::Serving as i32);
}

#[tokio::test]
async fn keys_and_scopes_over_plain_http2() {
    let pki = Pki::new();
    let (app, connect) = secured(Transport::Plain, &pki).await;
    each_auth_case(connect().await.unwrap(), &app).await;
}

#[tokio::test]
async fn keys_and_scopes_over_tls() {
    let pki = Pki::new();
    let (app, connect) = secured(Transport::Tls, &pki).await;
    each_auth_case(connect().await.unwrap(), &app).await;
    // A plaintext client cannot talk to the TLS port.
    let mut plain = HealthClient::new(channel(&app.endpoint()).await.unwrap());
    assert!(plain.check(HealthCheckRequest::default()).await.is_err());
}

#[tokio::test]
async fn keys_and_scopes_over_mutual_tls_and_no_client_certificate_is_refused() {
    let pki = Pki::new();
    let (app, connect) = secured(Transport::MutualTls, &pki).await;
    each_auth_case(connect().await.unwrap(), &app).await;

    // The server's CA trusted, but no client certificate: the handshake
    // fails and no call, not even health, gets through.
    let without_cert = Channel::from_shared(format!("https://{}", app.addr))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(pki.read("ca.pem")))
                .domain_name("localhost"),
        )
        .unwrap()
        .connect()
        .await;
    let refusal = match without_cert {
        Err(e) => format!("{e:?}"),
        Ok(channel) => {
            assert!(HealthClient::new(channel.clone())
                .check(HealthCheckRequest::default())
                .await
                .is_err());
            let refused = IngestServiceClient::new(channel)
                .record_transaction(with_key(
                    record(purchase("c", "t", at(2026, 1, 5, 10, 0), 100)),
                    Some(INGEST_KEY),
                ))
                .await
                .unwrap_err();
            format!("{refused:?}")
        }
    };
    assert!(refusal.contains("CertificateRequired"), "{refusal}");
    assert_eq!(
        app.transactions_stored().await,
        2,
        "only the test's own calls"
    );
}

#[tokio::test]
async fn health_and_reflection_can_be_closed_to_callers_without_a_key() {
    let app = spawn_app_with(|s| {
        s.auth = AuthMode::On;
        s.api_keys = key_entries();
        s.auth_open_reflection = false;
    })
    .await;
    let channel = channel(&app.endpoint()).await.unwrap();
    let mut reflection =
        tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(
            channel.clone(),
        );
    let list = || tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            ),
        ),
    };
    let refused = reflection
        .server_reflection_info(futures::stream::iter([list()]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let mut answers = reflection
        .server_reflection_info(with_key(futures::stream::iter([list()]), Some(READ_KEY)))
        .await
        .unwrap()
        .into_inner();
    assert!(answers.message().await.unwrap().is_some());
}

fn clvd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clvd"));
    cmd.env_remove("CLVD_AUTH")
        .env_remove("CLVD_API_KEYS")
        .env("RUST_LOG", "warn")
        .env("RUST_BACKTRACE", "0");
    cmd
}

#[test]
fn without_keys_and_without_auth_off_start_up_fails_in_one_line() {
    let out = clvd()
        .args(["--data-dir", "/nonexistent-clvd-auth"])
        .output()
        .unwrap();
    let line = failure_line(&out);
    assert!(line.contains("CLVD_API_KEYS"), "{line}");
    assert!(line.contains("CLVD_AUTH=off"), "{line}");
}

#[test]
fn hash_key_prints_the_hash_that_the_configuration_takes() {
    let mut child = clvd()
        .arg("hash-key")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{INGEST_KEY}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    let entry = format!("{}:ingest", printed.trim());
    let keys = clvd::auth::ApiKeys::new(vec![entry.parse().unwrap()]);
    assert!(keys.scopes_of(INGEST_KEY).is_some());
    assert!(keys.scopes_of(READ_KEY).is_none());
}
