//! `POST /v1/responses`: the Responses API, whole or as its typed event stream.

use std::borrow::Cow;

use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::body::{json_response, MockBody};
use super::chat::{conversation, ChatMsg};
use super::directives::Directives;
use super::sse::Events;
use super::text::{pieces, reply_text, text_of, words};
use super::{next_id, now, DEFAULT_MODEL};

#[derive(Deserialize)]
pub(super) struct ResponsesReq<'a> {
    #[serde(borrow)]
    pub(super) model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    input: Option<&'a RawValue>,
    #[serde(borrow)]
    instructions: Option<Cow<'a, str>>,
    max_output_tokens: Option<u64>,
    stream: Option<bool>,
}

/// One streamed Responses API event; `rest` holds the event-specific fields.
#[derive(Serialize)]
struct TypedEvent<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    sequence_number: u64,
    #[serde(flatten)]
    rest: Value,
}

pub(super) fn responses(req: &ResponsesReq<'_>, d: &Directives<'_>) -> Response<MockBody> {
    let n_id = next_id();
    let model = req.model.as_deref().unwrap_or(DEFAULT_MODEL);
    let mut input_words = req.instructions.as_deref().map_or(0, words);
    // Input is a string or a list of message items shaped like chat messages.
    let mut last_user = Cow::Borrowed("");
    match req.input {
        Some(raw) if raw.get().starts_with('[') => {
            let items: Vec<ChatMsg<'_>> = serde_json::from_str(raw.get()).unwrap_or_default();
            let (count, last) = conversation(&items);
            input_words += count;
            last_user = last;
        }
        Some(raw) => {
            last_user = text_of(raw);
            input_words += words(&last_user);
        }
        None => {}
    }
    let stream = req.stream == Some(true);
    let (text, truncated) = reply_text(
        "mock reply: ",
        &last_user,
        d,
        req.max_output_tokens,
        d.chunks.filter(|_| stream),
    );
    let (id, msg_id, created) = (format!("resp_{n_id}"), format!("msg_{n_id}"), now());
    let output_tokens = words(&text).max(1);
    let usage = (!d.no_usage).then(|| {
        let (input, output) = (input_words.max(1), output_tokens);
        json!({"input_tokens": input, "output_tokens": output, "total_tokens": input + output})
    });
    let part = json!({"type": "output_text", "text": text, "annotations": []});
    let message = |status: &str, content: Value| {
        json!({"type": "message", "id": msg_id, "status": status, "role": "assistant",
               "content": content})
    };
    let item = message("completed", json!([part]));
    let status = if truncated { "incomplete" } else { "completed" };
    let object = |status: &str, output: Value, usage: Option<&Value>| {
        json!({"id": id, "object": "response", "created_at": created, "status": status,
               "model": model, "output": output, "usage": usage})
    };
    if !stream {
        return json_response(
            StatusCode::OK,
            &object(status, json!([item]), usage.as_ref()),
        );
    }
    // The event sequence, with content deltas in the middle; only deltas count as content.
    let pending = json!({"response": object("in_progress", json!([]), None)});
    let open_item = message("in_progress", json!([]));
    let at = |mut extra: Value| {
        extra["item_id"] = json!(msg_id);
        extra["output_index"] = json!(0);
        extra["content_index"] = json!(0);
        extra
    };
    let empty_part = json!({"type": "output_text", "text": "", "annotations": []});
    let head = [
        ("response.created", pending.clone()),
        ("response.in_progress", pending),
        (
            "response.output_item.added",
            json!({"output_index": 0, "item": open_item}),
        ),
        (
            "response.content_part.added",
            at(json!({"part": empty_part})),
        ),
    ];
    let deltas = pieces(&text, d.chunks).into_iter();
    let deltas = deltas.map(|piece| ("response.output_text.delta", at(json!({"delta": piece}))));
    let last = if truncated {
        "response.incomplete"
    } else {
        "response.completed"
    };
    let done = object(status, json!([item]), usage.as_ref());
    let tail = [
        ("response.output_text.done", at(json!({"text": text}))),
        ("response.content_part.done", at(json!({"part": part}))),
        (
            "response.output_item.done",
            json!({"output_index": 0, "item": item}),
        ),
        (last, json!({"response": done})),
    ];
    let mut ev = Events::new(d);
    for (seq, (kind, rest)) in head.into_iter().chain(deltas).chain(tail).enumerate() {
        let event = TypedEvent {
            kind,
            sequence_number: seq as u64,
            rest,
        };
        ev.push(Some(kind), &event, kind == "response.output_text.delta");
    }
    ev.into_response()
}
