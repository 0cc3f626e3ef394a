//! Reading the few fields of an OpenAI request body the gateway needs (`model`,
//! `stream`, `user`, `stream_options`) without building a full JSON tree, and the
//! one rewrite streaming needs: asking the upstream for usage.

use std::borrow::Cow;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::GatewayError;

/// The fields the gateway reads; everything else is skipped by the parser.
#[derive(Debug, Default, Deserialize)]
pub struct RequestMeta<'a> {
    #[serde(borrow, default)]
    pub model: Option<Cow<'a, str>>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(borrow, default)]
    pub user: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub stream_options: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

/// Why a request body was refused. The message says what is wrong in terms
/// a client can act on.
///
/// This is on the path of every request: the variants hold what the parse
/// made anyway (serde's error, or nothing), so a refusal costs no more than
/// the one message string made when it is answered, and a success nothing.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("request body is empty; send a JSON object")]
    Empty,
    /// JSON, but not the shape of a request (an array, a string `stream`).
    #[error("invalid request body: {0}")]
    Invalid(#[source] serde_json::Error),
    #[error("request body is not valid JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// The parse on the blocking pool panicked or was cancelled.
    #[error("request body could not be read: {0}")]
    Lost(#[source] tokio::task::JoinError),
}

impl From<RequestError> for GatewayError {
    /// Every refusal is the client's to fix: `400 invalid_request`.
    fn from(e: RequestError) -> GatewayError {
        GatewayError::BadRequest(exact_string(&e))
    }
}

/// `value.to_string()` in one allocation of the message's exact length: it
/// is measured first. `to_string` starts empty and grows the string two or
/// three times as serde's message is written into it.
fn exact_string(value: &impl std::fmt::Display) -> String {
    use std::fmt::Write;
    struct Length(usize);
    impl Write for Length {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0 += s.len();
            Ok(())
        }
    }
    let mut length = Length(0);
    let _ = write!(length, "{value}");
    let mut out = String::with_capacity(length.0);
    let _ = write!(out, "{value}");
    out
}

/// Parses the body as a JSON object.
pub fn parse(body: &[u8]) -> Result<RequestMeta<'_>, RequestError> {
    if body.is_empty() {
        return Err(RequestError::Empty);
    }
    serde_json::from_slice::<RequestMeta<'_>>(body).map_err(|e| {
        if e.is_data() {
            RequestError::Invalid(e)
        } else {
            RequestError::NotJson(e)
        }
    })
}

/// Bodies at least this large are parsed on the blocking pool
/// ([`parse_off_thread`]), so that one big request does not hold up the other
/// connections of its shard for the milliseconds a parse takes.
pub const OFF_THREAD_BYTES: usize = 256 * 1024;

/// The fields of [`RequestMeta`], owned, to come back from another thread.
#[derive(Debug, Default)]
pub struct OwnedMeta {
    model: Option<String>,
    stream: Option<bool>,
    user: Option<String>,
    stream_options: Option<Box<RawValue>>,
}

impl OwnedMeta {
    /// A [`RequestMeta`] reading these fields.
    pub fn view(&self) -> RequestMeta<'_> {
        RequestMeta {
            model: self.model.as_deref().map(Cow::Borrowed),
            stream: self.stream,
            user: self.user.as_deref().map(Cow::Borrowed),
            stream_options: self.stream_options.as_deref(),
        }
    }
}

/// [`parse`] on the blocking pool.
pub async fn parse_off_thread(body: Bytes) -> Result<OwnedMeta, RequestError> {
    let parsed = tokio::task::spawn_blocking(move || {
        parse(&body).map(|m| OwnedMeta {
            model: m.model.map(Cow::into_owned),
            stream: m.stream,
            user: m.user.map(Cow::into_owned),
            stream_options: m.stream_options.map(ToOwned::to_owned),
        })
    })
    .await;
    parsed.unwrap_or_else(|e| Err(RequestError::Lost(e)))
}

impl RequestMeta<'_> {
    /// Whether the client itself asked for the usage chunk of a stream.
    pub fn wants_usage(&self) -> bool {
        self.stream_options
            .and_then(|raw| serde_json::from_str::<StreamOptions>(raw.get()).ok())
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }
}

/// Returns the body with `stream_options.include_usage = true`. When the client
/// sent no `stream_options`, the field is spliced in before the closing brace so
/// the rest of the body goes upstream byte for byte; otherwise the object is
/// rewritten through a JSON tree (rare: a client that set options but not usage).
pub fn with_include_usage(body: &Bytes, meta: &RequestMeta<'_>) -> Option<Bytes> {
    if meta.stream_options.is_none() {
        let end = body.iter().rposition(|b| !b.is_ascii_whitespace())?;
        if body[end] != b'}' {
            return None;
        }
        const FIELD: &[u8] = br#","stream_options":{"include_usage":true}"#;
        let mut out = Vec::with_capacity(body.len() + FIELD.len());
        out.extend_from_slice(&body[..end]);
        out.extend_from_slice(FIELD);
        out.extend_from_slice(&body[end..]);
        return Some(Bytes::from(out));
    }
    let mut v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let opts = v.get_mut("stream_options")?;
    if !opts.is_object() {
        *opts = serde_json::json!({});
    }
    opts.as_object_mut()?
        .insert("include_usage".into(), serde_json::Value::Bool(true));
    serde_json::to_vec(&v).ok().map(Bytes::from)
}

/// Rewrites a body for the version serving it: its upstream model name, its
/// system prompt (chat only, as a first system message), and the usage request
/// when `add_usage`. This re-encodes the JSON, which only routed versions that
/// need it pay for. `None` when the body is not a JSON object.
pub fn rewrite(
    body: &[u8],
    target: &super::routing::VersionTarget,
    chat: bool,
    add_usage: bool,
) -> Option<Bytes> {
    let mut v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let obj = v.as_object_mut()?;
    if let Some(model) = &target.upstream_model {
        obj.insert("model".into(), serde_json::Value::from(model.as_str()));
    }
    if let (true, Some(prompt)) = (chat, &target.system_prompt) {
        if let Some(messages) = obj
            .get_mut("messages")
            .and_then(serde_json::Value::as_array_mut)
        {
            messages.insert(0, serde_json::json!({"role": "system", "content": prompt}));
        }
    }
    if add_usage {
        let opts = obj
            .entry("stream_options")
            .or_insert_with(|| serde_json::json!({}));
        if !opts.is_object() {
            *opts = serde_json::json!({});
        }
        opts.as_object_mut()?
            .insert("include_usage".into(), serde_json::Value::Bool(true));
    }
    serde_json::to_vec(&v).ok().map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_and_skips_the_rest() {
        let body = br#"{"model":"gpt-x","messages":[{"role":"user","content":"hi \"there\""}],"stream":true,"user":"u\u00e9"}"#;
        let m = parse(body).unwrap();
        assert_eq!(m.model.as_deref(), Some("gpt-x"));
        assert_eq!(m.stream, Some(true));
        assert_eq!(m.user.as_deref(), Some("u\u{e9}"));
        assert!(!m.wants_usage());
    }

    #[test]
    fn rejects_non_objects_and_bad_json() {
        let message = |body: &[u8]| parse(body).unwrap_err().to_string();
        assert!(message(b"").contains("empty"));
        assert!(message(b"{\"model\":").contains("not valid JSON"));
        assert!(message(b"[1,2]").contains("invalid request body"));
        assert!(message(br#"{"stream":"yes"}"#).contains("invalid request body"));
    }

    /// Every refusal answers 400 `invalid_request` with the message as it
    /// was, and no `param`.
    #[test]
    fn a_refusal_is_a_bad_request() {
        for body in [&b""[..], b"{\"model\":", b"[1,2]"] {
            let message = parse(body).unwrap_err().to_string();
            let e = GatewayError::from(parse(body).unwrap_err());
            assert_eq!(e.status(), 400);
            assert_eq!(
                e.type_and_code(),
                ("invalid_request_error", "invalid_request")
            );
            let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
            assert_eq!(v["error"]["message"], message.as_str());
            assert!(v["error"]["param"].is_null());
        }
        assert_eq!(
            GatewayError::from(parse(b"").unwrap_err()).to_string(),
            "request body is empty; send a JSON object"
        );
    }

    #[test]
    fn splices_include_usage_preserving_bytes() {
        let body = Bytes::from_static(b"{\"model\":\"m\", \"stream\":true}\n");
        let m = parse(&body).unwrap();
        let out = with_include_usage(&body, &m).unwrap();
        assert_eq!(
            &out[..],
            b"{\"model\":\"m\", \"stream\":true,\"stream_options\":{\"include_usage\":true}}\n"
        );
        assert!(parse(&out).unwrap().wants_usage());
    }

    #[test]
    fn rewrites_existing_stream_options() {
        let body = Bytes::from_static(
            br#"{"stream":true,"stream_options":{"include_usage":false,"x":1}}"#,
        );
        let m = parse(&body).unwrap();
        let out = with_include_usage(&body, &m).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["stream_options"]["x"], 1);
    }

    /// A lone surrogate (a string cut inside an emoji) in a field the parse
    /// skips passes it, though `Value` refuses the body: a body that passed
    /// here is not always JSON, and capture redacts such a body as text.
    #[test]
    fn a_lone_surrogate_in_a_skipped_field_passes() {
        let text =
            r#"{"model":"m","messages":[{"role":"user","content":"mail bob@example.com \ud83d"}]}"#;
        assert!(parse(text.as_bytes()).is_ok());
        assert!(!crate::json::is_json(text.as_bytes()));
    }
}
