//! `/metrics` as a Prometheus server reads it: the whole text must parse as
//! the text exposition format (version 0.0.4), every sample in a family
//! declared before it, and label values must read back as they were given.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use flywheel::metrics::{Metrics, Outcome};
use serde_json::json;

use crate::common::*;

const CHAT: &str = r#"{"model":"m","messages":[{"role":"user","content":"count me"}]}"#;

#[tokio::test]
async fn a_scrape_parses_as_the_exposition_format() {
    let m = mock().await;
    let gw = gateway(&m).await;
    let ok = gw.post("/v1/chat/completions", CHAT, &[]).await;
    assert_eq!(ok.status, 200);
    let stream = json!({"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]});
    gw.post("/v1/chat/completions", &stream.to_string(), &[])
        .await;
    let failed = gw
        .post("/v1/chat/completions", CHAT, &[("x-mock", "status=503")])
        .await;
    assert_eq!(failed.status, 503);
    let feedback = json!({"interaction_id": ok.interaction_id(), "type": "thumbs", "value": "up"});
    let sent = gw.post("/v1/feedback", &feedback.to_string(), &[]).await;
    assert_eq!(sent.status, 201, "{}", sent.text());
    gw.captured(3).await;

    let text = gw.metrics().await;
    let scrape = parse(&text);
    for (family, kind) in [
        ("flywheel_requests_total", "counter"),
        ("flywheel_request_duration_seconds", "histogram"),
        ("flywheel_tokens_total", "counter"),
        ("flywheel_feedback_total", "counter"),
        ("flywheel_connections_open", "gauge"),
        ("flywheel_request_body_bytes", "gauge"),
    ] {
        assert_eq!(
            scrape.types.get(family).map(String::as_str),
            Some(kind),
            "{family}"
        );
        assert!(
            scrape.samples.iter().any(|s| s.family == family),
            "no sample of {family} in\n{text}"
        );
    }
    let statuses: HashSet<_> = scrape
        .samples
        .iter()
        .filter(|s| s.name == "flywheel_requests_total")
        .map(|s| s.label("status"))
        .collect();
    assert_eq!(statuses, HashSet::from(["200", "503"]), "{text}");
}

#[test]
fn label_values_read_back_as_they_were_given() {
    let m = Metrics::default();
    let route = "quote\" backslash\\ newline\n end";
    let version = "v\\n1";
    m.route(route, version)
        .request_done(200, Outcome::Ok, Duration::from_millis(5), None);
    m.tokens(route, version, "prompt", 3);
    m.feedback(route, version, "thumbs", "up");
    m.route_weight(route, version, 0.5);
    m.rollout_step(route, 1);
    let text = m.render();
    let scrape = parse(&text);
    let of_route: Vec<_> = scrape
        .samples
        .iter()
        .filter(|s| s.labels.iter().any(|(k, _)| k == "route"))
        .collect();
    // Requests, outcomes, 2 × 21 histogram lines, tokens, feedback, weight, step.
    assert_eq!(of_route.len(), 48, "{text}");
    for s in of_route {
        assert_eq!(s.label("route"), route, "{}", s.line);
        if s.family != "flywheel_rollout_step" {
            assert_eq!(s.label("version"), version, "{}", s.line);
        }
    }
}

/// The checks above mean something only if the parser refuses what the
/// format does not allow.
#[test]
fn the_parser_refuses_what_the_format_does_not_allow() {
    let family = "# HELP a_total A.\n# TYPE a_total counter\n";
    parse(&format!("{family}a_total{{l=\"x\\\"y\"}} 1\n"));
    for bad in [
        format!("{family}a_total{{l=\"x\"y\"}} 1\n"),
        format!("{family}a_total{{l=\"x\\ty\"}} 1\n"),
        format!("{family}a_total{{l=\"x\",l=\"y\"}} 1\n"),
        format!("{family}a_total 1\na_total 2\n"),
        format!("{family}b_total 1\n"),
        format!("{family}a_total one\n"),
        "a_total 1\n".to_string(),
        "# TYPE a_total counter\na_total 1\n".to_string(),
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n"
            .to_string(),
    ] {
        let refused = std::panic::catch_unwind(|| parse(&bad)).is_err();
        assert!(refused, "accepted:\n{bad}");
    }
}

/// A parsed scrape: each family's type, and every sample line.
struct Scrape {
    types: HashMap<String, String>,
    samples: Vec<Sample>,
}

struct Sample {
    line: String,
    /// The family the sample belongs to.
    family: String,
    name: String,
    /// Label names and unescaped values, in order.
    labels: Vec<(String, String)>,
    value: f64,
}

impl Sample {
    fn label(&self, name: &str) -> &str {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name} in {}", self.line))
    }
}

/// Parses `text` strictly as the text exposition format, panicking at the
/// first line that departs from it: each family has one HELP line, then one
/// TYPE line, then all its samples together; a sample's name is its family's
/// (a histogram's with `_bucket`, `_sum` or `_count`); label names are valid
/// and unique, values quoted with only `\\`, `\"` and `\n` escaped; no series
/// appears twice; and each histogram's buckets rise to `+Inf`, which equals
/// its count.
fn parse(text: &str) -> Scrape {
    assert!(text.ends_with('\n'), "the text ends without a newline");
    let mut types = HashMap::new();
    let mut helped = HashSet::new();
    let mut samples: Vec<Sample> = Vec::new();
    let mut current: Option<(String, String)> = None;
    let mut series = HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            assert!(metric_name(name), "bad name: {line}");
            assert!(helped.insert(name.to_string()), "second HELP: {line}");
            assert!(!types.contains_key(name), "HELP after TYPE: {line}");
            unescape(help, false).unwrap_or_else(|| panic!("bad escape: {line}"));
            current = None;
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a type");
            assert!(helped.contains(name), "TYPE without HELP: {line}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "bad type: {line}"
            );
            let first = types.insert(name.to_string(), kind.to_string());
            assert!(first.is_none(), "second TYPE: {line}");
            current = Some((name.to_string(), kind.to_string()));
        } else {
            assert!(
                !line.starts_with('#') && !line.is_empty(),
                "stray line: {line:?}"
            );
            let (family, kind) = current
                .as_ref()
                .unwrap_or_else(|| panic!("sample outside a family: {line}"));
            let sample = sample(line, family);
            let suffixes: &[&str] = match kind.as_str() {
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            assert!(
                suffixes
                    .iter()
                    .any(|s| sample.name == format!("{family}{s}")),
                "{} is not of family {family}: {line}",
                sample.name
            );
            let key = format!("{}{:?}", sample.name, sample.labels);
            assert!(series.insert(key), "series twice: {line}");
            samples.push(sample);
        }
    }
    check_histograms(&types, &samples);
    Scrape { types, samples }
}

fn sample(line: &str, family: &str) -> Sample {
    let name_end = line
        .find(['{', ' '])
        .unwrap_or_else(|| panic!("no value: {line}"));
    let name = &line[..name_end];
    assert!(metric_name(name), "bad name: {line}");
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(mut inner) = rest.strip_prefix('{') {
        loop {
            let eq = inner
                .find('=')
                .unwrap_or_else(|| panic!("bad label: {line}"));
            let key = &inner[..eq];
            assert!(label_name(key), "bad label name {key:?}: {line}");
            assert!(labels.iter().all(|(k, _)| k != key), "label twice: {line}");
            let quoted = inner[eq + 1..]
                .strip_prefix('"')
                .unwrap_or_else(|| panic!("unquoted label value: {line}"));
            let close = closing_quote(quoted).unwrap_or_else(|| panic!("unclosed value: {line}"));
            let value =
                unescape(&quoted[..close], true).unwrap_or_else(|| panic!("bad escape: {line}"));
            labels.push((key.to_string(), value));
            inner = &quoted[close + 1..];
            if let Some(after) = inner.strip_prefix(',') {
                inner = after;
            } else {
                rest = inner
                    .strip_prefix('}')
                    .unwrap_or_else(|| panic!("labels not closed: {line}"));
                break;
            }
        }
    }
    let value = rest
        .strip_prefix(' ')
        .unwrap_or_else(|| panic!("no value: {line}"));
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
    };
    Sample {
        line: line.to_string(),
        family: family.to_string(),
        name: name.to_string(),
        labels,
        value,
    }
}

/// Buckets of one histogram series rise with `le`, end at `+Inf`, and that
/// last one equals the series' count.
fn check_histograms(types: &HashMap<String, String>, samples: &[Sample]) {
    let mut buckets: HashMap<String, Vec<(f64, f64)>> = HashMap::new();
    let mut counts = HashMap::new();
    for s in samples.iter().filter(|s| types[&s.family] == "histogram") {
        let others: Vec<_> = s.labels.iter().filter(|(k, _)| k != "le").collect();
        let key = format!("{}{others:?}", s.family);
        if s.name.ends_with("_bucket") {
            let le = match s.label("le") {
                "+Inf" => f64::INFINITY,
                le => le.parse().unwrap_or_else(|_| panic!("bad le: {}", s.line)),
            };
            buckets.entry(key).or_default().push((le, s.value));
        } else if s.name.ends_with("_count") {
            counts.insert(key, s.value);
        }
    }
    assert_eq!(
        buckets.keys().collect::<HashSet<_>>(),
        counts.keys().collect::<HashSet<_>>()
    );
    for (key, b) in buckets {
        assert!(
            b.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
            "{key}: {b:?}"
        );
        assert_eq!(b.last().map(|l| l.0), Some(f64::INFINITY), "{key}");
        assert_eq!(b.last().map(|l| l.1), Some(counts[&key]), "{key}");
    }
}

fn metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

/// Where the quoted value starting `s` ends: the first `"` not escaped.
fn closing_quote(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(i),
            _ => {}
        }
    }
    None
}

/// Undoes the format's escapes: `\\` and `\n`, and `\"` in a label value.
/// `None` for any other escape, a trailing backslash, or a raw `"` in a
/// label value.
fn unescape(s: &str, label: bool) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                '\\' => out.push('\\'),
                'n' => out.push('\n'),
                '"' if label => out.push('"'),
                _ => return None,
            },
            '"' if label => return None,
            c => out.push(c),
        }
    }
    Some(out)
}
