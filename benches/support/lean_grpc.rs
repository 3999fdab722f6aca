//! A lean gRPC load generator for the benches (issue 15, fourth session):
//! unary calls over HTTP/2 on TCP with the `h2` crate directly, without
//! tonic's channel (its tower buffer task, per-call service stack and
//! body adapters), so that the bench's own client takes less of the two
//! shared cores.
//!
//! It asks the server exactly what a tonic client asks: a POST to the
//! method's path with `content-type: application/grpc`, `te: trailers` and
//! a `user-agent`, the request message encoded with prost in one
//! length-prefixed gRPC frame (uncompressed), and it checks every answer:
//! HTTP status 200, `grpc-status: 0` (in the trailers, or in the headers of
//! a trailers-only answer), one uncompressed frame of the announced length,
//! decoded with prost. Any other answer is an error, which fails the bench.
//!
//! It runs on threads of its own ([`LeanGenerator`]), each with a
//! one-thread runtime, its own connections and its own share of the
//! workers: the workers and their connections' tasks wake each other on
//! one thread, without cross-thread wakeups (measured in
//! docs/benchmarks.md, issue 15, fourth session).
//!
//! Hand-rolled on `h2` because no kept crate offers a gRPC client leaner
//! than tonic; the framing is the gRPC wire format's five-byte prefix.

use anyhow::{bail, Context};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{
    header::{CONTENT_TYPE, TE, USER_AGENT},
    uri::{Authority, PathAndQuery, Scheme},
    HeaderMap, HeaderValue, Method, Request, StatusCode, Uri,
};
use std::{future::Future, sync::Arc};
use tokio::{net::TcpStream, runtime::Runtime};

/// The lean client's threads: each a one-thread runtime with its own
/// connections. [`LeanGenerator::run`] runs a load on every thread.
pub struct LeanGenerator {
    shards: Vec<Shard>,
}

struct Shard {
    runtime: Arc<Runtime>,
    channels: Vec<LeanChannel>,
}

impl Drop for LeanGenerator {
    /// A runtime may not be dropped (which waits for its blocking pool)
    /// inside the bench's async code: each is shut down in the background.
    fn drop(&mut self) {
        for Shard { runtime, channels } in self.shards.drain(..) {
            drop(channels);
            if let Ok(runtime) = Arc::try_unwrap(runtime) {
                runtime.shutdown_background();
            }
        }
    }
}

impl LeanGenerator {
    /// `connections` HTTP/2 connections to `endpoint`, spread round-robin
    /// over `threads` one-thread runtimes (at least one connection each).
    /// Call from within a multi-thread tokio runtime.
    pub async fn start(endpoint: &str, connections: usize, threads: usize) -> anyhow::Result<Self> {
        let threads = threads.clamp(1, connections.max(1));
        let mut shards = Vec::with_capacity(threads);
        for shard in 0..threads {
            let runtime = Arc::new(
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?,
            );
            let mine = (shard..connections.max(1)).step_by(threads).count();
            let (endpoint, on) = (endpoint.to_owned(), runtime.clone());
            let channels =
                tokio::task::spawn_blocking(move || on.block_on(connect(&endpoint, mine)))
                    .await??;
            shards.push(Shard { runtime, channels });
        }
        Ok(Self { shards })
    }

    /// Threads the load runs on.
    pub fn threads(&self) -> usize {
        self.shards.len()
    }

    /// Runs `load(shard, channels)` on every thread at once, each with that
    /// thread's connections, to its end; tasks it spawns run on that
    /// thread. The answers come in shard order.
    pub async fn run<F, Fut, T>(&self, load: F) -> anyhow::Result<Vec<T>>
    where
        F: Fn(usize, Vec<LeanChannel>) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = anyhow::Result<T>>,
        T: Send + 'static,
    {
        let mut threads = Vec::with_capacity(self.shards.len());
        for (i, shard) in self.shards.iter().enumerate() {
            let (runtime, channels, load) =
                (shard.runtime.clone(), shard.channels.clone(), load.clone());
            threads.push(tokio::task::spawn_blocking(move || {
                runtime.block_on(load(i, channels))
            }));
        }
        let mut out = Vec::with_capacity(threads.len());
        for t in threads {
            out.push(t.await??);
        }
        Ok(out)
    }
}

/// The workers (numbered `0..concurrency`) that run on thread `shard` of
/// `threads`, each with its connection: worker w runs on thread
/// w % threads, on that thread's connections in turn.
pub fn workers_of(
    shard: usize,
    threads: usize,
    concurrency: usize,
    channels: &[LeanChannel],
) -> impl Iterator<Item = (usize, LeanChannel)> + '_ {
    (shard..concurrency)
        .step_by(threads)
        .enumerate()
        .map(|(i, w)| (w, channels[i % channels.len()].clone()))
}

/// One HTTP/2 connection to the server; clone it per worker (clones share
/// the connection, as tonic's channels do).
#[derive(Clone)]
pub struct LeanChannel {
    send: h2::client::SendRequest<Bytes>,
    authority: Authority,
}

/// `n` HTTP/2 connections to `endpoint` (`http://host:port`), each driven
/// by its own task on the current runtime. TCP_NODELAY is set, as tonic's
/// client sets it by default.
pub async fn connect(endpoint: &str, n: usize) -> anyhow::Result<Vec<LeanChannel>> {
    let uri: Uri = endpoint.parse().context("endpoint")?;
    let authority = uri
        .authority()
        .context("the endpoint names no host and port")?
        .clone();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let tcp = TcpStream::connect(authority.as_str())
            .await
            .with_context(|| format!("connect to {authority}"))?;
        tcp.set_nodelay(true)?;
        let (send, connection) = h2::client::handshake(tcp).await?;
        tokio::spawn(async move {
            // The connection ends when every handle is dropped, or on error
            // (which the next call reports).
            let _ = connection.await;
        });
        out.push(LeanChannel {
            send,
            authority: authority.clone(),
        });
    }
    Ok(out)
}

/// A gRPC method's path, e.g. `/clv.v1.ScoringService/GetChurnRisk`, with
/// its URI built once.
#[derive(Clone)]
pub struct GrpcPath {
    uri: Uri,
}

impl LeanChannel {
    /// The URI of `path` on this channel's server, built once per worker.
    pub fn path(&self, path: &'static str) -> GrpcPath {
        let uri = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(self.authority.clone())
            .path_and_query(PathAndQuery::from_static(path))
            .build()
            .expect("a static gRPC path is a valid URI");
        GrpcPath { uri }
    }

    /// One unary call: `request` encoded and sent, the answer checked and
    /// decoded.
    pub async fn unary<Req: prost::Message, Resp: prost::Message + Default>(
        &mut self,
        method: &GrpcPath,
        request: &Req,
    ) -> anyhow::Result<Resp> {
        let len = request.encoded_len();
        let mut body = BytesMut::with_capacity(5 + len);
        body.put_u8(0);
        body.put_u32(u32::try_from(len).context("request too large")?);
        request.encode(&mut body)?;

        let mut head = Request::new(());
        *head.method_mut() = Method::POST;
        *head.uri_mut() = method.uri.clone();
        let headers = head.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert(TE, HeaderValue::from_static("trailers"));
        headers.insert(USER_AGENT, HeaderValue::from_static("clvd-bench-lean/h2"));

        std::future::poll_fn(|cx| self.send.poll_ready(cx)).await?;
        let (response, mut stream) = self.send.send_request(head, false)?;
        stream.send_data(body.freeze(), true)?;
        let response = response.await?;
        let (parts, mut recv) = response.into_parts();
        if parts.status != StatusCode::OK {
            bail!("HTTP status {}", parts.status);
        }
        // A trailers-only answer carries grpc-status in its headers.
        if parts.headers.contains_key("grpc-status") {
            check_status(&parts.headers)?;
            bail!("a trailers-only answer with grpc-status 0 carries no message");
        }
        let mut message: Option<Bytes> = None;
        let mut gathered = BytesMut::new();
        while let Some(chunk) = recv.data().await {
            let chunk = chunk?;
            let _ = recv.flow_control().release_capacity(chunk.len());
            match message.take() {
                None if gathered.is_empty() => message = Some(chunk),
                Some(first) => {
                    gathered.extend_from_slice(&first);
                    gathered.extend_from_slice(&chunk);
                }
                None => gathered.extend_from_slice(&chunk),
            }
        }
        let trailers = recv.trailers().await?.context("no trailers")?;
        check_status(&trailers)?;
        let mut frame = match message {
            Some(m) => m,
            None => gathered.freeze(),
        };
        if frame.len() < 5 {
            bail!("an answer of {} bytes has no gRPC frame", frame.len());
        }
        if frame.get_u8() != 0 {
            bail!("a compressed answer (not asked for)");
        }
        let announced = frame.get_u32() as usize;
        if announced != frame.len() {
            bail!(
                "the gRPC frame announces {announced} bytes, {} came",
                frame.len()
            );
        }
        Ok(Resp::decode(frame)?)
    }
}

/// `grpc-status` 0, or an error with the status and message.
fn check_status(headers: &HeaderMap) -> anyhow::Result<()> {
    let status = headers
        .get("grpc-status")
        .context("no grpc-status in the trailers")?;
    if status != "0" {
        let message = headers
            .get("grpc-message")
            .and_then(|m| m.to_str().ok())
            .unwrap_or("");
        bail!("grpc-status {status:?}: {message}");
    }
    Ok(())
}
