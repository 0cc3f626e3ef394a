//! The budget for request bodies in flight: how many bytes of request bodies
//! all connections together may hold while they are read and handled
//! (`server.body_budget_bytes`). Without it, a client allowed
//! `server.max_body_bytes` per request could hold that many times the number
//! of connections, or of HTTP/2 streams, it opens.
//!
//! A body reserves its declared length before a byte of it is read, or grows
//! its reservation chunk by chunk when no length is declared; the reservation
//! is released when it is dropped, after the handler is done with the body.
//! A request that does not fit is answered 503 at once and counted. This
//! must never wait for room: a waiting request would hold its connection and
//! what it has read so far.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::metrics::{BodyBudgetReading, ReadBodyBudget};

pub struct BodyBudget {
    limit: u64,
    used: AtomicU64,
    /// Requests refused because their body did not fit.
    rejected: AtomicU64,
}

impl BodyBudget {
    pub fn new(limit: u64) -> BodyBudget {
        BodyBudget {
            limit,
            used: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        }
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes reserved now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// An empty reservation, to be grown as a body arrives.
    pub fn empty(self: &Arc<Self>) -> Reserved {
        Reserved {
            budget: Some(self.clone()),
            bytes: 0,
        }
    }

    /// Reserves `n` bytes, or counts the refusal and returns `None`.
    pub fn reserve(self: &Arc<Self>, n: u64) -> Option<Reserved> {
        let mut r = self.empty();
        r.grow(n).then_some(r)
    }

    fn take(&self, n: u64) -> bool {
        if n == 0 {
            return true;
        }
        let ok = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(n).filter(|&total| total <= self.limit)
            })
            .is_ok();
        if !ok {
            self.rejected.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }
}

/// What a scrape of `/metrics` shows of the budget.
impl ReadBodyBudget for BodyBudget {
    fn read(&self) -> BodyBudgetReading {
        BodyBudgetReading {
            used: self.used(),
            limit: self.limit(),
            rejected: self.rejected(),
        }
    }
}

/// Bytes held in a [`BodyBudget`] until dropped.
#[derive(Default)]
pub struct Reserved {
    budget: Option<Arc<BodyBudget>>,
    bytes: u64,
}

impl Reserved {
    /// Reserves `n` more bytes; false (and counted) when they do not fit,
    /// with what was reserved before still held.
    pub fn grow(&mut self, n: u64) -> bool {
        let Some(budget) = &self.budget else {
            return true;
        };
        if !budget.take(n) {
            return false;
        }
        self.bytes += n;
        true
    }

    /// Grows the reservation to at least `total` bytes.
    pub fn cover(&mut self, total: u64) -> bool {
        total <= self.bytes || self.grow(total - self.bytes)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.used.fetch_sub(self.bytes, Ordering::Relaxed);
        }
    }
}

impl std::fmt::Debug for Reserved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reserved({})", self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_fit_within_the_limit_and_are_returned_on_drop() {
        let budget = Arc::new(BodyBudget::new(100));
        let a = budget.reserve(60).expect("fits");
        assert!(budget.reserve(41).is_none(), "60 + 41 is over 100");
        assert_eq!(budget.rejected(), 1);
        let mut b = budget.empty();
        assert!(b.grow(30) && b.cover(40));
        assert!(!b.grow(1), "full");
        assert_eq!((budget.used(), b.bytes()), (100, 40));
        drop(a);
        assert_eq!(budget.used(), 40);
        assert!(b.cover(100));
        drop(b);
        assert_eq!(budget.used(), 0);
        assert_eq!(budget.rejected(), 2);
        let none = Reserved::default();
        assert_eq!(none.bytes(), 0);
    }
}
