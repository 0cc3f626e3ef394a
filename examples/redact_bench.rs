//! Single-core throughput of the PII redactor on chat-like text.
//!
//! Builds about 4 MB of chat messages from the labelled corpus: each message
//! joins several PII-free lines (mostly prose, plus the number-heavy hard
//! negatives) and, in roughly one message in four, one line with PII, which is
//! what captured chat mostly looks like. Each message is redacted separately,
//! as the capture writer does. Prints MB/s (10^6 bytes per second) for that
//! mix, and for PII-free text and PII-dense text alone as bounds.
//!
//! Run: cargo run --release --example redact_bench

use std::hint::black_box;
use std::time::Instant;

use flywheel::privacy::redact::{Redactor, RedactorConfig};

const TARGET_BYTES: usize = 4_000_000;
const ROUNDS: usize = 7;

fn main() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/pii_corpus.jsonl");
    let corpus = std::fs::read_to_string(path).expect("corpus is readable");
    let (mut clean, mut pii) = (Vec::new(), Vec::new());
    for line in corpus.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).expect("valid JSON line");
        let text = v["text"].as_str().expect("text field").to_owned();
        if v["entities"].as_array().is_some_and(|e| e.is_empty()) {
            clean.push(text);
        } else {
            pii.push(text);
        }
    }

    // A fixed linear congruential generator keeps the mix identical between runs.
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |n: usize| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((seed >> 33) as usize) % n
    };

    let mut mixed = Vec::new();
    let mut pii_bytes = 0;
    let mut total = 0;
    while total < TARGET_BYTES {
        let mut msg = String::new();
        for _ in 0..4 + next(6) {
            msg.push_str(&clean[next(clean.len())]);
            msg.push(' ');
        }
        if next(4) == 0 {
            let line = &pii[next(pii.len())];
            pii_bytes += line.len();
            msg.push_str(line);
        }
        total += msg.len();
        mixed.push(msg);
    }
    let clean_only = repeat_to(&clean, TARGET_BYTES);
    let pii_only = repeat_to(&pii, TARGET_BYTES);

    let redactor = Redactor::new(&RedactorConfig::default()).expect("default config builds");
    println!(
        "chat mix: {} messages, {:.1} MB, {:.1}% of bytes in PII lines",
        mixed.len(),
        total as f64 / 1e6,
        100.0 * pii_bytes as f64 / total as f64
    );
    let mix = measure(&redactor, &mixed);
    println!("chat mix:       {mix:>7.1} MB/s  (median of {ROUNDS} rounds, one core)");
    let c = measure(&redactor, &clean_only);
    println!("PII-free lines: {c:>7.1} MB/s");
    let p = measure(&redactor, &pii_only);
    println!("PII lines only: {p:>7.1} MB/s");
}

fn repeat_to(lines: &[String], bytes: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut total = 0;
    while total < bytes {
        for l in lines {
            total += l.len();
            out.push(l.clone());
        }
    }
    out
}

/// Median MB/s over several rounds, after one warm-up round.
fn measure(redactor: &Redactor, msgs: &[String]) -> f64 {
    let bytes: usize = msgs.iter().map(String::len).sum();
    let mut rates = Vec::with_capacity(ROUNDS);
    for round in 0..=ROUNDS {
        let start = Instant::now();
        let mut found = 0u32;
        for m in msgs {
            found += black_box(redactor.redact(black_box(m))).total();
        }
        black_box(found);
        let secs = start.elapsed().as_secs_f64();
        if round > 0 {
            rates.push(bytes as f64 / 1e6 / secs);
        }
    }
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}
