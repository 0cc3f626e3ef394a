//! Dataset curation: turns captured interactions plus their user feedback into
//! training examples (SFT, DPO, KTO) through a staged, streaming pipeline.
//!
//! Everything here is a pure transform and does no I/O: no files, no database,
//! no clock. The caller reads records from the store, pushes them into a
//! [`Builder`], and writes the exporter lines wherever it likes.

mod builder;
mod dedupe;
mod export;
mod filter;
mod quality;
mod spec;
mod split;

#[cfg(test)]
pub use builder::{build, Built};
pub use builder::{
    correction_pair, thumbs_pair, Builder, Finished, Kept, Pair, PairSource, Prepared, StageCounts,
    VotePair,
};
pub use export::{dpo_line, kto_line, sft_line, DpoFormat};
#[cfg(test)]
pub use export::{dpo_lines, write_jsonl};
pub use filter::STAGES;
pub use quality::{quality, Signals};
pub use spec::{Dedupe, FeedbackRule, Format, Spec, SpecError, Split};

use serde_json::{json, Value};

/// One captured interaction with its feedback, as the dataset builder sees it
/// (text already PII-redacted).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Interaction id (UUIDv7 text).
    pub id: String,
    pub created_at_ms: i64,
    pub route: String,
    pub version: String,
    /// "chat.completions" | "completions" | "responses" | ...
    pub endpoint: String,
    /// "ok" | "upstream_error" | ...
    pub outcome: String,
    pub status: u16,
    /// "redacted" | "off" | "failed"
    pub redaction: String,
    /// The request body: {"messages":[...], "tools":[...], ...}.
    pub request: Value,
    /// A chat.completion object: `choices[0].message {role, content, tool_calls}`,
    /// `choices[0].finish_reason`.
    pub response: Option<Value>,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub feedback: Vec<Feedback>,
}

/// One piece of user feedback attached to an interaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Feedback {
    /// thumbs | rating | correction | comment | outcome
    pub kind: String,
    pub value: Value,
    /// Normalised 0..1 score when the feedback has one.
    pub score: Option<f64>,
    pub created_at_ms: i64,
}

/// What the exporters need from one kept interaction; nothing else is held so
/// that the builder's memory stays proportional to what it keeps.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Example {
    pub id: String,
    pub version: String,
    /// The conversation before the answer, as sent (system, user, assistant
    /// history and tool results: dropping tool results would leave assistant
    /// tool_calls dangling, which fine-tuning APIs reject).
    pub prompt: Vec<Value>,
    pub tools: Option<Value>,
    /// The model's answer, normalised to {"role":"assistant", "content", "tool_calls"?}.
    pub answer: Value,
    /// The user's correction as an assistant message; it replaces the answer in SFT.
    pub correction: Option<Value>,
    /// Latest thumbs vote: true = up.
    pub thumbs: Option<bool>,
    pub quality: f64,
}

impl Example {
    /// Builds the exportable view of a record; `None` when it has no answer.
    pub fn from_record(r: &Record) -> Option<Example> {
        let answer = answer_message(r)?;
        let signals = Signals::of(&r.feedback);
        let quality = quality::quality_with(r, &signals, Some(&answer));
        Some(Example {
            id: r.id.clone(),
            version: r.version.clone(),
            prompt: prompt_messages(&r.request),
            tools: tools_of(&r.request),
            answer,
            correction: signals.correction,
            thumbs: signals.thumbs,
            quality,
        })
    }

    /// The message SFT trains on: the correction when there is one.
    pub fn target(&self) -> &Value {
        self.correction.as_ref().unwrap_or(&self.answer)
    }
}

/// Normalised prompt text used by exact dedupe and split: the system,
/// developer and user message texts joined, lowercased, whitespace collapsed.
/// Assistant and tool turns are left out so that the same question asked twice
/// matches even when the surrounding history differs only in what the model
/// said.
pub fn prompt_key(r: &Record) -> String {
    key_of(r, &["system", "developer", "user"])
}

/// The text near dedupe compares: the user turns alone. A long system prompt
/// shared by every request of a route would otherwise make any two requests
/// look alike (their shingles are mostly the system prompt's). Falls back to
/// [`prompt_key`] when there is no user text.
pub fn near_key(r: &Record) -> String {
    let k = key_of(r, &["user"]);
    if k.is_empty() {
        prompt_key(r)
    } else {
        k
    }
}

fn key_of(r: &Record, roles: &[&str]) -> String {
    let mut out = String::new();
    let mut push = |text: &str| {
        for word in text.split_whitespace() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.extend(word.chars().flat_map(char::to_lowercase));
        }
    };
    match r.request.get("messages").and_then(Value::as_array) {
        Some(msgs) => {
            for m in msgs {
                let role = m.get("role").and_then(Value::as_str).unwrap_or("");
                if roles.contains(&role) {
                    push(&text_of(m.get("content").unwrap_or(&Value::Null)));
                }
            }
        }
        None => push(&text_of(r.request.get("prompt").unwrap_or(&Value::Null))),
    }
    out
}

/// The request's messages; a legacy completions `prompt` becomes one user message.
pub(crate) fn prompt_messages(request: &Value) -> Vec<Value> {
    if let Some(msgs) = request.get("messages").and_then(Value::as_array) {
        return msgs.clone();
    }
    match request.get("prompt") {
        Some(p) if !p.is_null() => vec![json!({"role": "user", "content": text_of(p)})],
        _ => Vec::new(),
    }
}

fn tools_of(request: &Value) -> Option<Value> {
    match request.get("tools") {
        Some(Value::Array(a)) if !a.is_empty() => Some(Value::Array(a.clone())),
        _ => None,
    }
}

/// Text of a message content: a string, or the text parts of a parts array.
pub(crate) fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| match p {
                Value::String(s) => Some(s.as_str()),
                _ => p.get("text").and_then(Value::as_str),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn first_choice(r: &Record) -> Option<&Value> {
    r.response.as_ref()?.get("choices")?.get(0)
}

/// The model's answer as a clean assistant message; legacy completions
/// (`choices[0].text`) are wrapped the same way so every exporter sees one shape.
pub(crate) fn answer_message(r: &Record) -> Option<Value> {
    let choice = first_choice(r)?;
    let Some(msg) = choice.get("message") else {
        let text = choice.get("text")?.as_str()?;
        return Some(json!({"role": "assistant", "content": text}));
    };
    Some(assistant_message(msg))
}

/// Keeps only role, content and tool_calls: provider extras (refusal, audio,
/// annotations) are not part of the fine-tuning formats.
pub(crate) fn assistant_message(msg: &Value) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("role".into(), json!("assistant"));
    let tool_calls = msg
        .get("tool_calls")
        .filter(|t| t.as_array().is_some_and(|a| !a.is_empty()));
    match msg.get("content") {
        Some(c) if !c.is_null() => {
            out.insert("content".into(), json!(text_of(c)));
        }
        // OpenAI's format omits content on a pure tool-call turn; elsewhere an
        // empty string keeps chat templates happy.
        _ if tool_calls.is_some() => {}
        _ => {
            out.insert("content".into(), json!(""));
        }
    }
    if let Some(t) = tool_calls {
        out.insert("tool_calls".into(), t.clone());
    }
    Value::Object(out)
}

pub(crate) fn finish_reason(r: &Record) -> Option<&str> {
    first_choice(r)?.get("finish_reason")?.as_str()
}

/// Characters of output: content text plus each tool call's name and
/// arguments, so a pure tool-call answer is not "empty".
pub(crate) fn output_chars(answer: &Value) -> usize {
    let text = text_of(answer.get("content").unwrap_or(&Value::Null))
        .trim()
        .chars()
        .count();
    let calls = answer
        .get("tool_calls")
        .and_then(Value::as_array)
        .map_or(0, |calls| {
            calls
                .iter()
                .map(|c| {
                    let f = c.get("function");
                    let s = |k: &str| {
                        f.and_then(|f| f.get(k))
                            .and_then(Value::as_str)
                            .map_or(0, |s| s.chars().count())
                    };
                    s("name") + s("arguments")
                })
                .sum()
        });
    text + calls
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;

    /// A plain successful chat record; tests mutate what they exercise.
    pub fn rec(id: &str, user: &str, answer: &str) -> Record {
        Record {
            id: id.into(),
            created_at_ms: 1_000,
            route: "support".into(),
            version: "v1".into(),
            endpoint: "chat.completions".into(),
            outcome: "ok".into(),
            status: 200,
            redaction: "redacted".into(),
            request: json!({"messages": [
                {"role": "system", "content": "You are helpful."},
                {"role": "user", "content": user}
            ]}),
            response: Some(json!({"object": "chat.completion", "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": answer, "refusal": null},
                "finish_reason": "stop"
            }]})),
            prompt_tokens: Some(20),
            completion_tokens: Some(10),
            feedback: Vec::new(),
        }
    }

    pub fn fb(kind: &str, value: Value, score: Option<f64>, at: i64) -> Feedback {
        Feedback {
            kind: kind.into(),
            value,
            score,
            created_at_ms: at,
        }
    }

    pub fn thumbs(up: bool) -> Feedback {
        fb("thumbs", json!(up), Some(if up { 1.0 } else { 0.0 }), 2_000)
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    #[test]
    fn prompt_key_normalises_system_and_user_only() {
        let mut r = rec("a", "  How   DO I\n reset\tmy password? ", "x");
        r.request["messages"]
            .as_array_mut()
            .unwrap()
            .push(json!({"role": "assistant", "content": "IGNORED"}));
        assert_eq!(
            prompt_key(&r),
            "you are helpful. how do i reset my password?"
        );
        assert_eq!(near_key(&r), "how do i reset my password?");
        r.request = json!({"messages": [{"role": "system", "content": "Only  System"}]});
        assert_eq!(near_key(&r), "only system");
    }

    #[test]
    fn prompt_key_reads_content_parts_and_legacy_prompt() {
        let mut r = rec("a", "", "x");
        r.request = json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "Hello"}, {"type": "image_url", "image_url": {}},
            {"type": "text", "text": "World"}]}]});
        assert_eq!(prompt_key(&r), "hello world");
        r.request = json!({"prompt": "Once upon"});
        assert_eq!(prompt_key(&r), "once upon");
        assert_eq!(prompt_messages(&r.request)[0]["role"], "user");
    }

    #[test]
    fn answer_is_normalised_and_tool_calls_count_as_output() {
        let mut r = rec("a", "q", "hi");
        assert_eq!(
            answer_message(&r).unwrap(),
            json!({"role": "assistant", "content": "hi"})
        );
        r.response = Some(
            json!({"choices": [{"message": {"role": "assistant", "content": null,
            "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "f", "arguments": "{}"}}]}, "finish_reason": "tool_calls"}]}),
        );
        let a = answer_message(&r).unwrap();
        assert!(a.get("content").is_none());
        assert_eq!(output_chars(&a), 3);
        r.response = Some(json!({"choices": [{"text": "legacy", "finish_reason": "stop"}]}));
        assert_eq!(answer_message(&r).unwrap()["content"], "legacy");
        r.response = None;
        assert!(Example::from_record(&r).is_none());
    }

    #[test]
    fn example_carries_correction_thumbs_and_tools() {
        let mut r = rec("a", "q", "wrong");
        r.request["tools"] = json!([{"type": "function", "function": {"name": "f"}}]);
        r.feedback = vec![thumbs(false), fb("correction", json!("right"), None, 3_000)];
        let ex = Example::from_record(&r).unwrap();
        assert_eq!(ex.thumbs, Some(false));
        assert_eq!(
            ex.target(),
            &json!({"role": "assistant", "content": "right"})
        );
        assert!(ex.tools.is_some());
        assert_eq!(ex.prompt.len(), 2);
    }
}
