//! The CLI against a running gateway: output, `--json`, and exit codes.

use std::process::{Command, Output};

use crate::common::*;
use serde_json::Value;

fn flywheel(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_flywheel"));
    c.args(args)
        .env_remove("FLYWHEEL_URL")
        .env_remove("FLYWHEEL_ADMIN_TOKEN");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run flywheel")
}

async fn run_cli(args: Vec<String>, env: Vec<(String, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        flywheel(&args, &env)
    })
    .await
    .unwrap()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn interactions_list_show_stats() {
    let m = mock().await;
    let gw = gateway(&m).await;
    let r = gw
        .post(
            "/v1/chat/completions",
            r#"{"model":"cli-model","messages":[{"role":"user","content":"hi"}]}"#,
            &[],
        )
        .await;
    let id = r.interaction_id();
    gw.captured(1).await;
    let env = vec![
        ("FLYWHEEL_URL".to_string(), gw.url.clone()),
        ("FLYWHEEL_ADMIN_TOKEN".to_string(), ADMIN_TOKEN.to_string()),
    ];

    let out = run_cli(strings(&["interactions", "list", "--json"]), env.clone()).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["data"][0]["id"], id.as_str());

    let out = run_cli(strings(&["interactions", "list"]), env.clone()).await;
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains(&id) && table.contains("cli-model") && table.contains("ok"),
        "{table}"
    );

    let out = run_cli(strings(&["interactions", "show", &id]), env.clone()).await;
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["request"]["model"], "cli-model");

    let out = run_cli(strings(&["interactions", "stats", "--json"]), env.clone()).await;
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["interactions_total"], 1);

    let out = run_cli(
        strings(&["interactions", "show", "no-such-id"]),
        env.clone(),
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no interaction"));

    let wrong = vec![
        ("FLYWHEEL_URL".to_string(), gw.url.clone()),
        ("FLYWHEEL_ADMIN_TOKEN".to_string(), "bad".to_string()),
    ];
    let out = run_cli(strings(&["interactions", "stats"]), wrong).await;
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test]
async fn unreachable_gateway_exits_3() {
    let port = closed_port().await;
    let out = run_cli(
        strings(&[
            "interactions",
            "stats",
            "--url",
            &format!("http://127.0.0.1:{port}"),
        ]),
        vec![],
    )
    .await;
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"));
}

#[test]
fn bad_config_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[upstream]\nurl = \"http://a/v1\"\nconnect_timeout_ms = 0\n",
    )
    .unwrap();
    let out = flywheel(&["serve", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("upstream.connect_timeout_ms"));
    let out = flywheel(&["serve"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--upstream"));
    let out = flywheel(&["config", "--upstream", "http://x/v1"], &[]);
    assert!(out.status.success());
}

/// A pod in a namespace with a Service named `flywheel` gets these from
/// Kubernetes; the gateway starts anyway and says what it ignored.
#[test]
fn kubernetes_service_links_are_ignored_with_a_warning() {
    let links = [
        ("FLYWHEEL_PORT", "tcp://10.96.0.12:8080"),
        ("FLYWHEEL_SERVICE_HOST", "10.96.0.12"),
        ("FLYWHEEL_SERVICE_PORT", "8080"),
        ("FLYWHEEL_PORT_8080_TCP", "tcp://10.96.0.12:8080"),
        ("FLYWHEEL_PORT_8080_TCP_ADDR", "10.96.0.12"),
        ("FLYWHEEL_PORT_8080_TCP_PORT", "8080"),
        ("FLYWHEEL_PORT_8080_TCP_PROTO", "tcp"),
    ];
    let out = flywheel(&["config", "--upstream", "http://x/v1"], &links);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("FLYWHEEL_PORT_8080_TCP_ADDR") && stderr.contains("WARN"),
        "{stderr}"
    );
    let out = flywheel(
        &["config", "--upstream", "http://x/v1"],
        &[("FLYWHEEL_CAPTURE_QUEUE_CAPACTY", "10")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("did you mean FLYWHEEL_CAPTURE_QUEUE_CAPACITY?"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn keys_hash_prints_sha256() {
    let out = flywheel(&["keys", "hash", "abc"], &[]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}
