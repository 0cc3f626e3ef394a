//! Latency histograms: fixed buckets, updated with atomics only, and summed
//! over a series' per-shard stripes when scraped. Observing never allocates,
//! locks or formats; the library writes the buckets, `+Inf`, sum and count.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{MetricEncoder, NoLabelSet};
use prometheus_client::metrics::exemplar::Exemplar;

/// Upper bounds, in seconds, shared by the latency histograms: fine steps under
/// 10 ms where gateway overhead lives, coarse ones up to the minutes a long
/// generation can take.
const LATENCY_BUCKETS: [f64; 18] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0, 300.0,
];

/// A histogram with fixed buckets, updated with atomics only.
#[derive(Debug)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last one is past every bound.
    counts: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_micros: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub(super) fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// Encodes the sum of `parts` as one histogram series.
    pub(super) fn encode_sum<'a>(
        parts: impl Iterator<Item = &'a Histogram> + Clone,
        mut encoder: MetricEncoder,
    ) -> fmt::Result {
        let mut buckets = [(f64::INFINITY, 0u64); LATENCY_BUCKETS.len() + 1];
        for (i, (bound, count)) in buckets.iter_mut().enumerate() {
            if let Some(b) = LATENCY_BUCKETS.get(i) {
                *bound = *b;
            }
            *count = parts
                .clone()
                .map(|h| h.counts[i].load(Ordering::Relaxed))
                .sum();
        }
        let count = buckets.iter().map(|(_, n)| n).sum();
        let micros: u64 = parts.map(|h| h.sum_micros.load(Ordering::Relaxed)).sum();
        encoder.encode_histogram(
            micros as f64 / 1e6,
            count,
            &buckets,
            None::<&HashMap<usize, Exemplar<NoLabelSet, f64>>>,
        )
    }
}
