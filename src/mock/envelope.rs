//! What chat and text completions share: the envelope with its id, model and
//! usage, a choice, and how a stream of chunks opens, carries usage and ends.

use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::body::{json_response, MockBody};
use super::directives::Directives;
use super::sse::Events;
use super::{next_id, now, DEFAULT_MODEL};

#[derive(Serialize)]
pub(super) struct Usage {
    prompt_tokens: usize,
    completion_tokens: usize,
    total_tokens: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    completion_tokens_details: Option<CompletionDetails>,
}

/// All zero: the mock has no prompt cache, no audio, no reasoning and no predicted output;
/// the fields are there for the shape and size of a real answer.
#[derive(Serialize, Default)]
struct PromptDetails {
    cached_tokens: usize,
    audio_tokens: usize,
}

#[derive(Serialize, Default)]
struct CompletionDetails {
    reasoning_tokens: usize,
    audio_tokens: usize,
    accepted_prediction_tokens: usize,
    rejected_prediction_tokens: usize,
}

impl Usage {
    pub(super) fn new(prompt: usize, completion: usize) -> Self {
        let total_tokens = prompt + completion;
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens,
            prompt_tokens_details: None,
            completion_tokens_details: None,
        }
    }
}

/// Outer shape of chat and text completions and their chunks. `usage` is absent when `None`
/// and `null` when `Some(None)`, matching how OpenAI streams with `include_usage`.
#[derive(Serialize)]
struct Envelope<'a, C> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: C,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<&'a Usage>>,
}

/// What every envelope of one completion shares.
pub(super) struct Head<'a> {
    pub(super) id: String,
    created: u64,
    model: &'a str,
    usage: Usage,
    /// Whether usage appears at all: the directive can veto it, and streams need opting in.
    pub(super) with_usage: bool,
}

impl<'a> Head<'a> {
    pub(super) fn new(
        prefix: &str,
        model: Option<&'a str>,
        mut usage: Usage,
        d: &Directives<'_>,
    ) -> Self {
        if d.usage_details {
            usage.prompt_tokens_details = Some(PromptDetails::default());
            usage.completion_tokens_details = Some(CompletionDetails::default());
        }
        let id = format!("{prefix}{}", next_id());
        let model = model.unwrap_or(DEFAULT_MODEL);
        let with_usage = !d.no_usage;
        Head {
            id,
            created: now(),
            model,
            usage,
            with_usage,
        }
    }

    fn wrap<C>(
        &self,
        object: &'static str,
        choices: C,
        usage: Option<Option<&'a Usage>>,
    ) -> Envelope<'_, C> {
        let (id, created, model) = (&self.id, self.created, self.model);
        Envelope {
            id,
            object,
            created,
            model,
            choices,
            usage,
        }
    }

    /// The answer to a non-streaming request.
    pub(super) fn full<C: Serialize>(
        &self,
        object: &'static str,
        choices: C,
    ) -> Response<MockBody> {
        let usage = Some(Some(&self.usage)).filter(|_| self.with_usage);
        json_response(StatusCode::OK, &self.wrap(object, choices, usage))
    }

    /// One stream chunk; with usage enabled every chunk carries `"usage": null`.
    pub(super) fn chunk<C: Serialize>(
        &self,
        ev: &mut Events,
        object: &'static str,
        choices: C,
        content: bool,
    ) {
        let usage = self.with_usage.then_some(None);
        ev.push(None, &self.wrap(object, choices, usage), content);
    }

    /// Ends a stream: the usage chunk with no choices if enabled, then `[DONE]`.
    /// A real server writes both right behind the final chunk, so they share
    /// its frame instead of waiting out another chunk delay each.
    pub(super) fn close(&self, mut ev: Events, object: &'static str) -> Response<MockBody> {
        if ev.aborted() {
            return ev.into_response();
        }
        if self.with_usage {
            ev.push(
                None,
                &self.wrap(object, [(); 0], Some(Some(&self.usage))),
                false,
            );
        }
        // The final chunk and the usage chunk go out in one frame with [DONE].
        let tail_events = if self.with_usage { 2 } else { 1 };
        ev.done(tail_events)
    }
}

#[derive(Deserialize)]
pub(super) struct StreamOptions {
    include_usage: Option<bool>,
}

/// Whether a stream asked for usage chunks.
pub(super) fn wants_usage(options: Option<&StreamOptions>) -> bool {
    options.and_then(|o| o.include_usage) == Some(true)
}

#[derive(Serialize)]
pub(super) struct Choice<'a, M> {
    pub(super) index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) message: Option<M>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) delta: Option<M>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) text: Option<&'a str>,
    pub(super) logprobs: (),
    pub(super) finish_reason: Option<&'a str>,
}

impl<'a, M> Choice<'a, M> {
    pub(super) fn new(index: usize, finish_reason: Option<&'a str>) -> Self {
        let (message, delta, text) = (None, None, None);
        Choice {
            index,
            message,
            delta,
            text,
            logprobs: (),
            finish_reason,
        }
    }
}
