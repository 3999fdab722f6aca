//! Error details for statuses that library code makes: tonic's own
//! (UNIMPLEMENTED for an unknown method, OUT_OF_RANGE for a request over
//! the size limit, a request that cannot be decoded), tonic-health's and
//! tonic-reflection's. clvd's own statuses are built with their details in
//! [`crate::api::status`]; an error status that leaves the server without
//! `grpc-status-details-bin` gets the google.rpc.Status of its code and
//! message here, so that every error a client sees can be decoded the same
//! way (gRPC's status helpers refuse a status line without matching
//! details). The message is kept as it is (cut only past
//! [`crate::api::status::MAX_MESSAGE_BYTES`], in both places alike).
//!
//! The status is in the response headers when the call failed before any
//! message (trailers-only), else in the trailers; the body is wrapped to
//! see them. Successful calls pass through untouched.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use http::{HeaderMap, Request, Response};
use http_body::Frame;
use tonic::{body::Body, Code, Status};
use tower::{Layer, Service};

use crate::api::status;

#[derive(Debug, Clone, Copy, Default)]
pub struct DetailsLayer;

impl<S> Layer<S> for DetailsLayer {
    type Service = Details<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Details { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Details<S> {
    inner: S,
}

impl<S> Service<Request<Body>> for Details<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Detailed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        Detailed {
            inner: Box::pin(self.inner.call(request)),
        }
    }
}

pub struct Detailed<F> {
    inner: Pin<Box<F>>,
}

impl<F, E> Future for Detailed<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut response = std::task::ready!(self.inner.as_mut().poll(cx))?;
        if response.headers().contains_key(Status::GRPC_STATUS) {
            add_details(response.headers_mut());
            return Poll::Ready(Ok(response));
        }
        Poll::Ready(Ok(
            response.map(|body| Body::new(WithDetails { inner: body }))
        ))
    }
}

/// Adds the details of the error status in `headers`, when it has none.
fn add_details(headers: &mut HeaderMap) {
    if headers.contains_key(Status::GRPC_STATUS_DETAILS) {
        return;
    }
    let Some(found) = Status::from_header_map(headers) else {
        return;
    };
    if found.code() == Code::Ok {
        return;
    }
    let detailed = status::error(found.code(), found.message());
    // Writes grpc-status, grpc-message and grpc-status-details-bin; the
    // message is tonic's own percent-encoding of a valid string, so this
    // cannot fail, and if it did the headers would stay as they were.
    let mut written = HeaderMap::new();
    if detailed.add_header(&mut written).is_ok() {
        for name in [
            Status::GRPC_STATUS,
            Status::GRPC_MESSAGE,
            Status::GRPC_STATUS_DETAILS,
        ] {
            match written.remove(&name) {
                Some(value) => headers.insert(name, value),
                None => headers.remove(&name),
            };
        }
    }
}

/// A response body whose trailers get the details of their error status.
struct WithDetails {
    inner: Body,
}

impl http_body::Body for WithDetails {
    type Data = tonic::codegen::Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let frame = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        Poll::Ready(frame.map(|f| {
            f.map(|f| match f.into_trailers() {
                Ok(mut trailers) => {
                    add_details(&mut trailers);
                    Frame::trailers(trailers)
                }
                Err(f) => f,
            })
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn an_error_without_details_gets_its_code_and_message() {
        let mut headers = HeaderMap::new();
        Status::unimplemented("no such method: a b")
            .add_header(&mut headers)
            .unwrap();
        add_details(&mut headers);
        let status = Status::from_header_map(&headers).unwrap();
        assert_eq!(status.message(), "no such method: a b");
        let inner = tonic_types::pb::Status::decode(status.details()).unwrap();
        assert_eq!(inner.code, Code::Unimplemented as i32);
        assert_eq!(inner.message, "no such method: a b");
    }

    #[test]
    fn success_and_existing_details_are_left_alone() {
        let mut ok = HeaderMap::new();
        ok.insert(Status::GRPC_STATUS, "0".parse().unwrap());
        add_details(&mut ok);
        assert_eq!(ok.len(), 1);

        let mut detailed = HeaderMap::new();
        let original = status::error(Code::NotFound, "gone");
        original.add_header(&mut detailed).unwrap();
        let before = detailed.clone();
        add_details(&mut detailed);
        assert_eq!(detailed, before);
    }
}
