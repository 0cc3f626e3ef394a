//! HTTP/1.1 toward clients, as raw bytes on a socket: pipelining, chunked
//! request bodies, `Expect: 100-continue`, HTTP/1.0, HEAD, bad heads, and
//! idle connections during shutdown.

use std::time::{Duration, Instant};

use crate::common::*;
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
    s.write_all(b"HEAD /healthz HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n")
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

/// The head of a chunked chat request; its body follows.
const CHUNKED_HEAD: &str = "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";

/// The statuses of every response in `text`, in order.
fn statuses(text: &str) -> Vec<u16> {
    text.match_indices("HTTP/1.1 ")
        .filter(|(at, _)| *at == 0 || text[..*at].ends_with('\n') || text[..*at].ends_with('}'))
        .filter_map(|(at, _)| text[at + 9..at + 12].parse().ok())
        .collect()
}

/// Chunked request bodies are held to RFC 9112 §7.1: exact CRLF line ends,
/// the chunk-ext grammar, no space around the size, and trailer field
/// lines. A body that breaks it gets one 400 and the connection closes, so
/// nothing after it is read as a second request; well-formed extensions
/// and trailers still pass.
#[tokio::test]
async fn chunked_request_bodies_follow_the_grammar_strictly() {
    let m = mock().await;
    let gw = gateway(&m).await;
    let chat = |chunk: &str| format!("{:x}{chunk}\r\n{CHAT}\r\n", CHAT.len());
    let smuggled = "GET /healthz HTTP/1.1\r\nhost: gw\r\n\r\n";
    let bad: Vec<(&str, String)> = vec![
        // A front proxy that takes LF inside an extension sees one body here;
        // a reader that ends lines at a bare LF sees a second request.
        (
            "the smuggling payload",
            format!("10;\nAB\r\nFFFFFFFFFFFF\r\n0;\r\n40;\n\r\n{smuggled}"),
        ),
        (
            "a bare LF after the size",
            format!("{:x}\n{CHAT}\r\n0\r\n\r\n", CHAT.len()),
        ),
        (
            "a bare LF after the data",
            format!("{:x}\r\n{CHAT}\n0\r\n\r\n", CHAT.len()),
        ),
        ("a bare LF ending the body", format!("{}0\r\n\n", chat(""))),
        (
            "a CR inside an extension",
            format!("{}0\r\n\r\n", chat(";a\rb")),
        ),
        (
            "a NUL inside an extension",
            format!("{}0\r\n\r\n", chat(";a=\0")),
        ),
        (
            "an extension without a name",
            format!("{}0\r\n\r\n", chat(";=x")),
        ),
        (
            "an extension value that is not a token",
            format!("{}0\r\n\r\n", chat(";a=b c")),
        ),
        (
            "an unclosed quoted value",
            format!("{}0\r\n\r\n", chat(";a=\"b")),
        ),
        ("a space before the size", format!(" {}0\r\n\r\n", chat(""))),
        ("a space after the size", format!("{}0\r\n\r\n", chat(" "))),
        ("a sign before the size", format!("+{}0\r\n\r\n", chat(""))),
        ("a 0x prefix", format!("0x{}0\r\n\r\n", chat(""))),
        (
            "a trailer line without a colon",
            format!("{}0\r\nnot a field\r\n\r\n", chat("")),
        ),
        (
            "a folded trailer line",
            format!("{}0\r\nx-a: 1\r\n  folded\r\n\r\n", chat("")),
        ),
        (
            "a NUL in a trailer",
            format!("{}0\r\nx-a: \0\r\n\r\n", chat("")),
        ),
        (
            "too many trailer lines",
            format!("{}0\r\n{}\r\n", chat(""), "x-t: 1\r\n".repeat(100)),
        ),
    ];
    for (what, body) in bad {
        let text = exchange(&gw, format!("{CHUNKED_HEAD}{body}").as_bytes()).await;
        assert_eq!(statuses(&text), [400], "{what}: {text}");
        assert!(text.contains("connection: close\r\n"), "{what}: {text}");
        assert!(text.contains("\"invalid_request_error\""), "{what}: {text}");
    }
    let good = [
        format!("{}0\r\n\r\n", chat(" ;a")),
        format!("{}0;last\r\n\r\n", chat(";a=b;c=\"d \\\" e\"\t; f = g")),
        format!("{}0\r\nx-trailer: one\r\nx-other:two \r\n\r\n", chat("")),
        format!("{:0>20x}\r\n{CHAT}\r\n0000\r\n\r\n", CHAT.len()),
    ];
    let head = CHUNKED_HEAD.replace("\r\n\r\n", "\r\nconnection: close\r\n\r\n");
    for body in good {
        let text = exchange(&gw, format!("{head}{body}").as_bytes()).await;
        assert_eq!(statuses(&text), [200], "{body:?}: {text}");
    }
}

/// `Transfer-Encoding` is taken only as `chunked`, once: another coding is
/// 501, `chunked` twice (on one line or two), an empty value, or a coding
/// beside a `Content-Length` is 400, and the connection closes.
#[tokio::test]
async fn transfer_encoding_is_chunked_once_or_refused() {
    let m = mock().await;
    let gw = gateway(&m).await;
    let body = format!("{:x}\r\n{CHAT}\r\n0\r\n\r\n", CHAT.len());
    let length = format!("content-length: {}\r\n", body.len());
    let cases: [(String, u16); 7] = [
        ("transfer-encoding: gzip, chunked\r\n".into(), 501),
        ("transfer-encoding: chunked, gzip\r\n".into(), 501),
        ("transfer-encoding: chunked, chunked\r\n".into(), 400),
        (
            "transfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n".into(),
            400,
        ),
        ("transfer-encoding: \r\n".into(), 400),
        (format!("transfer-encoding: chunked\r\n{length}"), 400),
        (format!("{length}transfer-encoding: chunked\r\n"), 400),
    ];
    for (framing, status) in cases {
        let request =
            format!("POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\n{framing}\r\n{body}");
        let text = exchange(&gw, request.as_bytes()).await;
        assert_eq!(statuses(&text), [status], "{framing}: {text}");
        assert!(text.contains("connection: close\r\n"), "{framing}: {text}");
    }
    for framing in [
        "transfer-encoding:  Chunked \r\n",
        "transfer-encoding: , chunked\r\n",
    ] {
        let request = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n{framing}\r\n{body}"
        );
        let text = exchange(&gw, request.as_bytes()).await;
        assert_eq!(statuses(&text), [200], "{framing}: {text}");
    }
}

/// A raw upstream: on every connection it reads one request (its head and a
/// body by `content-length`), writes `answer` and closes.
async fn raw_upstream(answer: Vec<u8>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let answer = answer.clone();
            tokio::spawn(async move {
                if read_request(&mut sock).await.is_some() {
                    let _ = sock.write_all(&answer).await;
                }
            });
        }
    });
    addr
}

/// Reads one request with a `content-length` body (or none) off `sock`.
async fn read_request(sock: &mut TcpStream) -> Option<Vec<u8>> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&seen[..end]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |v| v.trim().parse().unwrap());
            if seen.len() >= end + 4 + len {
                seen.truncate(end + 4 + len);
                return Some(seen);
            }
        }
        match sock.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

/// The upstream's chunked answers are held to the same grammar as requests:
/// a malformed one is a 502 with an OpenAI-shaped error, never a body cut
/// where a lenient reader would cut it.
#[tokio::test]
async fn malformed_chunked_answers_from_upstream_are_502() {
    let ok = r#"{"id":"x","object":"chat.completion","choices":[]}"#;
    let chunked = |te: &str, body: String| {
        format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{te}\r\n{body}").into_bytes()
    };
    let one = |ext: &str| format!("{:x}{ext}\r\n{ok}\r\n", ok.len());
    let te = "transfer-encoding: chunked\r\n";
    let bad = [
        chunked(te, format!("{:x}\n{ok}\r\n0\r\n\r\n", ok.len())),
        chunked(te, format!("{:x}\r\n{ok}\n0\r\n\r\n", ok.len())),
        chunked(te, format!("{}0\r\n\r\n", one(";a\rb"))),
        chunked(te, format!("{}0\r\n\r\n", one(" "))),
        chunked(te, format!("{}0\r\nno colon\r\n\r\n", one(""))),
        chunked(
            "transfer-encoding: gzip, chunked\r\n",
            format!("{}0\r\n\r\n", one("")),
        ),
        chunked(
            "transfer-encoding: chunked, chunked\r\n",
            format!("{}0\r\n\r\n", one("")),
        ),
        chunked("transfer-encoding: gzip\r\n", ok.to_string()),
    ];
    for answer in bad {
        let up = raw_upstream(answer.clone()).await;
        let gw = gateway_with(&format!("http://{up}/v1"), "", &[]).await;
        let r = gw.post("/v1/chat/completions", CHAT, &[]).await;
        assert_eq!(
            r.status,
            502,
            "{}: {}",
            String::from_utf8_lossy(&answer),
            r.text()
        );
        assert_eq!(r.json()["error"]["type"], "upstream_error", "{}", r.text());
    }
    let good = chunked(
        te,
        format!("{}0;x=y\r\nx-t: 1\r\n\r\n", one(" ; a = \"b\"")),
    );
    let up = raw_upstream(good).await;
    let gw = gateway_with(&format!("http://{up}/v1"), "", &[]).await;
    let r = gw.post("/v1/chat/completions", CHAT, &[]).await;
    assert_eq!((r.status, r.text()), (200, ok.to_string()));
}

/// RFC 9112 §3.2: an HTTP/1.1 request without a Host, with two, or with one
/// that is not a host gets 400; HTTP/1.0 may leave it out.
#[tokio::test]
async fn requests_name_one_valid_host() {
    let m = mock().await;
    let gw = gateway(&m).await;
    let bad = [
        "GET /healthz HTTP/1.1\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nhost: gw\r\nhost: gw\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nhost: a\r\nHost: b\r\n\r\n",
        "GET /healthz HTTP/1.0\r\nhost: a\r\nhost: b\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nhost: a b\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nhost: user@gw\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nhost: gw:80:80\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nhost: gw:http\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nhost: [::1\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nhost: gw/path\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nhost: %zz\r\n\r\n",
    ];
    for request in bad {
        let text = exchange(&gw, request.as_bytes()).await;
        assert_eq!(statuses(&text), [400], "{request:?}: {text}");
        assert!(text.contains("\"invalid_request\""), "{request:?}: {text}");
    }
    let good = [
        "GET /healthz HTTP/1.0\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nhost: 10.0.0.1:8080\r\nconnection: close\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nhost: [::1]:8080\r\nconnection: close\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nhost: my-gw.example.com.\r\nconnection: close\r\n\r\n",
        // An empty value is what a client sends for a target with no authority.
        "GET /healthz HTTP/1.1\r\nhost: \r\nconnection: close\r\n\r\n",
    ];
    for request in good {
        let text = exchange(&gw, request.as_bytes()).await;
        assert_eq!(statuses(&text), [200], "{request:?}: {text}");
    }
}

/// CONNECT (the gateway opens no tunnels) and TRACE (which would echo the
/// request with the upstream's credential in it) get 405 with the methods
/// that are served, and never reach the upstream; CONNECT closes the
/// connection, since what follows it would be tunnel bytes.
#[tokio::test]
async fn connect_and_trace_are_not_allowed() {
    let (up, mut seen) = recording_upstream().await;
    let gw = gateway_with(&format!("http://{up}/v1"), "", &[]).await;
    let text = exchange(
        &gw,
        b"CONNECT api.openai.com:443 HTTP/1.1\r\nhost: api.openai.com:443\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&text), [405], "{text}");
    assert!(text.contains("connection: close\r\n"), "{text}");
    assert!(text.contains("\"method_not_allowed\""), "{text}");

    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"TRACE /v1/models HTTP/1.1\r\nhost: gw\r\n\r\nGET /healthz HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let text = read_to_close(&mut s).await;
    assert_eq!(statuses(&text), [405, 200], "{text}");
    let allow = text
        .lines()
        .find_map(|l| l.strip_prefix("allow: "))
        .unwrap_or_else(|| panic!("no allow header: {text}"));
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    assert!(
        !allow.contains("TRACE") && !allow.contains("CONNECT"),
        "{allow}"
    );
    // A request the upstream does get, to show the two above never went.
    assert_eq!(gw.get("/v1/models?x", &[]).await.status, 200);
    let first = String::from_utf8(seen.recv().await.unwrap()).unwrap();
    assert!(
        first.starts_with("GET /v1/models?x HTTP/1.1\r\n"),
        "{first}"
    );
}

/// A raw upstream that answers every request `200 {}` on a kept-alive
/// connection and sends each request it read on the returned channel.
async fn recording_upstream() -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Some(request) = read_request(&mut sock).await {
                    let _ = tx.send(request);
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                    if sock.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, rx)
}

/// An absolute-form target (RFC 9112 §3.2.2) is routed by its path and goes
/// upstream in origin form; its scheme must be http(s), it may carry no
/// user info, and the request still needs its Host line.
#[tokio::test]
async fn absolute_form_targets_are_taken_by_their_path() {
    let (up, mut seen) = recording_upstream().await;
    let gw = gateway_with(&format!("http://{up}/v1"), "", &[]).await;
    let text = exchange(
        &gw,
        b"GET http://elsewhere.example/v1/models?a=1 HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&text), [200], "{text}");
    let forwarded = String::from_utf8(seen.recv().await.unwrap()).unwrap();
    assert!(
        forwarded.starts_with("GET /v1/models?a=1 HTTP/1.1\r\n"),
        "{forwarded}"
    );
    let text = exchange(
        &gw,
        b"GET HTTP://gw:80 HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&text), [200], "{text}");
    let forwarded = String::from_utf8(seen.recv().await.unwrap()).unwrap();
    assert!(forwarded.starts_with("GET / HTTP/1.1\r\n"), "{forwarded}");
    for request in [
        "GET ftp://gw/healthz HTTP/1.1\r\nhost: gw\r\n\r\n",
        "GET http://user:pw@gw/healthz HTTP/1.1\r\nhost: gw\r\n\r\n",
        "GET http://gw/healthz HTTP/1.1\r\n\r\n",
        "GET gw:80 HTTP/1.1\r\nhost: gw\r\n\r\n",
        "GET * HTTP/1.1\r\nhost: gw\r\n\r\n",
    ] {
        let text = exchange(&gw, request.as_bytes()).await;
        assert_eq!(statuses(&text), [400], "{request:?}: {text}");
    }
}

/// The upstream's response head is held to its 256 KiB limit however it
/// arrives: a 500 KiB head in one write is a 502 with an OpenAI-shaped
/// error, as is one that trickles in.
#[tokio::test]
async fn an_upstream_head_over_the_limit_is_502_even_when_it_arrives_whole() {
    // 110 lines, under the limit of 128.
    let line = |n| format!("x-big: {}\r\n", "a".repeat(n));
    let answer = format!(
        "HTTP/1.1 200 OK\r\n{}{}content-type: application/json\r\ncontent-length: 2\r\n\r\n{{}}",
        line(2500).repeat(100),
        line(25_000).repeat(10)
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            // Written at once on accepting, so the whole answer is likely
            // waiting in the socket by the time the gateway reads it.
            let _ = sock.write_all(answer.as_bytes()).await;
            tokio::spawn(async move { read_request(&mut sock).await });
        }
    });
    let gw = gateway_with(&format!("http://{up}/v1"), "", &[]).await;
    for _ in 0..5 {
        let text = exchange(&gw, chat_request("connection: close\r\n").as_bytes()).await;
        assert_eq!(statuses(&text), [502], "{}", &text[..text.len().min(300)]);
        assert!(text.contains("\"upstream_error\""), "{text}");
    }
}

/// A misbehaving upstream: it answers `GET /echo/<id>` with `<id>` on a
/// kept-alive connection, followed in the same write by an answer nobody
/// asked for. (Unasked bytes written later, once the gateway has sent its
/// next request, cannot be told from that request's answer; the pool's own
/// tests cover those that arrive before it.)
fn chatty_upstream() -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(mut sock) = sock else { return };
            std::thread::spawn(move || {
                sock.set_nodelay(true).unwrap();
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match sock.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                        continue;
                    };
                    let request: Vec<u8> = seen.drain(..end + 4).collect();
                    let line = String::from_utf8_lossy(&request);
                    let id = line
                        .split(' ')
                        .nth(1)
                        .and_then(|t| t.strip_prefix("/echo/"))
                        .unwrap_or("?")
                        .to_string();
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{id}",
                        id.len()
                    );
                    let unasked = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nstale";
                    let mut both = answer.into_bytes();
                    both.extend_from_slice(unasked);
                    if sock.write_all(&both).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// The bodies of the responses in `wire`, in order (each framed by its
/// content-length).
fn bodies(mut wire: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(end) = wire.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&wire[..end]).to_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map_or(0, |v| v.trim().parse().unwrap());
        let body = &wire[end + 4..(end + 4 + len).min(wire.len())];
        out.push(String::from_utf8_lossy(body).into_owned());
        wire = &wire[(end + 4 + len).min(wire.len())..];
    }
    out
}

/// Bytes an upstream sends after a complete answer are never taken as the
/// answer to the next request on that connection: the connection is closed
/// instead of reused. Every client gets its own answer, whether requests
/// come pipelined (the next one checks a connection out at once), one by
/// one, or from many clients at a time.
#[tokio::test]
async fn unasked_bytes_from_upstream_never_reach_another_client() {
    let up = chatty_upstream();
    let gw = gateway_with(&format!("http://{up}/v1"), "", &[]).await;
    let echo = |id: &str, last: bool| {
        let close = if last { "connection: close\r\n" } else { "" };
        format!("GET /echo/{id} HTTP/1.1\r\nhost: gw\r\n{close}\r\n")
    };
    // Pipelined.
    for round in 0..5 {
        let ids: Vec<String> = (0..20).map(|i| format!("p{round}-{i}")).collect();
        let wire: String = ids
            .iter()
            .enumerate()
            .map(|(i, id)| echo(id, i == 19))
            .collect();
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(wire.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(bodies(&out), ids);
    }
    // One by one, and many clients at once.
    let client = |name: String, n: usize| {
        let addr = gw.addr;
        async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            for i in 0..n {
                let id = format!("{name}-{i}");
                s.write_all(echo(&id, false).as_bytes()).await.unwrap();
                let mut text = String::new();
                let mut buf = [0u8; 4096];
                while bodies(text.as_bytes())
                    .first()
                    .is_none_or(|b| b.len() < id.len())
                {
                    let n = s.read(&mut buf).await.unwrap();
                    assert!(n > 0, "closed: {text}");
                    text.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
                assert_eq!(bodies(text.as_bytes()), [id.as_str()], "{text}");
            }
        }
    };
    client("seq".into(), 100).await;
    let many: Vec<_> = (0..8)
        .map(|c| tokio::spawn(client(format!("c{c}"), 25)))
        .collect();
    for task in many {
        task.await.unwrap();
    }
}
