//! Counters: totals that only grow. A counter is a plain `AtomicU64` that the
//! code counting adds to with one relaxed add (no lock, no label lookup); a
//! scrape reads it. Its name is declared without the `_total` that the
//! encoder adds to the HELP, TYPE and sample lines.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::{MetricEncoder, NoLabelSet};

use super::family::Value;

/// A counter in a family (tokens, feedback, promotions and rollbacks).
impl Value for AtomicU64 {
    fn encode(&self, encoder: MetricEncoder) -> fmt::Result {
        encode(self.load(Ordering::Relaxed), encoder)
    }
}

/// Writes one counter sample.
pub(super) fn encode(v: u64, mut encoder: MetricEncoder) -> fmt::Result {
    encoder.encode_counter::<NoLabelSet, u64, u64>(&v, None)
}
