//! Model versions and canary rollouts end to end, with two versions served by
//! the mock upstream (a version's `upstream_model` picks the mock's behaviour).

use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{json, Value};

fn routes(mock: &Mock) -> String {
    format!(
        "[[routes]]\nname = \"bot\"\n[[routes.versions]]\nname = \"v1\"\nupstream = \"http://{}/v1\"\nupstream_model = \"base-model\"\n",
        mock.addr
    )
}

async fn admin_post(gw: &Gw, path: &str, body: Value) -> Reply {
    gw.post(
        path,
        &body.to_string(),
        &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
    )
    .await
}

async fn register(gw: &Gw, mock: &Mock, version: &str, upstream_model: &str) {
    let r = admin_post(
        gw,
        "/admin/v1/models",
        json!({"route": "bot", "version": version, "upstream": format!("http://{}/v1", mock.addr), "upstream_model": upstream_model, "reason": "test"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = admin_post(
        gw,
        &format!("/admin/v1/models/bot/versions/{version}/approve"),
        json!({"reason": "looks good"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

async fn chat(gw: &Gw, user: &str) -> Reply {
    let body = json!({"model": "bot", "messages": [{"role": "user", "content": "hi"}]});
    gw.post(
        "/v1/chat/completions",
        &body.to_string(),
        &[("x-flywheel-user", user)],
    )
    .await
}

fn served(r: &Reply) -> String {
    r.header("x-flywheel-model-version").unwrap_or_default()
}

/// Starts a rollout of `version` on route `bot`; returns its id.
async fn start_rollout(gw: &Gw, version: &str, plan: Value) -> String {
    let started = admin_post(
        gw,
        "/admin/v1/rollouts",
        json!({"route": "bot", "version": version, "plan": plan}),
    )
    .await;
    assert_eq!(started.status, 201, "{}", started.text());
    started.json()["id"].as_str().unwrap().to_string()
}

/// Sends traffic from many users until the rollout reaches `status` or time runs out.
async fn drive_until(gw: &Gw, id: &str, status: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut i = 0;
    loop {
        for _ in 0..10 {
            i += 1;
            let r = chat(gw, &format!("user-{i}")).await;
            assert!(
                r.status == 200 || r.status == 500,
                "every request is answered: {}",
                r.status
            );
        }
        let v = gw.admin(&format!("/admin/v1/rollouts/{id}")).await;
        if v["status"] == status {
            return v;
        }
        assert!(
            matches!(v["status"].as_str(), Some("running" | "paused")),
            "rollout ended as {} instead of {status}: {v}",
            v["status"]
        );
        assert!(
            Instant::now() < deadline,
            "rollout never reached {status}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const FAST_PLAN: &str = r#"{"steps": [{"weight_percent": 30, "min_duration_secs": 1, "min_requests": 5},
                                      {"weight_percent": 100, "min_duration_secs": 1, "min_requests": 5}],
                           "min_requests_to_judge": 5, "max_p95_latency_ratio": 1000}"#;

#[tokio::test]
async fn routes_list_and_model_rewrite() {
    let m = mock().await;
    let gw = gateway_with(&format!("http://{}/v1", m.addr), &routes(&m), &[]).await;
    let models = gw.get("/v1/models", &[]).await.json();
    assert_eq!(models["data"][0]["id"], "bot");
    let r = chat(&gw, "u").await;
    assert_eq!(served(&r), "v1");
    assert_eq!(
        r.json()["model"],
        "base-model",
        "the version's upstream model replaced the route name"
    );
    let rec = gw.interaction(&r.interaction_id()).await;
    assert_eq!(
        (rec["route"].as_str(), rec["version"].as_str()),
        (Some("bot"), Some("v1"))
    );
    assert_eq!(rec["requested_model"], "bot");
    // Names that are not routes go to the default upstream untouched.
    let other = gw
        .post(
            "/v1/chat/completions",
            r#"{"model":"gpt-x","messages":[]}"#,
            &[],
        )
        .await;
    assert_eq!(served(&other), "default");
    assert_eq!(other.json()["model"], "gpt-x");
}

#[tokio::test]
async fn only_an_approved_version_can_take_traffic() {
    let m = mock().await;
    let gw = gateway_with(&format!("http://{}/v1", m.addr), &routes(&m), &[]).await;
    let r = admin_post(
        &gw,
        "/admin/v1/models",
        json!({"route": "bot", "version": "v2", "upstream": format!("http://{}/v1", m.addr)}),
    )
    .await;
    assert_eq!(r.status, 201);
    let start = admin_post(
        &gw,
        "/admin/v1/rollouts",
        json!({"route": "bot", "version": "v2"}),
    )
    .await;
    assert_eq!(start.status, 409, "{}", start.text());
    assert!(start.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("approved"));
    let again = admin_post(
        &gw,
        "/admin/v1/models",
        json!({"route": "bot", "version": "v2", "upstream": "http://x/v1"}),
    )
    .await;
    assert_eq!(again.status, 409, "versions are immutable");
    let reject = admin_post(&gw, "/admin/v1/models/bot/versions/v2/reject", json!({})).await;
    assert_eq!(reject.status, 400, "a verdict needs a reason");
}

#[tokio::test]
async fn a_healthy_canary_walks_the_plan_and_is_promoted() {
    let m = mock().await;
    let gw = gateway_with(&format!("http://{}/v1", m.addr), &routes(&m), &[]).await;
    register(&gw, &m, "v2", "new-model").await;
    let plan: Value = serde_json::from_str(FAST_PLAN).unwrap();
    let id = start_rollout(&gw, "v2", plan).await;
    let done = drive_until(&gw, &id, "promoted", 30).await;
    assert_eq!(done["reason"], "every step of the plan passed");
    let models = gw.admin("/admin/v1/models").await;
    let versions = models["data"][0]["versions"].as_array().unwrap();
    let state = |n: &str| versions.iter().find(|v| v["name"] == n).unwrap()["state"].clone();
    assert_eq!(state("v2"), "stable");
    assert_eq!(state("v1"), "retired");
    for i in 0..20 {
        assert_eq!(served(&chat(&gw, &format!("after-{i}")).await), "v2");
    }
    let events = gw.admin("/admin/v1/events?limit=100").await;
    let kinds: Vec<&str> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for k in [
        "version_registered",
        "version_approved",
        "rollout_started",
        "rollout_advanced",
        "rollout_promoted",
    ] {
        assert!(kinds.contains(&k), "missing event {k}: {kinds:?}");
    }
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("flywheel_rollout_promotions_total{route=\"bot\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("flywheel_route_weight{route=\"bot\",version=\"v2\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_failing_canary_is_rolled_back_within_its_first_step() {
    let m = mock().await;
    let gw = gateway_with(&format!("http://{}/v1", m.addr), &routes(&m), &[]).await;
    register(&gw, &m, "v3", "mock:status=500").await;
    let plan = json!({"steps": [{"weight_percent": 50, "min_duration_secs": 600, "min_requests": 1000}], "min_requests_to_judge": 5});
    let id = start_rollout(&gw, "v3", plan).await;
    let t0 = Instant::now();
    let done = drive_until(&gw, &id, "rolled_back", 20).await;
    assert!(t0.elapsed() < Duration::from_secs(20));
    assert!(
        done["reason"].as_str().unwrap().contains("error rate"),
        "{done}"
    );
    // Right after, every caller is back on stable and succeeds.
    for i in 0..30 {
        let r = chat(&gw, &format!("user-{i}")).await;
        assert_eq!((r.status, served(&r)), (200, "v1".to_string()));
    }
    let events = gw.admin("/admin/v1/events?kind=rollout_rolled_back").await;
    assert_eq!(events["data"][0]["actor"], "controller");
}

#[tokio::test]
async fn thumbs_down_on_the_canary_rolls_it_back() {
    let m = mock().await;
    let gw = gateway_with(&format!("http://{}/v1", m.addr), &routes(&m), &[]).await;
    register(&gw, &m, "v2", "new-model").await;
    let plan = json!({"steps": [{"weight_percent": 50, "min_duration_secs": 600, "min_requests": 1000}],
                      "min_requests_to_judge": 1000, "min_feedback_to_judge": 8});
    let id = start_rollout(&gw, "v2", plan).await;
    let (mut canary_votes, mut stable_votes) = (0, 0);
    for i in 0..400 {
        let r = chat(&gw, &format!("voter-{i}")).await;
        let down = served(&r) == "v2";
        if down && canary_votes < 12 {
            canary_votes += 1;
        } else if !down && stable_votes < 12 {
            stable_votes += 1;
        } else {
            continue;
        }
        let value = if down { "down" } else { "up" };
        let fb = json!({"interaction_id": r.interaction_id(), "type": "thumbs", "value": value});
        assert_eq!(
            gw.post("/v1/feedback", &fb.to_string(), &[]).await.status,
            201
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = gw.admin(&format!("/admin/v1/rollouts/{id}")).await;
        if v["status"] == "rolled_back" {
            assert!(v["reason"].as_str().unwrap().contains("thumbs-down"), "{v}");
            break;
        }
        assert!(Instant::now() < deadline, "not rolled back: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_split_is_sticky_and_weight_changes_apply_at_once() {
    let m = mock().await;
    let gw = gateway_with(&format!("http://{}/v1", m.addr), &routes(&m), &[]).await;
    register(&gw, &m, "v2", "new-model").await;
    // Nothing is judged here: this test is about the split, not the verdict.
    let plan = json!({"steps": [{"weight_percent": 20, "min_duration_secs": 600, "min_requests": 100000}],
                      "min_requests_to_judge": 1000000, "min_feedback_to_judge": 1000000});
    let id = start_rollout(&gw, "v2", plan).await;
    let users: Vec<String> = (0..200).map(|i| format!("sticky-{i}")).collect();
    let mut on_canary = Vec::new();
    for u in &users {
        let first = served(&chat(&gw, u).await);
        for _ in 0..2 {
            assert_eq!(served(&chat(&gw, u).await), first, "{u} switched versions");
        }
        if first == "v2" {
            on_canary.push(u.clone());
        }
    }
    let share = on_canary.len() as f64 / users.len() as f64;
    assert!((0.10..=0.30).contains(&share), "20% weight gave {share}");
    // Growing the weight only moves callers from stable to canary.
    let r = admin_post(
        &gw,
        &format!("/admin/v1/rollouts/{id}/weight"),
        json!({"weight_percent": 60}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["status"],
        "paused",
        "a hand-set weight pauses the plan"
    );
    for u in &on_canary {
        assert_eq!(
            served(&chat(&gw, u).await),
            "v2",
            "{u} left the canary when the weight grew"
        );
    }
    admin_post(
        &gw,
        &format!("/admin/v1/rollouts/{id}/weight"),
        json!({"weight_percent": 0}),
    )
    .await;
    for u in users.iter().take(50) {
        assert_eq!(served(&chat(&gw, u).await), "v1");
    }
    let aborted = admin_post(
        &gw,
        &format!("/admin/v1/rollouts/{id}/abort"),
        json!({"reason": "enough"}),
    )
    .await;
    assert_eq!(aborted.json()["status"], "aborted");
}

#[tokio::test]
async fn pinning_a_version_needs_the_admin_token_or_a_flagged_key() {
    let m = mock().await;
    let hash = flywheel::crypto::hex(&flywheel::crypto::sha256(b"pinner"));
    let extra = format!(
        "{}[[auth.keys]]\nname = \"app\"\nsha256 = \"{}\"\n[[auth.keys]]\nname = \"eval\"\nsha256 = \"{hash}\"\npin = true\n",
        routes(&m),
        flywheel::crypto::hex(&flywheel::crypto::sha256(b"plain"))
    );
    let gw = gateway_with(&format!("http://{}/v1", m.addr), &extra, &[]).await;
    register(&gw, &m, "v2", "new-model").await;
    let body = json!({"model": "bot", "messages": [{"role": "user", "content": "x"}]}).to_string();
    let pinned = gw
        .post(
            "/v1/chat/completions",
            &body,
            &[
                ("authorization", "Bearer pinner"),
                ("x-flywheel-version", "v2"),
            ],
        )
        .await;
    assert_eq!(
        (pinned.status, served(&pinned)),
        (200, "v2".to_string()),
        "{}",
        pinned.text()
    );
    let admin = gw
        .post(
            "/v1/chat/completions",
            &body,
            &[
                ("authorization", &format!("Bearer {ADMIN_TOKEN}")),
                ("x-flywheel-version", "v2"),
            ],
        )
        .await;
    assert_eq!(served(&admin), "v2");
    let plain = gw
        .post(
            "/v1/chat/completions",
            &body,
            &[
                ("authorization", "Bearer plain"),
                ("x-flywheel-version", "v2"),
            ],
        )
        .await;
    assert_eq!(plain.status, 403);
    assert_eq!(plain.json()["error"]["type"], "permission_error");
    let unknown = gw
        .post(
            "/v1/chat/completions",
            &body,
            &[
                ("authorization", "Bearer pinner"),
                ("x-flywheel-version", "v9"),
            ],
        )
        .await;
    assert_eq!(unknown.status, 404);
    let normal = gw
        .post(
            "/v1/chat/completions",
            &body,
            &[("authorization", "Bearer plain")],
        )
        .await;
    assert_eq!(served(&normal), "v1");
}

#[tokio::test]
async fn a_restart_mid_rollout_resumes_it() {
    let m = mock().await;
    let upstream = format!("http://{}/v1", m.addr);
    let gw = gateway_with(&upstream, &routes(&m), &[]).await;
    register(&gw, &m, "v2", "new-model").await;
    let plan: Value = serde_json::from_str(FAST_PLAN).unwrap();
    let id = start_rollout(&gw, "v2", plan).await;
    for i in 0..10 {
        chat(&gw, &format!("pre-{i}")).await;
    }
    let db = gw.db.clone();
    let dir = gw.shutdown().await;
    let cfg = config(&upstream, &db, &routes(&m), &[]);
    let gw = start(cfg, dir, db).await;
    let v = gw.admin(&format!("/admin/v1/rollouts/{id}")).await;
    assert!(matches!(v["status"].as_str(), Some("running")), "{v}");
    let done = drive_until(&gw, &id, "promoted", 30).await;
    assert_eq!(done["canary"], "v2");
}

#[tokio::test]
async fn the_cli_drives_models_and_rollouts() {
    let m = mock().await;
    let gw = gateway_with(&format!("http://{}/v1", m.addr), &routes(&m), &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    std::fs::write(
        &plan,
        "max_p95_latency_ratio = 3.0\n[[steps]]\nweight_percent = 10\nmin_duration_secs = 600\n",
    )
    .unwrap();
    let (url, upstream, plan) = (
        gw.url.clone(),
        format!("http://{}/v1", m.addr),
        plan.display().to_string(),
    );
    let outs = tokio::task::spawn_blocking(move || {
        let run = |args: &[&str]| {
            std::process::Command::new(env!("CARGO_BIN_EXE_flywheel"))
                .args(args)
                .env("FLYWHEEL_URL", &url)
                .env("FLYWHEEL_ADMIN_TOKEN", ADMIN_TOKEN)
                .output()
                .unwrap()
        };
        let mut outs = vec![
            run(&[
                "models",
                "register",
                "--route",
                "bot",
                "--version",
                "v2",
                "--upstream",
                &upstream,
                "--upstream-model",
                "new-model",
            ]),
            run(&[
                "models",
                "approve",
                "--route",
                "bot",
                "--version",
                "v2",
                "--reason",
                "offline eval passed",
            ]),
            run(&[
                "rollout",
                "start",
                "--route",
                "bot",
                "--version",
                "v2",
                "--plan",
                &plan,
                "--json",
            ]),
        ];
        let started: Value = serde_json::from_slice(&outs[2].stdout).unwrap_or_default();
        let id = started["id"].as_str().unwrap_or("missing").to_string();
        outs.push(run(&["rollout", "status"]));
        outs.push(run(&["rollout", "set-weight", &id, "100"]));
        outs.push(run(&["models", "list", "--json"]));
        outs.push(run(&["rollout", "abort", &id, "--reason", "done testing"]));
        outs.push(run(&["rollout", "promote", &id]));
        outs
    })
    .await
    .unwrap();
    for (i, o) in outs.iter().enumerate().take(7) {
        assert!(
            o.status.success(),
            "step {i}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let status = String::from_utf8_lossy(&outs[3].stdout);
    assert!(
        status.contains("bot/v2 vs v1") && status.contains("step 1/1 at 10"),
        "{status}"
    );
    let models: Value = serde_json::from_slice(&outs[5].stdout).unwrap();
    let v2 = models["data"][0]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "v2")
        .unwrap()
        .clone();
    assert_eq!(v2["traffic_percent"], 100.0);
    assert!(String::from_utf8_lossy(&outs[6].stdout).contains("aborted"));
    assert_eq!(
        outs[7].status.code(),
        Some(1),
        "an ended rollout cannot be promoted"
    );
}

#[tokio::test]
async fn a_failed_canary_call_is_retried_on_stable_and_counted_against_the_canary() {
    let m = mock().await;
    let extra = routes(&m).replace(
        "name = \"bot\"\n",
        "name = \"bot\"\nretry_on_stable = true\n",
    );
    let gw = gateway_with(&format!("http://{}/v1", m.addr), &extra, &[]).await;
    register(&gw, &m, "v2", "mock:status=503").await;
    let plan = json!({"steps": [{"weight_percent": 100, "min_duration_secs": 600, "min_requests": 100000}],
                      "min_requests_to_judge": 100000});
    let id = start_rollout(&gw, "v2", plan).await;
    for i in 0..10 {
        let r = chat(&gw, &format!("r-{i}")).await;
        assert_eq!(
            (r.status, served(&r)),
            (200, "v1".to_string()),
            "{}",
            r.text()
        );
    }
    // Ten answered calls, each with a failed canary attempt recorded too.
    gw.captured(20).await;
    let live = gw.admin(&format!("/admin/v1/rollouts/{id}")).await;
    assert_eq!(live["live"]["canary"]["requests"], 10, "{live}");
    assert_eq!(live["live"]["canary"]["errors"], 10, "{live}");
    assert_eq!(live["live"]["stable"]["requests"], 10, "{live}");
}

/// The user segment comes from the client key's configured segment, else the
/// `x-flywheel-segment` header; it is stored on each interaction, counted in
/// stats, filters listings and dataset builds, and splits a rollout's live
/// comparison segment by segment.
#[tokio::test]
async fn user_segments_are_recorded_filtered_and_compared() {
    let m = mock().await;
    let key = |k: &[u8]| flywheel::crypto::hex(&flywheel::crypto::sha256(k));
    let extra = format!(
        "{}[[auth.keys]]\nname = \"acme\"\nsha256 = \"{}\"\nsegment = \"enterprise\"\n[[auth.keys]]\nname = \"hobby\"\nsha256 = \"{}\"\n",
        routes(&m),
        key(b"acme-key"),
        key(b"hobby-key")
    );
    let gw = gateway_with(&format!("http://{}/v1", m.addr), &extra, &[]).await;
    register(&gw, &m, "v2", "new-model").await;
    let plan =
        json!({"steps": [{"weight_percent": 50, "min_duration_secs": 3600, "min_requests": 1000}]});
    let id = start_rollout(&gw, "v2", plan).await;
    let body = json!({"model": "bot", "messages": [{"role": "user", "content": "hi"}]}).to_string();
    let send = |key: &'static str, segment: Option<&'static str>, user: String| {
        let (gw, body) = (&gw, &body);
        async move {
            let auth = format!("Bearer {key}");
            let mut h = vec![
                ("authorization", auth.as_str()),
                ("x-flywheel-user", user.as_str()),
            ];
            if let Some(s) = segment {
                h.push(("x-flywheel-segment", s));
            }
            let r = gw.post("/v1/chat/completions", body, &h).await;
            assert_eq!(r.status, 200, "{}", r.text());
            r.interaction_id()
        }
    };
    // The key's segment outranks the header its caller sends.
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(send("acme-key", Some("free"), format!("a{i}")).await);
    }
    for i in 0..4 {
        ids.push(send("hobby-key", Some("free"), format!("h{i}")).await);
    }
    let none = send("hobby-key", None, "n0".into()).await;
    gw.captured(11).await;
    assert_eq!(gw.interaction(&ids[0]).await["segment"], "enterprise");
    assert_eq!(gw.interaction(&ids[6]).await["segment"], "free");
    assert!(gw.interaction(&none).await["segment"].is_null());

    let stats = gw.admin("/admin/v1/stats").await;
    assert_eq!(stats["by_segment"], json!({"enterprise": 6, "free": 4}));
    let free = gw
        .admin("/admin/v1/interactions?segment=free&limit=100")
        .await;
    assert_eq!(free["data"].as_array().unwrap().len(), 4);

    let live = gw.admin(&format!("/admin/v1/rollouts/{id}")).await["live"].clone();
    let seg = &live["by_segment"];
    for (name, n) in [("enterprise", 6), ("free", 4), ("", 1)] {
        let both = seg[name]["canary"]["requests"].as_u64().unwrap()
            + seg[name]["stable"]["requests"].as_u64().unwrap();
        assert_eq!(both, n, "segment {name:?}: {seg}");
    }

    let r = admin_post(
        &gw,
        "/admin/v1/datasets",
        json!({"spec": {"segment": "enterprise", "require_ok": true, "dedupe": {"exact": false, "near": false}}}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["counts"]["scanned"], 6, "{}", r.text());
}

/// The canary's live share as `models list` reports it.
async fn canary_percent(gw: &Gw, version: &str) -> f64 {
    let models = gw.admin("/admin/v1/models").await;
    models["data"][0]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == version)
        .unwrap()["traffic_percent"]
        .as_f64()
        .unwrap()
}

#[tokio::test]
async fn resuming_after_a_hand_raised_weight_never_lowers_it() {
    let m = mock().await;
    let gw = gateway_with(&format!("http://{}/v1", m.addr), &routes(&m), &[]).await;
    register(&gw, &m, "v2", "new-model").await;
    let plan = json!({"steps": [{"weight_percent": 10, "min_duration_secs": 1},
                                {"weight_percent": 50, "min_duration_secs": 600}],
                      "min_requests_to_judge": 1000000, "min_feedback_to_judge": 1000000});
    let id = start_rollout(&gw, "v2", plan).await;
    let r = admin_post(
        &gw,
        &format!("/admin/v1/rollouts/{id}/weight"),
        json!({"weight_percent": 60}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = admin_post(&gw, &format!("/admin/v1/rollouts/{id}/resume"), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let v = gw.admin(&format!("/admin/v1/rollouts/{id}")).await;
        if v["step"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "never advanced: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        canary_percent(&gw, "v2").await,
        60.0,
        "advancing to the 50% step moved callers back to stable"
    );
}

/// Runs the CLI against `gw` with the admin token; blocking, so call it from
/// `spawn_blocking`.
fn cli(url: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_flywheel"))
        .args(args)
        .env("FLYWHEEL_URL", url)
        .env("FLYWHEEL_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap()
}

#[tokio::test]
async fn status_shows_the_live_weight_after_set_weight() {
    let m = mock().await;
    let gw = gateway_with(&format!("http://{}/v1", m.addr), &routes(&m), &[]).await;
    register(&gw, &m, "v2", "new-model").await;
    let plan = json!({"steps": [{"weight_percent": 10, "min_duration_secs": 600}]});
    let id = start_rollout(&gw, "v2", plan).await;
    let url = gw.url.clone();
    let rid = id.clone();
    let (set, human, as_json) = tokio::task::spawn_blocking(move || {
        (
            cli(&url, &["rollout", "set-weight", &rid, "25"]),
            cli(&url, &["rollout", "status"]),
            cli(&url, &["rollout", "status", &rid, "--json"]),
        )
    })
    .await
    .unwrap();
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    assert_eq!(canary_percent(&gw, "v2").await, 25.0);
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(
        human.contains("step 1/1 at 25.0%") && human.contains("10.0%"),
        "status shows the live weight and the step's: {human}"
    );
    let v: Value = serde_json::from_slice(&as_json.stdout).unwrap();
    assert_eq!(v["live"]["weight_percent"], 25.0, "{v}");
    assert_eq!(v["live"]["step_weight_percent"], 10.0, "{v}");
    let api = gw.admin(&format!("/admin/v1/rollouts/{id}")).await;
    assert_eq!(api["live"]["weight_percent"], 25.0, "{api}");
    assert_eq!(api["live"]["step_weight_percent"], 10.0, "{api}");
}

#[tokio::test]
async fn operators_can_name_a_rollout_by_its_route() {
    let m = mock().await;
    let gw = gateway_with(&format!("http://{}/v1", m.addr), &routes(&m), &[]).await;
    register(&gw, &m, "v2", "new-model").await;
    let plan = json!({"steps": [{"weight_percent": 10, "min_duration_secs": 600}]});
    let id = start_rollout(&gw, "v2", plan).await;

    let shown = gw.admin("/admin/v1/rollouts/bot").await;
    assert_eq!(shown["id"], id.as_str(), "{shown}");
    let r = admin_post(
        &gw,
        "/admin/v1/rollouts/bot/weight",
        json!({"weight_percent": 30}),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["id"].clone()),
        (200, json!(id)),
        "{}",
        r.text()
    );
    assert_eq!(canary_percent(&gw, "v2").await, 30.0);

    let url = gw.url.clone();
    let outs = tokio::task::spawn_blocking(move || {
        [
            cli(&url, &["rollout", "resume", "bot"]),
            cli(&url, &["rollout", "pause", "bot"]),
            cli(&url, &["rollout", "status", "bot", "--json"]),
            cli(&url, &["rollout", "set-weight", "bot", "40"]),
            cli(&url, &["rollout", "pause", "support-bot"]),
            cli(&url, &["rollout", "abort", "bot"]),
            cli(&url, &["rollout", "promote", "bot"]),
        ]
    })
    .await
    .unwrap();
    for (i, o) in outs.iter().enumerate().take(4) {
        assert!(
            o.status.success(),
            "command {i}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let status: Value = serde_json::from_slice(&outs[2].stdout).unwrap();
    assert_eq!(
        (status["id"].as_str(), status["status"].as_str()),
        (Some(id.as_str()), Some("paused"))
    );
    let set = String::from_utf8_lossy(&outs[3].stdout);
    assert!(set.contains("at 40.0%"), "{set}");

    let unknown = String::from_utf8_lossy(&outs[4].stderr);
    assert_eq!(outs[4].status.code(), Some(1), "{unknown}");
    assert!(
        unknown.contains("support-bot") && unknown.contains("flywheel rollout status"),
        "says the name matched nothing and how to list rollouts: {unknown}"
    );
    assert!(
        outs[5].status.success(),
        "{}",
        String::from_utf8_lossy(&outs[5].stderr)
    );
    let ended = String::from_utf8_lossy(&outs[6].stderr);
    assert_eq!(outs[6].status.code(), Some(1), "{ended}");
    assert!(
        ended.contains("no active rollout") && ended.contains("--route bot"),
        "a route whose rollout ended says so: {ended}"
    );
    let api = gw
        .get(
            "/admin/v1/rollouts/nothing-here",
            &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        )
        .await;
    assert_eq!(api.status, 404);
    assert_eq!(api.json()["error"]["code"], "not_found", "{}", api.text());
}

#[tokio::test]
async fn a_second_start_names_the_active_rollout_and_how_to_act_on_it() {
    let m = mock().await;
    let gw = gateway_with(&format!("http://{}/v1", m.addr), &routes(&m), &[]).await;
    register(&gw, &m, "v2", "new-model").await;
    register(&gw, &m, "v3", "new-model").await;
    let plan = json!({"steps": [{"weight_percent": 10, "min_duration_secs": 600},
                                {"weight_percent": 100, "min_duration_secs": 600}]});
    let id = start_rollout(&gw, "v2", plan).await;
    for version in ["v2", "v3"] {
        let again = admin_post(
            &gw,
            "/admin/v1/rollouts",
            json!({"route": "bot", "version": version}),
        )
        .await;
        assert_eq!(again.status, 409, "{}", again.text());
        let msg = again.json()["error"]["message"]
            .as_str()
            .unwrap()
            .to_string();
        for want in [
            id.as_str(),
            "running",
            "step 1/2",
            "10%",
            "flywheel rollout pause bot",
            "promote",
            "abort",
        ] {
            assert!(
                msg.contains(want),
                "starting {version}: {want:?} missing in {msg}"
            );
        }
        assert!(!msg.contains("only an approved version"), "{msg}");
    }
}

/// With routes configured, `/v1/models` lists them first, then the default
/// upstream's own models, which still answer when called by name; a route
/// that shares a name with an upstream model is listed once, as the route.
#[tokio::test]
async fn models_lists_routes_and_the_upstreams_models() {
    let m = mock().await;
    let shadowing = format!(
        "{}[[routes]]\nname = \"mock-model\"\n[[routes.versions]]\nname = \"v1\"\nupstream = \"http://{}/v1\"\n",
        routes(&m),
        m.addr
    );
    let gw = gateway_with(&format!("http://{}/v1", m.addr), &routes(&m), &[]).await;
    let r = gw.get("/v1/models", &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let models = r.json();
    assert_eq!(models["object"], "list");
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["bot", "mock-model"]);
    // The upstream's entry is passed on as the upstream described it.
    assert_eq!(models["data"][1]["owned_by"], "mock");
    let rec = gw.interaction(&r.interaction_id()).await;
    assert_eq!(rec["response"]["data"][1]["id"], "mock-model");
    gw.shutdown().await;

    let gw = gateway_with(&format!("http://{}/v1", m.addr), &shadowing, &[]).await;
    let models = gw.get("/v1/models", &[]).await.json();
    let data = models["data"].as_array().unwrap();
    assert_eq!(data.len(), 2, "{models}");
    assert_eq!(data[1]["id"], "mock-model");
    assert_eq!(data[1]["owned_by"], "flywheel");
    gw.shutdown().await;
}

/// When the default upstream cannot list its models (down, or an answer too
/// big or not a model list), the routes are still listed, and the failure is
/// counted.
#[tokio::test]
async fn models_lists_routes_when_the_upstream_cannot_answer() {
    let m = mock().await;
    let down = format!("http://127.0.0.1:{}/v1", closed_port().await);
    let gw = gateway_with(&down, &routes(&m), &[]).await;
    let r = gw.get("/v1/models", &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["data"],
        json!([{"id": "bot", "object": "model", "created": 0, "owned_by": "flywheel"}])
    );
    assert!(
        gw.metrics()
            .await
            .contains("flywheel_models_upstream_failures_total 1"),
        "{}",
        gw.metrics().await
    );
    gw.shutdown().await;

    // An upstream whose list is far bigger than any real one.
    let big = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let big_addr = big.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = big.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let entry = r#"{"id":"m","object":"model","created":0,"owned_by":"x"},"#;
                let mut body = String::from(r#"{"object":"list","data":["#);
                body.push_str(&entry.repeat(100_000));
                body.push_str(r#"{"id":"last"}]}"#);
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(body.as_bytes()).await;
            });
        }
    });
    let gw = gateway_with(&format!("http://{big_addr}/v1"), &routes(&m), &[]).await;
    let r = gw.get("/v1/models", &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let ids: Vec<Value> = r.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(ids, [json!("bot")]);
    gw.shutdown().await;
}
