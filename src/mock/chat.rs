//! `POST /v1/chat/completions`: replies, tool calls and JSON mode, whole or
//! streamed as chunks.

use std::borrow::Cow;

use http::Response;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::body::MockBody;
use super::directives::Directives;
use super::envelope::{wants_usage, Choice, Head, StreamOptions, Usage};
use super::sse::Events;
use super::text::{pieces, reply_text, text_of, words, wrap_json};

#[derive(Deserialize)]
pub(super) struct ChatReq<'a> {
    #[serde(borrow)]
    pub(super) model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    messages: Vec<ChatMsg<'a>>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    n: Option<u64>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    #[serde(borrow)]
    tools: Option<Vec<ToolDef<'a>>>,
    #[serde(borrow)]
    tool_choice: Option<&'a RawValue>,
    #[serde(borrow)]
    response_format: Option<Named<'a>>,
}

#[derive(Deserialize)]
pub(super) struct ChatMsg<'a> {
    #[serde(borrow, default)]
    role: Cow<'a, str>,
    #[serde(borrow)]
    content: Option<&'a RawValue>,
}

/// Word count of all messages and the text of the last user message.
pub(super) fn conversation<'a>(messages: &[ChatMsg<'a>]) -> (usize, Cow<'a, str>) {
    let mut count = 0;
    let mut last_user = Cow::Borrowed("");
    for msg in messages {
        let text = msg.content.map_or(Cow::Borrowed(""), text_of);
        count += words(&text);
        if msg.role == "user" {
            last_user = text;
        }
    }
    (count, last_user)
}

/// A tool in chat form (`{function: {name}}`) or Responses form (`{name}`).
#[derive(Deserialize)]
struct ToolDef<'a> {
    #[serde(borrow)]
    function: Option<Named<'a>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
}

/// Both a full chat message and a stream delta; absent fields are skipped, so a delta
/// carries only what changed and `content: Some(None)` is an explicit null.
#[derive(Serialize, Default)]
struct Message<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCall<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refusal: Option<()>,
}

#[derive(Serialize)]
struct ToolCall<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionCall<'a>,
}

#[derive(Serialize)]
struct FunctionCall<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

impl<'a> ToolCall<'a> {
    /// The first mention of a call carries id, type and name; fragments only arguments.
    fn new(
        index: Option<usize>,
        id: Option<&'a str>,
        name: Option<&'a str>,
        arguments: &'a str,
    ) -> Self {
        let kind = id.map(|_| "function");
        ToolCall {
            index,
            id,
            kind,
            function: FunctionCall { name, arguments },
        }
    }
}

pub(super) fn chat(req: &ChatReq<'_>, d: &Directives<'_>) -> Response<MockBody> {
    const CHUNK: &str = "chat.completion.chunk";
    let (prompt, last_user) = conversation(&req.messages);
    let stream = req.stream == Some(true);
    let tool_allowed = req.tool_choice.is_none_or(|c| c.get() != "\"none\"");
    let tool = req
        .tools
        .as_ref()
        .and_then(|t| t.first())
        .filter(|_| tool_allowed);
    let tool = tool.map(|t| {
        let nested = t.function.as_ref().and_then(|f| f.name.as_deref());
        nested.or(t.name.as_deref()).unwrap_or("tool")
    });
    let format = req.response_format.as_ref().and_then(|f| f.kind.as_deref());
    let json_mode = matches!(format, Some("json_object" | "json_schema"));
    let prefix = if tool.is_some() { "" } else { "mock reply: " };
    let limit = req.max_completion_tokens.or(req.max_tokens);
    let pad = d.chunks.filter(|_| stream);
    let (text, truncated) = reply_text(prefix, &last_user, d, limit, pad);
    let content: Cow<'_, str> = match (tool, json_mode) {
        (Some(_), _) => Cow::Owned(wrap_json("query", &text)),
        (None, true) => Cow::Owned(wrap_json("reply", &text)),
        (None, false) => Cow::Borrowed(&text),
    };
    let choices = req.n.unwrap_or(1).clamp(1, 64) as usize;
    let usage = Usage::new(prompt.max(1), words(&text).max(1) * choices);
    let mut head = Head::new("chatcmpl-", req.model.as_deref(), usage, d);
    let finish = match (tool, truncated) {
        (Some(_), _) => "tool_calls",
        (None, true) => "length",
        (None, false) => "stop",
    };
    let call_id = head.id.replacen("chatcmpl-", "call_", 1);
    let text_content = Some(&*content).filter(|_| tool.is_none());
    if !stream {
        let choices: Vec<_> = (0..choices)
            .map(|index| Choice {
                message: Some(Message {
                    role: Some("assistant"),
                    content: Some(text_content),
                    tool_calls: tool
                        .map(|t| [ToolCall::new(None, Some(&call_id), Some(t), &content)]),
                    refusal: Some(()),
                }),
                ..Choice::new(index, Some(finish))
            })
            .collect();
        return head.full("chat.completion", choices);
    }
    head.with_usage &= wants_usage(req.stream_options.as_ref());
    let mut ev = Events::new(d);
    for index in 0..choices {
        let opening = Message {
            role: Some("assistant"),
            content: Some(text_content.map(|_| "")),
            tool_calls: tool.map(|t| [ToolCall::new(Some(0), Some(&call_id), Some(t), "")]),
            refusal: None,
        };
        let delta = |delta| {
            [Choice {
                delta: Some(delta),
                ..Choice::new(index, None)
            }]
        };
        head.chunk(&mut ev, CHUNK, delta(opening), false);
        for piece in pieces(&content, d.chunks) {
            let delta = delta(match tool {
                None => Message {
                    content: Some(Some(piece)),
                    ..Message::default()
                },
                Some(_) => {
                    let call = ToolCall::new(Some(0), None, None, piece);
                    Message {
                        tool_calls: Some([call]),
                        ..Message::default()
                    }
                }
            });
            head.chunk(&mut ev, CHUNK, delta, true);
        }
        let last = Choice {
            delta: Some(Message::default()),
            ..Choice::new(index, Some(finish))
        };
        head.chunk(&mut ev, CHUNK, [last], false);
    }
    head.close(ev, CHUNK)
}
