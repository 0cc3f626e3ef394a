//! Memory budgets that hold before authentication: what a client that sends
//! large bodies, many streams or many connections can make the gateway hold.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KEY: &[u8] = b"fw-limits-key";

/// A gateway in front of `m` that requires a client key, with extra config.
async fn keyed_gateway(m: &Mock, extra: &str) -> Gw {
    let hash = flywheel::capture::hash::hex(&flywheel::capture::hash::sha256(KEY));
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
