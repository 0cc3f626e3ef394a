//! Cost of the capture writer's SQLite insert alone: rows shaped like the
//! benchmark's small chat calls, written through `Store::insert_interactions`
//! in batches, as the writer does under load. Prints microseconds of CPU per
//! row (user + system time of the process) and wall time per row.
//!
//! Run: cargo run --release --example insert_bench [-- ROWS BATCH [SQL]]
//! (INSERT_BENCH_ENCRYPT=1 seals the user-text columns, as `privacy.encrypt_at_rest` does)
//! (defaults 200000 rows in batches of 200; SQL runs on the fresh database
//! before the inserts, e.g. to try the table without one of its indexes).

use std::collections::BTreeMap;
use std::time::Instant;

use flywheel::store::sqlite::SqliteStore;
use flywheel::store::{InteractionRow, InteractionStore};

fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn row(i: u64, now_ms: i64) -> InteractionRow {
    InteractionRow {
        id: flywheel::capture::id::new_v7().hyphenated().to_string(),
        created_at_ms: now_ms + (i / 20) as i64,
        endpoint: "chat.completions".into(),
        method: "POST".into(),
        path: "/v1/chat/completions".into(),
        route: "default".into(),
        requested_model: Some("m".into()),
        version: "default".into(),
        upstream: "http://127.0.0.1:9000/v1".into(),
        status: 200,
        outcome: "ok".into(),
        stream: false,
        request_body: r#"{"model":"m","messages":[{"role":"user","content":"hello"}]}"#.into(),
        response_body: Some(format!(
            r#"{{"id":"chatcmpl-{i}","object":"chat.completion","created":1795645253,"model":"m","choices":[{{"index":0,"message":{{"role":"assistant","content":"mock reply: hello","refusal":null}},"logprobs":null,"finish_reason":"stop"}}],"usage":{{"prompt_tokens":1,"completion_tokens":3,"total_tokens":4}}}}"#
        )),
        truncated: false,
        finish_reason: Some("stop".into()),
        latency_ms: 0.8,
        ttft_ms: None,
        prompt_tokens: Some(1),
        completion_tokens: Some(3),
        total_tokens: Some(4),
        tokens_estimated: false,
        app: None,
        user_hash: None,
        session_id: None,
        metadata: BTreeMap::new(),
        error: None,
        redaction: "redacted".into(),
        pii_found: 0,
        segment: None,
        raw: None,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rows: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let batch: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(200);
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("bench.db");
    // INSERT_BENCH_ENCRYPT=1: the store seals its user-text columns
    // (`privacy.encrypt_at_rest`), to measure what that costs per row.
    let cipher = std::env::var_os("INSERT_BENCH_ENCRYPT")
        .map(|_| flywheel::crypto::vault::Vault::new(&[7; 32], "s1"));
    let store = SqliteStore::open_with(&path, cipher).expect("store opens");
    if let Some(sql) = args.get(2) {
        let conn = rusqlite::Connection::open(&path).expect("second connection");
        conn.execute_batch(sql).expect("setup SQL runs");
    }
    let now_ms = 1_795_645_253_000;
    let mut made = Vec::with_capacity(batch);
    let (mut cpu, mut wall) = (0.0, 0.0);
    let mut i = 0;
    while i < rows {
        made.clear();
        for _ in 0..batch.min((rows - i) as usize) {
            made.push(row(i, now_ms));
            i += 1;
        }
        let (c0, t0) = (cpu_secs(), Instant::now());
        store.insert_interactions(&made).expect("insert");
        wall += t0.elapsed().as_secs_f64();
        cpu += cpu_secs() - c0;
    }
    println!(
        "{rows} rows in batches of {batch}: {:.2} us CPU per row, {:.2} us wall per row",
        cpu * 1e6 / rows as f64,
        wall * 1e6 / rows as f64
    );
}
