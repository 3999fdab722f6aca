//! Connections kept between the uses of a hot path.
//!
//! sqlx 0.8 tests every connection given back to its pool with a round
//! trip (a `Sync` message, see `PoolConnection::return_to_pool`) in a task
//! spawned for it, and offers no setting to skip that. On the paths that
//! run one short statement group after another (a group of point reads, a
//! commit group of single calls) that test is one more round trip and one
//! more task and wake-up per group. So those paths take a connection from a
//! small stash and put it back there after a use that ended cleanly
//! (nothing left unread, no transaction open). A use that failed or was
//! dropped half-way never comes back: its connection goes back to the pool
//! the usual way, where the test flushes or evicts it.
//!
//! A held connection still counts against the pool's size; the stash keeps
//! at most a few. [`Held::release`] hands them back to the pool when it
//! closes, so that they close with it.

use std::sync::{Arc, Mutex, PoisonError};

use sqlx::{pool::PoolConnection, Connection, PgPool, Postgres};

/// A stash of at most `keep` idle connections of `pool`.
#[derive(Clone, Debug)]
pub(super) struct Held {
    pool: PgPool,
    keep: usize,
    stash: Arc<Mutex<Vec<PoolConnection<Postgres>>>>,
}

impl Held {
    pub(super) fn new(pool: PgPool, keep: usize) -> Self {
        Self {
            pool,
            keep,
            stash: Arc::default(),
        }
    }

    /// A held connection, or one acquired from the pool when none is.
    pub(super) async fn take(&self) -> Result<PoolConnection<Postgres>, sqlx::Error> {
        let held = self.stash().pop();
        match held {
            Some(conn) => Ok(conn),
            None => self.pool.acquire().await,
        }
    }

    /// Keeps `conn` for the next [`Held::take`]. Only for a connection whose
    /// use ended cleanly: every statement finished and no transaction open.
    pub(super) fn put_back(&self, conn: PoolConnection<Postgres>) {
        if conn.is_in_transaction() {
            // Not a clean end after all: the pool's test rolls it back.
            return;
        }
        // Checked under the lock: [`Held::release`] runs after the pool is
        // marked closed, so no connection is kept past it.
        let mut stash = self.stash();
        if !self.pool.is_closed() && stash.len() < self.keep {
            stash.push(conn);
        }
    }

    /// Gives every held connection back to the pool. Call it after the pool
    /// is marked closed (`PgPool::close` marks it before its first await).
    pub(super) fn release(&self) {
        self.stash().clear();
    }

    fn stash(&self) -> std::sync::MutexGuard<'_, Vec<PoolConnection<Postgres>>> {
        // The stash holds only idle connections; a panic while it was locked
        // cannot have left one half-used.
        self.stash.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
