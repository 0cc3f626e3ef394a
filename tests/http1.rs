//! HTTP/1.1 toward clients, as raw bytes on a socket: pipelining, chunked
//! request bodies, `Expect: 100-continue`, HTTP/1.0, HEAD, bad heads, and
//! idle connections during shutdown.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CHAT: &str = r#"{"model":"m","messages":[{"role":"user","content":"raw bytes"}]}"#;

/// Writes `request` on a new connection and reads until the gateway closes it.
async fn exchange(gw: &Gw, request: &[u8]) -> String {
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(request).await.unwrap();
    read_to_close(&mut s).await
}

async fn read_to_close(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the gateway did not close the connection")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads until `text` holds `needle`.
async fn read_until(s: &mut TcpStream, text: &mut String, needle: &str) {
    let mut buf = [0u8; 4096];
    while !text.contains(needle) {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} in {text:?}"))
            .unwrap();
        assert!(n > 0, "closed before {needle:?}: {text:?}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

/// A gateway in front of `m` with these `[server]` settings.
async fn with_server(m: &Mock, settings: &str) -> Gw {
    gateway_with(
        &format!("http://{}/v1", m.addr),
        &format!("[server]\n{settings}"),
        &[],
    )
    .await
}

fn chat_request(extra_headers: &str) -> String {
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra_headers}\r\n{CHAT}",
        CHAT.len()
    )
}

/// Requests sent back to back in one write are answered in order, each in
/// full, and `connection: close` on the last ends the connection after it.
#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let m = mock().await;
    let gw = gateway(&m).await;
    let requests = format!(
        "{}GET /healthz HTTP/1.1\r\nhost: gw\r\n\r\n{}GET /readyz HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n",
        chat_request(""),
        chat_request(""),
    );
    let text = exchange(&gw, requests.as_bytes()).await;
    assert_eq!(text.matches("HTTP/1.1 200 OK\r\n").count(), 4, "{text}");
    let chat = text.find("\"chat.completion\"").unwrap();
    let ok = text.find("\r\n\r\nok\n").unwrap();
    let chat2 = text.rfind("\"chat.completion\"").unwrap();
    let ready = text.find("\r\n\r\nready\n").unwrap();
    assert!(chat < ok && ok < chat2 && chat2 < ready, "{text}");
    assert!(text.ends_with("ready\n"), "{text}");
    let last_head = &text[text.rfind("HTTP/1.1").unwrap()..];
    assert!(last_head.contains("connection: close\r\n"), "{last_head}");
    assert!(last_head.contains("content-length: 6\r\n"), "{last_head}");
    assert!(last_head.contains("date: "), "{last_head}");
    assert_eq!(gw.captured(2).await.len(), 2);
}

/// A chunked request body, sent in pieces, reaches the upstream whole and is
/// captured as sent.
#[tokio::test]
async fn a_chunked_request_body_is_read_whole() {
    let m = mock().await;
    let gw = gateway(&m).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ntransfer-encoding: chunked\r\ncontent-type: application/json\r\n\r\n")
        .await
        .unwrap();
    let (a, b) = CHAT.split_at(20);
    for piece in [a, b] {
        s.write_all(format!("{:x};ext=1\r\n{piece}\r\n", piece.len()).as_bytes())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.write_all(b"0\r\n\r\n").await.unwrap();
    let mut text = String::new();
    read_until(&mut s, &mut text, "\"chat.completion\"").await;
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    let id = text
        .lines()
        .find_map(|l| l.strip_prefix("x-flywheel-interaction-id: "))
        .unwrap()
        .to_string();
    let row = gw.interaction(&id).await;
    assert_eq!(
        row["request"],
        serde_json::from_str::<serde_json::Value>(CHAT).unwrap()
    );
}

/// A client that waits for `100 Continue` before its body gets it, then the
/// answer; one whose declared body is over the limit gets 413 without it.
#[tokio::test]
async fn expect_100_continue_is_answered_before_the_body() {
    let m = mock().await;
    let gw = with_server(&m, "max_body_bytes = 4096\n").await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let head = chat_request("expect: 100-continue\r\n");
    let head = head.strip_suffix(CHAT).unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut text = String::new();
    read_until(&mut s, &mut text, "\r\n\r\n").await;
    assert_eq!(text, "HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(CHAT.as_bytes()).await.unwrap();
    read_until(&mut s, &mut text, "\"chat.completion\"").await;
    assert!(text.contains("HTTP/1.1 200 OK\r\n"), "{text}");

    let text = exchange(
        &gw,
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\nexpect: 100-continue\r\ncontent-length: 100000\r\n\r\n",
    )
    .await;
    assert!(
        text.starts_with("HTTP/1.1 413 Payload Too Large\r\n"),
        "{text}"
    );
    assert!(!text.contains("100 Continue"), "{text}");
    assert!(text.contains("connection: close\r\n"), "{text}");
    assert!(text.contains("\"payload_too_large\""), "{text}");
}

/// Heads the gateway cannot take get OpenAI-shaped errors with the status
/// that says why, the connection closes, and everyone else is still served.
#[tokio::test]
async fn bad_heads_get_errors_and_the_gateway_keeps_serving() {
    let m = mock().await;
    let gw = gateway(&m).await;
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nhost: gw\r\nx-big: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let cases: [(&[u8], &str, &str); 5] = [
        (b"NOT HTTP AT ALL\r\n\r\n", "400 Bad Request", "invalid_request"),
        (
            b"POST /v1/chat/completions HTTP/1.1\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello",
            "400 Bad Request",
            "invalid_request",
        ),
        (
            b"POST /v1/chat/completions HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n",
            "501 Not Implemented",
            "unsupported_transfer_encoding",
        ),
        (
            huge.as_bytes(),
            "431 Request Header Fields Too Large",
            "request_header_too_large",
        ),
        (
            b"POST /v1/chat/completions HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            "400 Bad Request",
            "invalid_request",
        ),
    ];
    for (request, status, code) in cases {
        let text = exchange(&gw, request).await;
        assert!(
            text.starts_with(&format!("HTTP/1.1 {status}\r\n")),
            "{text}"
        );
        assert!(text.contains("connection: close\r\n"), "{text}");
        let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], code, "{text}");
        assert!(v["error"]["message"].as_str().unwrap().len() > 10);
    }
    assert_eq!(gw.post("/v1/chat/completions", CHAT, &[]).await.status, 200);
}

/// HTTP/1.0 clients get their answer and a closed connection unless they
/// asked to keep it; HEAD gets the head alone, with the body's length.
#[tokio::test]
async fn http_1_0_and_head() {
    let m = mock().await;
    let gw = gateway(&m).await;
    let text = exchange(&gw, b"GET /healthz HTTP/1.0\r\n\r\n").await;
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("connection: close\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nok\n"), "{text}");

    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.0\r\nconnection: keep-alive\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    read_until(&mut s, &mut text, "ok\n").await;
    assert!(text.contains("connection: keep-alive\r\n"), "{text}");
    s.write_all(b"HEAD /healthz HTTP/1.1\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let text = read_to_close(&mut s).await;
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("content-length: 3\r\n"), "{text}");
    assert!(
        text.ends_with("\r\n\r\n"),
        "a HEAD answer carried a body: {text}"
    );
}

/// A streamed answer to an HTTP/1.1 client goes out chunked, and ends with
/// the last chunk.
#[tokio::test]
async fn a_stream_goes_out_chunked() {
    let m = mock().await;
    let gw = gateway(&m).await;
    let request = stream_request("x-mock: chunks=3\r\nconnection: close\r\n");
    let text = exchange(&gw, request.as_bytes()).await;
    assert!(text.contains("transfer-encoding: chunked\r\n"), "{text}");
    assert!(text.contains("data: [DONE]"), "{text}");
    assert!(text.ends_with("\r\n0\r\n\r\n"), "{text}");

    // To an HTTP/1.0 client, even one that asked to keep the connection, a
    // stream has no chunked coding: it ends when the connection closes.
    let request = request.replacen("HTTP/1.1", "HTTP/1.0", 1).replacen(
        "connection: close",
        "connection: keep-alive",
        1,
    );
    let text = exchange(&gw, request.as_bytes()).await;
    assert!(!text.contains("transfer-encoding"), "{text}");
    assert!(text.contains("connection: close\r\n"), "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
}

/// On shutdown an idle keep-alive connection is closed at once: it does not
/// hold the drain for the grace period.
#[tokio::test]
async fn idle_connections_do_not_hold_the_shutdown() {
    let m = mock().await;
    let gw = with_server(&m, "shutdown_grace_secs = 20\n").await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(chat_request("").as_bytes()).await.unwrap();
    let mut text = String::new();
    read_until(&mut s, &mut text, "\"chat.completion\"").await;
    let start = Instant::now();
    gw.shutdown().await;
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        start.elapsed()
    );
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "{}", String::from_utf8_lossy(&rest));
}

/// A body arriving slowly but within its own time limit is not cut off by the
/// idle-connection watch, whose period is shorter.
#[tokio::test]
async fn a_slow_body_within_its_limit_is_not_taken_for_an_idle_connection() {
    let m = mock().await;
    let gw = with_server(&m, "header_timeout_secs = 1\nbody_timeout_secs = 10\n").await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let request = chat_request("");
    let (head, body) = request.split_at(request.len() - CHAT.len());
    s.write_all(head.as_bytes()).await.unwrap();
    for piece in body.as_bytes().chunks(body.len() / 6 + 1) {
        tokio::time::sleep(Duration::from_millis(600)).await;
        s.write_all(piece).await.unwrap();
    }
    let mut text = String::new();
    read_until(&mut s, &mut text, "\"chat.completion\"").await;
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
}

/// A client that stops reading a long stream is disconnected once it has
/// taken nothing for `server.send_timeout_secs`, and the call is recorded
/// as `client_closed`.
#[tokio::test]
async fn a_client_that_stops_reading_is_let_go() {
    let m = mock().await;
    let gw = with_server(&m, "send_timeout_secs = 1\n").await;
    let request = stream_request("x-mock: chunks=300000\r\n");
    // About 50 MB of events: more than the socket buffers on both sides hold.
    let mut stalled = TcpStream::connect(gw.addr).await.unwrap();
    stalled.write_all(request.as_bytes()).await.unwrap();
    let start = Instant::now();
    let rows = gw.captured(1).await;
    assert_eq!(rows[0]["outcome"], "client_closed", "{}", rows[0]);
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(gw.post("/v1/chat/completions", CHAT, &[]).await.status, 200);
    drop(stalled);
}
