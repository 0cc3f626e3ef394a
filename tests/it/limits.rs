//! Memory budgets that hold before authentication: what a client that sends
//! large bodies, many streams or many connections can make the gateway hold.

use std::time::Duration;

use crate::common::*;
use bytes::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KEY: &[u8] = b"fw-limits-key";

/// A gateway in front of `m` that requires a client key, with extra config.
async fn keyed_gateway(m: &Mock, extra: &str) -> Gw {
    let hash = flywheel::crypto::hex(&flywheel::crypto::sha256(KEY));
    gateway_with(
        &format!("http://{}/v1", m.addr),
        &format!("{extra}\n[[auth.keys]]\nname = \"app\"\nsha256 = \"{hash}\"\n"),
        &[],
    )
    .await
}

/// Reads what the gateway sends until it closes the connection, or at most
/// `within`; panics when nothing at all came in that time.
async fn read_answer(s: &mut TcpStream, within: Duration) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(!out.is_empty(), "no answer within {within:?}");
    String::from_utf8_lossy(&out).into_owned()
}

fn big_head(path: &str, extra_headers: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\ncontent-length: 10000000\r\n{extra_headers}\r\n"
    )
}

#[tokio::test]
async fn an_unauthenticated_body_is_refused_on_its_head() {
    let m = mock().await;
    let gw = keyed_gateway(&m, "").await;
    // The head alone: the gateway must answer 401 without waiting for the
    // ten megabytes it announces (the body timeout is a minute).
    for (path, auth) in [
        ("/v1/chat/completions", ""),
        ("/v1/chat/completions", "authorization: Bearer wrong\r\n"),
        ("/v1/feedback", ""),
        ("/admin/v1/models", "authorization: Bearer wrong\r\n"),
    ] {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(big_head(path, auth).as_bytes()).await.unwrap();
        let answer = read_answer(&mut s, Duration::from_secs(5)).await;
        assert!(
            answer.starts_with("HTTP/1.1 401"),
            "{path} {auth:?}: {answer}"
        );
        assert!(answer.contains("connection: close"), "{answer}");
        assert!(answer.contains("\"code\":\"invalid_api_key\""), "{answer}");
    }
    // With `Expect: 100-continue` the client is never invited to send it.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(big_head("/v1/embeddings", "expect: 100-continue\r\n").as_bytes())
        .await
        .unwrap();
    let answer = read_answer(&mut s, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");

    // The refused call is captured like any other, and a keyed client with
    // the same announced body is still invited to send it.
    let captured = gw.captured(3).await;
    assert_eq!(captured.len(), 3, "{captured:?}");
    assert!(captured.iter().all(|r| r["status"] == 401), "{captured:?}");
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let auth = format!(
        "authorization: Bearer {}\r\nexpect: 100-continue\r\n",
        std::str::from_utf8(KEY).unwrap()
    );
    s.write_all(big_head("/v1/embeddings", &auth).as_bytes())
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 100 Continue"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
}

/// A request body that sends one chunk and then never ends.
struct Endless(Option<Bytes>);

impl http_body::Body for Endless {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        match self.get_mut().0.take() {
            Some(b) => std::task::Poll::Ready(Some(Ok(http_body::Frame::data(b)))),
            None => std::task::Poll::Pending,
        }
    }
}

#[tokio::test]
async fn an_unauthenticated_h2_stream_is_refused_before_its_body() {
    let m = mock().await;
    let gw = keyed_gateway(&m, "").await;
    let h2c: Client<_, Endless> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("{}/v1/chat/completions", gw.url))
        .header("content-length", "10000000")
        .body(Endless(Some(Bytes::from_static(b"{\"model\":"))))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), h2c.request(req))
        .await
        .expect("no answer before the body")
        .unwrap();
    assert_eq!(resp.status(), 401);
}

/// A chat request body of exactly `size` bytes.
fn chat_of_size(size: usize) -> String {
    let shell = r#"{"model":"m","messages":[{"role":"user","content":""}]}"#;
    let pad = "a".repeat(size - shell.len());
    format!(r#"{{"model":"m","messages":[{{"role":"user","content":"{pad}"}}]}}"#)
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in metrics"))
}

const BUDGET: &str = "[server]\nmax_body_bytes = 1000000\nbody_budget_bytes = 1500000\n";

#[tokio::test]
async fn request_bodies_in_flight_share_one_budget() {
    let m = mock().await;
    let gw = gateway_with(&format!("http://{}/v1", m.addr), BUDGET, &[]).await;
    // A holds a million bytes of the budget while its body trickles in.
    let body_a = chat_of_size(1_000_000);
    let mut a = TcpStream::connect(gw.addr).await.unwrap();
    a.write_all(
        big_head("/v1/chat/completions", "")
            .replace("10000000", "1000000")
            .as_bytes(),
    )
    .await
    .unwrap();
    a.write_all(&body_a.as_bytes()[..1000]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // B announces as much: it does not fit, and is told so at once.
    let mut b = TcpStream::connect(gw.addr).await.unwrap();
    b.write_all(
        big_head("/v1/chat/completions", "")
            .replace("10000000", "1000000")
            .as_bytes(),
    )
    .await
    .unwrap();
    let answer = read_answer(&mut b, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    assert!(answer.contains("\"code\":\"overloaded\""), "{answer}");

    // A chunked body is counted as its chunks come: past the room left, 503.
    let mut c = TcpStream::connect(gw.addr).await.unwrap();
    c.write_all(b"POST /v1/embeddings HTTP/1.1\r\nhost: gw\r\ntransfer-encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 100_000, "b".repeat(100_000));
    let mut sent = 0;
    while sent < 8 {
        if c.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
        sent += 1;
    }
    let answer = read_answer(&mut c, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");

    // A small request still fits beside A.
    let small = gw
        .post("/v1/chat/completions", &chat_of_size(200), &[])
        .await;
    assert_eq!(small.status, 200, "{}", small.text());

    // A completes, and its share is given back.
    a.write_all(&body_a.as_bytes()[1000..]).await.unwrap();
    let mut text = String::new();
    let mut buf = vec![0u8; 65536];
    while !text.contains("\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), a.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "{text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let again = gw.post("/v1/chat/completions", &body_a, &[]).await;
    assert_eq!(again.status, 200, "{}", again.text());
    let metrics = gw.metrics().await;
    assert_eq!(metric(&metrics, "flywheel_request_body_rejected_total"), 2);
    assert_eq!(metric(&metrics, "flywheel_request_body_bytes"), 0);
}

#[tokio::test]
async fn h2_streams_share_the_body_budget() {
    let m = mock().await;
    let gw = gateway_with(&format!("http://{}/v1", m.addr), BUDGET, &[]).await;
    let h2c: Client<_, Endless> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let request = || {
        http::Request::builder()
            .method("POST")
            .uri(format!("{}/v1/chat/completions", gw.url))
            .header("content-length", "1000000")
            .body(Endless(Some(Bytes::from_static(b"{\"model\":"))))
            .unwrap()
    };
    // The first stream holds its declared million bytes and never finishes.
    let first = tokio::spawn(h2c.request(request()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = tokio::time::timeout(Duration::from_secs(5), h2c.request(request()))
        .await
        .expect("the second stream was not answered at once")
        .unwrap();
    assert_eq!(second.status(), 503);
    assert_eq!(second.headers()["retry-after"], "1");
    let metrics = gw.metrics().await;
    assert_eq!(metric(&metrics, "flywheel_request_body_rejected_total"), 1);
    assert_eq!(metric(&metrics, "flywheel_request_body_bytes"), 1_000_000);
    first.abort();
}

#[tokio::test]
async fn connections_past_the_limit_are_closed_and_counted() {
    let m = mock().await;
    let gw = gateway_with(
        &format!("http://{}/v1", m.addr),
        "[server]\nmax_connections = 2\nworkers = 1\n",
        &[],
    )
    .await;
    let get = b"GET /healthz HTTP/1.1\r\nhost: gw\r\n\r\n";
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(get).await.unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(s);
    }
    let mut third = TcpStream::connect(gw.addr).await.unwrap();
    let _ = third.write_all(get).await;
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf))
        .await
        .expect("the connection past the limit was left open")
        .unwrap_or(0);
    assert_eq!(n, 0, "{}", String::from_utf8_lossy(&buf[..n]));
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let metrics = gw.metrics().await;
    assert_eq!(metric(&metrics, "flywheel_connections_refused_total"), 1);
}

#[tokio::test]
async fn by_default_thirteen_announced_bodies_of_ten_mib_do_not_fit() {
    // The defaults: 10 MiB per body, 128 MiB for all of them. Bodies that
    // are announced and trickle in hold their whole declared length.
    let m = mock().await;
    let gw = gateway(&m).await;
    let head = big_head("/v1/chat/completions", "").replace("10000000", "10485760");
    let mut held = Vec::new();
    for _ in 0..12 {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(b"{\"model\":").await.unwrap();
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let answer = read_answer(&mut s, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    drop(held);
}

/// An upstream that answers one request with a JSON body of `size` bytes,
/// declared up front: the first `first` bytes at once, the rest only when
/// told to.
async fn slow_upstream(size: usize, first: usize) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let (go, wait) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).await.unwrap();
            head.extend_from_slice(&buf[..n]);
        }
        let shell = r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":""}]}"#;
        let pad = "A".repeat(size - shell.len());
        let body = format!(
            r#"{{"object":"list","data":[{{"object":"embedding","index":0,"embedding":"{pad}"}}]}}"#
        );
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {size}\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(&body.as_bytes()[..first]).await.unwrap();
        let _ = wait.await;
        s.write_all(&body.as_bytes()[first..]).await.unwrap();
        let _ = s.read(&mut buf).await;
    });
    (url, go)
}

#[tokio::test]
async fn a_json_response_over_the_capture_limit_is_streamed_not_held() {
    let (upstream, go) = slow_upstream(2_000_000, 1_000_000).await;
    let gw = gateway_with(
        &upstream,
        "",
        &[("FLYWHEEL_CAPTURE_MAX_BODY_BYTES", "65536")],
    )
    .await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let body = r#"{"model":"m","input":"x"}"#;
    s.write_all(
        format!(
            "POST /v1/embeddings HTTP/1.1\r\nhost: gw\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    // The first megabyte reaches the client while the upstream still holds
    // back the second: the gateway does not wait for the whole body.
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    tokio::time::timeout(Duration::from_secs(5), async {
        while got.len() < 1_000_000 {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("nothing of the body was forwarded before its end");
    let text = String::from_utf8_lossy(&got[..got.len().min(4096)]).into_owned();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("content-length: 2000000"), "{text}");
    let id = text
        .lines()
        .find_map(|l| l.strip_prefix("x-flywheel-interaction-id: "))
        .unwrap()
        .trim()
        .to_string();
    go.send(()).unwrap();
    let head_len = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    while got.len() < head_len + 2_000_000 {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "the body ended early");
        got.extend_from_slice(&buf[..n]);
    }
    let v: serde_json::Value = serde_json::from_slice(&got[head_len..]).unwrap();
    let padded = v["data"][0]["embedding"].as_str().unwrap();
    assert!(padded.len() > 1_999_000 && padded.bytes().all(|b| b == b'A'));
    // The record keeps the first 64 KiB, marked as cut, and the call as ok.
    let rec = gw.interaction(&id).await;
    assert_eq!(rec["status"], 200, "{rec}");
    assert_eq!(rec["outcome"], "ok", "{rec}");
    assert_eq!(rec["truncated"], true, "{rec}");
}

#[tokio::test]
async fn an_h2_body_in_many_frames_up_to_the_limit_is_taken() {
    let m = mock().await;
    let gw = gateway_with(&format!("http://{}/v1", m.addr), BUDGET, &[]).await;
    let h2c: Client<_, http_body_util::Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    // HTTP/2 carries it in frames of 16 KiB: the limit counts each byte once.
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("{}/v1/chat/completions", gw.url))
        .body(http_body_util::Full::new(Bytes::from(chat_of_size(
            1_000_000,
        ))))
        .unwrap();
    let r = read(h2c.request(req).await.unwrap()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let metrics = gw.metrics().await;
    assert_eq!(metric(&metrics, "flywheel_request_body_bytes"), 0);
}
