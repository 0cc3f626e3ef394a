//! Every Prometheus series the gateway exports, declared once here with its
//! name, type and help text, and rendered in the text exposition format
//! (version 0.0.4) by the `prometheus-client` library, which writes the
//! names, labels, escapes and histogram lines.
//!
//! The numbers stay where the code that moves them can reach them with one
//! relaxed atomic add: per-shard striped gauges, per-route series striped over
//! the serving threads, plain atomic counters. A scrape reads them through a
//! collector and sums the stripes; recording a request never formats,
//! locks or allocates (only a new label value's first use does).
//!
//! Labels are low-cardinality by construction: route, version, status, kind,
//! outcome. A user id, a free-text string or a client-chosen model name must never
//! become a label, since each distinct value is a new series kept forever.
//! Metrics must never import the proxy, the HTTP server or capture: what they
//! keep and metrics reads (connections, the body budget) is handed over at
//! start, through [`crate::runtime::shard::Balance`] and [`ReadBodyBudget`].

use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, DescriptorEncoder, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

mod counter;
mod family;
mod gauge;
mod histogram;
mod labels;
mod route;

use family::Family;
use gauge::Share;
pub use gauge::StripedGauge;
pub use histogram::Histogram;
pub use labels::Outcome;
pub use route::RouteSeries;

use crate::runtime::shard::Balance;

/// How the exposition declares a family: its name (a counter's without the
/// `_total` the encoder adds), its type and its help text.
struct Desc {
    name: &'static str,
    kind: MetricType,
    help: &'static str,
}

impl Desc {
    const fn counter(name: &'static str, help: &'static str) -> Desc {
        Desc {
            name,
            kind: MetricType::Counter,
            help,
        }
    }

    const fn gauge(name: &'static str, help: &'static str) -> Desc {
        Desc {
            name,
            kind: MetricType::Gauge,
            help,
        }
    }

    const fn histogram(name: &'static str, help: &'static str) -> Desc {
        Desc {
            name,
            kind: MetricType::Histogram,
            help,
        }
    }

    /// Writes the HELP and TYPE lines; the family's samples follow through the
    /// returned encoder.
    fn declare<'e>(&self, e: &'e mut DescriptorEncoder) -> Result<MetricEncoder<'e>, fmt::Error> {
        e.encode_descriptor(self.name, self.help, None, self.kind)
    }
}

// Every family, in the order a scrape writes them.

const REQUESTS: Desc = Desc::counter(
    "flywheel_requests",
    "Requests answered, by route, served version and HTTP status.",
);
const OUTCOMES: Desc = Desc::counter(
    "flywheel_request_outcomes",
    "Requests by outcome: ok, upstream_error, client_closed, timeout, rejected.",
);
const DURATION: Desc = Desc::histogram(
    "flywheel_request_duration_seconds",
    "Time from request received to response fully sent, in seconds.",
);
const TTFT: Desc = Desc::histogram(
    "flywheel_upstream_ttft_seconds",
    "Time from request received to the upstream's first response byte, in seconds.",
);
const TOKENS: Desc = Desc::counter(
    "flywheel_tokens",
    "Tokens processed, by kind (prompt, completion); reported by the upstream or estimated.",
);
const FEEDBACK: Desc = Desc::counter(
    "flywheel_feedback",
    "Feedback received, by type and value (up/down, success/failure; empty for ratings and text).",
);
const WEIGHTS: Desc = Desc::gauge(
    "flywheel_route_weight",
    "Share of a route's traffic each version takes (0..1).",
);
const ROLLOUT_STEP: Desc = Desc::gauge(
    "flywheel_rollout_step",
    "Current step of the route's rollout, 1-based; 0 when none runs.",
);
const PROMOTIONS: Desc = Desc::counter(
    "flywheel_rollout_promotions",
    "Canaries promoted to stable.",
);
const ROLLBACKS: Desc = Desc::counter(
    "flywheel_rollout_rollbacks",
    "Canaries rolled back or aborted.",
);
const EVAL_CALLS: Desc = Desc::counter(
    "flywheel_eval_calls",
    "Evaluation calls to a version, by outcome (ok, error); never counted as live requests.",
);

/// A series without labels: its declaration and how a scrape reads it.
type Scalar<V> = (Desc, fn(&Metrics) -> V);

const GAUGES: [Scalar<i64>; 4] = [
    (
        Desc::gauge(
            "flywheel_capture_queue_depth",
            "Capture records waiting for the writer.",
        ),
        |m| m.capture_queue_depth.get(),
    ),
    (
        Desc::gauge(
            "flywheel_capture_queue_bytes",
            "Bytes of the capture records queued or being written, bodies included.",
        ),
        |m| m.capture_queue_bytes.get(),
    ),
    (
        Desc::gauge(
            "flywheel_capture_queue_capacity",
            "Capacity of the capture queue.",
        ),
        |m| m.capture_queue_capacity.load(Ordering::Relaxed),
    ),
    (
        Desc::gauge(
            "flywheel_requests_in_flight",
            "Proxied requests being served now.",
        ),
        |m| m.in_flight.get(),
    ),
];

const CONNECTIONS: Desc = Desc::gauge(
    "flywheel_connections_open",
    "Open client connections, by the shard (thread) serving them.",
);
const BODY_BYTES: Desc = Desc::gauge(
    "flywheel_request_body_bytes",
    "Bytes of request bodies held now (declared lengths of bodies being read included), all connections together.",
);
const BODY_BUDGET: Desc = Desc::gauge(
    "flywheel_request_body_budget_bytes",
    "The most bytes of request bodies held at once (server.body_budget_bytes).",
);
const BODY_REJECTED: Desc = Desc::counter(
    "flywheel_request_body_rejected",
    "Requests answered 503 because their body did not fit in the body budget.",
);

const COUNTERS: [Scalar<u64>; 8] = [
    (
        Desc::counter(
            "flywheel_connections_refused",
            "Client connections closed as soon as accepted because server.max_connections were open.",
        ),
        |m| m.connections_refused.load(Ordering::Relaxed),
    ),
    (
        Desc::counter(
            "flywheel_redaction_failures",
            "Records whose text was not stored because redaction could not run.",
        ),
        |m| m.redaction_failures.load(Ordering::Relaxed),
    ),
    (
        Desc::counter(
            "flywheel_pii_redacted",
            "PII matches replaced before storage.",
        ),
        |m| m.pii_redacted.load(Ordering::Relaxed),
    ),
    (
        Desc::counter(
            "flywheel_capture_written",
            "Capture records committed to the store.",
        ),
        |m| m.capture_written.load(Ordering::Relaxed),
    ),
    (
        Desc::counter(
            "flywheel_capture_dropped",
            "Capture records dropped because the queue was full or the store failed.",
        ),
        |m| m.capture_dropped.load(Ordering::Relaxed),
    ),
    (
        Desc::counter(
            "flywheel_capture_write_errors",
            "Failed capture write transactions.",
        ),
        |m| m.capture_write_errors.load(Ordering::Relaxed),
    ),
    (
        Desc::counter(
            "flywheel_capture_batches",
            "Capture write transactions committed.",
        ),
        |m| m.capture_batches.load(Ordering::Relaxed),
    ),
    (
        Desc::counter(
            "flywheel_models_upstream_failures",
            "GET /v1/models answers that list the routes without the default upstream's models, which could not be had.",
        ),
        |m| m.models_upstream_failures.load(Ordering::Relaxed),
    ),
];

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

/// The families keyed by label values, shared with each scrape.
#[derive(Debug)]
struct Labeled {
    tokens: Family<AtomicU64>,
    feedback: Family<AtomicU64>,
    weights: Family<Share>,
    rollout_step: Family<AtomicI64>,
    rollout_promotions: Family<AtomicU64>,
    rollout_rollbacks: Family<AtomicU64>,
    eval_calls: Family<AtomicU64>,
}

/// Every metric of the gateway. One instance per running gateway, so tests that
/// run several gateways in one process see their own numbers.
pub struct Metrics {
    stripes: usize,
    routes: RwLock<Vec<Arc<RouteSeries>>>,
    labeled: Arc<Labeled>,
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
    pub connections: OnceLock<Arc<Balance>>,
    /// Connections closed as soon as accepted, past `server.max_connections`.
    pub connections_refused: AtomicU64,
    /// Request bodies in flight and the requests refused for want of room.
    pub body_budget: OnceLock<Arc<dyn ReadBodyBudget>>,
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
    /// for the fixed [`shard::SLOTS`](crate::runtime::shard::SLOTS) the gauges
    /// have). Shard ids start at 1, so each shard of a process's first gateway
    /// writes a slot of its own.
    pub fn with_stripes(stripes: usize) -> Metrics {
        Metrics {
            stripes,
            routes: RwLock::new(Vec::new()),
            labeled: Arc::new(Labeled {
                tokens: Family::new(&["route", "version", "kind"]),
                feedback: Family::new(&["route", "version", "type", "value"]),
                weights: Family::new(&["route", "version"]),
                rollout_step: Family::new(&["route"]),
                rollout_promotions: Family::new(&["route"]),
                rollout_rollbacks: Family::new(&["route"]),
                eval_calls: Family::new(&["route", "version", "outcome"]),
            }),
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
            connections: OnceLock::new(),
            connections_refused: AtomicU64::new(0),
            body_budget: OnceLock::new(),
        }
    }

    /// The series of one (route, version), created on first use. Call once per
    /// target and keep the handle.
    pub fn route(&self, route: &str, version: &str) -> Arc<RouteSeries> {
        let mut routes = self.routes.write().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = routes
            .iter()
            .find(|r| r.route == route && r.version == version)
        {
            return found.clone();
        }
        let series = Arc::new(RouteSeries::new(route, version, self.stripes));
        routes.push(series.clone());
        series
    }

    /// Adds token counts; `kind` is `prompt` or `completion`.
    pub fn tokens(&self, route: &str, version: &str, kind: &str, n: u64) {
        if n > 0 {
            self.labeled
                .tokens
                .get(&[route, version, kind])
                .fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The counter `tokens` adds to, for a writer that keeps it; created on
    /// first use, like every series.
    pub fn token_counter(&self, route: &str, version: &str, kind: &str) -> Arc<AtomicU64> {
        self.labeled.tokens.get(&[route, version, kind])
    }

    /// Counts one piece of feedback. `value` is a fixed label (up, down,
    /// success, failure) or empty for types without one; never free text.
    pub fn feedback(&self, route: &str, version: &str, kind: &str, value: &str) {
        self.labeled
            .feedback
            .get(&[route, version, kind, value])
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Sets a version's share of its route's traffic (0..1).
    pub fn route_weight(&self, route: &str, version: &str, share: f64) {
        self.labeled.weights.get(&[route, version]).set(share);
    }

    /// Sets the current rollout step of a route (1-based; 0 when none runs).
    pub fn rollout_step(&self, route: &str, step: i64) {
        self.labeled
            .rollout_step
            .get(&[route])
            .store(step, Ordering::Relaxed);
    }

    pub fn rollout_finished(&self, route: &str, promoted: bool) {
        let family = if promoted {
            &self.labeled.rollout_promotions
        } else {
            &self.labeled.rollout_rollbacks
        };
        family.get(&[route]).fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one evaluation call (after its retries) to a version.
    pub fn eval_call(&self, route: &str, version: &str, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.labeled
            .eval_calls
            .get(&[route, version, outcome])
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Renders the text exposition format (version 0.0.4).
    ///
    /// The library's registry is made for each scrape, around a collector
    /// that reads this instance, rather than once: it holds what it encodes
    /// as `'static` boxes, and the counters the hot path moves are kept
    /// inline here, one atomic add away, rather than behind shared pointers.
    pub fn render(&self) -> String {
        let scrape = Scrape {
            routes: self
                .routes
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            labeled: self.labeled.clone(),
            gauges: GAUGES.map(|(_, read)| read(self)),
            connections: self.connections.get().map(|b| b.open_counts()),
            body_budget: self.body_budget.get().map(|b| b.read()),
            counters: COUNTERS.map(|(_, read)| read(self)),
        };
        let mut registry = Registry::default();
        registry.register_collector(Box::new(scrape));
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail, and no value kept here is one
        // the encoder refuses.
        prometheus_text::encode(&mut out, &registry).expect("the exposition encodes");
        out
    }
}

/// What one scrape reads: the per-route series and labeled families to be
/// summed while encoding, and the values of the scalar series.
struct Scrape {
    routes: Vec<Arc<RouteSeries>>,
    labeled: Arc<Labeled>,
    gauges: [i64; GAUGES.len()],
    connections: Option<Vec<usize>>,
    body_budget: Option<BodyBudgetReading>,
    counters: [u64; COUNTERS.len()],
}

impl fmt::Debug for Scrape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scrape").finish_non_exhaustive()
    }
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        route::encode(&self.routes, &mut e)?;
        let l = &self.labeled;
        l.tokens.encode(TOKENS.declare(&mut e)?)?;
        l.feedback.encode(FEEDBACK.declare(&mut e)?)?;
        l.weights.encode(WEIGHTS.declare(&mut e)?)?;
        l.rollout_step.encode(ROLLOUT_STEP.declare(&mut e)?)?;
        l.rollout_promotions.encode(PROMOTIONS.declare(&mut e)?)?;
        l.rollout_rollbacks.encode(ROLLBACKS.declare(&mut e)?)?;
        l.eval_calls.encode(EVAL_CALLS.declare(&mut e)?)?;
        for ((desc, _), v) in GAUGES.iter().zip(self.gauges) {
            gauge::encode(v, desc.declare(&mut e)?)?;
        }
        if let Some(open) = &self.connections {
            let mut family = CONNECTIONS.declare(&mut e)?;
            for (shard, n) in open.iter().enumerate() {
                gauge::encode(*n, family.encode_family(&[("shard", shard)])?)?;
            }
        }
        if let Some(budget) = self.body_budget {
            gauge::encode(budget.used, BODY_BYTES.declare(&mut e)?)?;
            gauge::encode(budget.limit, BODY_BUDGET.declare(&mut e)?)?;
            counter::encode(budget.rejected, BODY_REJECTED.declare(&mut e)?)?;
        }
        for ((desc, _), v) in COUNTERS.iter().zip(self.counters) {
            counter::encode(v, desc.declare(&mut e)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::runtime::shard;

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

    struct Budget;

    impl ReadBodyBudget for Budget {
        fn read(&self) -> BodyBudgetReading {
            BodyBudgetReading {
                used: 3,
                limit: 10,
                rejected: 2,
            }
        }
    }

    /// Every family, in its place, with the HELP and TYPE lines the
    /// exposition has always had and the samples a scrape sums.
    #[test]
    fn renders_every_family_in_order() {
        let m = Metrics::default();
        let r = m.route("r", "v1");
        r.request_done(200, Outcome::Ok, Duration::from_millis(2), None);
        r.request_done(42, Outcome::Rejected, Duration::from_secs(400), None);
        m.tokens("r", "v1", "completion", 5);
        m.feedback("r", "v1", "rating", "");
        m.route_weight("r", "v1", 1.0);
        m.route_weight("r", "v2", 0.25);
        m.rollout_step("r", 2);
        m.rollout_finished("r", true);
        m.rollout_finished("r", false);
        m.capture_queue_capacity.store(64, Ordering::Relaxed);
        m.capture_dropped.fetch_add(4, Ordering::Relaxed);
        let balance = Arc::new(Balance::new(2));
        let _open = balance.opened(1);
        let _ = m.connections.set(balance);
        let _ = m.body_budget.set(Arc::new(Budget));
        let text = m.render();
        let declared: Vec<_> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .collect();
        assert_eq!(
            declared,
            [
                "flywheel_requests_total counter",
                "flywheel_request_outcomes_total counter",
                "flywheel_request_duration_seconds histogram",
                "flywheel_upstream_ttft_seconds histogram",
                "flywheel_tokens_total counter",
                "flywheel_feedback_total counter",
                "flywheel_route_weight gauge",
                "flywheel_rollout_step gauge",
                "flywheel_rollout_promotions_total counter",
                "flywheel_rollout_rollbacks_total counter",
                "flywheel_eval_calls_total counter",
                "flywheel_capture_queue_depth gauge",
                "flywheel_capture_queue_bytes gauge",
                "flywheel_capture_queue_capacity gauge",
                "flywheel_requests_in_flight gauge",
                "flywheel_connections_open gauge",
                "flywheel_request_body_bytes gauge",
                "flywheel_request_body_budget_bytes gauge",
                "flywheel_request_body_rejected_total counter",
                "flywheel_connections_refused_total counter",
                "flywheel_redaction_failures_total counter",
                "flywheel_pii_redacted_total counter",
                "flywheel_capture_written_total counter",
                "flywheel_capture_dropped_total counter",
                "flywheel_capture_write_errors_total counter",
                "flywheel_capture_batches_total counter",
                "flywheel_models_upstream_failures_total counter",
            ]
        );
        for line in [
            "# HELP flywheel_requests_total Requests answered, by route, served version and HTTP status.",
            "flywheel_requests_total{route=\"r\",version=\"v1\",status=\"200\"} 1",
            "flywheel_requests_total{route=\"r\",version=\"v1\",status=\"other\"} 1",
            "flywheel_request_outcomes_total{route=\"r\",version=\"v1\",outcome=\"rejected\"} 1",
            "flywheel_request_duration_seconds_bucket{route=\"r\",version=\"v1\",le=\"0.0025\"} 1",
            "flywheel_request_duration_seconds_bucket{route=\"r\",version=\"v1\",le=\"300\"} 1",
            "flywheel_request_duration_seconds_bucket{route=\"r\",version=\"v1\",le=\"+Inf\"} 2",
            "flywheel_request_duration_seconds_sum{route=\"r\",version=\"v1\"} 400.002",
            "flywheel_upstream_ttft_seconds_count{route=\"r\",version=\"v1\"} 0",
            "flywheel_tokens_total{route=\"r\",version=\"v1\",kind=\"completion\"} 5",
            "flywheel_feedback_total{route=\"r\",version=\"v1\",type=\"rating\",value=\"\"} 1",
            "flywheel_route_weight{route=\"r\",version=\"v1\"} 1",
            "flywheel_route_weight{route=\"r\",version=\"v2\"} 0.25",
            "flywheel_rollout_step{route=\"r\"} 2",
            "flywheel_rollout_promotions_total{route=\"r\"} 1",
            "flywheel_rollout_rollbacks_total{route=\"r\"} 1",
            "flywheel_capture_queue_capacity 64",
            "flywheel_connections_open{shard=\"0\"} 0",
            "flywheel_connections_open{shard=\"1\"} 1",
            "flywheel_request_body_bytes 3",
            "flywheel_request_body_budget_bytes 10",
            "flywheel_request_body_rejected_total 2",
            "flywheel_capture_dropped_total 4",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
    }
}
