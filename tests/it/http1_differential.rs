//! The gateway's own HTTP/1.1 server and client against hyper's, on the same
//! bytes: a corpus of malformed and ambiguous messages (the smuggling
//! classics among them) sent to both, with the verdicts compared. Every
//! message gets the same verdict from both, or one listed below with the
//! reason the gateway is stricter; the lists are exact, so a change of
//! either side's behaviour shows up here.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use crate::common::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a server made of one input: the status of each response it sent
/// (interim ones left out), with the body of each 2xx (here, the length of
/// the request body the server framed), or nothing before it closed.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    /// Each response's status, and the body the service echoed for a 2xx.
    Answered(Vec<(u16, String)>),
    Silent,
}

impl Verdict {
    /// Accepted (2xx), refused (4xx or 5xx), with the count of responses:
    /// what must agree between the two servers.
    fn class(&self) -> String {
        match self {
            Verdict::Silent => "silent".into(),
            Verdict::Answered(all) => all
                .iter()
                .map(|(s, body)| match s / 100 {
                    2 => format!("accepted({body})"),
                    4 => "4xx".into(),
                    _ => "5xx".into(),
                })
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

/// A plain hyper HTTP/1 server whose service reads the body whole and
/// answers with its length.
async fn hyper_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (sock, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let service = service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                    let (status, body) = match req.into_body().collect().await {
                        Ok(b) => (200, b.to_bytes().len().to_string()),
                        Err(_) => (400, "bad body".to_string()),
                    };
                    let mut resp = http::Response::new(Full::new(Bytes::from(body)));
                    *resp.status_mut() = http::StatusCode::from_u16(status).unwrap();
                    Ok::<_, Infallible>(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(sock), service)
                    .await;
            });
        }
    });
    addr
}

/// Sends `input` on a new connection and reads until the server closes it
/// or says nothing more for a while.
async fn send(addr: SocketAddr, input: &[u8]) -> Verdict {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(input).await;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(700), s.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    parse_responses(&out)
}

/// The responses in `wire` (each framed by its content-length or chunked).
fn parse_responses(mut wire: &[u8]) -> Verdict {
    let mut all = Vec::new();
    while let Some(end) = wire.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&wire[..end]).to_lowercase();
        let status: u16 = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        wire = &wire[end + 4..];
        let len = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map(|v| v.trim().parse::<usize>().unwrap());
        let body = if let Some(len) = len {
            let body = &wire[..len.min(wire.len())];
            wire = &wire[len.min(wire.len())..];
            String::from_utf8_lossy(body).into_owned()
        } else if head.contains("transfer-encoding: chunked") {
            // Only the service's short answers come chunked, if any.
            let mut body = String::new();
            while let Some(at) = wire.windows(2).position(|w| w == b"\r\n") {
                let size =
                    usize::from_str_radix(&String::from_utf8_lossy(&wire[..at]), 16).unwrap_or(0);
                wire = &wire[at + 2..];
                if size == 0 {
                    wire = &wire[2.min(wire.len())..];
                    break;
                }
                body.push_str(&String::from_utf8_lossy(&wire[..size.min(wire.len())]));
                wire = &wire[(size + 2).min(wire.len())..];
            }
            body
        } else {
            String::new()
        };
        if !(100..200).contains(&status) {
            all.push((
                status,
                if status / 100 == 2 {
                    body
                } else {
                    String::new()
                },
            ));
        }
    }
    if all.is_empty() {
        Verdict::Silent
    } else {
        Verdict::Answered(all)
    }
}

/// The request corpus: a name and the bytes sent.
fn requests() -> Vec<(&'static str, Vec<u8>)> {
    let h = "host: x\r\n";
    let close = "connection: close\r\n";
    let next = "GET /second HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    let post = |headers: &str, body: &str| format!("POST /d HTTP/1.1\r\n{h}{headers}\r\n{body}");
    let chunked = |body: &str| post(&format!("transfer-encoding: chunked\r\n{close}"), body);
    let big = "a".repeat(70 * 1024);
    let many: String = (0..101).map(|i| format!("x-h{i}: v\r\n")).collect();
    let cases: Vec<(&str, String)> = vec![
        // Well-formed.
        ("get", format!("GET /d HTTP/1.1\r\n{h}{close}\r\n")),
        ("post with a length", post(close, "").replace("\r\n\r\n", "\r\ncontent-length: 5\r\n\r\nhello")),
        ("chunked", chunked("5\r\nhello\r\n0\r\n\r\n")),
        ("chunked, extensions", chunked("5;a=b;c=\"d e\"\r\nhello\r\n0;z\r\n\r\n")),
        ("chunked, trailers", chunked("5\r\nhello\r\n0\r\nx-t: 1\r\n\r\n")),
        ("chunked, leading zeros", chunked("00000000000000005\r\nhello\r\n0\r\n\r\n")),
        ("chunked, then a pipelined request", format!("{}{next}", post("transfer-encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"))),
        ("length, then a pipelined request", format!("{}{next}", post("content-length: 5\r\n", "hello"))),
        ("http/1.0 without host", "GET /d HTTP/1.0\r\n\r\n".into()),
        ("absolute-form", format!("GET http://x/d HTTP/1.1\r\n{h}{close}\r\n")),
        ("bare LF line ends in the head", "GET /d HTTP/1.1\nhost: x\nconnection: close\n\n".into()),
        ("an empty header value", format!("GET /d HTTP/1.1\r\n{h}x-e:\r\n{close}\r\n")),
        ("lowercase method", format!("get /d HTTP/1.1\r\n{h}{close}\r\n")),
        ("identical content-lengths", post(&format!("content-length: 5\r\ncontent-length: 5\r\n{close}"), "hello")),
        ("a content-length list", post(&format!("content-length: 5, 5\r\n{close}"), "hello")),
        // Framing: the smuggling classics.
        ("CL then TE", format!("{}{next}", post("content-length: 6\r\ntransfer-encoding: chunked\r\n", "0\r\n\r\nX"))),
        ("TE then CL", format!("{}{next}", post("transfer-encoding: chunked\r\ncontent-length: 6\r\n", "0\r\n\r\nX"))),
        ("TE chunked twice, one line", format!("{}{next}", post("transfer-encoding: chunked, chunked\r\n", "0\r\n\r\n"))),
        ("TE chunked twice, two lines", format!("{}{next}", post("transfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n", "0\r\n\r\n"))),
        ("TE gzip, chunked", format!("{}{next}", post("transfer-encoding: gzip, chunked\r\n", "0\r\n\r\n"))),
        ("TE chunked, gzip", format!("{}{next}", post("transfer-encoding: chunked, gzip\r\n", "0\r\n\r\n"))),
        ("TE gzip", post("transfer-encoding: gzip\r\n", "0\r\n\r\n")),
        ("TE xchunked", post("transfer-encoding: xchunked\r\n", "0\r\n\r\n")),
        ("TE empty", post("transfer-encoding: \r\n", "0\r\n\r\n")),
        ("TE with a space before the colon", post("transfer-encoding : chunked\r\n", "0\r\n\r\n")),
        ("TE with a tab in the value", chunked("").replace("chunked\r\n", "\tchunked\t\r\n") + "0\r\n\r\n"),
        ("TE on HTTP/1.0", "POST /d HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n".into()),
        ("conflicting content-lengths", post("content-length: 5\r\ncontent-length: 6\r\n", "hello!")),
        ("content-length with a sign", post("content-length: +5\r\n", "hello")),
        ("negative content-length", post("content-length: -5\r\n", "hello")),
        ("hex content-length", post("content-length: 0x5\r\n", "hello")),
        ("content-length with inner space", post("content-length: 5 5\r\n", "hello")),
        // Chunk grammar.
        ("chunk size with bare LF", chunked("5\nhello\r\n0\r\n\r\n")),
        ("chunk data ended by bare LF", chunked("5\r\nhello\n0\r\n\r\n")),
        ("last chunk with bare LF", chunked("5\r\nhello\r\n0\n\r\n")),
        ("chunk extension with bare LF (smuggling)", chunked("10;\nAB\r\nFFFFFFFFFFFF\r\n0;\r\n40;\n\r\nGET /SMUGGLED HTTP/1.1\r\nhost: x\r\n\r\n")),
        ("chunk extension with CR", chunked("5;a\rb\r\nhello\r\n0\r\n\r\n")),
        ("chunk extension with NUL", chunked("5;a=\0\r\nhello\r\n0\r\n\r\n")),
        ("chunk extension without a name", chunked("5;=b\r\nhello\r\n0\r\n\r\n")),
        ("chunk size with a space after", chunked("5 \r\nhello\r\n0\r\n\r\n")),
        ("chunk size with a space before", chunked(" 5\r\nhello\r\n0\r\n\r\n")),
        ("chunk size 0x", chunked("0x5\r\nhello\r\n0\r\n\r\n")),
        ("chunk size overflowing", chunked("fffffffffffffffff\r\nhello\r\n0\r\n\r\n")),
        ("chunk longer than its size", chunked("3\r\nhello\r\n0\r\n\r\n")),
        ("chunk extension over 16 KiB", chunked(&format!("5;a={}\r\nhello\r\n0\r\n\r\n", "b".repeat(17 * 1024)))),
        ("chunk extensions over 16 KiB in all", chunked(&(format!("1;a={}\r\nx\r\n", "b".repeat(1000)).repeat(20) + "0\r\n\r\n"))),
        ("trailer without a colon", chunked("5\r\nhello\r\n0\r\nnot a field\r\n\r\n")),
        ("folded trailer", chunked("5\r\nhello\r\n0\r\nx-a: 1\r\n 2\r\n\r\n")),
        // Heads.
        ("obs-fold", format!("GET /d HTTP/1.1\r\n{h}x-a: 1\r\n 2\r\n{close}\r\n")),
        ("bare CR in a value", format!("GET /d HTTP/1.1\r\n{h}x-a: 1\r2\r\n{close}\r\n")),
        ("bare CR ending a line", format!("GET /d HTTP/1.1\r\n{h}x-a: 1\r{close}\r\n")),
        ("NUL in a value", format!("GET /d HTTP/1.1\r\n{h}x-a: 1\x002\r\n{close}\r\n")),
        ("NUL in the target", format!("GET /d\0 HTTP/1.1\r\n{h}{close}\r\n")),
        ("a header over 64 KiB", format!("GET /d HTTP/1.1\r\n{h}x-big: {big}\r\n{close}\r\n")),
        ("101 header lines", format!("GET /d HTTP/1.1\r\n{h}{many}{close}\r\n")),
        ("space before the colon", format!("GET /d HTTP/1.1\r\nhost : x\r\n{close}\r\n")),
        ("a space in a header name", format!("GET /d HTTP/1.1\r\n{h}x a: 1\r\n{close}\r\n")),
        ("a header name with @", format!("GET /d HTTP/1.1\r\n{h}x@a: 1\r\n{close}\r\n")),
        ("a header line without a colon", format!("GET /d HTTP/1.1\r\n{h}x-a\r\n{close}\r\n")),
        ("a method with (", format!("G(T /d HTTP/1.1\r\n{h}{close}\r\n")),
        ("an unknown method", format!("FOO /d HTTP/1.1\r\n{h}{close}\r\n")),
        ("HTTP/1.2", format!("GET /d HTTP/1.2\r\n{h}{close}\r\n")),
        ("HTTP/2.0 in HTTP/1 framing", format!("GET /d HTTP/2.0\r\n{h}{close}\r\n")),
        ("lowercase version", format!("GET /d http/1.1\r\n{h}{close}\r\n")),
        ("two spaces in the request line", format!("GET  /d HTTP/1.1\r\n{h}{close}\r\n")),
        ("no version", format!("GET /d\r\n{h}{close}\r\n")),
        ("a space in the target", format!("GET /d e HTTP/1.1\r\n{h}{close}\r\n")),
        // Requests the gateway refuses on purpose.
        ("no host", format!("GET /d HTTP/1.1\r\n{close}\r\n")),
        ("two hosts", format!("GET /d HTTP/1.1\r\n{h}{h}{close}\r\n")),
        ("an invalid host", format!("GET /d HTTP/1.1\r\nhost: a b\r\n{close}\r\n")),
        ("CONNECT", format!("CONNECT x:443 HTTP/1.1\r\nhost: x:443\r\n{close}\r\n")),
        ("TRACE", format!("TRACE /d HTTP/1.1\r\n{h}{close}\r\n")),
        ("asterisk-form for GET", format!("GET * HTTP/1.1\r\n{h}{close}\r\n")),
        ("authority-form for GET", format!("GET x:80 HTTP/1.1\r\n{h}{close}\r\n")),
    ];
    cases
        .into_iter()
        .map(|(n, s)| (n, s.into_bytes()))
        .collect()
}

/// Inputs where the gateway's verdict differs from hyper's, each with why.
/// Everywhere else the two agree.
const REQUEST_DIFFERENCES: &[(&str, &str)] = &[
    ("CL then TE", "both framings on one request are refused (RFC 9112 §6.3 allows it); hyper reads by the coding"),
    ("TE then CL", "as above"),
    ("TE chunked twice, one line", "chunked may be applied once (RFC 9112 §7.1); hyper reads it as chunked"),
    ("TE chunked twice, two lines", "as above"),
    ("TE gzip, chunked", "only chunked is supported: 501 (RFC 9112 §6.1); hyper hands the coded body on"),
    ("TE chunked, gzip", "501 for an unsupported coding, where hyper answers 400"),
    ("TE gzip", "501 for an unsupported coding, where hyper answers 400"),
    ("TE xchunked", "501 for an unsupported coding, where hyper answers 400"),
    ("chunk size with a space after", "BWS may only precede ';' (RFC 9112 §7.1.1); hyper allows space after the size"),
    ("chunk extension with NUL", "extensions must be token or quoted-string; hyper does not check their bytes"),
    ("chunk extension without a name", "as above"),
    ("a header over 64 KiB", "the gateway's head limit is 64 KiB (431); hyper's buffer takes about 400 KiB"),
    ("no host", "RFC 9112 §3.2 requires 400; hyper leaves it to the service"),
    ("two hosts", "as above"),
    ("an invalid host", "as above"),
    ("CONNECT", "the gateway opens no tunnels: 405"),
    ("TRACE", "TRACE would echo the upstream credential: 405"),
    ("asterisk-form for GET", "only OPTIONS may use '*' (RFC 9112 §3.2.4); hyper leaves it to the service"),
    ("authority-form for GET", "only CONNECT may use authority-form (RFC 9112 §3.2.3)"),
];

/// Each input to the gateway (in front of a hyper server running the same
/// service, so an accepted request is answered by it) and to the hyper
/// server directly; the verdicts must agree except where listed, and where
/// they differ the gateway must be the one refusing.
#[tokio::test]
async fn requests_get_hypers_verdict_or_a_documented_stricter_one() {
    let service = hyper_server().await;
    let gw = gateway_with(&format!("http://{service}/v1"), "", &[]).await;
    let corpus = requests();
    let runs = corpus.into_iter().map(|(name, input)| {
        let gw = gw.addr;
        async move {
            let (ours, theirs) = tokio::join!(send(gw, &input), send(service, &input));
            (name, ours, theirs)
        }
    });
    let results = futures_join_all(runs).await;
    let documented: BTreeMap<&str, &str> = REQUEST_DIFFERENCES.iter().copied().collect();
    let mut report = Vec::new();
    for (name, ours, theirs) in &results {
        let (o, t) = (ours.class(), theirs.class());
        let listed = documented.contains_key(name);
        // Where they differ, the gateway is the one refusing.
        let stricter = matches!(ours, Verdict::Answered(all) if all[0].0 >= 400);
        if (o == t) == listed || (o != t && !stricter) {
            report.push(format!("{name}: gateway {o}, hyper {t}, listed {listed}"));
        }
    }
    assert!(report.is_empty(), "verdicts differ:\n{}", report.join("\n"));
    for name in documented.keys() {
        assert!(
            results.iter().any(|(n, ..)| n == name),
            "{name} is not in the corpus"
        );
    }
    // The gateway still serves after all of it.
    assert_eq!(gw.get("/healthz", &[]).await.status, 200);
}

/// Runs the futures concurrently and returns their outputs in order.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// The response corpus: a name and the bytes a raw upstream answers with
/// (before it closes the connection).
fn responses() -> Vec<(&'static str, Vec<u8>)> {
    let ok = "HTTP/1.1 200 OK\r\n";
    let te = "transfer-encoding: chunked\r\n";
    let big = "a".repeat(300 * 1024);
    let cases: Vec<(&str, String)> = vec![
        ("length", format!("{ok}content-length: 2\r\n\r\nok")),
        ("chunked", format!("{ok}{te}\r\n2\r\nok\r\n0\r\n\r\n")),
        (
            "chunked, extensions and trailers",
            format!("{ok}{te}\r\n2;a=\"b\"\r\nok\r\n0\r\nx-t: 1\r\n\r\n"),
        ),
        ("until the close", format!("{ok}\r\nok")),
        (
            "HTTP/1.0 until the close",
            "HTTP/1.0 200 OK\r\n\r\nok".into(),
        ),
        (
            "no reason phrase",
            "HTTP/1.1 200 \r\ncontent-length: 2\r\n\r\nok".into(),
        ),
        (
            "bare LF line ends in the head",
            "HTTP/1.1 200 OK\ncontent-length: 2\n\nok".into(),
        ),
        (
            "an interim response first",
            format!("HTTP/1.1 100 Continue\r\n\r\n{ok}content-length: 2\r\n\r\nok"),
        ),
        (
            "TE beside CL",
            format!("{ok}content-length: 50\r\n{te}\r\n2\r\nok\r\n0\r\n\r\n"),
        ),
        (
            "identical content-lengths",
            format!("{ok}content-length: 2\r\ncontent-length: 2\r\n\r\nok"),
        ),
        (
            "conflicting content-lengths",
            format!("{ok}content-length: 2\r\ncontent-length: 3\r\n\r\nok!"),
        ),
        (
            "a content-length list",
            format!("{ok}content-length: 2, 2\r\n\r\nok"),
        ),
        (
            "content-length with a sign",
            format!("{ok}content-length: +2\r\n\r\nok"),
        ),
        (
            "TE chunked twice",
            format!("{ok}transfer-encoding: chunked, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"),
        ),
        (
            "TE gzip, chunked",
            format!("{ok}transfer-encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"),
        ),
        ("TE gzip", format!("{ok}transfer-encoding: gzip\r\n\r\nok")),
        (
            "chunk size with bare LF",
            format!("{ok}{te}\r\n2\nok\r\n0\r\n\r\n"),
        ),
        (
            "chunk data ended by bare LF",
            format!("{ok}{te}\r\n2\r\nok\n0\r\n\r\n"),
        ),
        (
            "chunk extension with CR",
            format!("{ok}{te}\r\n2;a\rb\r\nok\r\n0\r\n\r\n"),
        ),
        (
            "chunk size with a space after",
            format!("{ok}{te}\r\n2 \r\nok\r\n0\r\n\r\n"),
        ),
        (
            "chunk longer than its size",
            format!("{ok}{te}\r\n1\r\nok\r\n0\r\n\r\n"),
        ),
        (
            "chunk size not hex",
            format!("{ok}{te}\r\nzz\r\nok\r\n0\r\n\r\n"),
        ),
        (
            "trailer without a colon",
            format!("{ok}{te}\r\n2\r\nok\r\n0\r\nnot a field\r\n\r\n"),
        ),
        (
            "obs-fold",
            format!("{ok}x-a: 1\r\n 2\r\ncontent-length: 2\r\n\r\nok"),
        ),
        (
            "space before the colon",
            format!("{ok}content-length : 2\r\n\r\nok"),
        ),
        (
            "NUL in a value",
            format!("{ok}x-a: 1\x002\r\ncontent-length: 2\r\n\r\nok"),
        ),
        (
            "status 2000",
            "HTTP/1.1 2000 OK\r\ncontent-length: 2\r\n\r\nok".into(),
        ),
        (
            "HTTP/1.2",
            "HTTP/1.2 200 OK\r\ncontent-length: 2\r\n\r\nok".into(),
        ),
        (
            "a head over 256 KiB",
            format!("{ok}x-big: {big}\r\ncontent-length: 2\r\n\r\nok"),
        ),
    ];
    cases
        .into_iter()
        .map(|(n, s)| (n, s.into_bytes()))
        .collect()
}

/// Responses where the gateway's client differs from hyper's, each with why.
const RESPONSE_DIFFERENCES: &[(&str, &str)] = &[
    ("a content-length list", "one number a line, as hyper's server asks of requests; hyper's client takes `2, 2`"),
    ("TE chunked twice", "chunked may be applied once (RFC 9112 §7.1); hyper decodes it once"),
    ("TE gzip, chunked", "a coding other than chunked would reach the client undeclared, since Transfer-Encoding is per hop"),
    ("TE gzip", "as above; hyper reads the body until the close"),
    ("chunk size with a space after", "BWS may only precede ';' (RFC 9112 §7.1.1)"),
    ("a head over 256 KiB", "the gateway's response head limit is 256 KiB; hyper's buffer takes about 400 KiB"),
];

/// A raw upstream: on each connection it reads a request for `/r/<n>`,
/// writes the `n`th answer and closes.
async fn raw_upstream(answers: Vec<Vec<u8>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let answers = answers.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&seen);
                let n: usize = line
                    .split(' ')
                    .nth(1)
                    .and_then(|t| t.strip_prefix("/r/"))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                let _ = sock.write_all(&answers[n]).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    addr
}

/// What hyper's client makes of the answer to `GET /r/<n>`.
async fn hyper_fetch(upstream: SocketAddr, n: usize) -> String {
    let sock = TcpStream::connect(upstream).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(sock))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .uri(format!("/r/{n}"))
        .header("host", "x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = match sender.send_request(req).await {
        Ok(r) => r,
        Err(_) => return "refused".into(),
    };
    let status = resp.status().as_u16();
    match resp.into_body().collect().await {
        Ok(b) => format!("{status} {}", String::from_utf8_lossy(&b.to_bytes())),
        Err(_) => "refused".into(),
    }
}

/// Each answer through the gateway's client and through hyper's: a
/// response one takes the other takes with the same body, and one hyper
/// refuses the gateway refuses (502); the listed ones only the gateway
/// refuses.
#[tokio::test]
async fn responses_get_hypers_verdict_or_a_documented_stricter_one() {
    let corpus = responses();
    let upstream = raw_upstream(corpus.iter().map(|(_, a)| a.clone()).collect()).await;
    let gw = gateway_with(&format!("http://{upstream}/v1"), "", &[]).await;
    let documented: BTreeMap<&str, &str> = RESPONSE_DIFFERENCES.iter().copied().collect();
    let mut report = Vec::new();
    for (n, (name, _)) in corpus.iter().enumerate() {
        let theirs = hyper_fetch(upstream, n).await;
        let ours = gateway_fetch(&gw, n).await;
        let listed = documented.contains_key(name);
        if (ours == theirs) == listed || (ours != theirs && ours != "refused") {
            report.push(format!(
                "{name}: gateway {ours}, hyper {theirs}, listed {listed}"
            ));
        }
    }
    assert!(report.is_empty(), "verdicts differ:\n{}", report.join("\n"));
    for name in documented.keys() {
        assert!(
            corpus.iter().any(|(n, _)| n == name),
            "{name} is not in the corpus"
        );
    }
}

/// What a client of the gateway gets for `GET /r/<n>`: a 502, or a body cut
/// short (a passed-through body that fails after its head went out), is a
/// refusal.
async fn gateway_fetch(gw: &Gw, n: usize) -> String {
    let req = http::Request::builder()
        .uri(format!("{}/r/{n}", gw.url))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = gw.client.request(req).await.unwrap();
    let status = resp.status().as_u16();
    match resp.into_body().collect().await {
        Ok(_) if status == 502 => "refused".into(),
        Ok(b) => format!("{status} {}", String::from_utf8_lossy(&b.to_bytes())),
        Err(_) => "refused".into(),
    }
}
