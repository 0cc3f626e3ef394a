//! What a scrape of `/metrics` costs, and what recording one request costs.
//!
//! Fills a [`Metrics`] as a busy gateway would: 3 routes × 3 versions, each
//! with requests of several statuses and every outcome, durations and
//! time-to-first-byte across the buckets, both token kinds, feedback of every
//! type, weights, rollout steps, promotions and rollbacks, open connections on
//! four shards and a request-body budget in use. Then prints the median time
//! of one `render()` over several rounds, the size of the text, and the time
//! of the calls the hot path makes for one request (`request_done` and the
//! in-flight gauge), so that both can be compared between builds.
//!
//! Run: cargo run --release --example metrics_bench
//! (with `-- --print`, prints that scrape's text instead of timing it).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flywheel::capture::Outcome;
use flywheel::http1::budget::BodyBudget;
use flywheel::metrics::Metrics;
use flywheel::runtime::shard::Balance;

const ROUTES: [&str; 3] = ["default", "support-bot", "code-review"];
const VERSIONS: [&str; 3] = ["v1", "v2-canary", "ft-2026-12-01"];
const STATUSES: [u16; 7] = [200, 400, 401, 429, 500, 502, 504];
const RENDERS: usize = 2_000;
const RECORDS: usize = 2_000_000;
const ROUNDS: usize = 7;

fn main() {
    let m = Metrics::with_stripes(5);
    // A fixed linear congruential generator keeps the content identical between runs.
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |n: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    for route in ROUTES {
        for (i, version) in VERSIONS.iter().enumerate() {
            let series = m.route(route, version);
            for _ in 0..5_000 {
                let status = STATUSES[next(STATUSES.len() as u64) as usize];
                let outcome = Outcome::ALL[next(Outcome::ALL.len() as u64) as usize];
                let total = Duration::from_micros(200 + next(120_000_000));
                let ttft = (next(4) > 0).then(|| Duration::from_micros(100 + next(2_000_000)));
                series.request_done(status, outcome, total, ttft);
            }
            m.tokens(route, version, "prompt", 1 + next(1_000_000));
            m.tokens(route, version, "completion", 1 + next(1_000_000));
            for (kind, value) in [
                ("thumbs", "up"),
                ("thumbs", "down"),
                ("outcome", "success"),
                ("outcome", "failure"),
                ("rating", ""),
                ("text", ""),
            ] {
                for _ in 0..1 + next(20) {
                    m.feedback(route, version, kind, value);
                }
            }
            m.route_weight(route, version, [0.9, 0.05, 0.05][i]);
        }
        m.rollout_step(route, next(5) as i64);
        m.rollout_finished(route, true);
        m.rollout_finished(route, false);
    }
    m.in_flight.add(12);
    m.capture_queue_depth.add(40);
    m.capture_queue_bytes.add(400_000);
    let balance = Arc::new(Balance::new(4));
    let _open: Vec<_> = (0..40).map(|i| balance.opened(i % 4)).collect();
    let _ = m.connections.set(balance);
    let budget = Arc::new(BodyBudget::new(256 << 20));
    let _held = budget.reserve(3 << 20);
    let _ = m.body_budget.set(budget);

    let text = m.render();
    if std::env::args().any(|a| a == "--print") {
        print!("{text}");
        return;
    }
    println!(
        "/metrics: {} bytes, {} lines",
        text.len(),
        text.lines().count()
    );
    let render = median(|| {
        let start = Instant::now();
        for _ in 0..RENDERS {
            black_box(m.render());
        }
        start.elapsed().as_nanos() as f64 / RENDERS as f64
    });
    println!(
        "render:       {:>9.0} ns (median of {ROUNDS} rounds of {RENDERS})",
        render
    );

    let series = m.route(ROUTES[0], VERSIONS[0]);
    let record = median(|| {
        let start = Instant::now();
        for i in 0..RECORDS {
            m.in_flight.add(1);
            series.request_done(
                black_box(200),
                Outcome::Ok,
                black_box(Duration::from_micros(1_000 + (i as u64 & 1023))),
                black_box(Some(Duration::from_micros(500))),
            );
            m.in_flight.add(-1);
        }
        start.elapsed().as_nanos() as f64 / RECORDS as f64
    });
    println!("one request:  {:>9.1} ns (in_flight ±1 and request_done; median of {ROUNDS} rounds of {RECORDS})", record);
}

fn median(mut f: impl FnMut() -> f64) -> f64 {
    let mut runs: Vec<f64> = (0..ROUNDS).map(|_| f()).collect();
    runs.sort_by(f64::total_cmp);
    runs[ROUNDS / 2]
}
