//! The hot path end to end: a real gateway in front of the real mock upstream,
//! over real sockets. Each test checks what a client sees and what was captured.

use std::time::Duration;

use crate::common::*;
use serde_json::{json, Value};

const CHAT: &str = r#"{"model":"gpt-test","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello there"}]}"#;

#[tokio::test]
async fn chat_completion_is_forwarded_and_captured() {
    let m = mock().await;
    let gw = gateway(&m).await;
    let r = gw
        .post(
            "/v1/chat/completions",
            CHAT,
            &[
                ("x-flywheel-session", "s-1"),
                ("x-flywheel-meta-feature", "faq"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "mock reply: hello there"
    );
    assert_eq!(v["model"], "gpt-test", "model field is forwarded untouched");

    let id = r.interaction_id();
    let uuid = uuid::Uuid::parse_str(&id).unwrap();
    assert_eq!(uuid.get_version_num(), 7);
    assert_eq!(
        r.header("x-flywheel-model-version").as_deref(),
        Some("default")
    );

    let rec = gw.interaction(&id).await;
    assert_eq!(rec["endpoint"], "chat.completions");
    assert_eq!(rec["method"], "POST");
    assert_eq!(rec["path"], "/v1/chat/completions");
    assert_eq!(rec["requested_model"], "gpt-test");
    assert_eq!(rec["route"], "default");
    assert_eq!(rec["version"], "default");
    assert_eq!(rec["status"], 200);
    assert_eq!(rec["outcome"], "ok");
    assert_eq!(rec["stream"], false);
    assert_eq!(rec["session_id"], "s-1");
    assert_eq!(rec["metadata"]["feature"], "faq");
    assert_eq!(rec["request"]["messages"][0]["content"], "be brief");
    assert_eq!(
        rec["response"]["choices"][0]["message"]["content"],
        "mock reply: hello there"
    );
    assert_eq!(rec["prompt_tokens"], v["usage"]["prompt_tokens"]);
    assert_eq!(rec["completion_tokens"], v["usage"]["completion_tokens"]);
    assert_eq!(rec["total_tokens"], v["usage"]["total_tokens"]);
    assert_eq!(rec["tokens_estimated"], false);
    assert!(rec["latency_ms"].as_f64().unwrap() > 0.0);
    assert!(rec["ttft_ms"].as_f64().unwrap() > 0.0);
    assert!(rec["upstream"]
        .as_str()
        .unwrap()
        .contains(&m.addr.to_string()));
}

#[tokio::test]
async fn stream_hides_the_usage_chunk_it_asked_for_but_captures_usage() {
    let m = mock().await;
    let gw = gateway(&m).await;
    let body = json!({"model":"gpt-test","stream":true,"messages":[{"role":"user","content":"one two three four"}]});
    let r = gw
        .post(
            "/v1/chat/completions",
            &body.to_string(),
            &[("x-mock", "chunks=5")],
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let text = r.text();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let events = sse_data(&text);
    assert!(
        events
            .iter()
            .all(|e| !e["choices"].as_array().unwrap().is_empty()),
        "usage-only chunk leaked: {text}"
    );
    assert!(
        events
            .iter()
            .all(|e| e.get("usage").is_none_or(Value::is_null)),
        "{text}"
    );
    let content: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "mock reply: one two three four");

    let rec = gw.interaction(&r.interaction_id()).await;
    assert_eq!(rec["stream"], true);
    assert_eq!(rec["response"]["choices"][0]["message"]["content"], content);
    assert_eq!(rec["finish_reason"], "stop");
    assert_eq!(rec["tokens_estimated"], false);
    assert!(rec["completion_tokens"].as_i64().unwrap() > 0);
    // What went upstream asked for usage; what is stored is what the client sent.
    assert!(rec["request"].get("stream_options").is_none());
}

#[tokio::test]
async fn stream_keeps_usage_for_a_client_that_asked() {
    let m = mock().await;
    let gw = gateway(&m).await;
    let body = json!({"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]});
    let r = gw
        .post("/v1/chat/completions", &body.to_string(), &[])
        .await;
    let events = sse_data(&r.text());
    let last = events.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert!(last["usage"]["total_tokens"].as_i64().unwrap() > 0);
}

#[tokio::test]
async fn tokens_are_estimated_and_flagged_when_upstream_reports_none() {
    let m = mock().await;
    let gw = gateway(&m).await;
    let body = json!({"model":"m","stream":true,"messages":[{"role":"user","content":"estimate me please"}]});
    let r = gw
        .post(
            "/v1/chat/completions",
            &body.to_string(),
            &[("x-mock", "no_usage")],
        )
        .await;
    assert_eq!(r.status, 200);
    let rec = gw.interaction(&r.interaction_id()).await;
    assert_eq!(rec["tokens_estimated"], true);
    assert!(rec["prompt_tokens"].as_i64().unwrap() > 0);
    assert!(rec["completion_tokens"].as_i64().unwrap() > 0);
}

#[tokio::test]
async fn streamed_tool_calls_are_assembled() {
    let m = mock().await;
    let gw = gateway(&m).await;
    let body = json!({"model":"m","stream":true,"messages":[{"role":"user","content":"weather in Paris"}],
        "tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]});
    let r = gw
        .post("/v1/chat/completions", &body.to_string(), &[])
        .await;
    assert_eq!(r.status, 200);
    let rec = gw.interaction(&r.interaction_id()).await;
    let call = &rec["response"]["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert!(args.is_object());
    assert_eq!(rec["finish_reason"], "tool_calls");
    assert_eq!(
        rec["request"]["tools"][0]["function"]["name"],
        "get_weather"
    );
}

#[tokio::test]
async fn completions_embeddings_responses_and_models() {
    let m = mock().await;
    let gw = gateway(&m).await;
    let r = gw
        .post("/v1/completions", r#"{"model":"m","prompt":"say hi"}"#, &[])
        .await;
    assert_eq!(r.json()["choices"][0]["text"], "mock completion: say hi");
    let r = gw
        .post("/v1/embeddings", r#"{"model":"e","input":["a","b"]}"#, &[])
        .await;
    assert_eq!(r.json()["data"].as_array().unwrap().len(), 2);
    let rec = gw.interaction(&r.interaction_id()).await;
    assert_eq!(rec["endpoint"], "embeddings");
    assert!(rec["prompt_tokens"].as_i64().unwrap() > 0);
    let r = gw
        .post("/v1/responses", r#"{"model":"m","input":"tell me"}"#, &[])
        .await;
    assert_eq!(r.json()["object"], "response");
    let r = gw
        .post(
            "/v1/responses",
            r#"{"model":"m","input":"tell me","stream":true}"#,
            &[],
        )
        .await;
    assert!(r.text().contains("response.completed"));
    let rec = gw.interaction(&r.interaction_id()).await;
    assert_eq!(rec["endpoint"], "responses");
    assert_eq!(rec["response"]["status"], "completed");
    assert!(rec["total_tokens"].as_i64().unwrap() > 0);
    let r = gw.get("/v1/models", &[]).await;
    assert_eq!(r.json()["object"], "list");
    gw.captured(5).await;
}

#[tokio::test]
async fn other_paths_pass_through_untouched() {
    let m = mock().await;
    let gw = gateway(&m).await;
    let r = gw
        .post(
            "/v1/_echo/files?purpose=x",
            "raw body \u{1F600}",
            &[
                ("authorization", "Bearer sk-client"),
                ("x-flywheel-user", "alice"),
                ("x-custom", "kept"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["method"], "POST");
    assert_eq!(v["path"], "/v1/_echo/files");
    assert_eq!(v["query"], "purpose=x");
    assert_eq!(v["body"], "raw body \u{1F600}");
    assert_eq!(v["headers"]["x-custom"], "kept");
    assert_eq!(
        v["headers"]["authorization"], "Bearer sk-client",
        "zero-config forwards the client's credential"
    );
    assert!(
        v["headers"].get("x-flywheel-user").is_none(),
        "gateway headers stay in the gateway"
    );
    let rec = gw.interaction(&r.interaction_id()).await;
    assert_eq!(rec["endpoint"], "passthrough");
    assert_eq!(rec["method"], "POST");
    assert_eq!(rec["path"], "/v1/_echo/files");
    assert!(rec["user_hash"].is_string());
}

#[tokio::test]
async fn user_ids_are_stored_only_as_keyed_hashes() {
    let m = mock().await;
    let gw = gateway_with(
        &format!("http://{}/v1", m.addr),
        "",
        &[("FLYWHEEL_USER_HASH_SECRET", "k1")],
    )
    .await;
    let body = json!({"model":"m","user":"user-from-body-7731","messages":[{"role":"user","content":"x"}]});
    let a = gw
        .post("/v1/chat/completions", &body.to_string(), &[])
        .await;
    let b = gw
        .post(
            "/v1/chat/completions",
            CHAT,
            &[("x-flywheel-user", "user-from-body-7731")],
        )
        .await;
    let c = gw
        .post(
            "/v1/chat/completions",
            CHAT,
            &[("x-flywheel-user", "someone-else")],
        )
        .await;
    let ha = gw.interaction(&a.interaction_id()).await["user_hash"].clone();
    let hb = gw.interaction(&b.interaction_id()).await["user_hash"].clone();
    let hc = gw.interaction(&c.interaction_id()).await["user_hash"].clone();
    assert!(ha.is_string());
    assert_eq!(ha, hb, "header and body ids hash alike");
    assert_ne!(ha, hc);
    let db = gw.db.clone();
    let _dir = gw.shutdown().await;
    let conn = rusqlite::Connection::open(&db).unwrap();
    let found: i64 = conn
        .query_row("SELECT COUNT(*) FROM interactions WHERE user_hash LIKE '%7731%' OR user_hash = 'someone-else'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(found, 0);
}

#[tokio::test]
async fn upstream_refusing_connections_is_502() {
    let port = closed_port().await;
    let gw = gateway_with(&format!("http://127.0.0.1:{port}/v1"), "", &[]).await;
    let r = gw.post("/v1/chat/completions", CHAT, &[]).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["error"]["code"], "upstream_unreachable");
    assert!(r.json()["error"]["message"].is_string());
    let rec = gw.interaction(&r.interaction_id()).await;
    assert_eq!(rec["outcome"], "upstream_error");
    assert_eq!(rec["status"], 502);
}

#[tokio::test]
async fn slow_upstream_is_504_and_the_gateway_keeps_serving() {
    let m = mock().await;
    let gw = gateway_with(
        &format!("http://{}/v1", m.addr),
        "first_byte_timeout_ms = 200\n",
        &[],
    )
    .await;
    let slow = gw.post("/v1/chat/completions", CHAT, &[("x-mock", "delay_ms=2000")]);
    let fast = gw.post("/v1/chat/completions", CHAT, &[]);
    let (slow, fast) = tokio::join!(slow, fast);
    assert_eq!(fast.status, 200);
    assert_eq!(slow.status, 504);
    assert_eq!(slow.json()["error"]["code"], "upstream_timeout");
    let rec = gw.interaction(&slow.interaction_id()).await;
    assert_eq!(rec["outcome"], "timeout");
}

/// Pooled upstream connections keep one first-byte timer across their
/// requests: it must hold each request to the limit, whether the last one's
/// timer was still pending or had already fired while the connection sat idle.
#[tokio::test]
async fn the_first_byte_limit_holds_for_every_request_on_a_pooled_connection() {
    let m = mock().await;
    let gw = gateway_with(
        &format!("http://{}/v1", m.addr),
        "first_byte_timeout_ms = 300\n",
        &[],
    )
    .await;
    let status = |mock: &'static str| {
        let gw = &gw;
        async move {
            gw.post("/v1/chat/completions", CHAT, &[("x-mock", mock)])
                .await
                .status
        }
    };
    assert_eq!(status("delay_ms=0").await, 200);
    assert_eq!(status("delay_ms=100").await, 200);
    // The last timer fires while the connection waits in the pool.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(status("delay_ms=200").await, 200);
    let started = std::time::Instant::now();
    assert_eq!(status("delay_ms=2000").await, 504);
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "{took:?}");
    assert_eq!(status("delay_ms=0").await, 200);
}

/// Timeouts have no upper bound in the config: the longest possible ones
/// must mean "never", not a deadline that overflows (a grace period of
/// i64::MAX seconds did, at shutdown).
#[tokio::test]
async fn the_longest_timeouts_are_accepted_and_serve() {
    let m = mock().await;
    let gw = gateway_with(
        &format!("http://{}/v1", m.addr),
        "first_byte_timeout_ms = 9223372036854775807\ntotal_timeout_ms = 9223372036854775807\n[server]\nheader_timeout_secs = 9223372036854775807\nshutdown_grace_secs = 9223372036854775807\n",
        &[],
    )
    .await;
    assert_eq!(gw.post("/v1/chat/completions", CHAT, &[]).await.status, 200);
    let body = json!({"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]});
    let r = gw
        .post(
            "/v1/chat/completions",
            &body.to_string(),
            &[("x-mock", "chunks=3")],
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(
        r.text().trim_end().ends_with("data: [DONE]"),
        "{}",
        r.text()
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn total_timeout_ends_a_stream_with_an_error_event() {
    let m = mock().await;
    let gw = gateway_with(
        &format!("http://{}/v1", m.addr),
        "first_byte_timeout_ms = 300\ntotal_timeout_ms = 300\n",
        &[],
    )
    .await;
    let body = json!({"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]});
    let r = gw
        .post(
            "/v1/chat/completions",
            &body.to_string(),
            &[("x-mock", "chunks=20,chunk_delay_ms=50")],
        )
        .await;
    assert_eq!(r.status, 200);
    let events = sse_data(&r.text());
    assert_eq!(events.last().unwrap()["error"]["code"], "upstream_timeout");
    let rec = gw.interaction(&r.interaction_id()).await;
    assert_eq!(rec["outcome"], "timeout");
}

#[tokio::test]
async fn oversized_body_is_413() {
    let m = mock().await;
    let gw = gateway_with(
        &format!("http://{}/v1", m.addr),
        "[server]\nmax_body_bytes = 1000\n",
        &[],
    )
    .await;
    let big =
        json!({"model":"m","messages":[{"role":"user","content":"x".repeat(5000)}]}).to_string();
    let r = gw.post("/v1/chat/completions", &big, &[]).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["code"], "payload_too_large");
    let rec = gw.interaction(&r.interaction_id()).await;
    assert_eq!(rec["outcome"], "rejected");
    // Still serving.
    assert_eq!(gw.post("/v1/chat/completions", CHAT, &[]).await.status, 200);
}

/// The capture limit cuts what is stored, never what the client gets.
#[tokio::test]
async fn bodies_past_the_capture_limit_are_cut_and_flagged_in_the_record_only() {
    let m = mock().await;
    let gw = gateway_with(
        &format!("http://{}/v1", m.addr),
        "",
        &[("FLYWHEEL_CAPTURE_MAX_BODY_BYTES", "150")],
    )
    .await;
    let r = gw.post("/v1/chat/completions", CHAT, &[]).await;
    assert_eq!(r.status, 200);
    assert!(r.text().len() > 150, "{}", r.text());
    assert_eq!(
        r.json()["choices"][0]["message"]["content"],
        "mock reply: hello there"
    );
    let rec = gw.interaction(&r.interaction_id()).await;
    assert_eq!(rec["truncated"], true);
    assert_eq!(rec["request"]["messages"][1]["content"], "hello there");
    let stored = rec["response"]
        .as_str()
        .expect("a cut JSON body is kept as text");
    assert_eq!(stored, &r.text()[..150]);

    let stream = json!({"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]});
    let r = gw
        .post(
            "/v1/chat/completions",
            &stream.to_string(),
            &[("x-mock", "chunks=12")],
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.text().trim_end().ends_with("data: [DONE]"));
    let rec = gw.interaction(&r.interaction_id()).await;
    assert_eq!(rec["truncated"], true);
    assert_eq!(rec["outcome"], "ok");

    let long_request =
        json!({"model":"m","messages":[{"role":"user","content":"y".repeat(400)}]}).to_string();
    let r = gw.post("/v1/chat/completions", &long_request, &[]).await;
    assert_eq!(r.status, 200);
    let rec = gw.interaction(&r.interaction_id()).await;
    assert_eq!(
        rec["truncated"], true,
        "a request past the limit is cut too"
    );
}

#[tokio::test]
async fn malformed_json_is_400_and_captured() {
    let m = mock().await;
    let gw = gateway(&m).await;
    for bad in ["{\"model\":", "", "[1]", "{\"stream\":\"yes\"}"] {
        let r = gw.post("/v1/chat/completions", bad, &[]).await;
        assert_eq!(r.status, 400, "{bad:?}");
        let e = r.json();
        assert_eq!(e["error"]["type"], "invalid_request_error");
        assert!(!e["error"]["message"].as_str().unwrap().is_empty());
    }
    let all = gw.captured(4).await;
    assert!(all
        .iter()
        .all(|r| r["outcome"] == "rejected" && r["status"] == 400));
}

/// Bodies past 256 KiB are read on the blocking pool; the gateway still reads
/// every field it needs from them, and still refuses a broken one.
#[tokio::test]
async fn large_bodies_are_read_the_same_way() {
    let m = mock().await;
    let gw = gateway(&m).await;
    let long = "lorem ipsum ".repeat(30_000);
    let body = json!({"model":"gpt-big","stream":true,"stream_options":{"include_usage":true},
        "user":"u-large","messages":[{"role":"user","content":long}]})
    .to_string();
    assert!(body.len() > 256 * 1024);
    let r = gw
        .post("/v1/chat/completions", &body, &[("x-mock", "chunks=3")])
        .await;
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(text.trim_end().ends_with("data: [DONE]"));
    // The client asked for usage itself, so its usage chunk is kept.
    assert!(
        sse_data(&text)
            .iter()
            .any(|e| e["usage"]["total_tokens"].as_i64() > Some(0)),
        "no usage chunk"
    );
    let rec = gw.interaction(&r.interaction_id()).await;
    assert_eq!(rec["requested_model"], "gpt-big");
    assert_eq!(rec["stream"], true);
    assert!(rec["user_hash"]
        .as_str()
        .is_some_and(|h| !h.contains("u-large")));

    let broken = &body[..body.len() - 10];
    let r = gw.post("/v1/chat/completions", broken, &[]).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn upstream_errors_pass_through_as_they_are() {
    let m = mock().await;
    let gw = gateway(&m).await;
    let r = gw
        .post("/v1/chat/completions", CHAT, &[("x-mock", "status=429")])
        .await;
    assert_eq!(r.status, 429);
    assert!(r.json()["error"].is_object());
    let r5 = gw
        .post(
            "/v1/chat/completions",
            r#"{"model":"mock:status=503","messages":[]}"#,
            &[],
        )
        .await;
    assert_eq!(r5.status, 503);
    let rec = gw.interaction(&r5.interaction_id()).await;
    assert_eq!(rec["outcome"], "upstream_error");
    assert_eq!(rec["status"], 503);
    assert!(rec["error"].is_string());
}

#[tokio::test]
async fn upstream_dying_mid_stream_ends_with_an_error_event() {
    let m = mock().await;
    let gw = gateway(&m).await;
    let body =
        json!({"model":"m","stream":true,"messages":[{"role":"user","content":"a b c d e f g h"}]});
    let r = gw
        .post(
            "/v1/chat/completions",
            &body.to_string(),
            &[("x-mock", "chunks=8,disconnect_after=3")],
        )
        .await;
    assert_eq!(r.status, 200);
    let events = sse_data(&r.text());
    let last = events.last().unwrap();
    assert_eq!(last["error"]["type"], "upstream_error", "{events:?}");
    let rec = gw.interaction(&r.interaction_id()).await;
    assert_eq!(rec["outcome"], "upstream_error");
    let partial = rec["response"]["choices"][0]["message"]["content"]
        .as_str()
        .unwrap();
    assert!(!partial.is_empty(), "partial output is kept");
}

#[tokio::test]
async fn client_leaving_mid_stream_is_captured_as_client_closed() {
    use http_body_util::BodyExt;
    let m = mock().await;
    let gw = gateway(&m).await;
    let (id, mut body) = start_stream(&gw, "chunks=50,chunk_delay_ms=40").await;
    // Read a couple of chunks, then hang up.
    for _ in 0..2 {
        body.frame().await.unwrap().unwrap();
    }
    drop(body);
    let rec = gw.interaction(&id).await;
    assert_eq!(rec["outcome"], "client_closed");
    assert!(
        rec["latency_ms"].as_f64().unwrap() < 1500.0,
        "the stream was cut, not run to the end"
    );
    let text = rec["response"]["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or("");
    assert!(text.len() < 200, "partial output only: {text}");
}

#[tokio::test]
async fn client_keys_gate_requests_and_name_the_app() {
    let m = mock().await;
    let hash = flywheel::crypto::hex(&flywheel::crypto::sha256(b"fw-key-1"));
    let extra = format!(
        "api_key_env = \"UP_KEY\"\n[[auth.keys]]\nname = \"web-app\"\nsha256 = \"{hash}\"\n"
    );
    let gw = gateway_with(
        &format!("http://{}/v1", m.addr),
        &extra,
        &[("UP_KEY", "sk-upstream")],
    )
    .await;
    let none = gw.post("/v1/chat/completions", CHAT, &[]).await;
    assert_eq!(none.status, 401);
    assert_eq!(none.json()["error"]["code"], "invalid_api_key");
    let wrong = gw
        .post(
            "/v1/chat/completions",
            CHAT,
            &[("authorization", "Bearer nope")],
        )
        .await;
    assert_eq!(wrong.status, 401);
    let ok = gw
        .post("/v1/_echo", "{}", &[("authorization", "Bearer fw-key-1")])
        .await;
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.json()["headers"]["authorization"],
        "Bearer sk-upstream",
        "the upstream's own key replaces the client's"
    );
    let rec = gw.interaction(&ok.interaction_id()).await;
    assert_eq!(rec["app"], "web-app");
    let rec = gw.interaction(&none.interaction_id()).await;
    assert_eq!(rec["outcome"], "rejected");
}

#[tokio::test]
async fn admin_api_is_off_without_a_token_and_guarded_with_one() {
    let m = mock().await;
    let off = gateway_with(
        &format!("http://{}/v1", m.addr),
        "",
        &[("FLYWHEEL_ADMIN_TOKEN", "")],
    )
    .await;
    assert_eq!(off.get("/admin/v1/stats", &[]).await.status, 404);
    let gw = gateway(&m).await;
    assert_eq!(gw.get("/admin/v1/stats", &[]).await.status, 401);
    assert_eq!(
        gw.get("/admin/v1/stats", &[("authorization", "Bearer wrong")])
            .await
            .status,
        401
    );
    let r = gw
        .get(
            "/admin/v1/interactions?limit=0",
            &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        )
        .await;
    assert_eq!(r.status, 400);
    let r = gw
        .get(
            "/admin/v1/interactions/nope",
            &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        )
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn interactions_paginate_newest_first() {
    let m = mock().await;
    let gw = gateway(&m).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(
            gw.post("/v1/chat/completions", CHAT, &[])
                .await
                .interaction_id(),
        );
    }
    gw.captured(5).await;
    let p1 = gw.admin("/admin/v1/interactions?limit=2").await;
    let got: Vec<&str> = p1["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, [ids[4].as_str(), ids[3].as_str()]);
    assert_eq!(p1["has_more"], true);
    let next = p1["next_before"].as_str().unwrap();
    let p2 = gw
        .admin(&format!("/admin/v1/interactions?limit=10&before={next}"))
        .await;
    assert_eq!(p2["data"].as_array().unwrap().len(), 3);
    assert_eq!(p2["has_more"], false);
    let none = gw.admin("/admin/v1/interactions?route=other").await;
    assert!(none["data"].as_array().unwrap().is_empty());
    let stats = gw.admin("/admin/v1/stats").await;
    assert_eq!(stats["interactions_total"], 5);
    assert_eq!(stats["by_outcome"]["ok"], 5);
}

#[tokio::test]
async fn metrics_health_and_readiness() {
    let m = mock().await;
    let gw = gateway(&m).await;
    assert_eq!(gw.get("/healthz", &[]).await.status, 200);
    assert_eq!(gw.get("/readyz", &[]).await.status, 200);
    let body = json!({"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]});
    gw.post("/v1/chat/completions", CHAT, &[]).await;
    gw.post("/v1/chat/completions", &body.to_string(), &[])
        .await;
    gw.captured(2).await;
    let text = gw.metrics().await;
    for needle in [
        "flywheel_requests_total{route=\"default\",version=\"default\",status=\"200\"} 2",
        "flywheel_request_duration_seconds_count{route=\"default\",version=\"default\"} 2",
        "flywheel_upstream_ttft_seconds_count{route=\"default\",version=\"default\"} 2",
        "flywheel_tokens_total{route=\"default\",version=\"default\",kind=\"prompt\"}",
        "flywheel_tokens_total{route=\"default\",version=\"default\",kind=\"completion\"}",
        "flywheel_capture_queue_depth 0",
        "flywheel_capture_written_total 2",
        "flywheel_capture_dropped_total 0",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    // One series per shard; the connection asking for the metrics is open.
    let open: Vec<u64> = text
        .lines()
        .filter(|l| l.starts_with("flywheel_connections_open{shard=\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(!open.is_empty(), "no flywheel_connections_open in\n{text}");
    assert!(open.iter().sum::<u64>() >= 1, "{open:?}");
}

#[tokio::test]
async fn many_concurrent_requests_are_all_captured() {
    let m = mock().await;
    let gw = std::sync::Arc::new(gateway(&m).await);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let gw = gw.clone();
        tasks.push(tokio::spawn(async move {
            let stream = i % 2 == 0;
            let body = json!({"model":"m","stream":stream,"messages":[{"role":"user","content":format!("n{i}")}]});
            gw.post("/v1/chat/completions", &body.to_string(), &[]).await.status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let rows = gw.captured(200).await;
    assert_eq!(rows.len(), 200);
}

#[tokio::test]
async fn client_leaving_before_the_answer_is_captured_and_cancels_upstream() {
    let m = mock().await;
    let gw = gateway(&m).await;
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("{}/v1/chat/completions", gw.url))
        .header("x-mock", "delay_ms=3000")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            CHAT.as_bytes(),
        )))
        .unwrap();
    let pending = gw.client.request(req);
    // Give up after 200 ms, long before the upstream answers.
    assert!(tokio::time::timeout(Duration::from_millis(200), pending)
        .await
        .is_err());
    let rows = gw.captured(1).await;
    assert_eq!(rows[0]["outcome"], "client_closed");
    assert_eq!(rows[0]["status"], 499);
    assert!(rows[0]["latency_ms"].as_f64().unwrap() < 2500.0);
}

#[tokio::test]
async fn a_client_trickling_its_body_gets_408_and_others_are_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let m = mock().await;
    let gw = gateway_with(
        &format!("http://{}/v1", m.addr),
        "[server]\nbody_timeout_secs = 1\n",
        &[],
    )
    .await;
    let mut slow = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    slow.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"mo")
        .await
        .unwrap();
    // Meanwhile the gateway serves everyone else.
    assert_eq!(gw.post("/v1/chat/completions", CHAT, &[]).await.status, 200);
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut answer))
        .await
        .expect("the slow client is answered, not left hanging")
        .unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
}

#[tokio::test]
async fn connections_without_a_request_are_closed_and_long_streams_are_not() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let m = mock().await;
    let gw = gateway_with(
        &format!("http://{}/v1", m.addr),
        "[server]\nheader_timeout_secs = 1\n",
        &[],
    )
    .await;
    // Bytes read until the gateway closes the connection, and how long that took.
    async fn until_closed(conn: &mut tokio::net::TcpStream) -> (Vec<u8>, Duration) {
        let start = std::time::Instant::now();
        let mut seen = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut seen))
            .await
            .expect("the connection is closed, not left open")
            .unwrap();
        (seen, start.elapsed())
    }

    // Request headers that never end: closed after one period, unanswered.
    let mut slow = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    slow.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let (seen, took) = until_closed(&mut slow).await;
    assert!(seen.is_empty(), "{}", String::from_utf8_lossy(&seen));
    assert!(took >= Duration::from_millis(900), "{took:?}");

    // A keep-alive connection after its answer: closed within two periods.
    let mut idle = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{CHAT}",
        CHAT.len()
    );
    idle.write_all(head.as_bytes()).await.unwrap();
    let (seen, took) = until_closed(&mut idle).await;
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );

    // A stream that runs three periods long is delivered whole.
    let started = std::time::Instant::now();
    let (id, body) = start_stream(&gw, "chunks=30,chunk_delay_ms=100").await;
    let text = String::from_utf8(
        http_body_util::BodyExt::collect(body)
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(started.elapsed() >= Duration::from_secs(3));
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let rows = gw.captured(2).await;
    let row = rows.iter().find(|r| r["id"] == id.as_str()).unwrap();
    assert_eq!(row["outcome"], "ok");
}

/// Time to first token is the time to the first frame that carries generated
/// text, not to the role-only opening chunk that servers send at once.
#[tokio::test]
async fn ttft_waits_for_the_first_content_not_the_role_chunk() {
    let m = mock().await;
    let gw = gateway(&m).await;
    let body = json!({"model":"m","stream":true,"messages":[{"role":"user","content":"one two three four"}]});
    let r = gw
        .post(
            "/v1/chat/completions",
            &body.to_string(),
            &[("x-mock", "chunks=5,chunk_delay_ms=50")],
        )
        .await;
    assert_eq!(r.status, 200);
    let first = &sse_data(&r.text())[0];
    assert_eq!(
        first["choices"][0]["delta"]["content"], "",
        "role-only opening"
    );
    let rec = gw.interaction(&r.interaction_id()).await;
    let ttft = rec["ttft_ms"].as_f64().unwrap();
    let latency = rec["latency_ms"].as_f64().unwrap();
    assert!(ttft >= 45.0, "ttft {ttft} ms counts the role-only chunk");
    assert!(ttft < latency, "ttft {ttft} ms, latency {latency} ms");
    gw.shutdown().await;
}

/// The Responses API opens with lifecycle events (created, in progress, item
/// and part added); the first token is the first `response.output_text.delta`.
#[tokio::test]
async fn ttft_of_a_responses_stream_is_its_first_delta() {
    let m = mock().await;
    let gw = gateway(&m).await;
    let body = json!({"model":"m","stream":true,"input":"one two three"});
    let r = gw
        .post(
            "/v1/responses",
            &body.to_string(),
            &[("x-mock", "chunks=3,chunk_delay_ms=50")],
        )
        .await;
    assert_eq!(r.status, 200);
    let rec = gw.interaction(&r.interaction_id()).await;
    let ttft = rec["ttft_ms"].as_f64().unwrap();
    // Four lifecycle events 50 ms apart come before the first delta.
    assert!(ttft >= 180.0, "ttft {ttft} ms counts lifecycle events");
    gw.shutdown().await;
}
