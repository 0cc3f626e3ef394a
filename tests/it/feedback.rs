//! Feedback end to end: sent the instant a response arrives, idempotent,
//! validated, visible to operators and counted.

use crate::common::*;
use serde_json::{json, Value};

const CHAT: &str = r#"{"model":"m","messages":[{"role":"user","content":"rate me"}]}"#;

async fn send(gw: &Gw, body: Value, headers: &[(&str, &str)]) -> Reply {
    gw.post("/v1/feedback", &body.to_string(), headers).await
}

#[tokio::test]
async fn feedback_the_instant_a_streamed_response_arrives() {
    use http_body_util::BodyExt;
    let m = mock().await;
    let gw = gateway(&m).await;
    let (id, body) = start_stream(&gw, "chunks=10,chunk_delay_ms=30").await;
    // The stream is still running: its record is not even queued yet.
    let early = send(
        &gw,
        json!({"interaction_id": id, "type": "thumbs", "value": "up"}),
        &[],
    )
    .await;
    assert_eq!(early.status, 201, "{}", early.text());
    let v = early.json();
    assert_eq!(v["object"], "feedback");
    assert_eq!(v["interaction_id"], id.as_str());
    body.collect().await.unwrap();
    // And right after it ends.
    let late = send(
        &gw,
        json!({"interaction_id": id, "type": "rating", "value": 4, "scale": [1, 5]}),
        &[],
    )
    .await;
    assert_eq!(late.status, 201, "{}", late.text());

    let rec = gw.interaction(&id).await;
    let fb = rec["feedback"].as_array().unwrap();
    assert_eq!(fb.len(), 2);
    assert!(fb
        .iter()
        .any(|f| f["type"] == "thumbs" && f["value"] == "up" && f["score"] == 1.0));
    assert!(fb
        .iter()
        .any(|f| f["type"] == "rating" && f["score"] == 0.75 && f["version"] == "default"));
}

#[tokio::test]
async fn many_immediate_feedbacks_never_race_the_capture_queue() {
    let m = mock().await;
    let gw = std::sync::Arc::new(gateway(&m).await);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let gw = gw.clone();
        tasks.push(tokio::spawn(async move {
            let r = gw.post("/v1/chat/completions", CHAT, &[]).await;
            let value = if i % 2 == 0 { "up" } else { "down" };
            send(
                &gw,
                json!({"interaction_id": r.interaction_id(), "type": "thumbs", "value": value}),
                &[],
            )
            .await
            .status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 201);
    }
    let stats = gw.admin("/admin/v1/stats").await;
    assert_eq!(stats["feedback_total"], 50, "{stats}");
    assert_eq!(stats["feedback_by_type"]["thumbs"], 50);
    assert_eq!(stats["feedback_by_label"]["up"], 25);
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("flywheel_feedback_total{route=\"default\",version=\"default\",type=\"thumbs\",value=\"down\"} 25"),
        "{metrics}"
    );
}

#[tokio::test]
async fn idempotency_key_answers_the_same_id_and_stores_once() {
    let m = mock().await;
    let gw = gateway(&m).await;
    let id = gw
        .post("/v1/chat/completions", CHAT, &[])
        .await
        .interaction_id();
    let fb = json!({"interaction_id": id, "type": "correction", "value": "the right answer", "idempotency_key": "retry-1"});
    let a = send(&gw, fb.clone(), &[]).await;
    let b = send(&gw, fb.clone(), &[]).await;
    assert_eq!((a.status, b.status), (201, 201));
    assert_eq!(a.json()["id"], b.json()["id"]);
    assert_eq!(b.header("idempotent-replayed").as_deref(), Some("true"));
    // The key in a header works the same.
    let h = json!({"interaction_id": id, "type": "thumbs", "value": "down"});
    let c = send(&gw, h.clone(), &[("idempotency-key", "hdr-1")]).await;
    let d = send(&gw, h, &[("idempotency-key", "hdr-1")]).await;
    assert_eq!(c.json()["id"], d.json()["id"]);
    // The same key for different feedback is a conflict, not a silent replay.
    let other = send(&gw, json!({"interaction_id": id, "type": "thumbs", "value": "up", "idempotency_key": "retry-1"}), &[]).await;
    assert_eq!(other.status, 409);
    let list = gw.admin("/admin/v1/feedback?limit=100").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    let rec = gw.interaction(&id).await;
    assert_eq!(rec["feedback"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn bad_feedback_is_refused_with_the_field_named() {
    let m = mock().await;
    let gw = gateway_with(
        &format!("http://{}/v1", m.addr),
        "[server]\nmax_body_bytes = 4096\n",
        &[],
    )
    .await;
    let id = gw
        .post("/v1/chat/completions", CHAT, &[])
        .await
        .interaction_id();
    let cases = [
        (
            json!({"interaction_id": id, "type": "thumbs", "value": "sideways"}),
            "value",
        ),
        (
            json!({"interaction_id": id, "type": "stars", "value": 3}),
            "type",
        ),
        (
            json!({"interaction_id": id, "type": "rating", "value": 7, "scale": [1, 5]}),
            "value",
        ),
        (
            json!({"interaction_id": id, "type": "rating", "value": 3, "scale": [5, 1]}),
            "scale",
        ),
        (
            json!({"interaction_id": id, "type": "outcome", "value": "maybe"}),
            "value",
        ),
        (json!({"type": "thumbs", "value": "up"}), "interaction_id"),
        (
            json!({"interaction_id": "not-an-id", "type": "thumbs", "value": "up"}),
            "interaction_id",
        ),
    ];
    for (body, param) in cases {
        let r = send(&gw, body.clone(), &[]).await;
        assert_eq!(r.status, 400, "{body}");
        let e = r.json();
        assert_eq!(e["error"]["param"], param, "{body}: {e}");
        assert_eq!(e["error"]["type"], "invalid_request_error");
    }
    let r = gw.post("/v1/feedback", "{not json", &[]).await;
    assert_eq!(r.status, 400);
    let big = json!({"interaction_id": id, "type": "comment", "value": "x".repeat(10_000)});
    assert_eq!(send(&gw, big, &[]).await.status, 413);
    let unknown = json!({"interaction_id": uuid::Uuid::now_v7().to_string(), "type": "thumbs", "value": "up"});
    let r = send(&gw, unknown, &[]).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "not_found");
    assert_eq!(gw.admin("/admin/v1/stats").await["feedback_total"], 0);
}

#[tokio::test]
async fn feedback_listing_filters() {
    let m = mock().await;
    let gw = gateway(&m).await;
    let id = gw
        .post("/v1/chat/completions", CHAT, &[])
        .await
        .interaction_id();
    send(
        &gw,
        json!({"interaction_id": id, "type": "thumbs", "value": "up"}),
        &[],
    )
    .await;
    send(&gw, json!({"interaction_id": id, "type": "comment", "value": "nice", "metadata": {"screen": "chat"}}), &[]).await;
    send(
        &gw,
        json!({"interaction_id": id, "type": "outcome", "value": false, "user": "u-1"}),
        &[],
    )
    .await;
    let thumbs = gw.admin("/admin/v1/feedback?type=thumbs").await;
    assert_eq!(thumbs["data"].as_array().unwrap().len(), 1);
    let recent = gw.admin("/admin/v1/feedback?since=5m").await;
    assert_eq!(recent["data"].as_array().unwrap().len(), 3);
    let future = gw
        .admin("/admin/v1/feedback?since=2100-01-01T00:00:00Z")
        .await;
    assert!(future["data"].as_array().unwrap().is_empty());
    let none = gw.admin("/admin/v1/feedback?route=other").await;
    assert!(none["data"].as_array().unwrap().is_empty());
    let all = gw.admin("/admin/v1/feedback").await;
    let outcome = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["type"] == "outcome")
        .unwrap()
        .clone();
    assert_eq!(outcome["label"], "failure");
    assert!(outcome["user_hash"]
        .as_str()
        .is_some_and(|h| !h.contains("u-1")));
    let bad = gw
        .get(
            "/admin/v1/feedback?since=yesterday",
            &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        )
        .await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn feedback_needs_a_client_key_when_keys_are_configured() {
    let m = mock().await;
    let hash = flywheel::crypto::hex(&flywheel::crypto::sha256(b"k-1"));
    let extra = format!("[[auth.keys]]\nname = \"app\"\nsha256 = \"{hash}\"\n");
    let gw = gateway_with(&format!("http://{}/v1", m.addr), &extra, &[]).await;
    let id = gw
        .post(
            "/v1/chat/completions",
            CHAT,
            &[("authorization", "Bearer k-1")],
        )
        .await
        .interaction_id();
    let fb = json!({"interaction_id": id, "type": "thumbs", "value": "up"});
    assert_eq!(send(&gw, fb.clone(), &[]).await.status, 401);
    let ok = send(&gw, fb, &[("authorization", "Bearer k-1")]).await;
    assert_eq!(ok.status, 201);
    let list = gw.admin("/admin/v1/feedback").await;
    assert_eq!(list["data"][0]["app"], "app");
}

#[tokio::test]
async fn cli_sends_and_lists_feedback() {
    let m = mock().await;
    let gw = gateway(&m).await;
    let id = gw
        .post("/v1/chat/completions", CHAT, &[])
        .await
        .interaction_id();
    let url = gw.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        let run = |args: &[&str]| {
            std::process::Command::new(env!("CARGO_BIN_EXE_flywheel"))
                .args(args)
                .env("FLYWHEEL_URL", &url)
                .env("FLYWHEEL_ADMIN_TOKEN", ADMIN_TOKEN)
                .output()
                .unwrap()
        };
        let sent = run(&["feedback", "send", &id, "--rating", "2", "--scale", "0,10"]);
        let list = run(&["feedback", "list", "--json", "--type", "rating"]);
        let none = run(&["feedback", "send", &id]);
        (sent, list, none)
    })
    .await
    .unwrap();
    assert!(
        out.0.status.success(),
        "{}",
        String::from_utf8_lossy(&out.0.stderr)
    );
    let fid = String::from_utf8_lossy(&out.0.stdout).trim().to_string();
    let list: Value = serde_json::from_slice(&out.1.stdout).unwrap();
    assert_eq!(list["data"][0]["id"], fid.as_str());
    assert_eq!(list["data"][0]["score"], 0.2);
    assert_eq!(out.2.status.code(), Some(2));
}
