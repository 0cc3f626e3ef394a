//! `POST /v1/completions`: legacy text completions, whole or streamed.

use std::borrow::Cow;

use http::Response;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::body::MockBody;
use super::directives::Directives;
use super::envelope::{wants_usage, Choice, Head, StreamOptions, Usage};
use super::sse::Events;
use super::text::{pieces, reply_text, text_of, words};

#[derive(Deserialize)]
pub(super) struct CompletionReq<'a> {
    #[serde(borrow)]
    pub(super) model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    prompt: Option<&'a RawValue>,
    max_tokens: Option<u64>,
    n: Option<u64>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
}

pub(super) fn completions(req: &CompletionReq<'_>, d: &Directives<'_>) -> Response<MockBody> {
    const OBJECT: &str = "text_completion";
    // A list of prompts answers the first one, which is all the gateway tests need.
    let prompt = match req.prompt.map(RawValue::get) {
        Some(list) if list.starts_with('[') => serde_json::from_str::<Vec<&RawValue>>(list)
            .ok()
            .and_then(|list| Some(text_of(list.first()?).into_owned()))
            .map_or(Cow::Borrowed(""), Cow::Owned),
        _ => req.prompt.map_or(Cow::Borrowed(""), text_of),
    };
    let stream = req.stream == Some(true);
    let pad = d.chunks.filter(|_| stream);
    let (text, truncated) = reply_text("mock completion: ", &prompt, d, req.max_tokens, pad);
    let choices = req.n.unwrap_or(1).clamp(1, 64) as usize;
    let usage = Usage::new(words(&prompt).max(1), words(&text).max(1) * choices);
    let mut head = Head::new("cmpl-", req.model.as_deref(), usage, d);
    let finish = Some(if truncated { "length" } else { "stop" });
    let choice = |index, text, finish| Choice::<()> {
        text: Some(text),
        ..Choice::new(index, finish)
    };
    if !stream {
        let choices: Vec<_> = (0..choices)
            .map(|index| choice(index, &*text, finish))
            .collect();
        return head.full(OBJECT, choices);
    }
    head.with_usage &= wants_usage(req.stream_options.as_ref());
    let mut ev = Events::new(d);
    for index in 0..choices {
        for piece in pieces(&text, d.chunks) {
            head.chunk(&mut ev, OBJECT, [choice(index, piece, None)], true);
        }
        head.chunk(&mut ev, OBJECT, [choice(index, "", finish)], false);
    }
    head.close(ev, OBJECT)
}
