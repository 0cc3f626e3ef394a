//! Turns a captured response into what the store keeps: the response object (for
//! streams, assembled from the SSE chunks into the non-streaming shape), the
//! finish reason and token usage, estimated when the upstream reported none.
//!
//! Runs on the capture writer thread only. It must accept anything: a truncated
//! stream, an upstream that died mid-event, or bytes that are not JSON at all.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::Endpoint;

/// Token counts of one interaction.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub prompt: i64,
    pub completion: i64,
    pub total: i64,
    /// True when estimated by the gateway rather than reported by the upstream.
    pub estimated: bool,
}

/// A body as the store keeps it, parsed once so that summarizing and redaction
/// share the work.
#[derive(Debug, Clone, PartialEq)]
pub enum Doc {
    /// JSON. `received` says the value is exactly the body as received, so an
    /// unchanged value can be stored as the original bytes without re-encoding.
    Json { value: Value, received: bool },
    /// A body that is not JSON, as (lossy) UTF-8.
    Text(String),
}

impl Doc {
    pub fn parse(bytes: &[u8]) -> Doc {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(value) => Doc::Json {
                value,
                received: true,
            },
            Err(_) => Doc::Text(String::from_utf8_lossy(bytes).into_owned()),
        }
    }

    /// The text to store: the received bytes when the value is unchanged.
    pub fn into_text(self, received: &[u8]) -> String {
        match self {
            Doc::Json { received: true, .. } => String::from_utf8_lossy(received).into_owned(),
            Doc::Json { value, .. } => value.to_string(),
            Doc::Text(t) => t,
        }
    }

    pub fn json(&self) -> Option<&Value> {
        match self {
            Doc::Json { value, .. } => Some(value),
            Doc::Text(_) => None,
        }
    }
}

/// What the writer stores about a response.
#[derive(Debug, Default, PartialEq)]
pub struct Summary {
    /// The response (assembled for streams), if there was one.
    pub response: Option<Doc>,
    pub finish_reason: Option<String>,
    pub usage: Option<Usage>,
    /// An error the upstream reported inside the body or stream.
    pub error: Option<String>,
}

/// Summarizes a response body. `ok` tells whether the call succeeded; token
/// usage is only estimated for successful calls, since a failed call consumed
/// nothing the client is billed for.
pub fn summarize(
    endpoint: Endpoint,
    request: Option<&Value>,
    response: &[u8],
    is_sse: bool,
    ok: bool,
) -> Summary {
    let mut summary = if is_sse {
        summarize_sse(endpoint, response)
    } else {
        summarize_json(response)
    };
    let estimable = matches!(
        endpoint,
        Endpoint::ChatCompletions
            | Endpoint::Completions
            | Endpoint::Responses
            | Endpoint::Embeddings
    );
    if summary.usage.is_none() && ok && estimable {
        let prompt = request.map_or(0, |r| estimate_tokens(&request_text(r)));
        let completion = if endpoint == Endpoint::Embeddings {
            0
        } else {
            summary
                .response
                .as_ref()
                .and_then(Doc::json)
                .map_or(0, |v| estimate_tokens(&output_text(v)))
        };
        summary.usage = Some(Usage {
            prompt,
            completion,
            total: prompt + completion,
            estimated: true,
        });
    }
    summary
}

/// About four characters per token is the usual rule of thumb for English text
/// with BPE tokenizers; it is only used when the upstream reports nothing.
pub fn estimate_tokens(text: &str) -> i64 {
    let chars = text.trim().chars().count() as i64;
    if chars == 0 {
        0
    } else {
        (chars + 3) / 4
    }
}

fn usage_from(v: &Value) -> Option<Usage> {
    let u = v.as_object()?;
    let get = |k: &str| u.get(k).and_then(Value::as_i64);
    // Chat/completions/embeddings report prompt/completion; the Responses API
    // reports input/output.
    let prompt = get("prompt_tokens").or_else(|| get("input_tokens"))?;
    let completion = get("completion_tokens")
        .or_else(|| get("output_tokens"))
        .unwrap_or(0);
    let total = get("total_tokens").unwrap_or(prompt + completion);
    Some(Usage {
        prompt,
        completion,
        total,
        estimated: false,
    })
}

fn error_message(v: &Value) -> Option<String> {
    let e = v.get("error")?;
    if e.is_null() {
        return None;
    }
    Some(
        e.get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| e.to_string()),
    )
}

fn summarize_json(body: &[u8]) -> Summary {
    if body.is_empty() {
        return Summary::default();
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Summary {
            response: Some(Doc::Text(String::from_utf8_lossy(body).into_owned())),
            ..Default::default()
        };
    };
    let finish_reason = v
        .pointer("/choices/0/finish_reason")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            // Responses API: an incomplete response names its reason.
            v.pointer("/incomplete_details/reason")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    Summary {
        usage: v.get("usage").and_then(usage_from),
        error: error_message(&v),
        finish_reason,
        response: Some(Doc::Json {
            value: v,
            received: true,
        }),
    }
}

/// Yields the `data:` payload of each complete SSE event, joining multi-line data.
fn sse_events(body: &[u8]) -> Vec<(Option<String>, String)> {
    let text = String::from_utf8_lossy(body);
    let mut events = Vec::new();
    let mut event: Option<String> = None;
    let mut data = String::new();
    let mut has_data = false;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            if has_data {
                events.push((event.take(), std::mem::take(&mut data)));
            }
            event = None;
            has_data = false;
            continue;
        }
        if let Some(rest) = line.strip_prefix("data:") {
            if has_data {
                data.push('\n');
            }
            data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
            has_data = true;
        } else if let Some(rest) = line.strip_prefix("event:") {
            event = Some(rest.trim().to_string());
        }
    }
    // A stream cut mid-event still counts what arrived of its data.
    if has_data {
        events.push((event, data));
    }
    events
}

#[derive(Default)]
struct ToolCall {
    id: Option<String>,
    kind: Option<String>,
    name: String,
    arguments: String,
}

#[derive(Default)]
struct Choice {
    role: Option<String>,
    content: String,
    has_content: bool,
    refusal: Option<String>,
    tool_calls: BTreeMap<i64, ToolCall>,
    finish_reason: Option<String>,
}

fn summarize_sse(endpoint: Endpoint, body: &[u8]) -> Summary {
    let mut summary = Summary::default();
    let mut head = Map::new();
    let mut choices: BTreeMap<i64, Choice> = BTreeMap::new();
    let mut responses_final: Option<Value> = None;
    let mut responses_text = String::new();
    for (_event, data) in sse_events(body) {
        if data.trim() == "[DONE]" {
            continue;
        }
        let Ok(v) = serde_json::from_str::<Value>(&data) else {
            continue;
        };
        if let Some(e) = error_message(&v) {
            summary.error = Some(e);
        }
        if endpoint == Endpoint::Responses {
            match v.get("type").and_then(Value::as_str) {
                Some("response.output_text.delta") => {
                    responses_text.push_str(v.get("delta").and_then(Value::as_str).unwrap_or(""));
                }
                Some("response.completed" | "response.incomplete" | "response.failed") => {
                    responses_final = v.get("response").cloned();
                }
                Some("error") => {
                    summary.error = v.get("message").and_then(Value::as_str).map(str::to_string);
                }
                _ => {}
            }
            continue;
        }
        for key in ["id", "created", "model", "system_fingerprint"] {
            if let Some(x) = v.get(key) {
                head.entry(key).or_insert_with(|| x.clone());
            }
        }
        if let Some(u) = v.get("usage").and_then(usage_from) {
            summary.usage = Some(u);
        }
        let Some(list) = v.get("choices").and_then(Value::as_array) else {
            continue;
        };
        for c in list {
            let index = c.get("index").and_then(Value::as_i64).unwrap_or(0);
            let choice = choices.entry(index).or_default();
            if let Some(r) = c.get("finish_reason").and_then(Value::as_str) {
                choice.finish_reason = Some(r.to_string());
            }
            // Legacy completions stream `text`; chat streams a `delta`.
            if let Some(t) = c.get("text").and_then(Value::as_str) {
                choice.content.push_str(t);
                choice.has_content = true;
            }
            let Some(delta) = c.get("delta") else {
                continue;
            };
            if let Some(r) = delta.get("role").and_then(Value::as_str) {
                choice.role = Some(r.to_string());
            }
            if let Some(t) = delta.get("content").and_then(Value::as_str) {
                choice.content.push_str(t);
                choice.has_content = true;
            }
            if let Some(t) = delta.get("refusal").and_then(Value::as_str) {
                choice.refusal.get_or_insert_with(String::new).push_str(t);
            }
            for tc in delta
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let i = tc.get("index").and_then(Value::as_i64).unwrap_or(0);
                let call = choice.tool_calls.entry(i).or_default();
                if let Some(id) = tc.get("id").and_then(Value::as_str) {
                    call.id = Some(id.to_string());
                }
                if let Some(t) = tc.get("type").and_then(Value::as_str) {
                    call.kind = Some(t.to_string());
                }
                if let Some(f) = tc.get("function") {
                    if let Some(n) = f.get("name").and_then(Value::as_str) {
                        call.name.push_str(n);
                    }
                    if let Some(a) = f.get("arguments").and_then(Value::as_str) {
                        call.arguments.push_str(a);
                    }
                }
            }
        }
    }

    if endpoint == Endpoint::Responses {
        let response = responses_final.unwrap_or_else(|| {
            // The stream ended before the final event: keep the text that arrived.
            json!({"object": "response", "status": "incomplete",
                   "output": [{"type": "message", "role": "assistant",
                               "content": [{"type": "output_text", "text": responses_text}]}]})
        });
        summary.usage = response.get("usage").and_then(usage_from);
        summary.finish_reason = response
            .pointer("/incomplete_details/reason")
            .and_then(Value::as_str)
            .or_else(|| response.get("status").and_then(Value::as_str))
            .map(str::to_string);
        summary.response = Some(Doc::Json {
            value: response,
            received: false,
        });
        return summary;
    }

    let chat = endpoint != Endpoint::Completions;
    let mut out = head;
    out.insert(
        "object".into(),
        Value::from(if chat {
            "chat.completion"
        } else {
            "text_completion"
        }),
    );
    let mut list = Vec::new();
    for (index, c) in choices {
        let mut choice = Map::new();
        choice.insert("index".into(), Value::from(index));
        if chat {
            let mut message = Map::new();
            message.insert(
                "role".into(),
                Value::from(c.role.unwrap_or_else(|| "assistant".into())),
            );
            message.insert(
                "content".into(),
                if c.has_content || c.tool_calls.is_empty() {
                    Value::from(c.content)
                } else {
                    Value::Null
                },
            );
            if let Some(r) = c.refusal {
                message.insert("refusal".into(), Value::from(r));
            }
            if !c.tool_calls.is_empty() {
                let calls: Vec<Value> = c
                    .tool_calls
                    .into_values()
                    .map(|t| {
                        json!({"id": t.id, "type": t.kind.unwrap_or_else(|| "function".into()),
                               "function": {"name": t.name, "arguments": t.arguments}})
                    })
                    .collect();
                message.insert("tool_calls".into(), Value::from(calls));
            }
            choice.insert("message".into(), Value::Object(message));
        } else {
            choice.insert("text".into(), Value::from(c.content));
        }
        if summary.finish_reason.is_none() {
            summary.finish_reason.clone_from(&c.finish_reason);
        }
        choice.insert(
            "finish_reason".into(),
            c.finish_reason.map_or(Value::Null, Value::from),
        );
        list.push(Value::Object(choice));
    }
    out.insert("choices".into(), Value::from(list));
    if let Some(u) = summary.usage {
        out.insert(
            "usage".into(),
            json!({"prompt_tokens": u.prompt, "completion_tokens": u.completion, "total_tokens": u.total}),
        );
    }
    summary.response = Some(Doc::Json {
        value: Value::Object(out),
        received: false,
    });
    summary
}

/// The text a prompt is made of, for estimating its tokens.
fn request_text(v: &Value) -> String {
    let mut out = String::new();
    for m in v
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        push_content(&mut out, m.get("content"));
    }
    for key in ["prompt", "input", "instructions"] {
        push_content(&mut out, v.get(key));
    }
    out
}

/// Appends the text of a content field: a string, an array of strings, an
/// array of parts with `text`, or message items with `content`.
fn push_content(out: &mut String, v: Option<&Value>) {
    match v {
        Some(Value::String(s)) => {
            out.push_str(s);
            out.push(' ');
        }
        Some(Value::Array(items)) => {
            for item in items {
                match item {
                    Value::String(s) => {
                        out.push_str(s);
                        out.push(' ');
                    }
                    Value::Object(o) => {
                        push_content(out, o.get("text"));
                        push_content(out, o.get("content"));
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

/// The generated text of a response object, for estimating its tokens.
fn output_text(v: &Value) -> String {
    let mut out = String::new();
    for c in v
        .get("choices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        push_content(&mut out, c.get("text"));
        if let Some(m) = c.get("message") {
            push_content(&mut out, m.get("content"));
            for t in m
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                push_content(&mut out, t.pointer("/function/arguments"));
            }
        }
    }
    for item in v
        .get("output")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        push_content(&mut out, item.get("content"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &Summary) -> Value {
        s.response
            .as_ref()
            .and_then(Doc::json)
            .cloned()
            .expect("a JSON response")
    }

    fn chunk(v: Value) -> String {
        format!("data: {v}\n\n")
    }

    #[test]
    fn assembles_chat_stream_with_usage() {
        let mut body = String::new();
        body += &chunk(
            json!({"id":"c1","model":"m","created":1,"choices":[{"index":0,"delta":{"role":"assistant","content":""}}],"usage":null}),
        );
        body += &chunk(
            json!({"id":"c1","choices":[{"index":0,"delta":{"content":"Hel"}}],"usage":null}),
        );
        body += &chunk(
            json!({"id":"c1","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}],"usage":null}),
        );
        body += &chunk(
            json!({"id":"c1","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}),
        );
        body += "data: [DONE]\n\n";
        let s = summarize(Endpoint::ChatCompletions, None, body.as_bytes(), true, true);
        let v = text(&s);
        assert_eq!(v["choices"][0]["message"]["content"], "Hello");
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["model"], "m");
        assert_eq!(s.finish_reason.as_deref(), Some("stop"));
        assert_eq!(
            s.usage,
            Some(Usage {
                prompt: 5,
                completion: 2,
                total: 7,
                estimated: false
            })
        );
    }

    #[test]
    fn assembles_streamed_tool_calls() {
        let mut body = String::new();
        body += &chunk(
            json!({"choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]}}]}),
        );
        body += &chunk(
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}}]}),
        );
        body += &chunk(
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]},"finish_reason":"tool_calls"}]}),
        );
        let s = summarize(Endpoint::ChatCompletions, None, body.as_bytes(), true, true);
        let v = text(&s);
        let call = &v["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "get_weather");
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args["city"], "Paris");
        assert!(v["choices"][0]["message"]["content"].is_null());
        assert_eq!(s.finish_reason.as_deref(), Some("tool_calls"));
    }

    #[test]
    fn estimates_when_no_usage() {
        let body = chunk(json!({"choices":[{"index":0,"delta":{"content":"abcdefgh"}}]}));
        let req = br#"{"messages":[{"role":"user","content":"abcdefghijkl"}]}"#;
        let s = summarize(
            Endpoint::ChatCompletions,
            Some(&serde_json::from_slice(req).unwrap()),
            body.as_bytes(),
            true,
            true,
        );
        assert_eq!(
            s.usage,
            Some(Usage {
                prompt: 3,
                completion: 2,
                total: 5,
                estimated: true
            })
        );
    }

    #[test]
    fn cut_stream_keeps_partial_output_and_error_event() {
        let mut body = chunk(json!({"choices":[{"index":0,"delta":{"content":"par"}}]}));
        body += "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tial";
        body += "\n\ndata: {\"error\":{\"message\":\"upstream died\"}}\n\n";
        let s = summarize(
            Endpoint::ChatCompletions,
            None,
            body.as_bytes(),
            true,
            false,
        );
        let v = text(&s);
        assert_eq!(v["choices"][0]["message"]["content"], "par");
        assert_eq!(s.error.as_deref(), Some("upstream died"));
        assert!(s.usage.is_none(), "failed calls are not estimated");
    }

    #[test]
    fn legacy_completion_stream() {
        let body = chunk(json!({"choices":[{"index":0,"text":"foo","finish_reason":null}]}))
            + &chunk(json!({"choices":[{"index":0,"text":"bar","finish_reason":"length"}]}));
        let s = summarize(Endpoint::Completions, None, body.as_bytes(), true, true);
        let v = text(&s);
        assert_eq!(v["choices"][0]["text"], "foobar");
        assert_eq!(s.finish_reason.as_deref(), Some("length"));
    }

    #[test]
    fn responses_stream_uses_completed_event() {
        let body = "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"hi\"}\n\n\
                    event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"status\":\"completed\",\"output\":[],\"usage\":{\"input_tokens\":3,\"output_tokens\":1,\"total_tokens\":4}}}\n\n";
        let s = summarize(Endpoint::Responses, None, body.as_bytes(), true, true);
        assert_eq!(
            s.usage,
            Some(Usage {
                prompt: 3,
                completion: 1,
                total: 4,
                estimated: false
            })
        );
        assert_eq!(s.finish_reason.as_deref(), Some("completed"));
    }

    #[test]
    fn json_response_usage_and_error() {
        let s = summarize(
            Endpoint::ChatCompletions,
            None,
            br#"{"choices":[{"finish_reason":"stop","message":{"content":"x"}}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#,
            false,
            true,
        );
        assert_eq!(s.usage.unwrap().total, 3);
        let s = summarize(
            Endpoint::ChatCompletions,
            None,
            br#"{"error":{"message":"bad"}}"#,
            false,
            false,
        );
        assert_eq!(s.error.as_deref(), Some("bad"));
        let s = summarize(Endpoint::Passthrough, None, b"not json", false, true);
        assert_eq!(s.response, Some(Doc::Text("not json".into())));
        assert!(s.usage.is_none());
    }
}
