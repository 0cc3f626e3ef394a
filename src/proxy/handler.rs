//! The request path of a proxied call: authenticate, read and check the
//! body, pick the version, forward, and answer — every call captured.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response};
use http_body_util::{BodyExt, Limited};

use super::body::TeeBody;
use super::call::Call;
use super::request;
use super::request::RequestMeta;
use super::routing::{PinError, RoutingTable, VersionTarget};
use super::upstream::{strip_hop_by_hop, UpstreamBody};
use super::Proxy;
use crate::capture::{Endpoint, Outcome};
use crate::error::GatewayError;
use crate::http1::body::{BoxError, ClientBody, ResponseBody};
use crate::http1::budget::Reserved;
use crate::http1::client::SendError;

use crate::headers::{INTERACTION_ID, MODEL_VERSION, PIN_VERSION};
const PIN_HEADER: HeaderName = HeaderName::from_static(PIN_VERSION);

/// Answers a call with a gateway error and captures it; the JSON body is made
/// once and serves both.
fn fail(mut call: Call, err: GatewayError) -> Response<ResponseBody> {
    let body = err.body();
    let mut resp = err.response_with(body.clone());
    call.status = err.status().as_u16();
    add_gateway_headers(&mut resp, &call);
    call.finish_with_body(
        super::call::outcome_of(&err),
        &body,
        None,
        Some(err.to_string()),
    );
    resp
}

fn add_gateway_headers(resp: &mut Response<ResponseBody>, call: &Call) {
    // Names made at compile time and the id written without `fmt`: this runs
    // on every response.
    const INTERACTION_ID_NAME: HeaderName = HeaderName::from_static(INTERACTION_ID);
    const MODEL_VERSION_NAME: HeaderName = HeaderName::from_static(MODEL_VERSION);
    let headers = resp.headers_mut();
    let mut id = uuid::Uuid::encode_buffer();
    if let Ok(v) = HeaderValue::from_str(call.id().hyphenated().encode_lower(&mut id)) {
        headers.insert(INTERACTION_ID_NAME, v);
    }
    headers.insert(MODEL_VERSION_NAME, call.target.version_header.clone());
}

/// The most of the default upstream's model list that `GET /v1/models` reads:
/// real lists are a few KiB to a few hundred KiB (hundreds of models with
/// descriptions and prices); a bigger answer is given up on, not buffered.
const UPSTREAM_MODELS_MAX_BYTES: usize = 1 << 20;

/// `GET /v1/models` when routes are configured: the routes, then the models
/// of the default upstream (which still serves any name that is not a
/// route), merged by id. When the upstream's list cannot be had, the routes
/// alone answer, and the failure is counted and logged.
async fn list_models(
    mut call: Call,
    table: &RoutingTable,
    parts: http::request::Parts,
    keep_client_auth: bool,
) -> Response<ResponseBody> {
    let routes = table.route_names();
    let mut data: Vec<serde_json::Value> = routes
        .iter()
        .map(|name| serde_json::json!({"id": name, "object": "model", "created": 0, "owned_by": "flywheel"}))
        .collect();
    match upstream_models(&call.target, parts, keep_client_auth).await {
        Ok(models) => data.extend(
            models
                .into_iter()
                .filter(|m| {
                    !routes
                        .iter()
                        .any(|r| m.get("id").and_then(|v| v.as_str()) == Some(*r))
                })
                .map(serde_json::Value::Object),
        ),
        Err(reason) => {
            let metrics = &call.proxy().metrics;
            let failures = metrics
                .models_upstream_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1;
            // Clients may poll the list; an upstream that is down is logged
            // once and then every hundredth time, the count says the rest.
            if failures == 1 || failures % 100 == 0 {
                tracing::warn!(
                    upstream = %call.target.upstream.label,
                    %reason,
                    failures,
                    "the default upstream's models could not be listed; answering with the routes only"
                );
            }
        }
    }
    let body = Bytes::from(
        serde_json::to_vec(&serde_json::json!({"object": "list", "data": data}))
            .unwrap_or_default(),
    );
    let mut resp = Response::new(ResponseBody::full(body.clone()));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    call.status = 200;
    add_gateway_headers(&mut resp, &call);
    call.finish_with_body(Outcome::Ok, &body, None, None);
    resp
}

/// Why the default upstream's model list could not be had. It is logged and
/// counted, never answered: the routes then answer alone.
#[derive(Debug, thiserror::Error)]
enum ModelListError {
    #[error(transparent)]
    Send(GatewayError),
    #[error("the upstream answered {0}")]
    Status(http::StatusCode),
    #[error("the list is over {} bytes", UPSTREAM_MODELS_MAX_BYTES)]
    TooLarge,
    #[error("the list could not be read")]
    Unreadable,
    #[error("the list did not arrive in time")]
    TimedOut,
    #[error("the answer is not a model list")]
    NotAList,
}

/// The entries of the default upstream's `GET /v1/models` answer that have
/// a string `id`, read within [`UPSTREAM_MODELS_MAX_BYTES`] and the
/// upstream's time limits; the error says why there are none.
async fn upstream_models(
    target: &VersionTarget,
    parts: http::request::Parts,
    keep_client_auth: bool,
) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, ModelListError> {
    #[derive(serde::Deserialize)]
    struct List {
        data: Vec<serde_json::Value>,
    }
    let resp = send(target, parts, Bytes::new(), keep_client_auth, true)
        .await
        .map_err(ModelListError::Send)?;
    if !resp.status().is_success() {
        return Err(ModelListError::Status(resp.status()));
    }
    let total = target.upstream.config.total_timeout;
    let read = Limited::new(resp.into_body(), UPSTREAM_MODELS_MAX_BYTES).collect();
    let body = match tokio::time::timeout(total, read).await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(ModelListError::TooLarge)
        }
        Ok(Err(_)) => return Err(ModelListError::Unreadable),
        Err(_) => return Err(ModelListError::TimedOut),
    };
    let list: List = serde_json::from_slice(&body).map_err(|_| ModelListError::NotAList)?;
    Ok(list
        .data
        .into_iter()
        .filter_map(|m| match m {
            serde_json::Value::Object(o)
                if o.get("id").is_some_and(serde_json::Value::is_string) =>
            {
                Some(o)
            }
            _ => None,
        })
        .collect())
}

/// Reads a request body whole within `limit` bytes, the body budget and
/// the server's body time limit.
pub async fn read_body(
    px: &Proxy,
    body: ClientBody,
    headers: &http::HeaderMap,
    limit: u64,
) -> Result<(Bytes, Reserved), GatewayError> {
    let timeout = px.config.server.body_timeout;
    crate::http1::body::read_whole(body, headers, limit, &px.body_budget, timeout)
        .await
        .map_err(|fault| fault.to_error(limit))
}

/// A call to `/v1`: authenticate, read and check the body, forward, and
/// answer, with the call captured whatever its end.
pub async fn handle(px: Arc<Proxy>, req: Request<ClientBody>) -> Response<ResponseBody> {
    let start = Instant::now();
    let (parts, body) = req.into_parts();
    let endpoint = Endpoint::classify(&parts.method, parts.uri.path());
    let mut call = Call::new(px.clone(), start, endpoint, &parts);
    if px.is_draining() {
        // Connections that stay open during the drain may still send requests;
        // they are told to go elsewhere rather than left hanging.
        return fail(call, GatewayError::ShuttingDown);
    }

    let may_pin = match px.keys.authenticate(&parts.headers) {
        Ok(caller) => {
            let record = call.record();
            // An app's configured segment outranks what its callers claim.
            if let Some(seg) = caller.app.as_deref().and_then(|a| px.keys.segment(a)) {
                record.segment = Some(seg.to_string());
            }
            record.app = caller.app;
            caller.may_pin
        }
        Err(e) => return fail(call, e),
    };
    // The body's share of the body budget is held until the response is
    // ready to be sent: by then the upstream has been given the body, and
    // what capture keeps of it is counted by the capture queue.
    let (body, _reserved) =
        match read_body(&px, body, &parts.headers, px.config.server.max_body_bytes).await {
            Ok(b) => b,
            Err(e) => return fail(call, e),
        };
    call.record().request_body = crate::capture::request_copy(&body);

    let mut forward = body.clone();
    let mut hide_usage = false;
    let mut retry: Option<(Arc<VersionTarget>, Bytes)> = None;
    if endpoint.reads_body() {
        let owned = if body.len() >= request::OFF_THREAD_BYTES {
            match request::parse_off_thread(body.clone()).await {
                Ok(m) => Some(m),
                Err(e) => return fail(call, e.into()),
            }
        } else {
            None
        };
        let meta = match &owned {
            Some(m) => m.view(),
            None => match request::parse(&body) {
                Ok(m) => m,
                Err(e) => return fail(call, e.into()),
            },
        };
        let stream = meta.stream.unwrap_or(false);
        let record = call.record();
        record.requested_model = meta.model.as_deref().map(str::to_string);
        record.stream = stream;
        if record.user.is_none() {
            record.user = meta
                .user
                .as_deref()
                .filter(|u| !u.is_empty())
                .map(str::to_string);
        }
        let pin = parts.headers.get(PIN_HEADER).and_then(|v| v.to_str().ok());
        if pin.is_some() && !may_pin {
            return fail(
                call,
                GatewayError::Forbidden(
                    "x-flywheel-version is only honoured for the admin token or client keys with pin = true".into(),
                ),
            );
        }
        // The sticky key: the user, else the session, else a random draw.
        let key = record.user.clone().or_else(|| record.session.clone());
        let table = px.routing.current();
        match table.resolve(meta.model.as_deref(), key.as_deref(), pin) {
            Ok(target) => call.set_target(target),
            Err(PinError::UnknownVersion(v)) => {
                return fail(
                    call,
                    GatewayError::NotFound(format!(
                        "version {v} cannot be pinned: it is not an approved, canary or stable version of this model"
                    )),
                )
            }
        }
        let usage_capable = matches!(endpoint, Endpoint::ChatCompletions | Endpoint::Completions);
        let add_usage = stream && usage_capable && !meta.wants_usage();
        let chat = endpoint == Endpoint::ChatCompletions;
        match prepare_body(&call.target, &body, &meta, chat, add_usage) {
            Some((b, hide)) => {
                forward = b;
                hide_usage = hide;
            }
            None => {
                return fail(
                    call,
                    GatewayError::BadRequest("request body must be a JSON object".into()),
                )
            }
        }
        // The safety net: a canary call of a route that asks for it may be
        // retried once on stable, with the body stable needs.
        if pin.is_none() {
            if let Some(stable) = table.fallback(meta.model.as_deref(), &call.target) {
                if let Some((b, _)) = prepare_body(&stable, &body, &meta, chat, add_usage) {
                    retry = Some((stable, b));
                }
            }
        }
    }

    let keep_client_auth = px.keys.open() || px.config.auth.pass_client_key;
    if endpoint == Endpoint::Models {
        let table = px.routing.current();
        if !table.routes.is_empty() {
            return list_models(call, &table, parts, keep_client_auth).await;
        }
    }

    let plain = endpoint != Endpoint::Passthrough;
    // A retry needs the request again, so only then is it copied.
    let retry = retry.map(|(stable, b)| {
        (
            stable,
            b,
            parts.method.clone(),
            parts.uri.clone(),
            parts.headers.clone(),
        )
    });
    let first = send(&call.target, parts, forward, keep_client_auth, plain).await;
    let resp = match (first, retry) {
        (Ok(r), _) if r.status().as_u16() < 500 => r,
        (Ok(r), None) => r,
        (Err(e), None) => return fail(call, e),
        (failed, Some((stable, stable_body, method, uri, headers))) => {
            // The canary failed before anything reached the client: its
            // failure is recorded against it, then stable serves the call.
            let error = match failed {
                Ok(r) => {
                    call.status = r.status().as_u16();
                    format!("canary answered {}; retried on stable", r.status())
                }
                Err(e) => {
                    call.status = e.status().as_u16();
                    format!("{e}; retried on stable")
                }
            };
            let stable_call = call.fork(stable);
            call.finish(Outcome::UpstreamError, Vec::new(), false, None, Some(error));
            call = stable_call;
            let mut parts = Request::new(()).into_parts().0;
            parts.method = method;
            parts.uri = uri;
            parts.headers = headers;
            match send(&call.target, parts, stable_body, keep_client_auth, plain).await {
                Ok(r) => r,
                Err(e) => return fail(call, e),
            }
        }
    };
    let deadline = start + call.target.upstream.config.total_timeout;
    let headers_at = start.elapsed();
    let (mut rparts, rbody) = resp.into_parts();
    call.status = rparts.status.as_u16();
    strip_hop_by_hop(&mut rparts.headers);
    let is_sse = rparts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let cap = px.config.capture.max_body_bytes;
    let declared = rparts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());

    if is_sse || endpoint == Endpoint::Passthrough {
        if hide_usage {
            rparts.headers.remove(header::CONTENT_LENGTH);
        }
        call.record().response_is_sse = is_sse;
        // A stream's first byte is its first frame; the writer finds its
        // first token from the frames' arrival times.
        let first_byte = (!is_sse).then_some(headers_at);
        let mut resp = Response::from_parts(rparts, ResponseBody::empty());
        add_gateway_headers(&mut resp, &call);
        *resp.body_mut() = ResponseBody::Stream(Box::pin(TeeBody::new(
            rbody, call, deadline, is_sse, hide_usage, cap, first_byte, declared,
        )));
        return resp;
    }

    // A JSON answer that fits in what capture keeps of it is read whole
    // before it is sent on, so the call is captured before the client can
    // see the response end. A longer one (an embeddings batch, say) is
    // forwarded as it comes instead, so that the gateway never holds more of
    // it than capture keeps; its record is queued before its last bytes go
    // out. A declared length over the limit skips the reading ahead.
    let mut rbody = rbody;
    let ahead = if declared.is_some_and(|n| n > cap as u64) {
        Ahead::default()
    } else {
        match tokio::time::timeout_at(deadline.into(), read_ahead(&mut rbody, cap)).await {
            Ok(Ok(a)) => a,
            Ok(Err(_)) => return fail(call, GatewayError::UpstreamProtocol),
            Err(_) => return fail(call, GatewayError::UpstreamTimeout("the total time limit")),
        }
    };
    if !ahead.ended {
        let mut resp = Response::from_parts(rparts, ResponseBody::empty());
        add_gateway_headers(&mut resp, &call);
        let tee = TeeBody::new(
            rbody,
            call,
            deadline,
            false,
            false,
            cap,
            Some(headers_at),
            declared,
        );
        *resp.body_mut() = ResponseBody::Stream(Box::pin(tee.with_prefix(ahead.data)));
        return resp;
    }
    let collected = ahead.data;
    rparts.headers.remove(header::CONTENT_LENGTH);
    let outcome = if rparts.status.as_u16() < 400 {
        Outcome::Ok
    } else {
        Outcome::UpstreamError
    };
    let mut resp = Response::from_parts(rparts, ResponseBody::full(collected.clone()));
    add_gateway_headers(&mut resp, &call);
    call.finish_with_body(outcome, &collected, Some(headers_at), None);
    resp
}

/// The start of a response body, read ahead of sending it.
#[derive(Default)]
struct Ahead {
    data: Bytes,
    /// Whether `data` is the whole body.
    ended: bool,
}

/// Reads a body until it ends or more than `cap` bytes of it have come.
async fn read_ahead(body: &mut UpstreamBody, cap: usize) -> Result<Ahead, BoxError> {
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut len = 0;
    let ended = loop {
        if len > cap {
            break false;
        }
        match body.frame().await {
            None => break true,
            Some(frame) => {
                if let Ok(data) = frame?.into_data() {
                    len += data.len();
                    chunks.push(data);
                }
            }
        }
    };
    let data = match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.pop().unwrap_or_default(),
        _ => {
            let mut all = BytesMut::with_capacity(len);
            for c in &chunks {
                all.extend_from_slice(c);
            }
            all.freeze()
        }
    };
    Ok(Ahead { data, ended })
}

/// The body as the serving version needs it: its model name and system prompt,
/// and the usage request for streams. `None` when a rewrite needs a JSON object
/// and the body is not one. The flag says whether the usage chunk must be hidden.
fn prepare_body(
    target: &VersionTarget,
    body: &Bytes,
    meta: &RequestMeta<'_>,
    chat: bool,
    add_usage: bool,
) -> Option<(Bytes, bool)> {
    if target.rewrites_body() {
        return request::rewrite(body, target, chat, add_usage).map(|b| (b, add_usage));
    }
    if add_usage {
        if let Some(b) = request::with_include_usage(body, meta) {
            return Some((b, true));
        }
    }
    Some((body.clone(), false))
}

/// Sends a request to a version's upstream within its connect and first-byte
/// limits, mapping failures to gateway errors.
async fn send(
    target: &VersionTarget,
    parts: http::request::Parts,
    body: Bytes,
    keep_client_auth: bool,
    plain: bool,
) -> Result<Response<UpstreamBody>, GatewayError> {
    let upstream = &target.upstream;
    let mut req = upstream
        .request(parts, body, keep_client_auth, plain)
        .map_err(|_| GatewayError::BadRequest("the request path is not valid".into()))?;
    for (k, v) in &target.extra_headers {
        req.headers_mut().insert(k.clone(), v.clone());
    }
    let limits = &upstream.config;
    upstream
        .send(req, limits.first_byte_timeout.min(limits.total_timeout))
        .await
        .map_err(|e| {
            tracing::debug!(error = %e, "upstream request failed");
            match e {
                SendError::Connect(_) => GatewayError::UpstreamUnreachable,
                SendError::TimedOut => GatewayError::UpstreamTimeout("the first-byte time limit"),
                SendError::Io(_) | SendError::Malformed(_) | SendError::Other(_) => {
                    GatewayError::UpstreamProtocol
                }
            }
        })
}
