//! The identity of a gRPC method: the `/{service}/{method}` of a request
//! path, its streaming shape, whether the service's limits apply to it, and
//! the set of methods this server serves. Below both the transport's layers
//! ([`crate::api::layers`]) and the metrics ([`crate::metrics`]), which both
//! name methods; knows nothing of either.

use std::collections::HashSet;

use prost::Message;

/// A gRPC method as named by the request path `/{service}/{method}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcMethod<'a> {
    pub service: &'a str,
    pub method: &'a str,
}

impl<'a> GrpcMethod<'a> {
    /// Any path that is not `/{service}/{method}` gives empty names (and is
    /// treated as an unknown method).
    pub fn of(path: &'a str) -> Self {
        let (service, method) = path
            .strip_prefix('/')
            .and_then(|p| p.split_once('/'))
            .unwrap_or(("", ""));
        Self { service, method }
    }

    /// The service's own package: the methods the limits apply to. Health
    /// checks and reflection stay answerable under any load, so that
    /// probes do not kill a busy replica.
    pub fn is_clvd(&self) -> bool {
        self.service.starts_with("clv.v1.")
    }

    /// Streaming shape, as the `grpc_type` label of go-grpc-prometheus.
    pub fn grpc_type(&self) -> &'static str {
        match (self.service, self.method) {
            ("clv.v1.IngestService", "ImportTransactions") => "client_stream",
            ("grpc.health.v1.Health", "Watch") => "server_stream",
            (
                "grpc.reflection.v1.ServerReflection" | "grpc.reflection.v1alpha.ServerReflection",
                _,
            ) => "bidi_stream",
            _ => "unary",
        }
    }
}

/// `service/method` of clvd's services, health and both reflections.
pub fn served_methods() -> HashSet<String> {
    [
        crate::pb::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ]
    .into_iter()
    .filter_map(|bytes| prost_types::FileDescriptorSet::decode(bytes).ok())
    .flat_map(|set| set.file)
    .flat_map(|file| {
        let package = file.package().to_owned();
        file.service.into_iter().flat_map(move |service| {
            let service_name = format!("{package}.{}", service.name());
            service
                .method
                .into_iter()
                .map(move |m| format!("{service_name}/{}", m.name()))
        })
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_names_its_service_and_method() {
        let m = GrpcMethod::of("/clv.v1.IngestService/ImportTransactions");
        assert_eq!(
            (m.service, m.method),
            ("clv.v1.IngestService", "ImportTransactions")
        );
        assert!(m.is_clvd());
        assert_eq!(m.grpc_type(), "client_stream");
        let health = GrpcMethod::of("/grpc.health.v1.Health/Check");
        assert!(!health.is_clvd());
        assert_eq!(health.grpc_type(), "unary");
    }

    #[test]
    fn a_path_without_service_and_method_names_nothing() {
        for path in ["", "/", "no-slash", "/only-service"] {
            let m = GrpcMethod::of(path);
            assert_eq!((m.service, m.method), ("", ""), "{path:?}");
        }
    }

    #[test]
    fn the_served_methods_are_every_method_of_the_descriptors() {
        let served = served_methods();
        for method in [
            "clv.v1.IngestService/RecordTransaction",
            "clv.v1.ScoringService/GetChurnRisk",
            "clv.v1.ReportService/GetCohortReport",
            "clv.v1.ModelService/FitModel",
            "grpc.health.v1.Health/Watch",
            "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ] {
            assert!(served.contains(method), "{method} missing from {served:?}");
        }
        assert!(!served.contains("clv.v1.IngestService/NoSuchMethod"));
    }
}
