//! Gauges: values that go up and down. A plain one is an atomic set in place;
//! the ones that serving threads move on every request are striped over
//! per-shard slots ([`StripedGauge`]) and summed when read.

use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crossbeam_utils::CachePadded;
use prometheus_client::encoding::{EncodeGaugeValue, GaugeValueEncoder, MetricEncoder};

use super::family::Value;
use crate::runtime::shard::{self, Slot};

/// A gauge that serving threads move on every request, kept as one slot per
/// thread ([`shard::Slot`]) and summed when read. A single atomic that every
/// core adds to moves its cache line from core to core on each add; with
/// slots, each line stays with the thread that writes it and only a read (a
/// scrape) gathers them. A value another thread takes back (the capture writer
/// releasing a shard's queued bytes) can be taken from the slot it was added
/// to, so that slot stays the shard's own count.
#[derive(Debug)]
pub struct StripedGauge {
    /// Each slot padded to a line pair of its own (see [`shard::SLOTS`]).
    slots: [CachePadded<AtomicI64>; shard::SLOTS],
}

impl Default for StripedGauge {
    fn default() -> Self {
        StripedGauge {
            slots: std::array::from_fn(|_| CachePadded::default()),
        }
    }
}

impl StripedGauge {
    /// Adds to the running thread's slot.
    pub fn add(&self, n: i64) {
        self.add_at(Slot::current(), n);
    }

    pub fn add_at(&self, slot: Slot, n: i64) {
        self.slots[slot.index()].fetch_add(n, Ordering::Relaxed);
    }

    pub fn get_at(&self, slot: Slot) -> i64 {
        self.slots[slot.index()].load(Ordering::Relaxed)
    }

    /// The sum over all slots.
    pub fn get(&self) -> i64 {
        self.slots.iter().map(|s| s.load(Ordering::Relaxed)).sum()
    }
}

/// A gauge in a family, set in place (the rollout step).
impl Value for AtomicI64 {
    fn encode(&self, encoder: MetricEncoder) -> fmt::Result {
        encode(self.load(Ordering::Relaxed), encoder)
    }
}

/// A share between 0 and 1 (a version's part of its route's traffic), kept as
/// the bits of an `f64`.
#[derive(Debug, Default)]
pub(super) struct Share(AtomicU64);

impl Share {
    pub(super) fn set(&self, share: f64) {
        self.0.store(share.to_bits(), Ordering::Relaxed);
    }
}

impl Value for Share {
    fn encode(&self, encoder: MetricEncoder) -> fmt::Result {
        let share = f64::from_bits(self.0.load(Ordering::Relaxed));
        encode(ShareValue(share), encoder)
    }
}

/// A share as the exposition has always written it: whole values (0 and 1,
/// the usual ones) as integers, not `1.0`; others in the shortest form that
/// reads back the same.
struct ShareValue(f64);

impl EncodeGaugeValue for ShareValue {
    fn encode(&self, encoder: &mut GaugeValueEncoder) -> fmt::Result {
        let v = self.0;
        if v.fract() == 0.0 && v.abs() < 9_007_199_254_740_992.0 {
            (v as i64).encode(encoder)
        } else {
            v.encode(encoder)
        }
    }
}

/// Writes one gauge sample.
pub(super) fn encode(v: impl EncodeGaugeValue, mut encoder: MetricEncoder) -> fmt::Result {
    encoder.encode_gauge(&v)
}
