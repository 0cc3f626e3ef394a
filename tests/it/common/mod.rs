//! Test harness: a real mock upstream and a real gateway on port 0, and a small
//! HTTP client over real sockets.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::sync::oneshot;

use flywheel::config::{Config, Overrides};

pub const ADMIN_TOKEN: &str = "test-admin-token";

pub struct Mock {
    pub addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

pub async fn mock() -> Mock {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(flywheel::mock::serve(listener, async move {
        let _ = rx.await;
    }));
    Mock { addr, _stop: tx }
}

pub struct Gw {
    pub addr: SocketAddr,
    pub url: String,
    pub db: PathBuf,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    pub client: Client<HttpConnector, Full<Bytes>>,
}

/// Builds a config file: `extra_toml` is inserted right after `[upstream] url`,
/// so bare keys there are upstream keys and later tables may follow.
pub fn config(
    upstream: &str,
    db: &std::path::Path,
    extra_toml: &str,
    env: &[(&str, &str)],
) -> Config {
    let dir = db.parent().unwrap();
    let path = dir.join("flywheel.toml");
    std::fs::write(
        &path,
        format!(
            "[upstream]\nurl = \"{upstream}\"\n{extra_toml}\n[capture]\ndb = \"{}\"\n",
            db.display()
        ),
    )
    .unwrap();
    let mut env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.entry("FLYWHEEL_ADMIN_TOKEN".into())
        .or_insert_with(|| ADMIN_TOKEN.into());
    env.retain(|_, v| !v.is_empty());
    Config::load(Some(&path), &env, &Overrides::default()).unwrap()
}

/// Starts a gateway in front of `upstream` with extra config sections.
pub async fn gateway_with(upstream: &str, extra_toml: &str, env: &[(&str, &str)]) -> Gw {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flywheel.db");
    let cfg = config(upstream, &db, extra_toml, env);
    start(cfg, dir, db).await
}

pub async fn start(cfg: Config, dir: tempfile::TempDir, db: PathBuf) -> Gw {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        flywheel::run(listener, cfg, async move {
            let _ = rx.await;
        })
        .await
        .expect("gateway run failed");
    });
    Gw {
        addr,
        url: format!("http://{addr}"),
        db,
        dir,
        stop: Some(tx),
        task: Some(task),
        client: client(),
    }
}

pub async fn gateway(m: &Mock) -> Gw {
    gateway_with(&format!("http://{}/v1", m.addr), "", &[]).await
}

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }
    pub fn interaction_id(&self) -> String {
        self.header("x-flywheel-interaction-id")
            .expect("interaction id header")
    }
}

impl Gw {
    pub async fn send(&self, req: http::Request<Full<Bytes>>) -> Reply {
        let resp = tokio::time::timeout(Duration::from_secs(30), self.client.request(req))
            .await
            .expect("request timed out")
            .expect("request failed");
        read(resp).await
    }

    /// POSTs JSON with optional extra headers.
    pub async fn post(&self, path: &str, body: &str, headers: &[(&str, &str)]) -> Reply {
        let mut b = http::Request::builder()
            .method("POST")
            .uri(format!("{}{}", self.url, path))
            .header("content-type", "application/json");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.send(b.body(Full::new(Bytes::from(body.to_string()))).unwrap())
            .await
    }

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut b = http::Request::builder().uri(format!("{}{}", self.url, path));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.send(b.body(Full::new(Bytes::new())).unwrap()).await
    }

    pub async fn admin(&self, path: &str) -> Value {
        let r = self
            .get(path, &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))])
            .await;
        assert_eq!(r.status, 200, "admin {path}: {}", r.text());
        r.json()
    }

    /// Waits until the capture store holds `n` interactions, then returns them (newest first).
    pub async fn captured(&self, n: u64) -> Vec<Value> {
        for _ in 0..200 {
            let stats = self.admin("/admin/v1/stats").await;
            if stats["interactions_total"].as_u64().unwrap() >= n {
                let list = self.admin("/admin/v1/interactions?limit=1000").await;
                return list["data"].as_array().unwrap().clone();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("capture store never reached {n} interactions");
    }

    /// The full record of one interaction, waiting for it to be written.
    pub async fn interaction(&self, id: &str) -> Value {
        for _ in 0..200 {
            let r = self
                .get(
                    &format!("/admin/v1/interactions/{id}"),
                    &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
                )
                .await;
            if r.status == 200 {
                return r.json();
            }
            assert_eq!(r.status, 404, "{}", r.text());
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("interaction {id} was never captured");
    }

    pub async fn metrics(&self) -> String {
        self.get("/metrics", &[]).await.text()
    }

    /// Stops the gateway the way SIGTERM does and waits for the drain.
    pub async fn shutdown(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .unwrap()
                .unwrap();
        }
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }
}

pub async fn read(resp: http::Response<Incoming>) -> Reply {
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

/// The JSON payloads of an SSE body's `data:` lines, except `[DONE]`.
pub fn sse_data(body: &str) -> Vec<Value> {
    body.split("\n\n")
        .filter_map(|ev| ev.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("bad event {d}: {e}")))
        .collect()
}

/// A streaming chat request as raw HTTP/1.1 bytes, with extra header lines
/// (each ending in CRLF).
pub fn stream_request(extra_headers: &str) -> String {
    let body = r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}"#;
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-length: {}\r\n{extra_headers}\r\n{body}",
        body.len()
    )
}

/// A TCP port with nothing listening on it.
pub async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    port
}

/// Starts a streamed chat through the gateway with the given mock directives;
/// returns its interaction id and the body, still arriving.
pub async fn start_stream(gw: &Gw, mock: &str) -> (String, Incoming) {
    let body =
        serde_json::json!({"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]})
            .to_string();
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("{}/v1/chat/completions", gw.url))
        .header("x-mock", mock)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = gw.client.request(req).await.unwrap();
    let id = resp.headers()["x-flywheel-interaction-id"]
        .to_str()
        .unwrap()
        .to_string();
    (id, resp.into_body())
}
