//! The data plane: a call to `/v1` is authenticated, its body read and
//! checked ([`request`]), routed to a model version ([`routing`]), forwarded
//! ([`upstream`]), and answered, its record kept in a [`call::Call`] and its
//! streamed answer teed into that record ([`body`]); [`handler`] runs these
//! steps.
//!
//! Invariant: nothing here waits on the database. Capture is a non-blocking
//! hand-off to a bounded queue; a full queue costs a record, never a request.
//! The proxy never imports the admin API, the feedback endpoint or the CLI:
//! `app` routes each request to one of them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub mod body;
pub mod call;
pub mod handler;
pub mod request;
pub mod routing;
pub mod upstream;

pub use handler::handle;

use crate::auth::Keys;
use crate::capture::CaptureQueue;
use crate::config::Config;
use crate::http1::budget::BodyBudget;
use crate::metrics::Metrics;

/// What every call on the data plane shares.
pub struct Proxy {
    pub config: Arc<Config>,
    /// Which version serves a call; rebuilt from the registry on every change.
    pub routing: routing::Routing,
    pub capture: CaptureQueue,
    pub metrics: Arc<Metrics>,
    pub keys: Arc<Keys>,
    /// Bytes of request bodies in flight, within `server.body_budget_bytes`.
    pub body_budget: Arc<BodyBudget>,
    draining: AtomicBool,
}

impl Proxy {
    pub fn new(
        config: Arc<Config>,
        routing: routing::Routing,
        capture: CaptureQueue,
        metrics: Arc<Metrics>,
        keys: Arc<Keys>,
        body_budget: Arc<BodyBudget>,
    ) -> Proxy {
        Proxy {
            config,
            routing,
            capture,
            metrics,
            keys,
            body_budget,
            draining: AtomicBool::new(false),
        }
    }

    /// From now on calls are told the gateway is shutting down.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}
