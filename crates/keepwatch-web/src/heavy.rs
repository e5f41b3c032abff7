//! Heavy requests (replay windows, exports, verifications, searches) take a permit from one
//! small pool, so that a few callers asking for big recordings cannot take all the CPU,
//! disk and memory from everyone else and from the SSH sessions. A request that finds no
//! permit waits a bounded time in a bounded queue, then gets 503 with `Retry-After`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::ApiError;

/// The pool's size and queue (`keepwatch.toml` `[limits]`).
#[derive(Debug, Clone)]
pub struct HeavyLimits {
    /// Heavy requests served at once.
    pub permits: usize,
    /// How long a request waits for a permit before it is answered 503.
    pub wait: Duration,
    /// Requests that may wait at once; more are answered 503 straight away.
    pub max_waiting: usize,
}

impl Default for HeavyLimits {
    fn default() -> Self {
        HeavyLimits { permits: 4, wait: Duration::from_secs(5), max_waiting: 64 }
    }
}

pub(crate) struct Heavy {
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    limits: HeavyLimits,
}

/// Held while a heavy request runs.
pub(crate) type HeavyPermit = OwnedSemaphorePermit;

impl Heavy {
    pub(crate) fn new(limits: HeavyLimits) -> Self {
        Heavy {
            permits: Arc::new(Semaphore::new(limits.permits.max(1))),
            waiting: AtomicUsize::new(0),
            limits,
        }
    }

    /// A permit for one heavy request (`what` names it in the refusal).
    ///
    /// # Errors
    /// 503 with `Retry-After` when none came within the wait, or too many already wait.
    pub(crate) async fn permit(&self, what: &str) -> Result<HeavyPermit, ApiError> {
        if let Ok(p) = self.permits.clone().try_acquire_owned() {
            return Ok(p);
        }
        let queued = Queued::enter(&self.waiting);
        if queued.ahead >= self.limits.max_waiting {
            return Err(self.busy(what));
        }
        match tokio::time::timeout(self.limits.wait, self.permits.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(self.busy(what)),
        }
    }

    fn busy(&self, what: &str) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the server is busy with other replays, exports, verifications and searches; \
                 {what} was not started, try again shortly"
            ),
        );
        e.retry_after = Some(self.limits.wait.as_secs().max(1));
        e
    }
}

/// One place in the queue, given back when the wait ends either way.
struct Queued<'a> {
    waiting: &'a AtomicUsize,
    ahead: usize,
}

impl<'a> Queued<'a> {
    fn enter(waiting: &'a AtomicUsize) -> Self {
        let ahead = waiting.fetch_add(1, Ordering::SeqCst);
        Queued { waiting, ahead }
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 10: beyond the permits, requests wait the bounded time and are refused 503 with
    /// Retry-After; beyond the queue they are refused at once.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_full_pool_answers_503_after_the_wait() {
        let h =
            Heavy::new(HeavyLimits { permits: 2, wait: Duration::from_secs(3), max_waiting: 1 });
        let a = h.permit("replay").await.unwrap();
        let _b = h.permit("replay").await.unwrap();
        let started = tokio::time::Instant::now();
        let e = h.permit("replay").await.unwrap_err();
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.retry_after, Some(3));
        assert_eq!(started.elapsed(), Duration::from_secs(3), "waited the bounded time");
        // One waits; the next finds the queue full and is refused without waiting.
        let waiter = h.permit("export");
        tokio::pin!(waiter);
        assert!(futures::poll!(waiter.as_mut()).is_pending());
        let at = tokio::time::Instant::now();
        assert!(h.permit("search").await.is_err());
        assert_eq!(at.elapsed(), Duration::ZERO, "refused at once");
        // A permit given back goes to the one waiting.
        drop(a);
        assert!(waiter.await.is_ok());
    }
}
