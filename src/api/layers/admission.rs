//! The global concurrency limit: at most N clvd calls run at once across
//! all connections, and a call beyond that is refused at once with
//! RESOURCE_EXHAUSTED (load shedding) instead of waiting in a queue that
//! grows with the overload. Health checks and reflection are not counted.
//!
//! Fairness: one caller holds at most its share of the N slots (by default
//! half), so that one client's idle or slow streams cannot starve everyone
//! else. A caller is its API key when authentication is on (the guard names
//! it, see [`CallerKey`]); otherwise its connection (the peer address).
//!
//! A call's slot ([`CallSlot`]) is handed to the request so that the
//! [`detach`](super::detach) layer can keep it until the handler's work has
//! really ended, even when the caller left earlier.
//!
//! tower's `ConcurrencyLimit` + `LoadShed` decide in `poll_ready`, before the
//! request (and so its path and caller) is seen; a semaphore tried in `call`
//! lets the limit apply to clvd's own methods only, per caller.

use std::{
    collections::HashMap,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use futures::future::{ready, Either, Ready};
use http::{Request, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::{
    body::Body,
    transport::server::{TcpConnectInfo, TlsConnectInfo},
    Status,
};
use tower::{Layer, Service};

use super::refuse;
use crate::grpc_method::GrpcMethod;

/// The authenticated caller, put in the request's extensions by the guard:
/// the SHA-256 of its API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallerKey(pub [u8; 32]);

/// Who holds slots: an API key, or (without authentication) a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Caller {
    Key([u8; 32]),
    Peer(SocketAddr),
    /// Neither is known (not a TCP connection): one shared share.
    Unknown,
}

impl Caller {
    fn of(request: &Request<Body>) -> Self {
        let ext = request.extensions();
        if let Some(CallerKey(key)) = ext.get::<CallerKey>() {
            return Caller::Key(*key);
        }
        ext.get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr)
            .or_else(|| {
                ext.get::<TlsConnectInfo<TcpConnectInfo>>()
                    .and_then(|i| i.get_ref().remote_addr())
            })
            .map_or(Caller::Unknown, Caller::Peer)
    }
}

/// The shared state of the limit.
#[derive(Debug)]
struct Slots {
    semaphore: Arc<Semaphore>,
    limit: usize,
    /// Most slots one caller may hold.
    per_caller: usize,
    share_percent: u8,
    /// Slots held, per caller that holds any.
    held: Mutex<HashMap<Caller, usize>>,
    /// When a call last ended, or the last slot was taken: the limit is
    /// stalled when every slot has been held since longer than a bound.
    last_change: Mutex<Instant>,
}

impl Slots {
    fn touch(&self) {
        if let Ok(mut last) = self.last_change.lock() {
            *last = Instant::now();
        }
    }

    fn admit(self: &Arc<Self>, caller: Caller) -> Result<CallSlot, Status> {
        // A poisoned lock only means a panic elsewhere mid-update of a
        // counter map: keep counting with it.
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let mine = held.get(&caller).copied().unwrap_or(0);
        if mine >= self.per_caller {
            return Err(Status::resource_exhausted(format!(
                "this caller (its API key, or its connection without authentication) already \
                 holds {mine} of clvd's {} call slots, its share ({}%); retry when one of its \
                 calls has ended",
                self.limit, self.share_percent
            )));
        }
        let permit = self.semaphore.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "clvd is at its limit of {} concurrent calls; retry with backoff",
                self.limit
            ))
        })?;
        held.insert(caller, mine + 1);
        if self.semaphore.available_permits() == 0 {
            self.touch();
        }
        Ok(CallSlot {
            _held: Arc::new(Held {
                slots: self.clone(),
                caller,
                _permit: permit,
            }),
        })
    }

    fn release(&self, caller: Caller) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        match held.get_mut(&caller) {
            Some(n) if *n > 1 => *n -= 1,
            _ => {
                held.remove(&caller);
            }
        }
        drop(held);
        self.touch();
    }
}

/// One admitted call's slot; freed when the last clone is dropped (the
/// response future's and the handler task's).
#[derive(Debug, Clone)]
pub struct CallSlot {
    _held: Arc<Held>,
}

#[derive(Debug)]
struct Held {
    slots: Arc<Slots>,
    caller: Caller,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.slots.release(self.caller);
    }
}

/// What health checks read of the limit.
#[derive(Debug, Clone)]
pub struct AdmissionState {
    slots: Option<Arc<Slots>>,
}

impl AdmissionState {
    /// Every slot is held and none has been freed (nor the last one taken)
    /// for at least `bound`: the server admits no work.
    pub fn stalled_for(&self, bound: Duration) -> bool {
        let Some(slots) = &self.slots else {
            return false;
        };
        let last = *slots.last_change.lock().unwrap_or_else(|p| p.into_inner());
        slots.semaphore.available_permits() == 0 && last.elapsed() >= bound
    }
}

#[derive(Debug, Clone)]
pub struct AdmissionLayer {
    /// `None`: no limit.
    slots: Option<Arc<Slots>>,
}

impl AdmissionLayer {
    /// `limit` calls at once (0 means no limit), of which one caller may
    /// hold `share_percent` % (1 to 100; at least one call).
    pub fn new(limit: usize, share_percent: u8) -> Self {
        let share_percent = share_percent.clamp(1, 100);
        Self {
            slots: (limit > 0).then(|| {
                Arc::new(Slots {
                    semaphore: Arc::new(Semaphore::new(limit)),
                    limit,
                    per_caller: (limit * usize::from(share_percent) / 100).max(1),
                    share_percent,
                    held: Mutex::new(HashMap::new()),
                    last_change: Mutex::new(Instant::now()),
                })
            }),
        }
    }

    pub fn state(&self) -> AdmissionState {
        AdmissionState {
            slots: self.slots.clone(),
        }
    }
}

impl<S> Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Admission {
            inner,
            slots: self.slots.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Admission<S> {
    inner: S,
    slots: Option<Arc<Slots>>,
}

impl<S> Service<Request<Body>> for Admission<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response<Body>, S::Error>>, Admitted<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let slot = match &self.slots {
            Some(slots) if GrpcMethod::of(request.uri().path()).is_clvd() => {
                match slots.admit(Caller::of(&request)) {
                    Ok(slot) => Some(slot),
                    Err(status) => return Either::Left(ready(Ok(refuse(status)))),
                }
            }
            _ => None,
        };
        if let Some(slot) = &slot {
            request.extensions_mut().insert(slot.clone());
        }
        Either::Right(Admitted {
            inner: Box::pin(self.inner.call(request)),
            _slot: slot,
        })
    }
}

/// A running call holding its slot until the handler has answered (and,
/// through the clone in the request, until its work has ended).
pub struct Admitted<F> {
    inner: Pin<Box<F>>,
    _slot: Option<CallSlot>,
}

impl<F: Future> Future for Admitted<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(port: u16) -> Caller {
        Caller::Peer(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    #[test]
    fn one_caller_holds_at_most_its_share_and_others_get_the_rest() {
        let layer = AdmissionLayer::new(4, 50);
        let slots = layer.slots.clone().unwrap();
        let a1 = slots.admit(peer(1)).unwrap();
        let _a2 = slots.admit(peer(1)).unwrap();
        let refused = slots.admit(peer(1)).unwrap_err();
        assert!(refused.message().contains("share (50%)"), "{refused:?}");
        let _b1 = slots.admit(peer(2)).unwrap();
        let _b2 = slots.admit(peer(2)).unwrap();
        let full = slots.admit(peer(3)).unwrap_err();
        assert!(full.message().contains("limit of 4"), "{full:?}");
        // A slot freed is a slot its caller may take again.
        drop(a1);
        slots.admit(peer(1)).unwrap();
    }

    #[test]
    fn the_limit_is_stalled_only_when_every_slot_is_held_past_the_bound() {
        let layer = AdmissionLayer::new(2, 100);
        let state = layer.state();
        let slots = layer.slots.clone().unwrap();
        let _a = slots.admit(peer(1)).unwrap();
        assert!(!state.stalled_for(Duration::ZERO), "a slot is free");
        let b = slots.admit(peer(1)).unwrap();
        assert!(state.stalled_for(Duration::ZERO));
        assert!(!state.stalled_for(Duration::from_secs(3600)));
        drop(b);
        assert!(!state.stalled_for(Duration::ZERO));
        assert!(!AdmissionLayer::new(0, 50)
            .state()
            .stalled_for(Duration::ZERO));
    }
}
