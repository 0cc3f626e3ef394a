//! Turns a captured response into what the store keeps: the response object (for
//! streams, assembled from the SSE chunks into the non-streaming shape), the
//! finish reason and token usage, estimated when the upstream reported none.
//!
//! Runs on the capture writer thread only. It must accept anything: a truncated
//! stream, an upstream that died mid-event, or bytes that are not JSON at all.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::tokens;
use super::Endpoint;
use crate::json;
use crate::privacy::{Privacy, RedactionFailed};

/// Token counts of one interaction.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub prompt: i64,
    pub completion: i64,
    pub total: i64,
    /// True when estimated by the gateway rather than reported by the upstream.
    pub estimated: bool,
}

/// A body as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub enum Doc {
    /// JSON text (JSON exactly when `serde_json::Value` would parse it): the
    /// body as received, or the response assembled from a stream.
    Json(String),
    /// A body that is not JSON, as (lossy) UTF-8.
    Text(String),
}

impl Doc {
    #[cfg(test)]
    pub fn parse(bytes: &[u8]) -> Doc {
        if json::is_json(bytes) {
            Doc::Json(String::from_utf8_lossy(bytes).into_owned())
        } else {
            Doc::Text(String::from_utf8_lossy(bytes).into_owned())
        }
    }

    /// The text to store.
    pub fn into_text(self) -> String {
        match self {
            Doc::Json(t) | Doc::Text(t) => t,
        }
    }

    /// The parsed value of a JSON body; built only where a reader needs the
    /// whole tree (token estimates, raw payloads).
    pub fn json(&self) -> Option<Value> {
        match self {
            Doc::Json(t) => serde_json::from_str(t).ok(),
            Doc::Text(_) => None,
        }
    }

    /// Redacts the body in place: every string value of a JSON body (keys and
    /// the rest of its bytes stay as they are), or the whole of a text body.
    pub fn redact(&mut self, privacy: &Privacy) -> Result<u32, RedactionFailed> {
        match self {
            // Checked JSON when the Doc was made.
            Doc::Json(t) => privacy.json_in_place(t),
            Doc::Text(t) => privacy.text_in_place(t),
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
    /// For a stream, how far into the body the first event carrying
    /// generated output ends (see [`super::Arrivals::time_of`]).
    pub first_token_end: Option<usize>,
}

/// Summarizes a response body. `ok` tells whether the call succeeded; token
/// usage is only estimated for successful calls, since a failed call consumed
/// nothing the client is billed for.
pub fn summarize(
    endpoint: Endpoint,
    request: &[u8],
    response: Vec<u8>,
    is_sse: bool,
    ok: bool,
) -> Summary {
    let mut summary = if is_sse {
        summarize_sse(endpoint, &response)
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
        let request = serde_json::from_slice::<Value>(request).ok();
        let response = summary.response.as_ref().and_then(Doc::json);
        // The model that answered names the template and vocabulary; the
        // requested name may be a route's.
        let model_of = |v: Option<&Value>| {
            v.and_then(|v| v.get("model"))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let model = model_of(response.as_ref())
            .or_else(|| model_of(request.as_ref()))
            .unwrap_or_default();
        let prompt = request
            .as_ref()
            .map_or(0, |r| tokens::prompt(endpoint, r, &model));
        let completion = if endpoint == Endpoint::Embeddings {
            0
        } else {
            response
                .as_ref()
                .map_or(0, |v| tokens::completion(v, &model))
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

fn usage_from(v: &Value) -> Option<Usage> {
    let u = v.as_object()?;
    let get = |k: &str| u.get(k).and_then(Value::as_i64);
    usage_of(
        get("prompt_tokens"),
        get("input_tokens"),
        get("completion_tokens"),
        get("output_tokens"),
        get("total_tokens"),
    )
}

fn usage_of(
    prompt: Option<i64>,
    input: Option<i64>,
    completion: Option<i64>,
    output: Option<i64>,
    total: Option<i64>,
) -> Option<Usage> {
    // Chat/completions/embeddings report prompt/completion; the Responses API
    // reports input/output.
    let prompt = prompt.or(input)?;
    let completion = completion.or(output).unwrap_or(0);
    Some(Usage {
        prompt,
        completion,
        total: total.unwrap_or(prompt + completion),
        estimated: false,
    })
}

fn error_message(v: &Value) -> Option<String> {
    v.get("error").and_then(error_text)
}

/// The text of an `error` member: its message, else the whole value as JSON.
fn error_text(e: &Value) -> Option<String> {
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

/// Reads what a JSON response says about itself in one pass over its bytes,
/// with no tree: `/choices/0/finish_reason`, `/incomplete_details/reason`,
/// `usage` and `error`, with the meaning `Value::pointer` and `Value::get`
/// give them (a repeated key counts by its last value, as in a `Value`).
mod fields {
    use serde::de::{MapAccess, SeqAccess};
    use serde_json::Value;

    use super::{error_text, usage_of, Usage};
    use crate::json::{Key, Pick, Picker, Valid};

    #[derive(Default)]
    pub(super) struct Fields {
        pub finish_reason: Option<String>,
        pub incomplete_reason: Option<String>,
        pub usage: Option<Usage>,
        pub error: Option<String>,
    }

    pub(super) struct Top;

    impl<'de> Picker<'de> for Top {
        type Out = Fields;

        fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
            let mut f = Fields::default();
            while let Some(key) = map.next_key_seed(Key(|k: &str| match k {
                "choices" => 1,
                "incomplete_details" => 2,
                "usage" => 3,
                "error" => 4,
                _ => 0,
            }))? {
                match key {
                    1 => f.finish_reason = map.next_value_seed(Pick(FirstChoice))?,
                    2 => f.incomplete_reason = map.next_value_seed(Pick(Member("reason")))?,
                    3 => f.usage = map.next_value_seed(Pick(UsageObject))?,
                    // Rare and small: read whole, since an error without a
                    // message is stored as its JSON.
                    4 => f.error = error_text(&map.next_value::<Value>()?),
                    _ => map.next_value_seed(Valid)?,
                }
            }
            Ok(f)
        }
    }

    /// `/0/finish_reason` of the `choices` value (an array's first element,
    /// or an object's member "0", as a JSON pointer reads it).
    struct FirstChoice;

    impl<'de> Picker<'de> for FirstChoice {
        type Out = Option<String>;

        fn array<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<String>, A::Error> {
            let first = seq
                .next_element_seed(Pick(Member("finish_reason")))?
                .flatten();
            while seq.next_element_seed(Valid)?.is_some() {}
            Ok(first)
        }

        fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<String>, A::Error> {
            let mut found = None;
            while let Some(is_zero) = map.next_key_seed(Key(|k: &str| k == "0"))? {
                if is_zero {
                    found = map.next_value_seed(Pick(Member("finish_reason")))?;
                } else {
                    map.next_value_seed(Valid)?;
                }
            }
            Ok(found)
        }
    }

    /// The string member of an object with this name.
    struct Member(&'static str);

    impl<'de> Picker<'de> for Member {
        type Out = Option<String>;

        fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<String>, A::Error> {
            let mut found = None;
            while let Some(hit) = map.next_key_seed(Key(|k: &str| k == self.0))? {
                if hit {
                    found = map.next_value_seed(Pick(Str))?;
                } else {
                    map.next_value_seed(Valid)?;
                }
            }
            Ok(found)
        }
    }

    struct Str;

    impl Picker<'_> for Str {
        type Out = Option<String>;

        fn string(self, s: &str) -> Option<String> {
            Some(s.to_string())
        }
    }

    /// An integer as `Value::as_i64` reads it.
    struct Int;

    impl Picker<'_> for Int {
        type Out = Option<i64>;

        fn signed(self, n: i64) -> Option<i64> {
            Some(n)
        }

        fn unsigned(self, n: u64) -> Option<i64> {
            i64::try_from(n).ok()
        }
    }

    struct UsageObject;

    impl<'de> Picker<'de> for UsageObject {
        type Out = Option<Usage>;

        fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<Usage>, A::Error> {
            let mut n: [Option<i64>; 5] = [None; 5];
            while let Some(slot) = map.next_key_seed(Key(|k: &str| match k {
                "prompt_tokens" => Some(0),
                "input_tokens" => Some(1),
                "completion_tokens" => Some(2),
                "output_tokens" => Some(3),
                "total_tokens" => Some(4),
                _ => None,
            }))? {
                match slot {
                    Some(i) => n[i] = map.next_value_seed(Pick(Int))?,
                    None => map.next_value_seed(Valid)?,
                }
            }
            Ok(usage_of(n[0], n[1], n[2], n[3], n[4]))
        }
    }
}

fn summarize_json(body: Vec<u8>) -> Summary {
    if body.is_empty() {
        return Summary::default();
    }
    let text = match String::from_utf8(body) {
        Ok(text) => text,
        // Not UTF-8, so not JSON.
        Err(e) => {
            return Summary {
                response: Some(Doc::Text(
                    String::from_utf8_lossy(e.as_bytes()).into_owned(),
                )),
                ..Default::default()
            };
        }
    };
    let Ok(f) = json::pick(&text, fields::Top) else {
        return Summary {
            response: Some(Doc::Text(text)),
            ..Default::default()
        };
    };
    Summary {
        usage: f.usage,
        error: f.error,
        finish_reason: f.finish_reason.or(f.incomplete_reason),
        response: Some(Doc::Json(text)),
        first_token_end: None,
    }
}

/// One SSE event: its `event:` name, its `data:` (lines joined), and the
/// length of the body up to its end (the blank line that closes it, or the
/// body's end for an event cut short).
struct SseEvent {
    data: String,
    end: usize,
}

/// Yields the `data:` payload of each SSE event, joining multi-line data,
/// with where it ends in the body.
fn sse_events(body: &[u8]) -> Vec<SseEvent> {
    let mut events = Vec::new();
    let mut data = String::new();
    let mut has_data = false;
    let mut start = 0;
    while start < body.len() {
        let end = memchr::memchr(b'\n', &body[start..]).map_or(body.len(), |i| start + i + 1);
        let line = &body[start..end];
        start = end;
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if has_data {
                events.push(SseEvent {
                    data: std::mem::take(&mut data),
                    end,
                });
            }
            has_data = false;
            continue;
        }
        if let Some(rest) = line.strip_prefix(b"data:") {
            if has_data {
                data.push('\n');
            }
            data.push_str(&String::from_utf8_lossy(
                rest.strip_prefix(b" ").unwrap_or(rest),
            ));
            has_data = true;
        }
    }
    // A stream cut mid-event still counts what arrived of its data.
    if has_data {
        events.push(SseEvent {
            data,
            end: body.len(),
        });
    }
    events
}

/// Whether a string member is present and not empty.
fn non_empty(v: Option<&Value>) -> bool {
    v.and_then(Value::as_str).is_some_and(|s| !s.is_empty())
}

/// Whether a stream event carries generated output: text, reasoning, a
/// refusal or a tool call. Opening chunks that only name the role, and the
/// lifecycle events of the Responses API, do not; time to first token is
/// measured to the first event that does.
fn carries_token(endpoint: Endpoint, v: &Value) -> bool {
    if endpoint == Endpoint::Responses {
        // Every kind of generated output streams as `response.<kind>.delta`
        // (output text, refusal, reasoning, function call arguments, ...).
        let delta = v
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.ends_with(".delta"));
        return delta
            && match v.get("delta") {
                Some(Value::String(s)) => !s.is_empty(),
                Some(Value::Null) | None => false,
                Some(_) => true,
            };
    }
    let choices = v.get("choices").and_then(Value::as_array);
    choices.into_iter().flatten().any(|c| {
        if non_empty(c.get("text")) {
            return true;
        }
        let Some(d) = c.get("delta") else {
            return false;
        };
        ["content", "refusal", "reasoning_content", "reasoning"]
            .iter()
            .any(|k| non_empty(d.get(*k)))
            || d.get("tool_calls")
                .and_then(Value::as_array)
                .is_some_and(|t| !t.is_empty())
            // Older servers stream a single `function_call` object.
            || d.get("function_call").is_some_and(Value::is_object)
    })
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
    for SseEvent { data, end } in sse_events(body) {
        if data.trim() == "[DONE]" {
            continue;
        }
        let Ok(v) = serde_json::from_str::<Value>(&data) else {
            continue;
        };
        if summary.first_token_end.is_none() && carries_token(endpoint, &v) {
            summary.first_token_end = Some(end);
        }
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
        summary.response = Some(Doc::Json(response.to_string()));
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
    summary.response = Some(Doc::Json(Value::Object(out).to_string()));
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &Summary) -> Value {
        s.response
            .as_ref()
            .and_then(Doc::json)
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
        let s = summarize(
            Endpoint::ChatCompletions,
            b"",
            body.into_bytes(),
            true,
            true,
        );
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
        let s = summarize(
            Endpoint::ChatCompletions,
            b"",
            body.into_bytes(),
            true,
            true,
        );
        let v = text(&s);
        let call = &v["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "get_weather");
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args["city"], "Paris");
        assert!(v["choices"][0]["message"]["content"].is_null());
        assert_eq!(s.finish_reason.as_deref(), Some("tool_calls"));
    }

    /// The first event carrying output is found in each stream shape, and
    /// its end is where the blank line closing it ends.
    #[test]
    fn first_token_is_the_first_event_with_output() {
        let first_end = |endpoint, events: &[&str]| {
            let body = events.concat();
            summarize(endpoint, b"", body.into_bytes(), true, true).first_token_end
        };
        let role = "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n";
        let text = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n";
        assert_eq!(
            first_end(Endpoint::ChatCompletions, &[role, text]),
            Some(role.len() + text.len())
        );
        assert_eq!(
            first_end(Endpoint::ChatCompletions, &[text, role]),
            Some(text.len())
        );
        // CRLF line ends, and an event split over lines of data.
        let crlf =
            "data: {\"choices\":[{\"delta\":\r\ndata: {\"reasoning_content\":\"hm\"}}]}\r\n\r\n";
        assert_eq!(
            first_end(Endpoint::ChatCompletions, &[role, crlf]),
            Some(role.len() + crlf.len())
        );
        let tool = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"tool_calls\":[{\"index\":0,\"function\":{\"name\":\"f\"}}]}}]}\n\n";
        assert_eq!(
            first_end(Endpoint::ChatCompletions, &[tool]),
            Some(tool.len())
        );
        let refusal = "data: {\"choices\":[{\"delta\":{\"refusal\":\"no\"}}]}\n\n";
        assert_eq!(
            first_end(Endpoint::ChatCompletions, &[role, refusal]),
            Some(role.len() + refusal.len())
        );
        // Nothing generated: a role chunk, a finish, usage and the end.
        let finish = "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";
        let usage = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\ndata: [DONE]\n\n";
        assert_eq!(
            first_end(Endpoint::ChatCompletions, &[role, finish, usage]),
            None
        );

        let empty = "data: {\"choices\":[{\"index\":0,\"text\":\"\"}]}\n\n";
        let word = "data: {\"choices\":[{\"index\":0,\"text\":\"foo\"}]}\n\n";
        assert_eq!(
            first_end(Endpoint::Completions, &[empty, word]),
            Some(empty.len() + word.len())
        );

        let created =
            "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{}}\n\n";
        let added = "event: response.content_part.added\ndata: {\"type\":\"response.content_part.added\",\"part\":{\"text\":\"\"}}\n\n";
        let blank = "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"\"}\n\n";
        let delta = "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"hi\"}\n\n";
        assert_eq!(
            first_end(Endpoint::Responses, &[created, added, blank, delta]),
            Some(created.len() + added.len() + blank.len() + delta.len())
        );
        let args =
            "data: {\"type\":\"response.function_call_arguments.delta\",\"delta\":\"{\\\"a\"}\n\n";
        assert_eq!(
            first_end(Endpoint::Responses, &[created, args]),
            Some(created.len() + args.len())
        );
        // A stream cut inside its first output event ends where the body does.
        let cut = "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}";
        assert_eq!(
            first_end(Endpoint::ChatCompletions, &[role, cut]),
            Some(role.len() + cut.len())
        );
    }

    /// Without usage from the upstream, tokens are estimated, the chat
    /// framing included: one message (4) and the reply's priming (3) around
    /// "Hello there, how are you?" (7 by OpenAI's tokenizers), and "I am
    /// fine." (4).
    #[test]
    fn estimates_when_no_usage() {
        let body = chunk(json!({"choices":[{"index":0,"delta":{"content":"I am fine."}}]}));
        let req = br#"{"messages":[{"role":"user","content":"Hello there, how are you?"}]}"#;
        let s = summarize(
            Endpoint::ChatCompletions,
            req,
            body.into_bytes(),
            true,
            true,
        );
        assert_eq!(
            s.usage,
            Some(Usage {
                prompt: 14,
                completion: 4,
                total: 18,
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
            b"",
            body.into_bytes(),
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
        let s = summarize(Endpoint::Completions, b"", body.into_bytes(), true, true);
        let v = text(&s);
        assert_eq!(v["choices"][0]["text"], "foobar");
        assert_eq!(s.finish_reason.as_deref(), Some("length"));
    }

    #[test]
    fn responses_stream_uses_completed_event() {
        let body = "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"hi\"}\n\n\
                    event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"status\":\"completed\",\"output\":[],\"usage\":{\"input_tokens\":3,\"output_tokens\":1,\"total_tokens\":4}}}\n\n";
        let s = summarize(
            Endpoint::Responses,
            b"",
            body.as_bytes().to_vec(),
            true,
            true,
        );
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
            b"",
            br#"{"choices":[{"finish_reason":"stop","message":{"content":"x"}}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#.to_vec(),
            false,
            true,
        );
        assert_eq!(s.usage.unwrap().total, 3);
        let s = summarize(
            Endpoint::ChatCompletions,
            b"",
            br#"{"error":{"message":"bad"}}"#.to_vec(),
            false,
            false,
        );
        assert_eq!(s.error.as_deref(), Some("bad"));
        let s = summarize(
            Endpoint::Passthrough,
            b"",
            b"not json".to_vec(),
            false,
            true,
        );
        assert_eq!(s.response, Some(Doc::Text("not json".into())));
        assert!(s.usage.is_none());
    }

    /// The one-pass reading of a JSON response agrees with reading it as a
    /// `Value`, on odd shapes too.
    #[test]
    fn json_fields_match_the_value_reading() {
        type Read = (Option<String>, Option<Usage>, Option<String>);
        let value_reading = |body: &str| -> Read {
            let Ok(v) = serde_json::from_str::<Value>(body) else {
                return (None, None, None);
            };
            let finish = v
                .pointer("/choices/0/finish_reason")
                .and_then(Value::as_str)
                .or_else(|| {
                    v.pointer("/incomplete_details/reason")
                        .and_then(Value::as_str)
                })
                .map(str::to_string);
            (
                finish,
                v.get("usage").and_then(usage_from),
                error_message(&v),
            )
        };
        for body in [
            r#"{"choices":[{"finish_reason":"stop"},{"finish_reason":"length"}]}"#,
            r#"{"choices":{"0":{"finish_reason":"x"},"1":{}}}"#,
            r#"{"choices":[{"finish_reason":7}],"incomplete_details":{"reason":"max_output_tokens"}}"#,
            r#"{"choices":[],"incomplete_details":["reason"]}"#,
            r#"{"choices":[{"finish_reason":"a"}],"choices":[{}]}"#,
            r#"{"usage":{"input_tokens":3,"output_tokens":1}}"#,
            r#"{"usage":{"prompt_tokens":-3,"total_tokens":18446744073709551615,"x":[1,{"y":null}]}}"#,
            r#"{"usage":{"prompt_tokens":1.5}}"#,
            r#"{"usage":{"prompt_tokens":2,"prompt_tokens":null}}"#,
            r#"{"usage":[1]}"#,
            r#"{"error":null}"#,
            r#"{"error":{"message":"m","code":1}}"#,
            r#"{"error":{"code":1,"type":"x"}}"#,
            r#"{"error":"plain"}"#,
            r#"[{"choices":[{"finish_reason":"stop"}]}]"#,
            r#""text""#,
            r#"{"x":"\ud800"}"#,
            r#"{"x":1e999}"#,
        ] {
            let s = summarize(
                Endpoint::Passthrough,
                b"",
                body.as_bytes().to_vec(),
                false,
                false,
            );
            assert_eq!(
                (s.finish_reason, s.usage, s.error),
                value_reading(body),
                "{body}"
            );
            let is_json = serde_json::from_str::<Value>(body).is_ok();
            assert_eq!(matches!(s.response, Some(Doc::Json(_))), is_json, "{body}");
        }
    }
}
