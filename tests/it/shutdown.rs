//! SIGTERM on the real binary: requests in flight complete, every answered call
//! is captured, and a restarted gateway sees them all.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::*;
use serde_json::{json, Value};

struct Proc {
    child: Child,
    url: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `flywheel serve` on a free port and waits for its "listening" log line.
fn spawn_gateway(upstream: &str, db: &std::path::Path) -> Proc {
    spawn_with(&["--upstream", upstream, "--db", db.to_str().unwrap()])
}

fn spawn_with(extra: &[&str]) -> Proc {
    spawn_with_env(extra, &[])
}

fn spawn_with_env(extra: &[&str], env: &[(&str, &str)]) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flywheel"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .envs(env.iter().copied())
        .env("FLYWHEEL_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("FLYWHEEL_LOG_FORMAT", "json")
        .env("FLYWHEEL_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start flywheel");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("gateway exited before listening")
            .unwrap();
        let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if v["fields"]["message"] == "flywheel listening" {
            break v["fields"]["addr"].as_str().unwrap().to_string();
        }
    };
    // Keep draining the log so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Proc {
        child,
        url: format!("http://{addr}"),
    }
}

fn sigterm(p: &Proc) {
    let ok = Command::new("kill")
        .args(["-TERM", &p.child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Waits for the gateway to exit, failing the test past `deadline`.
async fn exit_status(
    p: &mut Proc,
    deadline: Option<std::time::Instant>,
) -> std::process::ExitStatus {
    loop {
        if let Some(s) = p.child.try_wait().unwrap() {
            return s;
        }
        assert!(
            deadline.is_none_or(|d| std::time::Instant::now() < d),
            "the gateway outlived its grace period"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `GET /admin/v1/stats` of a running gateway.
async fn stats(p: &Proc) -> Value {
    let r = client()
        .request(
            http::Request::builder()
                .uri(format!("{}/admin/v1/stats", p.url))
                .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    read(r).await.json()
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_and_loses_no_capture() {
    let m = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("f.db");
    let upstream = format!("http://{}/v1", m.addr);
    let mut gw = spawn_gateway(&upstream, &db);
    let client = client();

    const FAST: usize = 120;
    const SLOW: usize = 20;
    let chat_url = format!("{}/v1/chat/completions", gw.url);
    let post = |body: String, mock: &'static str| {
        let client = client.clone();
        let url = chat_url.clone();
        async move {
            let req = http::Request::builder()
                .method("POST")
                .uri(url)
                .header("x-mock", mock)
                .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                .unwrap();
            read(client.request(req).await.expect("request")).await
        }
    };
    let mut slow = Vec::new();
    for i in 0..SLOW {
        let body = json!({"model":"m","stream":true,"messages":[{"role":"user","content":format!("slow {i}")}]});
        slow.push(tokio::spawn(post(
            body.to_string(),
            "chunks=10,chunk_delay_ms=60",
        )));
    }
    let mut fast = Vec::new();
    for i in 0..FAST {
        let body = json!({"model":"m","messages":[{"role":"user","content":format!("fast {i}")}]});
        fast.push(tokio::spawn(post(body.to_string(), "")));
    }
    for f in fast {
        assert_eq!(f.await.unwrap().status, 200);
    }
    // The slow streams are mid-flight now (600 ms each): stop the gateway.
    sigterm(&gw);
    for s in slow {
        let r = s.await.unwrap();
        assert_eq!(r.status, 200);
        let text = r.text();
        assert!(
            text.trim_end().ends_with("data: [DONE]"),
            "stream cut by shutdown: {text}"
        );
    }
    let status = exit_status(&mut gw, None).await;
    assert!(status.success(), "gateway exit status {status}");

    let gw = spawn_gateway(&upstream, &db);
    let stats = stats(&gw).await;
    assert_eq!(stats["interactions_total"], (FAST + SLOW) as u64, "{stats}");
    assert_eq!(stats["by_outcome"]["ok"], (FAST + SLOW) as u64, "{stats}");
}

async fn model_ids(
    client: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
    url: &str,
) -> Vec<String> {
    let req = http::Request::builder()
        .uri(format!("{url}/v1/models"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let v = read(client.request(req).await.unwrap()).await.json();
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn sighup_reloads_routes_and_refuses_a_bad_config() {
    let m = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flywheel.toml");
    let route = |name: &str| {
        format!("[[routes]]\nname = \"{name}\"\n[[routes.versions]]\nname = \"v1\"\nupstream = \"http://{}/v1\"\n", m.addr)
    };
    let base = format!(
        "[upstream]\nurl = \"http://{}/v1\"\n[capture]\ndb = \"{}\"\n",
        m.addr,
        dir.path().join("f.db").display()
    );
    std::fs::write(&file, format!("{base}{}", route("bot"))).unwrap();
    let gw = spawn_with(&["--config", file.to_str().unwrap()]);
    let client = client();
    // The routes, then the default upstream's own models.
    assert_eq!(model_ids(&client, &gw.url).await, ["bot", "mock-model"]);

    std::fs::write(&file, format!("{base}{}{}", route("bot"), route("helper"))).unwrap();
    let hup = |p: &Proc| {
        Command::new("kill")
            .args(["-HUP", &p.child.id().to_string()])
            .status()
            .unwrap()
    };
    assert!(hup(&gw).success());
    let mut ids = Vec::new();
    for _ in 0..40 {
        ids = model_ids(&client, &gw.url).await;
        if ids.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ids, ["bot", "helper", "mock-model"]);

    // A broken file is refused and the running routes stay.
    std::fs::write(&file, format!("{base}[[routes]]\nname = \"x\"\n[[routes.versions]]\nname = \"v1\"\nupstream = \"not a url\"\n")).unwrap();
    assert!(hup(&gw).success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        model_ids(&client, &gw.url).await,
        ["bot", "helper", "mock-model"]
    );
    sigterm(&gw);
}

/// A call still running when the grace period ends is cut, and recorded: the
/// gateway exits on time and the restarted one lists the call as the client's
/// loss, not as a success and not missing.
#[tokio::test]
async fn a_call_outliving_the_grace_period_is_cut_and_still_captured() {
    let m = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("f.db");
    let upstream = format!("http://{}/v1", m.addr);
    let args = [
        "--upstream",
        upstream.as_str(),
        "--db",
        db.to_str().unwrap(),
    ];
    let mut gw = spawn_with_env(&args, &[("FLYWHEEL_SERVER_SHUTDOWN_GRACE_SECS", "1")]);
    let client = client();
    // 100 chunks 100 ms apart: ten seconds, far past the grace period.
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("{}/v1/chat/completions", gw.url))
        .header("x-mock", "chunks=100,chunk_delay_ms=100")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            json!({"model":"m","stream":true,"messages":[{"role":"user","content":"long"}]})
                .to_string(),
        )))
        .unwrap();
    let resp = client.request(req).await.expect("request");
    assert_eq!(resp.status(), 200);
    let reading = tokio::spawn(async move {
        use http_body_util::BodyExt;
        resp.into_body().collect().await.map(|b| b.to_bytes())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopped_at = std::time::Instant::now();
    sigterm(&gw);
    let status = exit_status(&mut gw, Some(stopped_at + Duration::from_secs(8))).await;
    assert!(status.success(), "gateway exit status {status}");
    // The client sees the stream end early: cut off, or closed without [DONE].
    if let Ok(body) = reading.await.unwrap() {
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("[DONE]"), "the stream was not cut: {text}");
    }

    let gw = spawn_gateway(&upstream, &db);
    let stats = stats(&gw).await;
    assert_eq!(stats["interactions_total"], 1, "{stats}");
    assert_eq!(stats["by_outcome"]["client_closed"], 1, "{stats}");
}

/// One call, then SIGTERM a random few milliseconds later, many times over
/// one database: every call that was answered 200 is in the database after
/// the gateway exits, and each clean exit leaves the database whole in its
/// one file (no WAL left behind for a reader that opens only the file).
#[tokio::test]
async fn sigterm_at_any_moment_after_an_answer_loses_no_capture() {
    let m = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("f.db");
    let upstream = format!("http://{}/v1", m.addr);
    let client = client();
    let mut answered = Vec::new();
    // A small xorshift: the offsets vary from run to run of the loop but the
    // test needs no extra crate.
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    const ROUNDS: usize = 120;
    for round in 0..ROUNDS {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let offset = Duration::from_micros(seed % 15_000);
        let mut gw = spawn_gateway(&upstream, &db);
        let body =
            json!({"model":"m","messages":[{"role":"user","content":format!("round {round}")}]});
        let req = http::Request::builder()
            .method("POST")
            .uri(format!("{}/v1/chat/completions", gw.url))
            .body(http_body_util::Full::new(bytes::Bytes::from(
                body.to_string(),
            )))
            .unwrap();
        let call = tokio::spawn(client.request(req));
        tokio::time::sleep(offset).await;
        sigterm(&gw);
        if let Ok(Ok(resp)) = call.await {
            let r = read(resp).await;
            if r.status == 200 {
                answered.push(r.interaction_id());
            }
        }
        let status = exit_status(&mut gw, None).await;
        assert!(status.success(), "round {round}: exit status {status}");
        let wal = std::fs::metadata(format!("{}-wal", db.display())).map_or(0, |m| m.len());
        assert_eq!(wal, 0, "round {round}: the exit left {wal} bytes of WAL");
    }
    assert!(
        answered.len() > ROUNDS / 4,
        "most rounds answered: {}",
        answered.len()
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut missing = Vec::new();
    for id in &answered {
        let n: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM interactions WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap();
        if n != 1 {
            missing.push(id.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} answered calls missing: {missing:?}",
        missing.len(),
        answered.len()
    );
}
