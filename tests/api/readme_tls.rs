//! The README's TLS examples (Authentication): its OpenSSL commands, run
//! exactly as written, make certificates that a TLS and a mutual-TLS server
//! accept, and its calls (the command-line client, and grpcurl when
//! installed) succeed against such a server.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use clvd::{auth::hash_key, config::AuthMode};
use tonic::{
    transport::{Certificate, Channel, ClientTlsConfig, Identity},
    Request,
};
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};

use crate::helpers::*;

const KEY: &str = "readme-tls-key-0c61f3a2";

/// The README's indented code block whose first line starts with `first`,
/// without the indentation.
fn readme_block(first: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read README.md");
    let lines: Vec<&str> = readme.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.strip_prefix("    ").is_some_and(|c| c.starts_with(first)))
        .unwrap_or_else(|| panic!("no README block starting with {first:?}"));
    lines[start..]
        .iter()
        .take_while(|l| l.starts_with("    "))
        .map(|l| &l[4..])
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs a README block with `sh -e` in `dir`, `clvd` on PATH and `$KEY` set.
fn run_block(block: &str, dir: &Path) -> Output {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_clvd"))
        .parent()
        .expect("the binary's directory")
        .to_owned();
    let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .expect("PATH");
    Command::new("sh")
        .arg("-ec")
        .arg(block)
        .current_dir(dir)
        .env("PATH", path)
        .env("KEY", KEY)
        .env_remove("CLVD_SERVER")
        .env_remove("CLVD_API_KEY")
        .output()
        .expect("run sh")
}

/// [`run_block`] off the test's runtime, which serves the server it calls.
async fn run_aside(block: String, dir: &Path) -> Output {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || run_block(&block, &dir))
        .await
        .expect("the block's thread")
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A directory of its own, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("clvd-readme-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the directory");
        Self(dir)
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.0.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn tls_channel(
    dir: &TempDir,
    port: u16,
    client_cert: bool,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(dir.read("ca.pem")))
        .domain_name("localhost");
    if client_cert {
        tls = tls.identity(Identity::from_pem(
            dir.read("client.pem"),
            dir.read("client.key"),
        ));
    }
    Channel::from_shared(format!("https://127.0.0.1:{port}"))
        .expect("endpoint")
        .tls_config(tls)?
        .connect()
        .await
}

async fn healthy(channel: Channel) -> bool {
    HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .is_ok()
}

#[tokio::test]
async fn the_readme_certificates_serve_tls_and_mutual_tls() {
    let dir = TempDir::new();
    let made = run_block(&readme_block("openssl req -x509"), &dir.0);
    assert_ok(&made, "the README's openssl commands");

    for mutual in [false, true] {
        let app = start_app_with(|s| {
            s.auth = AuthMode::On;
            s.api_keys = vec![format!("{}:ingest+read", hash_key(KEY))
                .parse()
                .expect("key entry")];
            s.tls_cert = Some(dir.0.join("server.pem"));
            s.tls_key = Some(dir.0.join("server.key"));
            if mutual {
                s.tls_client_ca = Some(dir.0.join("ca.pem"));
            }
        })
        .await;
        let port = app.addr.port();
        wait_serving_over(|| tls_channel(&dir, port, mutual)).await;

        // A client with the README's files records a transaction.
        let mut request =
            Request::new(record(purchase("c-1", "o-1", at(2026, 1, 5, 10, 0), 2_500)));
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {KEY}").parse().unwrap());
        let channel = tls_channel(&dir, port, mutual).await.expect("connect");
        clvd::api::pb::ingest_service_client::IngestServiceClient::new(channel)
            .record_transaction(request)
            .await
            .expect("a call over the README's TLS");

        if mutual {
            // Without the client certificate, no call gets through.
            let refused = match tls_channel(&dir, port, false).await {
                Ok(channel) => !healthy(channel).await,
                Err(_) => true,
            };
            assert!(refused, "mutual TLS let a client without a certificate in");

            // The README's own calls, on this server's port.
            let client = readme_block("CLVD_API_KEY=$KEY clvd models")
                .replace("localhost:50051", &format!("localhost:{port}"));
            assert_ok(&run_aside(client, &dir.0).await, "the README's clvd call");
            if let Some(grpcurl) = grpcurl() {
                let call = readme_block("grpcurl -cacert ca.pem")
                    .replacen("grpcurl", &grpcurl.display().to_string(), 1)
                    .replace("localhost:50051", &format!("localhost:{port}"));
                assert_ok(&run_aside(call, &dir.0).await, "the README's grpcurl call");
            }
        }
        app.stop().await;
    }
}
