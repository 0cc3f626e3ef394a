//! Every Prometheus series the gateway exports, declared once here with its unit
//! and help text, and rendered in the text exposition format.
//!
//! Labels are low-cardinality by construction: route, version, status, kind,
//! outcome. A user id, a free-text string or a client-chosen model name must never
//! become a label, since each distinct value is a new series kept forever.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::Duration;

use crossbeam_utils::CachePadded;

use crate::runtime::shard;

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered with a success status and the response was delivered.
    Ok,
    /// The upstream answered with an error status, was unreachable, or failed mid-stream.
    UpstreamError,
    /// The client went away before the response was complete.
    ClientClosed,
    /// The upstream did not answer in time.
    Timeout,
    /// The gateway refused the request (bad input, auth, size).
    Rejected,
}

impl Outcome {
    /// Every outcome, in declaration order (their discriminants index this).
    pub const ALL: [Outcome; 5] = [
        Outcome::Ok,
        Outcome::UpstreamError,
        Outcome::ClientClosed,
        Outcome::Timeout,
        Outcome::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::UpstreamError => "upstream_error",
            Outcome::ClientClosed => "client_closed",
            Outcome::Timeout => "timeout",
            Outcome::Rejected => "rejected",
        }
    }
}

/// Upper bounds, in seconds, shared by the latency histograms: fine steps under
/// 10 ms where gateway overhead lives, coarse ones up to the minutes a long
/// generation can take.
const LATENCY_BUCKETS: [f64; 18] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0, 300.0,
];

/// A histogram with fixed buckets, updated with atomics only.
pub struct Histogram {
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
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// Renders the sum of `parts` as one histogram.
    fn render<'a>(
        parts: impl Iterator<Item = &'a Histogram> + Clone,
        out: &mut String,
        name: &str,
        labels: &str,
    ) {
        let sep = if labels.is_empty() { "" } else { "," };
        let count = |i: usize| {
            parts
                .clone()
                .map(|h| h.counts[i].load(Ordering::Relaxed))
                .sum::<u64>()
        };
        let mut cumulative = 0u64;
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += count(i);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += count(LATENCY_BUCKETS.len());
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}"
        );
        let micros: u64 = parts.map(|h| h.sum_micros.load(Ordering::Relaxed)).sum();
        let sum = micros as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

/// A gauge that serving threads move on every request, kept as one slot per
/// thread ([`shard::Slot`]) and summed when read. A single atomic that every
/// core adds to moves its cache line from core to core on each add; with
/// slots, each line stays with the thread that writes it and only a read (a
/// scrape) gathers them. A value another thread takes back (the capture writer
/// releasing a shard's queued bytes) can be taken from the slot it was added
/// to, so that slot stays the shard's own count.
pub struct StripedGauge {
    /// One slot per shard, each padded to room of its own ([`shard::SLOTS`]).
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
        self.add_at(shard::Slot::current(), n);
    }

    pub fn add_at(&self, slot: shard::Slot, n: i64) {
        self.slots[slot.index()].fetch_add(n, Ordering::Relaxed);
    }

    pub fn get_at(&self, slot: shard::Slot) -> i64 {
        self.slots[slot.index()].load(Ordering::Relaxed)
    }

    /// The sum over all slots.
    pub fn get(&self) -> i64 {
        self.slots.iter().map(|s| s.load(Ordering::Relaxed)).sum()
    }
}

/// A set of series of one metric, keyed by label values in declaration order.
struct Family<T> {
    labels: &'static [&'static str],
    /// Keyed by the label values joined with U+001F, which no label value holds.
    series: RwLock<HashMap<String, std::sync::Arc<T>>>,
}

impl<T: Default> Family<T> {
    fn new(labels: &'static [&'static str]) -> Self {
        Family {
            labels,
            series: RwLock::new(HashMap::new()),
        }
    }

    /// Returns the series for these label values, creating it on first use. The
    /// read lock makes the common case (series exists) contention-free.
    fn get(&self, values: &[&str]) -> std::sync::Arc<T> {
        debug_assert_eq!(values.len(), self.labels.len());
        let key = values.join("\u{1f}");
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

    fn each(&self, mut f: impl FnMut(&str, &T)) {
        let map = self.series.read().unwrap_or_else(|e| e.into_inner());
        let mut entries: Vec<_> = map.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        for (values, series) in entries {
            let mut labels = String::new();
            for (i, (name, value)) in self.labels.iter().zip(values.split('\u{1f}')).enumerate() {
                if i > 0 {
                    labels.push(',');
                }
                let _ = write!(labels, "{name}=\"{}\"", escape_label(value));
            }
            f(&labels, series);
        }
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The per-request series of one (route, version), created once and held by
/// the routing target, so that finishing a request touches only atomics: no
/// label strings are built and no map is searched on the hot path. The counts
/// are kept per serving thread, as in [`StripedGauge`], and summed at render.
pub struct RouteSeries {
    route: String,
    version: String,
    /// One slot per stripe, each padded to room of its own ([`shard::SLOTS`]).
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
    fn new(route: &str, version: &str, stripes: usize) -> RouteSeries {
        RouteSeries {
            route: route.to_string(),
            version: version.to_string(),
            stripes: (0..stripes.max(1)).map(|_| CachePadded::default()).collect(),
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

    fn labels(&self) -> String {
        format!(
            "route=\"{}\",version=\"{}\"",
            escape_label(&self.route),
            escape_label(&self.version)
        )
    }
}

/// Every metric of the gateway. One instance per running gateway, so tests that
/// run several gateways in one process see their own numbers.
pub struct Metrics {
    stripes: usize,
    routes: RwLock<Vec<std::sync::Arc<RouteSeries>>>,
    tokens: Family<AtomicU64>,
    feedback: Family<AtomicU64>,
    /// Share of a route's traffic per version, stored as f64 bits.
    weights: Family<AtomicU64>,
    rollout_step: Family<AtomicI64>,
    rollout_promotions: Family<AtomicU64>,
    rollout_rollbacks: Family<AtomicU64>,
    /// Records handed to the capture queue and not yet taken by the writer.
    pub capture_queue_depth: StripedGauge,
    /// Bytes of the records in the capture queue, by the shard that queued them.
    pub capture_queue_bytes: StripedGauge,
    pub capture_queue_capacity: AtomicI64,
    pub capture_written: AtomicU64,
    pub capture_dropped: AtomicU64,
    pub capture_write_errors: AtomicU64,
    pub capture_batches: AtomicU64,
    pub redaction_failures: AtomicU64,
    /// `GET /v1/models` answers made without the default upstream's models.
    pub models_upstream_failures: AtomicU64,
    pub pii_redacted: AtomicU64,
    pub in_flight: StripedGauge,
    /// Open client connections per shard, once the shards run.
    pub connections: std::sync::OnceLock<std::sync::Arc<crate::runtime::shard::Balance>>,
    /// Connections closed as soon as accepted, past `server.max_connections`.
    pub connections_refused: AtomicU64,
    /// Request bodies in flight and the requests refused for want of room.
    pub body_budget: std::sync::OnceLock<std::sync::Arc<dyn ReadBodyBudget>>,
}

/// The request-body budget as a scrape reads it. The budget belongs to the
/// HTTP server, which hands it over at start; metrics reads it through this
/// trait so that it never imports the server.
pub trait ReadBodyBudget: Send + Sync {
    fn read(&self) -> BodyBudgetReading;
}

/// What a scrape shows of the request-body budget.
#[derive(Debug, Clone, Copy)]
pub struct BodyBudgetReading {
    /// Bytes of request bodies held now.
    pub used: u64,
    /// The most bytes that may be held at once.
    pub limit: u64,
    /// Requests refused because their body did not fit.
    pub rejected: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::with_stripes(1)
    }
}

impl Metrics {
    /// Metrics whose per-route series keep their counts in `stripes` slots:
    /// one per serving thread plus one for every other thread (the gateway
    /// passes `server.workers + 1`; a series is a few KiB per slot, too much
    /// for the fixed [`shard::SLOTS`] the gauges have). Shard ids start at 1,
    /// so each shard of a process's first gateway writes a slot of its own.
    pub fn with_stripes(stripes: usize) -> Metrics {
        Metrics {
            stripes,
            routes: RwLock::new(Vec::new()),
            tokens: Family::new(&["route", "version", "kind"]),
            feedback: Family::new(&["route", "version", "type", "value"]),
            weights: Family::new(&["route", "version"]),
            rollout_step: Family::new(&["route"]),
            rollout_promotions: Family::new(&["route"]),
            rollout_rollbacks: Family::new(&["route"]),
            capture_queue_depth: StripedGauge::default(),
            capture_queue_bytes: StripedGauge::default(),
            capture_queue_capacity: AtomicI64::new(0),
            capture_written: AtomicU64::new(0),
            capture_dropped: AtomicU64::new(0),
            capture_write_errors: AtomicU64::new(0),
            capture_batches: AtomicU64::new(0),
            redaction_failures: AtomicU64::new(0),
            models_upstream_failures: AtomicU64::new(0),
            pii_redacted: AtomicU64::new(0),
            in_flight: StripedGauge::default(),
            connections: std::sync::OnceLock::new(),
            connections_refused: AtomicU64::new(0),
            body_budget: std::sync::OnceLock::new(),
        }
    }

    /// The series of one (route, version), created on first use. Call once per
    /// target and keep the handle.
    pub fn route(&self, route: &str, version: &str) -> std::sync::Arc<RouteSeries> {
        let mut routes = self.routes.write().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = routes
            .iter()
            .find(|r| r.route == route && r.version == version)
        {
            return found.clone();
        }
        let series = std::sync::Arc::new(RouteSeries::new(route, version, self.stripes));
        routes.push(series.clone());
        series
    }

    /// Adds token counts; `kind` is `prompt` or `completion`.
    pub fn tokens(&self, route: &str, version: &str, kind: &str, n: u64) {
        if n > 0 {
            self.tokens
                .get(&[route, version, kind])
                .fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The counter `tokens` adds to, for a writer that keeps it; created on
    /// first use, like every series.
    pub fn token_counter(
        &self,
        route: &str,
        version: &str,
        kind: &str,
    ) -> std::sync::Arc<AtomicU64> {
        self.tokens.get(&[route, version, kind])
    }

    /// Counts one piece of feedback. `value` is a fixed label (up, down,
    /// success, failure) or empty for types without one; never free text.
    pub fn feedback(&self, route: &str, version: &str, kind: &str, value: &str) {
        self.feedback
            .get(&[route, version, kind, value])
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Sets a version's share of its route's traffic (0..1).
    pub fn route_weight(&self, route: &str, version: &str, share: f64) {
        self.weights
            .get(&[route, version])
            .store(share.to_bits(), Ordering::Relaxed);
    }

    /// Sets the current rollout step of a route (1-based; 0 when none runs).
    pub fn rollout_step(&self, route: &str, step: i64) {
        self.rollout_step
            .get(&[route])
            .store(step, Ordering::Relaxed);
    }

    pub fn rollout_finished(&self, route: &str, promoted: bool) {
        let family = if promoted {
            &self.rollout_promotions
        } else {
            &self.rollout_rollbacks
        };
        family.get(&[route]).fetch_add(1, Ordering::Relaxed);
    }

    /// Renders the text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let routes: Vec<_> = self
            .routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        header(
            &mut out,
            "flywheel_requests_total",
            "counter",
            "Requests answered, by route, served version and HTTP status.",
        );
        for r in &routes {
            let labels = r.labels();
            for i in 0..=OTHER_STATUS {
                let n: u64 = r
                    .counts()
                    .map(|c| c.statuses[i].load(Ordering::Relaxed))
                    .sum();
                if n > 0 {
                    let status = if i == OTHER_STATUS {
                        "other".to_string()
                    } else {
                        (i + 100).to_string()
                    };
                    let _ = writeln!(
                        out,
                        "flywheel_requests_total{{{labels},status=\"{status}\"}} {n}"
                    );
                }
            }
        }
        header(
            &mut out,
            "flywheel_request_outcomes_total",
            "counter",
            "Requests by outcome: ok, upstream_error, client_closed, timeout, rejected.",
        );
        for r in &routes {
            let labels = r.labels();
            for (i, o) in Outcome::ALL.iter().enumerate() {
                let n: u64 = r
                    .counts()
                    .map(|c| c.outcomes[i].load(Ordering::Relaxed))
                    .sum();
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "flywheel_request_outcomes_total{{{labels},outcome=\"{}\"}} {n}",
                        o.as_str()
                    );
                }
            }
        }
        header(
            &mut out,
            "flywheel_request_duration_seconds",
            "histogram",
            "Time from request received to response fully sent, in seconds.",
        );
        for r in &routes {
            Histogram::render(
                r.counts().map(|c| &c.duration),
                &mut out,
                "flywheel_request_duration_seconds",
                &r.labels(),
            );
        }
        header(
            &mut out,
            "flywheel_upstream_ttft_seconds",
            "histogram",
            "Time from request received to the upstream's first response byte, in seconds.",
        );
        for r in &routes {
            Histogram::render(
                r.counts().map(|c| &c.ttft),
                &mut out,
                "flywheel_upstream_ttft_seconds",
                &r.labels(),
            );
        }
        header(&mut out, "flywheel_tokens_total", "counter", "Tokens processed, by kind (prompt, completion); reported by the upstream or estimated.");
        self.tokens.each(|l, c| {
            let _ = writeln!(
                out,
                "flywheel_tokens_total{{{l}}} {}",
                c.load(Ordering::Relaxed)
            );
        });
        header(&mut out, "flywheel_feedback_total", "counter", "Feedback received, by type and value (up/down, success/failure; empty for ratings and text).");
        self.feedback.each(|l, c| {
            let _ = writeln!(
                out,
                "flywheel_feedback_total{{{l}}} {}",
                c.load(Ordering::Relaxed)
            );
        });
        header(
            &mut out,
            "flywheel_route_weight",
            "gauge",
            "Share of a route's traffic each version takes (0..1).",
        );
        self.weights.each(|l, c| {
            let _ = writeln!(
                out,
                "flywheel_route_weight{{{l}}} {}",
                f64::from_bits(c.load(Ordering::Relaxed))
            );
        });
        header(
            &mut out,
            "flywheel_rollout_step",
            "gauge",
            "Current step of the route's rollout, 1-based; 0 when none runs.",
        );
        self.rollout_step.each(|l, c| {
            let _ = writeln!(
                out,
                "flywheel_rollout_step{{{l}}} {}",
                c.load(Ordering::Relaxed)
            );
        });
        header(
            &mut out,
            "flywheel_rollout_promotions_total",
            "counter",
            "Canaries promoted to stable.",
        );
        self.rollout_promotions.each(|l, c| {
            let _ = writeln!(
                out,
                "flywheel_rollout_promotions_total{{{l}}} {}",
                c.load(Ordering::Relaxed)
            );
        });
        header(
            &mut out,
            "flywheel_rollout_rollbacks_total",
            "counter",
            "Canaries rolled back or aborted.",
        );
        self.rollout_rollbacks.each(|l, c| {
            let _ = writeln!(
                out,
                "flywheel_rollout_rollbacks_total{{{l}}} {}",
                c.load(Ordering::Relaxed)
            );
        });
        let gauges: [(&str, &str, &str, i64); 4] = [
            (
                "flywheel_capture_queue_depth",
                "gauge",
                "Capture records waiting for the writer.",
                self.capture_queue_depth.get(),
            ),
            (
                "flywheel_capture_queue_bytes",
                "gauge",
                "Bytes of the capture records queued or being written, bodies included.",
                self.capture_queue_bytes.get(),
            ),
            (
                "flywheel_capture_queue_capacity",
                "gauge",
                "Capacity of the capture queue.",
                self.capture_queue_capacity.load(Ordering::Relaxed),
            ),
            (
                "flywheel_requests_in_flight",
                "gauge",
                "Proxied requests being served now.",
                self.in_flight.get(),
            ),
        ];
        for (name, kind, help, v) in gauges {
            header(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {v}");
        }
        if let Some(balance) = self.connections.get() {
            header(
                &mut out,
                "flywheel_connections_open",
                "gauge",
                "Open client connections, by the shard (thread) serving them.",
            );
            for (shard, n) in balance.open_counts().into_iter().enumerate() {
                let _ = writeln!(out, "flywheel_connections_open{{shard=\"{shard}\"}} {n}");
            }
        }
        if let Some(budget) = self.body_budget.get().map(|b| b.read()) {
            let series: [(&str, &str, &str, u64); 3] = [
                (
                    "flywheel_request_body_bytes",
                    "gauge",
                    "Bytes of request bodies held now (declared lengths of bodies being read included), all connections together.",
                    budget.used,
                ),
                (
                    "flywheel_request_body_budget_bytes",
                    "gauge",
                    "The most bytes of request bodies held at once (server.body_budget_bytes).",
                    budget.limit,
                ),
                (
                    "flywheel_request_body_rejected_total",
                    "counter",
                    "Requests answered 503 because their body did not fit in the body budget.",
                    budget.rejected,
                ),
            ];
            for (name, kind, help, v) in series {
                header(&mut out, name, kind, help);
                let _ = writeln!(out, "{name} {v}");
            }
        }
        let counters: [(&str, &str, u64); 8] = [
            (
                "flywheel_connections_refused_total",
                "Client connections closed as soon as accepted because server.max_connections were open.",
                self.connections_refused.load(Ordering::Relaxed),
            ),
            (
                "flywheel_redaction_failures_total",
                "Records whose text was not stored because redaction could not run.",
                self.redaction_failures.load(Ordering::Relaxed),
            ),
            (
                "flywheel_pii_redacted_total",
                "PII matches replaced before storage.",
                self.pii_redacted.load(Ordering::Relaxed),
            ),
            (
                "flywheel_capture_written_total",
                "Capture records committed to the store.",
                self.capture_written.load(Ordering::Relaxed),
            ),
            (
                "flywheel_capture_dropped_total",
                "Capture records dropped because the queue was full or the store failed.",
                self.capture_dropped.load(Ordering::Relaxed),
            ),
            (
                "flywheel_capture_write_errors_total",
                "Failed capture write transactions.",
                self.capture_write_errors.load(Ordering::Relaxed),
            ),
            (
                "flywheel_capture_batches_total",
                "Capture write transactions committed.",
                self.capture_batches.load(Ordering::Relaxed),
            ),
            (
                "flywheel_models_upstream_failures_total",
                "GET /v1/models answers that list the routes without the default upstream's models, which could not be had.",
                self.models_upstream_failures.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, v) in counters {
            header(&mut out, name, "counter", help);
            let _ = writeln!(out, "{name} {v}");
        }
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        let r = m.route("default", "v1");
        r.request_done(
            200,
            Outcome::Ok,
            Duration::from_millis(3),
            Some(Duration::from_millis(1)),
        );
        m.route("default", "v1")
            .request_done(200, Outcome::Ok, Duration::from_millis(30), None);
        m.tokens("default", "v1", "prompt", 7);
        let text = m.render();
        assert!(
            text.contains(
                "flywheel_requests_total{route=\"default\",version=\"v1\",status=\"200\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains("flywheel_request_duration_seconds_bucket{route=\"default\",version=\"v1\",le=\"0.005\"} 1"), "{text}");
        assert!(
            text.contains(
                "flywheel_request_duration_seconds_count{route=\"default\",version=\"v1\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "flywheel_upstream_ttft_seconds_count{route=\"default\",version=\"v1\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "flywheel_tokens_total{route=\"default\",version=\"v1\",kind=\"prompt\"} 7"
            ),
            "{text}"
        );
        assert!(
            text.contains("# TYPE flywheel_capture_dropped_total counter"),
            "{text}"
        );
    }

    /// Counts made on a serving thread and on any other thread land in
    /// different slots and are summed when read or rendered.
    #[test]
    fn counts_from_every_thread_are_summed() {
        // Each add lands in the slot of the thread that made it, whichever
        // slots the shards' ids (counted up through the test process) give.
        let m = std::sync::Arc::new(Metrics::with_stripes(64));
        let r = m.route("default", "v1");
        let shards = crate::runtime::shard::Shards::start(2).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut expected = [0i64; shard::SLOTS];
        for i in 0..2 {
            let (m, r) = (m.clone(), r.clone());
            let slot = rt
                .block_on(shards.spawn_on(i, async move {
                    m.in_flight.add(1);
                    m.capture_queue_depth.add(2);
                    r.request_done(200, Outcome::Ok, Duration::from_millis(3), None);
                    shard::Slot::current()
                }))
                .unwrap();
            expected[slot.index()] += 1;
        }
        rt.block_on(shards.stop());
        m.in_flight.add(-1);
        expected[shard::Slot::current().index()] -= 1;
        m.capture_queue_depth.add(-1);
        r.request_done(503, Outcome::UpstreamError, Duration::from_secs(1), None);
        for (i, n) in expected.into_iter().enumerate() {
            assert_eq!(m.in_flight.get_at(shard::Slot::at(i)), n, "slot {i}");
        }
        assert_eq!(m.in_flight.get(), 1);
        assert_eq!(m.capture_queue_depth.get(), 3);
        let text = m.render();
        for line in [
            "flywheel_requests_total{route=\"default\",version=\"v1\",status=\"200\"} 2",
            "flywheel_requests_total{route=\"default\",version=\"v1\",status=\"503\"} 1",
            "flywheel_request_outcomes_total{route=\"default\",version=\"v1\",outcome=\"ok\"} 2",
            "flywheel_request_duration_seconds_bucket{route=\"default\",version=\"v1\",le=\"0.005\"} 2",
            "flywheel_request_duration_seconds_count{route=\"default\",version=\"v1\"} 3",
            "flywheel_request_duration_seconds_sum{route=\"default\",version=\"v1\"} 1.006",
            "flywheel_requests_in_flight 1",
            "flywheel_capture_queue_depth 3",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::default();
        m.tokens("a\"b", "v", "prompt", 1);
        assert!(m.render().contains("route=\"a\\\"b\""));
    }
}
