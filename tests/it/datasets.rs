//! Datasets end to end: traffic and feedback through a real gateway, a build
//! over the admin API and the CLI, files read back and checked the way a
//! trainer would read them.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output};

use crate::common::*;
use bytes::Bytes;
use http_body_util::Full;
use serde_json::{json, Value};

const EMAIL: &str = "jane.roe@example.com";
const PHONE: &str = "+1 415 555 0134";

fn auth() -> (&'static str, String) {
    ("authorization", format!("Bearer {ADMIN_TOKEN}"))
}

async fn admin_post(gw: &Gw, path: &str, body: &Value) -> Reply {
    let (k, v) = auth();
    gw.post(path, &body.to_string(), &[(k, &v)]).await
}

async fn admin_get(gw: &Gw, path: &str) -> Reply {
    let (k, v) = auth();
    gw.get(path, &[(k, &v)]).await
}

/// One chat call; `mock` sets the mock's behaviour (e.g. `reply=...`).
async fn chat(gw: &Gw, model: &str, user: &str, mock: &str) -> String {
    let body = json!({"model": model, "messages": [
        {"role": "system", "content": "You are the support bot."},
        {"role": "user", "content": user}]});
    let headers: Vec<(&str, &str)> = if mock.is_empty() {
        vec![]
    } else {
        vec![("x-mock", mock)]
    };
    let r = gw
        .post("/v1/chat/completions", &body.to_string(), &headers)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.interaction_id()
}

async fn feedback(gw: &Gw, id: &str, kind: &str, value: Value) {
    let r = gw
        .post(
            "/v1/feedback",
            &json!({"interaction_id": id, "type": kind, "value": value}).to_string(),
            &[],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
}

struct Traffic {
    corrected: String,
    up: String,
    down: String,
}

/// A small week of traffic: distinct questions, an exact and a near duplicate,
/// a truncated answer, an upstream error, thumbs both ways on one prompt, a
/// correction, and PII in prompts and feedback.
async fn traffic(gw: &Gw) -> Traffic {
    let topics = [
        "reset my password",
        "change the billing address on my invoice",
        "export all my reports to a spreadsheet",
        "add a teammate to the workspace",
        "cancel the trial before it renews",
        "enable two factor login with an app",
        "recover a deleted project from last month",
        "connect the calendar integration to outlook",
    ];
    for t in topics {
        chat(
            gw,
            "support-bot",
            &format!("How do I {t}? My email is {EMAIL}."),
            "",
        )
        .await;
    }
    // Exact duplicate (case and spacing differ) and a near duplicate.
    chat(
        gw,
        "support-bot",
        "how do I   RESET my password? My email is jane.roe@example.com.",
        "",
    )
    .await;
    chat(
        gw,
        "support-bot",
        "How do I change the billing address on my invoice? My email is jane.roe@example.com. Thanks",
        "",
    )
    .await;
    // Truncated answer and an upstream error.
    let body = json!({"model": "support-bot", "max_tokens": 3, "messages": [
        {"role": "user", "content": "Write a long essay about our refund policy"}]});
    let r = gw
        .post("/v1/chat/completions", &body.to_string(), &[])
        .await;
    assert_eq!(r.status, 200);
    let r = gw
        .post(
            "/v1/chat/completions",
            &body.to_string(),
            &[("x-mock", "status=500")],
        )
        .await;
    assert_eq!(r.status, 500);
    // The same prompt answered twice: one liked, one disliked.
    let q = "Which plan includes single sign-on?";
    let up = chat(
        gw,
        "support-bot",
        q,
        "reply=The Enterprise plan includes SSO.",
    )
    .await;
    let down = chat(gw, "support-bot", q, "reply=Every plan has it.").await;
    feedback(gw, &up, "thumbs", json!("up")).await;
    feedback(gw, &down, "thumbs", json!("down")).await;
    // A wrong answer with its correction (which carries PII to be redacted).
    let corrected = chat(
        gw,
        "support-bot",
        "What is the support phone number?",
        "reply=We have no phone support.",
    )
    .await;
    feedback(gw, &corrected, "thumbs", json!("down")).await;
    feedback(
        gw,
        &corrected,
        "correction",
        json!(format!("Call us at {PHONE}, weekdays 9 to 5.")),
    )
    .await;
    gw.captured(15).await;
    Traffic {
        corrected,
        up,
        down,
    }
}

async fn file(gw: &Gw, id: &str, name: &str) -> String {
    let r = admin_get(gw, &format!("/admin/v1/datasets/{id}/files/{name}")).await;
    assert_eq!(r.status, 200, "{name}: {}", r.text());
    r.text()
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect()
}

fn sha256_hex(text: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The user turns of a message list, joined: what the split keys on.
fn user_text(messages: &Value) -> String {
    messages
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| m["content"].as_str().unwrap().to_lowercase())
        .collect::<Vec<_>>()
        .join("|")
}

#[tokio::test]
async fn build_then_read_every_format_back() {
    let m = mock().await;
    let gw = gateway(&m).await;
    let t = traffic(&gw).await;
    let spec = json!({"route": "default", "dedupe": {"near_threshold": 0.75},
                      "split": {"eval_ratio": 0.3}});
    let r = admin_post(
        &gw,
        "/admin/v1/datasets",
        &json!({"spec": spec, "created_by": "ml-eng"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let man = r.json();
    let id = man["id"].as_str().unwrap().to_string();
    let c = &man["counts"];
    // 15 captured: one is an upstream error, one truncated; the exact and the
    // near duplicate go; the two answers to the SSO question share a prompt.
    assert_eq!(c["scanned"], 15, "{c}");
    assert_eq!(c["removed_by_status"], 1, "{c}");
    assert_eq!(c["removed_by_truncated"], 1, "{c}");
    assert_eq!(c["removed_by_dedupe_exact"], 2, "{c}");
    assert_eq!(c["removed_by_dedupe_near"], 1, "{c}");
    assert_eq!(c["kept"], 10, "{c}");
    assert_eq!(
        c["train"].as_u64().unwrap() + c["eval"].as_u64().unwrap(),
        10
    );
    assert_eq!(c["pairs"], 2, "a correction pair and a thumbs pair: {c}");
    assert_eq!(man["created_by"], "ml-eng");
    assert_eq!(man["spec"]["dedupe"]["near_threshold"], 0.75);

    // Every file matches its manifest entry, and SHA256SUMS hashes to the content hash.
    let mut all = String::new();
    let mut by_name = BTreeMap::new();
    for f in man["files"].as_array().unwrap() {
        let name = f["name"].as_str().unwrap();
        let text = file(&gw, &id, name).await;
        assert_eq!(sha256_hex(&text), f["sha256"], "{name}");
        assert_eq!(
            text.lines().count() as u64,
            f["rows"].as_u64().unwrap(),
            "{name}"
        );
        all.push_str(&text);
        by_name.insert(name.to_string(), text);
    }
    let sums = file(&gw, &id, "SHA256SUMS").await;
    assert_eq!(sha256_hex(&sums), man["content_hash"]);
    assert!(!all.contains(EMAIL) && !all.contains(PHONE) && !all.contains("555 0134"));

    // SFT: a prompt plus one assistant answer; the correction replaced the answer.
    let sft: Vec<Value> = ["train.sft.jsonl", "eval.sft.jsonl"]
        .iter()
        .flat_map(|n| lines(&by_name[*n]))
        .collect();
    assert_eq!(sft.len(), 10);
    for row in &sft {
        let msgs = row["messages"].as_array().unwrap();
        assert_eq!(row.as_object().unwrap().len(), 1, "{row}");
        assert_eq!(msgs.last().unwrap()["role"], "assistant");
        assert!(msgs[..msgs.len() - 1]
            .iter()
            .all(|m| m["role"] != "assistant"));
    }
    let phone_row = sft
        .iter()
        .find(|r| user_text(&r["messages"]).contains("support phone"))
        .unwrap();
    let answer = phone_row["messages"].as_array().unwrap().last().unwrap()["content"]
        .as_str()
        .unwrap();
    assert!(answer.starts_with("Call us at <PHONE>"), "{answer}");

    // DPO, both layouts: the correction beats the answer; thumbs up beats down.
    let dpo: Vec<Value> = ["train.dpo.jsonl", "eval.dpo.jsonl"]
        .iter()
        .flat_map(|n| lines(&by_name[*n]))
        .collect();
    assert_eq!(dpo.len(), 2);
    let sso = dpo
        .iter()
        .find(|p| user_text(&p["input"]["messages"]).contains("single sign-on"))
        .unwrap();
    assert_eq!(
        sso["preferred_output"][0]["content"],
        "The Enterprise plan includes SSO."
    );
    assert_eq!(
        sso["non_preferred_output"][0]["content"],
        "Every plan has it."
    );
    let fix = dpo
        .iter()
        .find(|p| user_text(&p["input"]["messages"]).contains("support phone"))
        .unwrap();
    assert_eq!(
        fix["non_preferred_output"][0]["content"],
        "We have no phone support."
    );
    let trl: Vec<Value> = ["train.dpo-trl.jsonl", "eval.dpo-trl.jsonl"]
        .iter()
        .flat_map(|n| lines(&by_name[*n]))
        .collect();
    assert_eq!(trl.len(), 2);
    for row in &trl {
        let keys: BTreeSet<&str> = row
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, BTreeSet::from(["prompt", "chosen", "rejected"]));
    }

    // KTO: one row per voted example, labelled by the vote on the model's answer.
    let kto: Vec<Value> = ["train.kto.jsonl", "eval.kto.jsonl"]
        .iter()
        .flat_map(|n| lines(&by_name[*n]))
        .collect();
    let labels: BTreeSet<(String, bool)> = kto
        .iter()
        .map(|r| (user_text(&r["prompt"]), r["label"].as_bool().unwrap()))
        .collect();
    assert!(labels.contains(&("which plan includes single sign-on?".into(), true)));
    assert!(labels.contains(&("what is the support phone number?".into(), false)));

    // The split never puts one prompt on both sides.
    let side = |n: &str| -> BTreeSet<String> {
        lines(&by_name[n])
            .iter()
            .map(|r| user_text(&r["messages"]))
            .collect()
    };
    assert!(side("train.sft.jsonl").is_disjoint(&side("eval.sft.jsonl")));

    // Lineage: every example and pair side by id, with the version that served it.
    let tsv = file(&gw, &id, "interactions.tsv").await;
    let ids: BTreeSet<&str> = tsv.lines().map(|l| l.split('\t').next().unwrap()).collect();
    for want in [&t.corrected, &t.up, &t.down] {
        assert!(ids.contains(want.as_str()), "{want} missing from lineage");
    }
    assert!(tsv.lines().all(|l| l.split('\t').nth(1) == Some("default")));
    assert_eq!(man["lineage"]["by_version"]["default"], tsv.lines().count());

    // Listed, shown, immutable.
    let list = gw.admin("/admin/v1/datasets").await;
    assert_eq!(list["data"][0]["id"], id.as_str());
    let events = gw.admin("/admin/v1/events?kind=dataset_built").await;
    assert_eq!(events["data"][0]["subject"], id.as_str());
    assert_eq!(events["data"][0]["actor"], "ml-eng");
    let shown = gw.admin(&format!("/admin/v1/datasets/{id}")).await;
    assert_eq!(shown, man);
    let del = gw
        .send(
            http::Request::delete(format!("{}/admin/v1/datasets/{id}", gw.url))
                .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert_eq!(del.status, 405);
    let bad = admin_get(
        &gw,
        &format!("/admin/v1/datasets/{id}/files/..%2Fflywheel.db"),
    )
    .await;
    assert_eq!(bad.status, 404);
}

#[tokio::test]
async fn same_spec_same_data_same_version_and_lineage_to_the_parent() {
    let m = mock().await;
    let gw = gateway(&m).await;
    traffic(&gw).await;
    let body = json!({"spec": {"split": {"eval_size": 3}}});
    let a = admin_post(&gw, "/admin/v1/datasets", &body).await;
    assert_eq!(a.status, 201, "{}", a.text());
    let again = admin_post(&gw, "/admin/v1/datasets", &body).await;
    assert_eq!(again.status, 200, "an identical build is the same version");
    assert_eq!(again.json()["id"], a.json()["id"]);
    assert_eq!(again.json()["content_hash"], a.json()["content_hash"]);
    assert_eq!(a.json()["counts"]["eval"], 3);

    // New traffic: a new version whose parent is the previous one.
    chat(
        &gw,
        "support-bot",
        "Can I pay by bank transfer in euros?",
        "",
    )
    .await;
    gw.captured(16).await;
    let b = admin_post(&gw, "/admin/v1/datasets", &body).await;
    assert_eq!(b.status, 201, "{}", b.text());
    assert_ne!(b.json()["content_hash"], a.json()["content_hash"]);
    assert_eq!(b.json()["parent"], a.json()["id"]);
    assert_eq!(
        b.json()["counts"]["kept"].as_u64().unwrap(),
        a.json()["counts"]["kept"].as_u64().unwrap() + 1
    );
    let list = gw.admin("/admin/v1/datasets").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn bad_specs_and_empty_selections_create_nothing() {
    let m = mock().await;
    let gw = gateway(&m).await;
    traffic(&gw).await;
    for (spec, want) in [
        (json!({"split": {"eval_ratio": 0.9}}), "split.eval_ratio"),
        (
            json!({"split": {"ratio": 0.2}}),
            "split: unknown field `ratio`",
        ),
        (
            json!({"feedback": {"thumbs": true}}),
            "feedback: unknown field `thumbs`",
        ),
        (json!({"route": 7}), "spec: invalid type"),
        (json!({"since": "last tuesday"}), "since:"),
        (json!({"emit": ["csv"]}), "unknown variant `csv`"),
    ] {
        let r = admin_post(&gw, "/admin/v1/datasets", &json!({"spec": spec})).await;
        assert_eq!(r.status, 400, "{}", r.text());
        let e = &r.json()["error"];
        assert_eq!(e["code"], "invalid_spec");
        assert!(e["message"].as_str().unwrap().contains(want), "{e}");
    }
    let r = admin_post(
        &gw,
        "/admin/v1/datasets",
        &json!({"spec": {"route": "sales-bot"}}),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text());
    let e = &r.json()["error"];
    assert_eq!(e["code"], "empty_dataset");
    assert!(
        e["message"].as_str().unwrap().contains("route filter"),
        "{e}"
    );
    let r = admin_post(
        &gw,
        "/admin/v1/datasets",
        &json!({"spec": {"feedback": {"corrected": true}, "min_quality": 0.99}}),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text());
    let e = &r.json()["error"];
    assert_eq!(e["counts"]["scanned"], 15);
    assert_eq!(e["counts"]["removed_by_feedback"], 12, "{e}");
    assert_eq!(e["counts"]["removed_by_quality"], 1, "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("feedback filter"),
        "{e}"
    );
    let r = admin_post(
        &gw,
        "/admin/v1/datasets",
        &json!({"spec": {}, "parent": "ds-0000000000000000"}),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(gw.admin("/admin/v1/datasets").await["data"]
        .as_array()
        .unwrap()
        .is_empty());
    let dir = gw.dir.path().join("flywheel-datasets");
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn an_interrupted_build_leaves_no_version() {
    let m = mock().await;
    let gw = gateway(&m).await;
    traffic(&gw).await;
    // What a crash leaves: a staging directory, and a renamed directory whose
    // row was never written.
    let dir = gw.dir.path().join("flywheel-datasets");
    std::fs::create_dir_all(dir.join(".staging-dead/x")).unwrap();
    std::fs::create_dir_all(dir.join("ds-00000000000000ff")).unwrap();
    let r = gw
        .get(
            "/admin/v1/datasets/ds-00000000000000ff",
            &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        )
        .await;
    assert_eq!(r.status, 404);
    // A streamed build whose client hangs up without reading. With so few rows
    // it may finish before it notices, so this checks only what must hold
    // either way: no staging debris, and one whole version afterwards
    // (cancelling itself is tested in `datasets::tests`).
    let req = http::Request::post(format!("{}/admin/v1/datasets?stream=true", gw.url))
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .body(Full::new(Bytes::from(r#"{"spec":{}}"#)))
        .unwrap();
    let resp = gw.client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    drop(resp);
    let r = admin_post(&gw, "/admin/v1/datasets", &json!({"spec": {}})).await;
    // Either the cancelled build was still running (409) or it is gone; a
    // finished build below must then be the only version.
    let mut tries = 0;
    let mut r = r;
    while r.status == 409 && tries < 100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        r = admin_post(&gw, "/admin/v1/datasets", &json!({"spec": {}})).await;
        tries += 1;
    }
    assert!(r.status == 201 || r.status == 200, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec![id.clone()]);
    let list = gw.admin("/admin/v1/datasets").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

async fn cli(args: &[&str], gw: &Gw) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let (url, dir) = (gw.url.clone(), gw.dir.path().to_path_buf());
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Command::new(env!("CARGO_BIN_EXE_flywheel"))
            .args(&args)
            .current_dir(dir)
            .env("FLYWHEEL_URL", url)
            .env("FLYWHEEL_ADMIN_TOKEN", ADMIN_TOKEN)
            .output()
            .expect("run flywheel")
    })
    .await
    .unwrap()
}

fn ok(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

#[tokio::test]
async fn cli_build_show_diff_export() {
    let m = mock().await;
    let gw = gateway(&m).await;
    traffic(&gw).await;
    let spec = gw.dir.path().join("curate.toml");
    std::fs::write(
        &spec,
        "route = \"default\"\nsince = \"1d\"\n[split]\neval_size = 2\n[dedupe]\nnear_threshold = 0.75\n",
    )
    .unwrap();
    let out_dir = gw.dir.path().join("out");
    let spec_arg = spec.to_str().unwrap().to_string();
    let out_arg = out_dir.to_str().unwrap().to_string();
    let built = cli(
        &[
            "datasets", "build", "--spec", &spec_arg, "--emit", "sft,dpo", "--out", &out_arg,
            "--json",
        ],
        &gw,
    )
    .await;
    let a: Value = {
        assert!(
            built.status.success(),
            "{}",
            String::from_utf8_lossy(&built.stderr)
        );
        let text = String::from_utf8_lossy(&built.stdout);
        // The manifest, then the export summary.
        let mut de = serde_json::Deserializer::from_str(&text).into_iter::<Value>();
        de.next().unwrap().unwrap()
    };
    let stderr = String::from_utf8_lossy(&built.stderr);
    assert!(
        stderr.contains("scanned"),
        "progress goes to stderr: {stderr}"
    );
    assert_eq!(a["counts"]["eval"], 2);
    assert_eq!(a["spec"]["emit"], json!(["sft", "dpo"]));
    let since = a["spec"]["since_ms"].as_i64().unwrap();
    assert!(since > 0 && a["spec"].get("since").is_none());
    let eval = std::fs::read_to_string(out_dir.join("eval.sft.jsonl")).unwrap();
    assert_eq!(eval.lines().count(), 2);
    assert!(out_dir.join("train.dpo.jsonl").exists());
    assert!(!out_dir.join("train.kto.jsonl").exists());
    assert!(out_dir.join("manifest.json").exists());

    // A second version from flags alone, then show and diff.
    let b = ok(&cli(
        &[
            "datasets",
            "build",
            "--route",
            "default",
            "--thumbs-up",
            "--json",
        ],
        &gw,
    )
    .await);
    assert_eq!(b["counts"]["kept"], 1);
    assert_eq!(b["parent"], a["id"]);
    let (ida, idb) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let shown = ok(&cli(&["datasets", "show", idb, "--ids", "--json"], &gw).await);
    // The kept example, and both sides of the thumbs pair on its prompt.
    let roles: Vec<&str> = shown["interactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["example", "chosen", "rejected"]);
    let human = cli(&["datasets", "show", ida], &gw).await;
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("- dedupe_exact") && text.contains("sha256"),
        "{text}"
    );
    let d = ok(&cli(&["datasets", "diff", ida, idb, "--json"], &gw).await);
    assert_eq!(d["examples"]["unchanged"], 1);
    assert_eq!(d["examples"]["added"], 0);
    assert!(d["spec"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["key"] == "feedback.thumbs_up"));
    assert_eq!(d["b_descends_from_a"], true);
    let listed = ok(&cli(&["datasets", "list", "--json"], &gw).await);
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);

    // Export of the eval split alone; an unwritable --out fails before any work.
    let eval_dir = gw.dir.path().join("eval-only");
    let e = ok(&cli(
        &[
            "datasets",
            "export",
            ida,
            "--format",
            "sft",
            "--split",
            "eval",
            "--out",
            eval_dir.to_str().unwrap(),
            "--json",
        ],
        &gw,
    )
    .await);
    assert_eq!(e["files"].as_array().unwrap().len(), 1);
    assert_eq!(
        std::fs::read_to_string(eval_dir.join("eval.sft.jsonl")).unwrap(),
        eval
    );
    let blocker = gw.dir.path().join("a-file");
    std::fs::write(&blocker, "x").unwrap();
    let bad_out = blocker.join("sub");
    let r = cli(
        &[
            "datasets",
            "export",
            ida,
            "--format",
            "sft",
            "--out",
            bad_out.to_str().unwrap(),
        ],
        &gw,
    )
    .await;
    assert_eq!(
        r.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(String::from_utf8_lossy(&r.stderr).contains("--out"));
    let r = cli(
        &[
            "datasets",
            "build",
            "--route",
            "nope",
            "--out",
            bad_out.to_str().unwrap(),
        ],
        &gw,
    )
    .await;
    assert_eq!(r.status.code(), Some(2));
    assert_eq!(
        gw.admin("/admin/v1/datasets").await["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Nothing selected: exit 1, the funnel on stderr, no version.
    let r = cli(
        &[
            "datasets",
            "build",
            "--route",
            "default",
            "--corrected",
            "--thumbs-up",
            "--min-quality",
            "0.99",
        ],
        &gw,
    )
    .await;
    assert_eq!(r.status.code(), Some(1));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("no dataset was created") && err.contains("- feedback"),
        "{err}"
    );
}

#[tokio::test]
async fn no_labelled_pii_reaches_any_export() {
    let m = mock().await;
    let gw = gateway(&m).await;
    let corpus = include_str!("../data/pii_corpus.jsonl");
    let mut values = Vec::new();
    let mut sent = 0;
    for line in corpus.lines() {
        let row: Value = serde_json::from_str(line).unwrap();
        let entities = row["entities"].as_array().unwrap();
        if entities.is_empty() {
            continue;
        }
        values.extend(
            entities
                .iter()
                .map(|e| e["value"].as_str().unwrap().to_string()),
        );
        let text = row["text"].as_str().unwrap();
        // PII in the prompt, and (echoed by the mock) in the answer; a
        // correction carrying it too on every third row.
        let id = chat(&gw, "support-bot", text, "").await;
        if sent % 3 == 0 {
            feedback(&gw, &id, "correction", json!(format!("Noted: {text}"))).await;
        }
        sent += 1;
        if sent == 120 {
            break;
        }
    }
    gw.captured(sent).await;
    let spec = json!({"dedupe": {"exact": false, "near": false}, "split": {"eval_ratio": 0.2}});
    let r = admin_post(&gw, "/admin/v1/datasets", &json!({"spec": spec})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let man = r.json();
    assert_eq!(
        man["counts"]["kept"], sent,
        "every row is kept: {}",
        man["counts"]
    );
    let mut all = String::new();
    for f in man["files"].as_array().unwrap() {
        all.push_str(
            &file(
                &gw,
                man["id"].as_str().unwrap(),
                f["name"].as_str().unwrap(),
            )
            .await,
        );
    }
    assert!(all.contains("messages"), "the export is not empty");
    for v in &values {
        assert!(!all.contains(v.as_str()), "PII {v:?} reached an export");
    }
}

/// In zero-config mode every call is on route `default`; a build selects by
/// the model the client asked for instead.
#[tokio::test]
async fn a_build_selects_by_requested_model() {
    let m = mock().await;
    let gw = gateway(&m).await;
    for (model, n) in [("support-bot", 3), ("sales-bot", 2)] {
        for i in 0..n {
            let body = json!({"model": model, "messages": [{"role": "user", "content": format!("question {i} for {model}")}]});
            let r = gw
                .post("/v1/chat/completions", &body.to_string(), &[])
                .await;
            assert_eq!(r.status, 200);
        }
    }
    gw.captured(5).await;
    let r = admin_post(
        &gw,
        "/admin/v1/datasets",
        &json!({"spec": {"model": "support-bot"}}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let c = &r.json()["counts"];
    assert_eq!(c["scanned"], 3, "{c}");
    assert_eq!(c["kept"], 3, "{c}");
}
