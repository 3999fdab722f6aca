//! Authentication and authorisation: each method needs a scope, and the
//! caller's `authorization: Bearer <key>` must carry it. UNAUTHENTICATED
//! without a valid key, PERMISSION_DENIED without the scope. Methods that
//! are not known here need `admin` (deny by default). An admitted key is
//! named in the request's extensions ([`CallerKey`]), so that admission
//! can count the calls each key holds.

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use futures::future::{ready, Either, Ready};
use http::{Request, Response};
use sha2::Digest;
use tonic::{body::Body, Status};
use tower::{Layer, Service};

use super::{admission::CallerKey, refuse};
use crate::auth::{ApiKeys, Scope};
use crate::grpc_method::GrpcMethod;

/// What a method requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Open,
    Needs(Scope),
}

/// Which methods need which scope, and which are open.
#[derive(Debug, Clone)]
pub struct Policy {
    pub keys: Arc<ApiKeys>,
    /// grpc.health.v1.Health answers without a key (probes carry none).
    pub open_health: bool,
    /// Server reflection answers without a key.
    pub open_reflection: bool,
}

impl Policy {
    pub fn access(&self, method: GrpcMethod<'_>) -> Access {
        let discovery = |open| {
            if open {
                Access::Open
            } else {
                Access::Needs(Scope::Read)
            }
        };
        match (method.service, method.method) {
            ("grpc.health.v1.Health", _) => discovery(self.open_health),
            (
                "grpc.reflection.v1.ServerReflection" | "grpc.reflection.v1alpha.ServerReflection",
                _,
            ) => discovery(self.open_reflection),
            ("clv.v1.IngestService", _) => Access::Needs(Scope::Ingest),
            ("clv.v1.ScoringService" | "clv.v1.ReportService", _) => Access::Needs(Scope::Read),
            ("clv.v1.ModelService", "GetModel" | "ListModels" | "EvaluateModel") => {
                Access::Needs(Scope::Read)
            }
            _ => Access::Needs(Scope::Admin),
        }
    }

    /// Admits the request (naming its key, when it needed one) or says
    /// why not.
    pub fn check(
        &self,
        path: &str,
        headers: &http::HeaderMap,
    ) -> Result<Option<CallerKey>, Status> {
        let method = GrpcMethod::of(path);
        let Access::Needs(scope) = self.access(method) else {
            return Ok(None);
        };
        let key = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            // The scheme is case-insensitive (RFC 9110, section 11.1).
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, key)| key)
            .ok_or_else(|| {
                Status::unauthenticated(
                    "an API key is required: send `authorization: Bearer <key>`",
                )
            })?;
        let scopes = self
            .keys
            .scopes_of(key.trim())
            .ok_or_else(|| Status::unauthenticated("the API key is not valid"))?;
        if scopes.contains(scope) {
            Ok(Some(CallerKey(
                sha2::Sha256::digest(key.trim().as_bytes()).into(),
            )))
        } else {
            Err(Status::permission_denied(format!(
                "/{}/{} needs the {scope} scope; this key has: {scopes}",
                method.service, method.method
            )))
        }
    }
}

/// The guard; `None` when authentication is explicitly off.
#[derive(Debug, Clone)]
pub struct GuardLayer {
    policy: Option<Arc<Policy>>,
}

impl GuardLayer {
    pub fn new(policy: Option<Policy>) -> Self {
        Self {
            policy: policy.map(Arc::new),
        }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Guard {
            inner,
            policy: self.policy.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Guard<S> {
    inner: S,
    policy: Option<Arc<Policy>>,
}

impl<S> Service<Request<Body>> for Guard<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response<Body>, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let verdict = match &self.policy {
            Some(policy) => policy.check(request.uri().path(), request.headers()),
            None => Ok(None),
        };
        match verdict {
            Ok(key) => {
                if let Some(key) = key {
                    request.extensions_mut().insert(key);
                }
                Either::Right(self.inner.call(request))
            }
            Err(status) => Either::Left(ready(Ok(refuse(status)))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_method_needs_its_scope_and_unknown_ones_need_admin() {
        let policy = Policy {
            keys: Arc::default(),
            open_health: true,
            open_reflection: false,
        };
        let access = |path| policy.access(GrpcMethod::of(path));
        for (path, want) in [
            (
                "/clv.v1.IngestService/RecordTransaction",
                Access::Needs(Scope::Ingest),
            ),
            (
                "/clv.v1.ScoringService/GetChurnRisk",
                Access::Needs(Scope::Read),
            ),
            (
                "/clv.v1.ReportService/GetCohortReport",
                Access::Needs(Scope::Read),
            ),
            ("/clv.v1.ModelService/GetModel", Access::Needs(Scope::Read)),
            (
                "/clv.v1.ModelService/EvaluateModel",
                Access::Needs(Scope::Read),
            ),
            ("/clv.v1.ModelService/FitModel", Access::Needs(Scope::Admin)),
            (
                "/clv.v1.ModelService/DropEverything",
                Access::Needs(Scope::Admin),
            ),
            ("/clv.v1.NewService/Anything", Access::Needs(Scope::Admin)),
            ("/grpc.health.v1.Health/Check", Access::Open),
            (
                "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                Access::Needs(Scope::Read),
            ),
            ("/not-grpc", Access::Needs(Scope::Admin)),
        ] {
            assert_eq!(access(path), want, "{path}");
        }
    }
}
