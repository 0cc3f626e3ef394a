//! One evaluation call: send a request body to one version of a route, with
//! a time limit per attempt and retries with backoff, and read the answer
//! into an [`Answer`] with its token counts.
//!
//! Sending is behind [`Replay`], so the runner needs no HTTP of its own: the
//! composition root implements it over the proxy's upstream client, and the
//! tests over a script.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use serde_json::Value;

use crate::eval::Answer;
#[cfg(test)]
use crate::eval::ToolCall;

/// What an upstream answered, read whole.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    /// The `Retry-After` header, as sent.
    pub retry_after: Option<String>,
    pub body: Bytes,
}

/// Why a call got no answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReplayError {
    #[error("the version's upstream could not be reached: {0}")]
    Connect(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the upstream's answer could not be read: {0}")]
    Protocol(String),
    /// The route has no such version (it is never retried).
    #[error("route {route} has no version {version}")]
    UnknownVersion { route: String, version: String },
}

impl ReplayError {
    fn retryable(&self) -> bool {
        matches!(self, ReplayError::Connect(_) | ReplayError::Timeout(_))
    }
}

/// Sends one request body to one version of a route and reads the whole
/// answer. The body's `model` is the route's name; the implementation rewrites
/// it for the version as the proxy does.
pub trait Replay: Send + Sync {
    fn send(
        &self,
        route: &str,
        version: &str,
        body: Bytes,
    ) -> impl Future<Output = Result<Reply, ReplayError>> + Send;
}

/// How hard a call tries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub attempts: u32,
    /// The wait before the first retry; doubled before each next one.
    pub backoff: Duration,
    /// No wait is longer, whatever `Retry-After` asks.
    pub max_wait: Duration,
    /// The time limit of one attempt.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    /// Four attempts, waits of 0.5, 1 and 2 s (or what `Retry-After` asks, up
    /// to 30 s), 120 s per attempt: an eval of an overloaded server slows
    /// down rather than fails.
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            backoff: Duration::from_millis(500),
            max_wait: Duration::from_secs(30),
            timeout: Duration::from_secs(120),
        }
    }
}

/// The end of a call after its retries.
#[derive(Debug, Clone, PartialEq)]
pub struct Called {
    /// The last attempt's result: an answer of any status, or why none came.
    pub result: Result<Reply, ReplayError>,
    pub attempts: u32,
    /// How long the last attempt took.
    pub latency: Duration,
}

/// Whether an answer with this status is worth another attempt: rate limits
/// and server errors pass with time; other client errors do not.
fn retry_status(status: u16) -> bool {
    status == 429 || (500..=599).contains(&status)
}

/// The wait a `Retry-After` value asks for: delay-seconds or an HTTP date
/// (RFC 9110 §10.2.3); `None` when it is neither.
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Sends `body` to `version` of `route`, retrying per `policy`.
pub async fn call<R: Replay>(
    replay: &R,
    route: &str,
    version: &str,
    body: Bytes,
    policy: &RetryPolicy,
) -> Called {
    let attempts = policy.attempts.max(1);
    let mut backoff = policy.backoff;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let started = Instant::now();
        let result =
            match tokio::time::timeout(policy.timeout, replay.send(route, version, body.clone()))
                .await
            {
                Ok(r) => r,
                Err(_) => Err(ReplayError::Timeout(policy.timeout)),
            };
        let latency = started.elapsed();
        let wait = match &result {
            Ok(reply) if retry_status(reply.status) => Some(
                reply
                    .retry_after
                    .as_deref()
                    .and_then(|v| retry_after(v, SystemTime::now()))
                    .unwrap_or(backoff),
            ),
            Err(e) if e.retryable() => Some(backoff),
            _ => None,
        };
        match wait {
            Some(wait) if attempt < attempts => {
                tokio::time::sleep(wait.min(policy.max_wait)).await;
                backoff = backoff.saturating_mul(2);
            }
            _ => {
                return Called {
                    result,
                    attempts: attempt,
                    latency,
                }
            }
        }
    }
}

/// Why an answer could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnswerError {
    #[error("the answer is not JSON: {0}")]
    NotJson(String),
    #[error("the answer has no choices[0]")]
    NoChoice,
}

/// Token counts an answer reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
}

/// Reads a chat or text completion into what the scorers take: the first
/// choice's text (a string, or the text parts of a content array) and its
/// function calls, with the usage it reported.
pub fn read_answer(body: &[u8]) -> Result<(Answer, Usage), AnswerError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| AnswerError::NotJson(e.to_string()))?;
    let choice = v.pointer("/choices/0").ok_or(AnswerError::NoChoice)?;
    let text = (choice.pointer("/message/content"))
        .or_else(|| choice.get("text"))
        .and_then(super::content_text);
    let tool_calls = choice
        .get("message")
        .map(super::tool_calls)
        .unwrap_or_default();
    let count = |name: &str| v.pointer(&format!("/usage/{name}")).and_then(Value::as_u64);
    Ok((
        Answer { text, tool_calls },
        Usage {
            prompt_tokens: count("prompt_tokens"),
            completion_tokens: count("completion_tokens"),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Answers from a script, one per attempt, recording when each came.
    struct Script {
        replies: Mutex<Vec<Result<Reply, ReplayError>>>,
        at: Mutex<Vec<tokio::time::Instant>>,
        hang: bool,
    }

    impl Script {
        fn new(replies: Vec<Result<Reply, ReplayError>>) -> Script {
            Script {
                replies: Mutex::new(replies.into_iter().rev().collect()),
                at: Mutex::new(Vec::new()),
                hang: false,
            }
        }

        /// Seconds between attempts.
        fn gaps(&self) -> Vec<f64> {
            let at = self.at.lock().unwrap();
            at.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect()
        }
    }

    impl Replay for Script {
        async fn send(&self, _: &str, _: &str, _: Bytes) -> Result<Reply, ReplayError> {
            self.at.lock().unwrap().push(tokio::time::Instant::now());
            if self.hang {
                std::future::pending::<()>().await;
            }
            self.replies
                .lock()
                .unwrap()
                .pop()
                .expect("a scripted reply")
        }
    }

    fn reply(status: u16, retry_after: Option<&str>) -> Result<Reply, ReplayError> {
        Ok(Reply {
            status,
            retry_after: retry_after.map(str::to_string),
            body: Bytes::from_static(b"{}"),
        })
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            attempts: 4,
            backoff: Duration::from_secs(1),
            max_wait: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn server_errors_and_rate_limits_are_retried_with_backoff() {
        let s = Script::new(vec![
            reply(503, None),
            reply(429, None),
            reply(500, None),
            reply(200, None),
        ]);
        let c = call(&s, "bot", "v2", Bytes::new(), &policy()).await;
        assert_eq!((c.result.unwrap().status, c.attempts), (200, 4));
        assert_eq!(s.gaps(), [1.0, 2.0, 4.0]);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_up_to_the_cap() {
        let s = Script::new(vec![
            reply(429, Some("3")),
            reply(503, Some("60")),
            reply(200, None),
        ]);
        let c = call(&s, "bot", "v2", Bytes::new(), &policy()).await;
        assert_eq!(c.attempts, 3);
        assert_eq!(s.gaps(), [3.0, 10.0]);
    }

    #[tokio::test(start_paused = true)]
    async fn client_errors_and_unknown_versions_are_not_retried() {
        let s = Script::new(vec![reply(400, None)]);
        let c = call(&s, "bot", "v2", Bytes::new(), &policy()).await;
        assert_eq!((c.result.unwrap().status, c.attempts), (400, 1));
        let gone = ReplayError::UnknownVersion {
            route: "bot".into(),
            version: "v9".into(),
        };
        let s = Script::new(vec![Err(gone.clone())]);
        let c = call(&s, "bot", "v9", Bytes::new(), &policy()).await;
        assert_eq!((c.result, c.attempts), (Err(gone), 1));
    }

    #[tokio::test(start_paused = true)]
    async fn connection_errors_are_retried_and_the_last_result_is_kept() {
        let refused = || Err(ReplayError::Connect("refused".into()));
        let s = Script::new(vec![refused(), refused(), refused(), refused()]);
        let c = call(&s, "bot", "v2", Bytes::new(), &policy()).await;
        assert_eq!((c.result, c.attempts), (refused(), 4));
        let s = Script::new(vec![
            reply(502, None),
            reply(502, None),
            reply(502, None),
            reply(502, None),
        ]);
        let c = call(&s, "bot", "v2", Bytes::new(), &policy()).await;
        assert_eq!(
            (c.result.unwrap().status, c.attempts),
            (502, 4),
            "the answer, not an error"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_that_hangs_times_out_and_counts() {
        let mut s = Script::new(vec![]);
        s.hang = true;
        let p = RetryPolicy {
            attempts: 2,
            ..policy()
        };
        let c = call(&s, "bot", "v2", Bytes::new(), &p).await;
        assert_eq!(
            (c.result, c.attempts),
            (Err(ReplayError::Timeout(Duration::from_secs(5))), 2)
        );
        assert_eq!(s.gaps(), [6.0], "5 s of time limit, then 1 s of backoff");
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        // RFC 9110 §10.2.3's own examples.
        let now = httpdate::parse_http_date("Fri, 31 Dec 1999 23:58:00 GMT").unwrap();
        assert_eq!(
            retry_after("Fri, 31 Dec 1999 23:59:59 GMT", now),
            Some(Duration::from_secs(119))
        );
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Fri, 31 Dec 1999 23:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-5", now), None);
    }

    #[test]
    fn answers_read_as_the_openai_api_sends_them() {
        // The chat completion object of the OpenAI API reference, with a
        // function call.
        let body = br#"{"id":"chatcmpl-abc123","object":"chat.completion","created":1699896916,
            "model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":null,
            "tool_calls":[{"id":"call_abc123","type":"function","function":{"name":"get_current_weather",
            "arguments":"{\n\"location\": \"Boston, MA\"\n}"}}]},"logprobs":null,"finish_reason":"tool_calls"}],
            "usage":{"prompt_tokens":82,"completion_tokens":17,"total_tokens":99}}"#;
        let (answer, usage) = read_answer(body).unwrap();
        assert_eq!(answer.text, None);
        assert_eq!(
            answer.tool_calls,
            [ToolCall {
                name: "get_current_weather".into(),
                arguments: "{\n\"location\": \"Boston, MA\"\n}".into()
            }]
        );
        assert_eq!(
            usage,
            Usage {
                prompt_tokens: Some(82),
                completion_tokens: Some(17)
            }
        );
        let body = br#"{"choices":[{"message":{"role":"assistant","content":[{"type":"text","text":"Hel"},{"type":"text","text":"lo"}]}}]}"#;
        assert_eq!(read_answer(body).unwrap().0.text.as_deref(), Some("Hello"));
        let body = br#"{"object":"text_completion","choices":[{"text":"\n\nThis is indeed a test","index":0}]}"#;
        assert_eq!(
            read_answer(body).unwrap().0.text.as_deref(),
            Some("\n\nThis is indeed a test")
        );
        assert!(matches!(
            read_answer(b"<html>bad gateway</html>"),
            Err(AnswerError::NotJson(_))
        ));
        assert_eq!(
            read_answer(br#"{"error":{"message":"overloaded"}}"#),
            Err(AnswerError::NoChoice)
        );
    }
}
