//! Feedback signals and the quality score derived from them. Pure functions of
//! the record: no I/O, no clock, so the same record always scores the same.

use super::{answer_message, assistant_message, finish_reason, output_chars, Feedback, Record};
use serde_json::{json, Value};

/// What the feedback on one interaction says, reduced to one value per kind.
///
/// thumbs, outcome and correction take the latest entry (by `created_at_ms`,
/// later in the list on ties) because a user changing their mind supersedes
/// the earlier vote; ratings are averaged because several raters are all
/// evidence. Comments carry no signal here.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Signals {
    pub thumbs: Option<bool>,
    pub rating: Option<f64>,
    pub outcome: Option<bool>,
    pub correction: Option<Value>,
}

fn as_bool(v: &Value, score: Option<f64>) -> Option<bool> {
    let b = match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_f64().map(|x| x > 0.0),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "up" | "true" | "yes" | "+1" | "1" | "success" | "positive" => Some(true),
            "down" | "false" | "no" | "-1" | "0" | "failure" | "negative" => Some(false),
            _ => None,
        },
        _ => None,
    };
    b.or(score.map(|s| s >= 0.5))
}

/// A correction as an assistant message: a string becomes its content, an
/// object is taken as a message (its role forced to assistant).
fn as_correction(v: &Value) -> Option<Value> {
    match v {
        Value::String(s) if !s.trim().is_empty() => {
            Some(json!({"role": "assistant", "content": s}))
        }
        Value::Object(o) if o.contains_key("content") || o.contains_key("tool_calls") => {
            Some(assistant_message(v))
        }
        _ => None,
    }
}

impl Signals {
    pub fn of(feedback: &[Feedback]) -> Signals {
        let mut s = Signals::default();
        let (mut t_at, mut o_at, mut c_at) = (i64::MIN, i64::MIN, i64::MIN);
        let (mut sum, mut n) = (0.0, 0u32);
        for f in feedback {
            match f.kind.as_str() {
                "thumbs" if f.created_at_ms >= t_at => {
                    if let Some(b) = as_bool(&f.value, f.score) {
                        s.thumbs = Some(b);
                        t_at = f.created_at_ms;
                    }
                }
                "outcome" if f.created_at_ms >= o_at => {
                    if let Some(b) = as_bool(&f.value, f.score) {
                        s.outcome = Some(b);
                        o_at = f.created_at_ms;
                    }
                }
                "correction" if f.created_at_ms >= c_at => {
                    if let Some(c) = as_correction(&f.value) {
                        s.correction = Some(c);
                        c_at = f.created_at_ms;
                    }
                }
                "rating" => {
                    let score = f.score.or_else(|| f.value.as_f64());
                    if let Some(x) = score.filter(|x| (0.0..=1.0).contains(x)) {
                        sum += x;
                        n += 1;
                    }
                }
                _ => {}
            }
        }
        if n > 0 {
            s.rating = Some(sum / f64::from(n));
        }
        s
    }
}

/// Quality in 0..1, deterministic:
///
/// | signal                          | effect               |
/// |---------------------------------|----------------------|
/// | start                           | 0.5                  |
/// | thumbs up / thumbs down         | +0.3 / -0.4          |
/// | mean rating score s             | + (s - 0.5) * 0.4    |
/// | outcome true / false            | +0.2 / -0.3          |
/// | correction present              | +0.2 (a corrected example is valuable) |
/// | outcome not "ok"                | -0.5                 |
/// | output empty or truncated       | -0.2                 |
/// | finally                         | clamp to 0..1        |
pub fn quality(r: &Record) -> f64 {
    quality_with(r, &Signals::of(&r.feedback), answer_message(r).as_ref())
}

pub(crate) fn quality_with(r: &Record, s: &Signals, answer: Option<&Value>) -> f64 {
    let mut q = 0.5;
    match s.thumbs {
        Some(true) => q += 0.3,
        Some(false) => q -= 0.4,
        None => {}
    }
    if let Some(rating) = s.rating {
        q += (rating - 0.5) * 0.4;
    }
    match s.outcome {
        Some(true) => q += 0.2,
        Some(false) => q -= 0.3,
        None => {}
    }
    if s.correction.is_some() {
        q += 0.2;
    }
    if r.outcome != "ok" {
        q -= 0.5;
    }
    let empty = answer.is_none_or(|a| output_chars(a) == 0);
    if empty || finish_reason(r) == Some("length") {
        q -= 0.2;
    }
    q.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn quality_table() {
        let base = rec("a", "q", "answer");
        assert!(close(quality(&base), 0.5));
        let with = |fbs: Vec<Feedback>| {
            let mut r = base.clone();
            r.feedback = fbs;
            quality(&r)
        };
        assert!(close(with(vec![thumbs(true)]), 0.8));
        assert!(close(with(vec![thumbs(false)]), 0.1));
        assert!(close(with(vec![fb("rating", json!(5), Some(1.0), 1)]), 0.7));
        assert!(close(with(vec![fb("rating", json!(1), Some(0.0), 1)]), 0.3));
        assert!(close(with(vec![fb("outcome", json!(true), None, 1)]), 0.7));
        assert!(close(with(vec![fb("outcome", json!(false), None, 1)]), 0.2));
        assert!(close(
            with(vec![fb("correction", json!("fix"), None, 1)]),
            0.7
        ));
        assert!(close(
            with(vec![thumbs(true), fb("outcome", json!(true), None, 1)]),
            1.0
        ));
        let mut bad = base.clone();
        bad.outcome = "upstream_error".into();
        assert!(close(quality(&bad), 0.0));
        let mut trunc = base.clone();
        trunc.response.as_mut().unwrap()["choices"][0]["finish_reason"] = json!("length");
        assert!(close(quality(&trunc), 0.3));
        let empty = rec("a", "q", "  ");
        assert!(close(quality(&empty), 0.3));
        // Deterministic.
        assert_eq!(quality(&trunc).to_bits(), quality(&trunc).to_bits());
    }

    #[test]
    fn latest_vote_wins_and_ratings_average() {
        let s = Signals::of(&[
            fb("thumbs", json!("up"), None, 5),
            fb("thumbs", json!("down"), None, 9),
            fb("thumbs", json!(true), None, 7),
            fb("rating", json!(null), Some(0.2), 1),
            fb("rating", json!(0.6), None, 1),
            fb("rating", json!(9), None, 1), // out of range: ignored
            fb("comment", json!("meh"), None, 1),
            fb(
                "correction",
                json!({"content": "b", "role": "user"}),
                None,
                3,
            ),
            fb("correction", json!("a"), None, 2),
        ]);
        assert_eq!(s.thumbs, Some(false));
        assert!(close(s.rating.unwrap(), 0.4));
        assert_eq!(
            s.correction,
            Some(json!({"role": "assistant", "content": "b"}))
        );
        assert_eq!(s.outcome, None);
    }
}
