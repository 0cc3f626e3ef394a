//! Experiments: evaluation runs that replay an eval set's prompts to a
//! candidate and a baseline version, score both with `eval`, and record the
//! run with the store's `ExperimentStore`.
//!
//! - [`replay`]: one call to one version, with a time limit and retries with
//!   backoff on 429, 5xx and connection errors (honouring `Retry-After`), and
//!   the answer read into what the scorers take. The calls go straight to the
//!   version's upstream, not through the proxy: evaluation traffic is never
//!   captured, so it never enters datasets, rollout statistics or the live
//!   request metrics.

//! - [`examples`]: an eval set read back from a dataset version's lineage:
//!   the requests to replay and the references to score against.

pub mod evaluate;
pub mod examples;
pub mod judge;
pub mod replay;
pub mod run;
pub mod verdict;

use serde_json::Value;

use crate::eval::ToolCall;

/// A message content's text: a string, or the text parts of an array.
fn content_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => Some(
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect(),
        ),
        _ => None,
    }
}

/// A message's function calls, their arguments as the JSON text sent.
fn tool_calls(message: &Value) -> Vec<ToolCall> {
    let Some(calls) = message.get("tool_calls").and_then(Value::as_array) else {
        return Vec::new();
    };
    calls
        .iter()
        .filter_map(|c| {
            let f = c.get("function")?;
            Some(ToolCall {
                name: f.get("name")?.as_str()?.to_string(),
                arguments: match f.get("arguments") {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                },
            })
        })
        .collect()
}
