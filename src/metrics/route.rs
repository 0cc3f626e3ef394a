//! The per-request series of one (route, version): requests by status and by
//! outcome, and the two latency histograms, striped over per-shard slots and
//! summed when scraped.
//!
//! Recording a request must stay a handful of relaxed atomic adds on the
//! calling thread's own slot: it must never build a label, search a map, take
//! a lock or allocate.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_utils::CachePadded;
use prometheus_client::encoding::DescriptorEncoder;

use super::histogram::Histogram;
use super::labels::{Outcome, Status};
use super::{counter, DURATION, OUTCOMES, REQUESTS, TTFT};
use crate::runtime::shard;

/// The per-request series of one (route, version), created once and held by
/// the routing target, so that finishing a request touches only atomics: no
/// label strings are built and no map is searched on the hot path. The counts
/// are kept per serving thread, as in [`super::StripedGauge`], and summed when
/// scraped.
pub struct RouteSeries {
    pub(super) route: String,
    pub(super) version: String,
    /// One slot per stripe, each padded to a line pair of its own (see
    /// [`crate::runtime::shard`]).
    stripes: Box<[CachePadded<Counts>]>,
}

/// One thread's counts of a [`RouteSeries`].
struct Counts {
    /// Requests by status code 100..=599; anything else lands in the last slot.
    statuses: Box<[AtomicU64]>,
    outcomes: [AtomicU64; Outcome::ALL.len()],
    duration: Histogram,
    ttft: Histogram,
}

impl Default for Counts {
    fn default() -> Self {
        Counts {
            statuses: (0..=OTHER_STATUS).map(|_| AtomicU64::new(0)).collect(),
            outcomes: std::array::from_fn(|_| AtomicU64::new(0)),
            duration: Histogram::default(),
            ttft: Histogram::default(),
        }
    }
}

const OTHER_STATUS: usize = 500;

impl RouteSeries {
    pub(super) fn new(route: &str, version: &str, stripes: usize) -> RouteSeries {
        RouteSeries {
            route: route.to_string(),
            version: version.to_string(),
            stripes: (0..stripes.max(1))
                .map(|_| CachePadded::default())
                .collect(),
        }
    }

    fn counts(&self) -> impl Iterator<Item = &Counts> + Clone {
        self.stripes.iter().map(|s| &**s)
    }

    /// Records one finished request.
    pub fn request_done(
        &self,
        status: u16,
        outcome: Outcome,
        total: Duration,
        ttft: Option<Duration>,
    ) {
        let slot = match status {
            100..=599 => (status - 100) as usize,
            _ => OTHER_STATUS,
        };
        let counts = &self.stripes[shard::slot(self.stripes.len())];
        counts.statuses[slot].fetch_add(1, Ordering::Relaxed);
        counts.outcomes[outcome as usize].fetch_add(1, Ordering::Relaxed);
        counts.duration.observe(total);
        if let Some(ttft) = ttft {
            counts.ttft.observe(ttft);
        }
    }

    fn labels(&self) -> [(&'static str, &str); 2] {
        [("route", &self.route), ("version", &self.version)]
    }
}

/// Encodes the four families of every route's series, in declaration order.
pub(super) fn encode(routes: &[Arc<RouteSeries>], e: &mut DescriptorEncoder) -> fmt::Result {
    let mut family = REQUESTS.declare(e)?;
    for r in routes {
        for i in 0..=OTHER_STATUS {
            let n: u64 = r
                .counts()
                .map(|c| c.statuses[i].load(Ordering::Relaxed))
                .sum();
            if n > 0 {
                let status = if i == OTHER_STATUS {
                    Status::Other
                } else {
                    Status::Code((i + 100) as u16)
                };
                let labels = (r.labels(), [("status", status)]);
                counter::encode(n, family.encode_family(&labels)?)?;
            }
        }
    }
    let mut family = OUTCOMES.declare(e)?;
    for r in routes {
        for (i, outcome) in Outcome::ALL.into_iter().enumerate() {
            let n: u64 = r
                .counts()
                .map(|c| c.outcomes[i].load(Ordering::Relaxed))
                .sum();
            if n > 0 {
                let labels = (r.labels(), [("outcome", outcome)]);
                counter::encode(n, family.encode_family(&labels)?)?;
            }
        }
    }
    let mut family = DURATION.declare(e)?;
    for r in routes {
        let labels = r.labels();
        Histogram::encode_sum(
            r.counts().map(|c| &c.duration),
            family.encode_family(&labels)?,
        )?;
    }
    let mut family = TTFT.declare(e)?;
    for r in routes {
        let labels = r.labels();
        Histogram::encode_sum(r.counts().map(|c| &c.ttft), family.encode_family(&labels)?)?;
    }
    Ok(())
}
