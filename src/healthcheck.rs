//! `clvd healthcheck`: one standard `grpc.health.v1.Health/Check` call to
//! the server this configuration describes, for container health checks
//! (the image has no gRPC probe binary). Succeeds only when the answer is
//! `SERVING`.
//!
//! It reaches the server at `CLVD_LISTEN_ADDR` (an unspecified address such
//! as `0.0.0.0` means this host's loopback) in plaintext and without an API
//! key: health answers without one unless `CLVD_AUTH_OPEN_HEALTH=false`.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use tonic::transport::Endpoint;
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};

use crate::config::Settings;

/// Why the check did not find the server serving.
#[derive(Debug, thiserror::Error)]
pub enum HealthcheckError {
    #[error("the listen address {0} has port 0: there is no fixed port to check")]
    NoPort(SocketAddr),
    #[error(
        "TLS is on (CLVD_TLS_CERT): `clvd healthcheck` speaks plaintext only; \
         use a TLS-capable probe"
    )]
    Tls,
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("the health check failed: {0}")]
    Call(#[from] tonic::Status),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the server reports {0}")]
    NotServing(String),
}

/// The address to call: the listen address, with an unspecified IP
/// (`0.0.0.0`, `::`) replaced by the loopback of its family.
pub fn target(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// Asks the server for `service`'s status ("" is the server as a whole,
/// "liveness" the process); `Ok` only for `SERVING`.
pub async fn check(
    settings: &Settings,
    service: &str,
    timeout: Duration,
) -> Result<(), HealthcheckError> {
    if settings.tls_cert.is_some() {
        return Err(HealthcheckError::Tls);
    }
    let addr = target(settings.listen_addr);
    if addr.port() == 0 {
        return Err(HealthcheckError::NoPort(addr));
    }
    let call = async {
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|source| HealthcheckError::Connect { addr, source })?
            .connect_timeout(timeout)
            .connect()
            .await
            .map_err(|source| HealthcheckError::Connect { addr, source })?;
        let status = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await?
            .into_inner()
            .status;
        match ServingStatus::try_from(status) {
            Ok(ServingStatus::Serving) => Ok(()),
            Ok(other) => Err(HealthcheckError::NotServing(other.as_str_name().to_owned())),
            Err(_) => Err(HealthcheckError::NotServing(format!("status {status}"))),
        }
    };
    tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| HealthcheckError::Timeout(timeout))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_addresses_become_loopback() {
        let t = |s: &str| target(s.parse().expect("address")).to_string();
        assert_eq!(t("0.0.0.0:50051"), "127.0.0.1:50051");
        assert_eq!(t("[::]:50051"), "[::1]:50051");
        assert_eq!(t("10.1.2.3:7"), "10.1.2.3:7");
    }
}
