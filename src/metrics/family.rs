//! Families: the series of one metric keyed by label values that are only
//! known at run time (route, version, kind...), created on first use.
//!
//! Kept here rather than taken from the library, whose `Family` encodes its
//! series in hash order: these are written sorted by label values, so that
//! two scrapes of the same numbers give the same text. A family must never be
//! keyed by a user id or free text: each distinct value is a series kept for
//! the life of the process.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder, MetricEncoder};

/// A series value a family holds, and how the exposition reads it. The
/// family's type (counter or gauge) is its descriptor's; one impl per metric
/// type, beside that type.
pub(super) trait Value: Default + Send + Sync + 'static {
    fn encode(&self, encoder: MetricEncoder) -> fmt::Result;
}

/// Label values are joined with U+001F into one key, a character no label
/// value holds.
const SEPARATOR: &str = "\u{1f}";

/// A set of series of one metric, keyed by label values in declaration order.
#[derive(Debug)]
pub(super) struct Family<T> {
    labels: &'static [&'static str],
    series: RwLock<HashMap<String, Arc<T>>>,
}

impl<T: Value> Family<T> {
    pub(super) fn new(labels: &'static [&'static str]) -> Self {
        Family {
            labels,
            series: RwLock::new(HashMap::new()),
        }
    }

    /// Returns the series for these label values, creating it on first use. The
    /// read lock makes the common case (series exists) contention-free.
    pub(super) fn get(&self, values: &[&str]) -> Arc<T> {
        debug_assert_eq!(values.len(), self.labels.len());
        let key = values.join(SEPARATOR);
        if let Some(found) = self
            .series
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return found.clone();
        }
        let mut map = self.series.write().unwrap_or_else(|e| e.into_inner());
        map.entry(key).or_default().clone()
    }

    /// Encodes every series, sorted by label values.
    pub(super) fn encode(&self, mut encoder: MetricEncoder) -> fmt::Result {
        let map = self.series.read().unwrap_or_else(|e| e.into_inner());
        let mut entries: Vec<_> = map.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        for (key, series) in entries {
            let labels = Labels {
                names: self.labels,
                key,
            };
            series.encode(encoder.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// The labels of one series: the family's names beside the values in its key.
struct Labels<'a> {
    names: &'static [&'static str],
    key: &'a str,
}

impl EncodeLabelSet for Labels<'_> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        for pair in self.names.iter().copied().zip(self.key.split(SEPARATOR)) {
            pair.encode(encoder.encode_label())?;
        }
        Ok(())
    }
}
