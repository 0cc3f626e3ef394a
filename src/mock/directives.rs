//! Per-request behaviour, chosen by the `x-mock` header or a `mock:` model
//! prefix: faults (status, delay, hang, disconnect), pacing (chunks and their
//! delay) and the size and shape of the reply. The faults that come before any
//! endpoint runs are applied here, by [`prelude`].

use std::time::Duration;

use http::{Response, StatusCode};

use super::body::{error, MockAbort, MockBody};
use super::MAX_WORDS;

/// Per-request behaviour parsed from `x-mock` or a `mock:` model prefix.
#[derive(Default)]
pub(super) struct Directives<'a> {
    pub(super) status: Option<u16>,
    pub(super) delay_ms: Option<u64>,
    pub(super) chunks: Option<usize>,
    pub(super) chunk_delay_ms: Option<u64>,
    pub(super) disconnect_after: Option<usize>,
    pub(super) no_usage: bool,
    pub(super) hang: bool,
    pub(super) reply: Option<&'a str>,
    pub(super) reply_words: Option<usize>,
    /// Bytes of built-in prose to answer with, for payloads the size and shape of real ones.
    pub(super) prose: Option<usize>,
    /// Usage carries `prompt_tokens_details` and `completion_tokens_details`, as OpenAI's does.
    pub(super) usage_details: bool,
}

impl<'a> Directives<'a> {
    pub(super) fn parse(spec: &'a str) -> Self {
        let mut d = Directives::default();
        for item in spec.split(',') {
            let item = item.trim();
            let (key, value) = item.split_once('=').unwrap_or((item, ""));
            let number = || value.trim().parse::<u64>().ok();
            let count = || number().map(|n| (n as usize).min(MAX_WORDS));
            match key.trim() {
                "status" => d.status = number().and_then(|n| u16::try_from(n).ok()),
                "delay_ms" => d.delay_ms = number(),
                "chunks" => d.chunks = count().filter(|&n| n > 0),
                "chunk_delay_ms" => d.chunk_delay_ms = number(),
                "disconnect_after" => d.disconnect_after = count(),
                "no_usage" => d.no_usage = true,
                "hang" => d.hang = true,
                "reply" => d.reply = Some(value),
                "reply_words" => d.reply_words = count(),
                "prose" => d.prose = count(),
                "usage_details" => d.usage_details = true,
                _ => {}
            }
        }
        d
    }
}

/// Applies the behaviours that do not depend on the endpoint; `Some` is the final answer.
pub(super) async fn prelude(d: &Directives<'_>) -> Result<Option<Response<MockBody>>, MockAbort> {
    if d.hang {
        // The connection task drops this future when the client goes away or on shutdown.
        std::future::pending::<()>().await;
    }
    if let Some(ms) = d.delay_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if d.disconnect_after == Some(0) {
        return Err(MockAbort);
    }
    match d.status.and_then(|s| StatusCode::from_u16(s).ok()) {
        Some(status) if status.as_u16() >= 400 => {
            let code = match status.as_u16() {
                429 => Some("rate_limit_exceeded"),
                401 => Some("invalid_api_key"),
                404 => Some("not_found"),
                500..=599 => Some("server_error"),
                _ => None,
            };
            let message = format!("mock upstream returned status {}", status.as_u16());
            Ok(Some(error(status, &message, code)))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_reads_known_keys_and_bounds_sizes() {
        let d = Directives::parse(
            "status=503, chunks=0, delay_ms=x, reply=hi there, hang, reply_words=999999, unknown=1",
        );
        assert_eq!(d.status, Some(503));
        assert_eq!(d.chunks, None, "zero chunks is no chunking");
        assert_eq!(d.delay_ms, None, "a bad number is ignored");
        assert_eq!(d.reply, Some("hi there"));
        assert!(d.hang && !d.no_usage);
        assert_eq!(d.reply_words, Some(MAX_WORDS));
    }
}
