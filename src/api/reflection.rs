//! Server reflection (v1 and v1alpha) that answers every request in-stream.
//!
//! The reflection protocol answers a request it cannot serve (an unknown
//! symbol, file or extension) with an `ErrorResponse` message and keeps the
//! stream open; grpcurl and other tools expect that. tonic-reflection 0.14
//! (checked up to 0.14.9) instead ends the whole stream with that status:
//! its per-stream task sends `Err(status)` and returns. This wrapper keeps
//! tonic-reflection for the lookups and hands it each request of a stream
//! as a call of its own (one message in, one out, in process); an error
//! status of that call becomes the request's `ErrorResponse`, and the
//! stream goes on. Hand-written only because no released tonic-reflection
//! answers in-stream; drop it when one does.

use std::{convert::Infallible, pin::Pin};

use futures::{Stream, StreamExt};
use http_body_util::Full;
use prost::{bytes::Bytes, Message};
use tonic::{body::Body, codegen::Service, Request, Response, Status, Streaming};
use tonic_prost::ProstDecoder;

type Reply<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// One message in the gRPC wire framing (uncompressed).
fn framed(message: &impl Message) -> Bytes {
    let len = message.encoded_len();
    let mut buf = Vec::with_capacity(5 + len);
    buf.push(0);
    // A reflection request is far below 4 GiB (the server's decoding limit).
    buf.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    message.encode_raw(&mut buf);
    buf.into()
}

/// Calls `service` at `path` with one message and returns its one answer,
/// or the status the call ended with.
async fn call_once<S, Req, Resp>(
    mut service: S,
    path: &'static str,
    request: &Req,
) -> Result<Resp, Status>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
    Req: Message,
    Resp: Message + Default + Send + 'static,
{
    let http_request = http::Request::builder()
        .method(http::Method::POST)
        .uri(path)
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .body(Body::new(Full::new(framed(request))))
        .map_err(|e| super::status::Failure::from(e).into_status())?;
    std::future::poll_fn(|cx| service.poll_ready(cx))
        .await
        .map_err(|e: Infallible| -> Status { match e {} })?;
    let response = service
        .call(http_request)
        .await
        .map_err(|e: Infallible| -> Status { match e {} })?;
    let (parts, body) = response.into_parts();
    if let Some(status) = Status::from_header_map(&parts.headers) {
        if status.code() != tonic::Code::Ok {
            return Err(status);
        }
    }
    let mut answers =
        Streaming::<Resp>::new_response(ProstDecoder::default(), body, parts.status, None, None);
    answers
        .message()
        .await?
        .ok_or_else(|| super::status::error(tonic::Code::Internal, "reflection gave no answer"))
}

macro_rules! in_stream_reflection {
    ($name:ident, $version:ident, $path:literal) => {
        /// Reflection of this version that answers errors in-stream (see the
        /// module documentation).
        #[derive(Clone)]
        pub struct $name<S> {
            inner: S,
        }

        impl<S> $name<S> {
            /// Wraps the server that tonic-reflection built.
            pub fn new(inner: S) -> Self {
                Self { inner }
            }
        }

        #[tonic::async_trait]
        impl<S> tonic_reflection::pb::$version::server_reflection_server::ServerReflection
            for $name<S>
        where
            S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
                + Clone
                + Send
                + Sync
                + 'static,
            S::Future: Send,
        {
            type ServerReflectionInfoStream =
                Reply<tonic_reflection::pb::$version::ServerReflectionResponse>;

            async fn server_reflection_info(
                &self,
                request: Request<
                    Streaming<tonic_reflection::pb::$version::ServerReflectionRequest>,
                >,
            ) -> Result<Response<Self::ServerReflectionInfoStream>, Status> {
                use tonic_reflection::pb::$version::{
                    server_reflection_response::MessageResponse, ErrorResponse,
                    ServerReflectionResponse,
                };
                let inner = self.inner.clone();
                let answers = request.into_inner().then(move |next| {
                    let inner = inner.clone();
                    async move {
                        // A broken request stream ends the answers.
                        let asked = next?;
                        match call_once::<_, _, ServerReflectionResponse>(inner, $path, &asked)
                            .await
                        {
                            Ok(answer) => Ok(answer),
                            Err(status) => Ok(ServerReflectionResponse {
                                valid_host: asked.host.clone(),
                                original_request: Some(asked),
                                message_response: Some(MessageResponse::ErrorResponse(
                                    ErrorResponse {
                                        error_code: status.code() as i32,
                                        error_message: status.message().to_owned(),
                                    },
                                )),
                            }),
                        }
                    }
                });
                Ok(Response::new(Box::pin(answers)))
            }
        }
    };
}

in_stream_reflection!(
    InStreamReflectionV1,
    v1,
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
);
in_stream_reflection!(
    InStreamReflectionV1alpha,
    v1alpha,
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
);
