//! Transports toward clients: TLS termination with HTTP/2 and HTTP/1.1 by ALPN,
//! and h2c (HTTP/2 without TLS, prior knowledge).

use std::sync::Arc;

use crate::common::*;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

const CHAT: &str = r#"{"model":"m","messages":[{"role":"user","content":"over tls"}]}"#;

/// A client configuration that trusts the test certificate.
fn tls_config() -> rustls::ClientConfig {
    let cert_path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tls/cert.pem");
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(cert_path).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

fn tls_client(
    http2: bool,
) -> Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
> {
    let b = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config())
        .https_only();
    let connector = if http2 {
        b.enable_http2().build()
    } else {
        b.enable_http1().build()
    };
    Client::builder(TokioExecutor::new())
        .http2_only(http2)
        .build(connector)
}

/// A gateway terminating TLS, with more `[server]` settings.
async fn tls_gateway_with(m: &Mock, settings: &str) -> Gw {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tls");
    let extra =
        format!("[server]\ntls_cert = \"{dir}/cert.pem\"\ntls_key = \"{dir}/key.pem\"\n{settings}");
    gateway_with(&format!("http://{}/v1", m.addr), &extra, &[]).await
}

async fn tls_gateway(m: &Mock) -> Gw {
    tls_gateway_with(m, "").await
}

async fn post_with(
    client: &Client<
        impl hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
        Full<Bytes>,
    >,
    url: String,
) -> (http::Version, Reply) {
    let req = http::Request::builder()
        .method("POST")
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(CHAT.as_bytes())))
        .unwrap();
    let resp = client.request(req).await.expect("request");
    let version = resp.version();
    (version, read(resp).await)
}

#[tokio::test]
async fn tls_termination_with_http2_and_http1() {
    let m = mock().await;
    let gw = tls_gateway(&m).await;
    let url = format!("https://localhost:{}/v1/chat/completions", gw.addr.port());
    for http2 in [true, false] {
        let (version, r) = post_with(&tls_client(http2), url.clone()).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            version,
            if http2 {
                http::Version::HTTP_2
            } else {
                http::Version::HTTP_11
            }
        );
        assert_eq!(
            r.json()["choices"][0]["message"]["content"],
            "mock reply: over tls"
        );
        assert!(r.header("x-flywheel-interaction-id").is_some());
    }
    // Plain HTTP on a TLS port is refused, and the gateway keeps serving TLS.
    let plain = client()
        .request(
            http::Request::builder()
                .uri(format!("http://127.0.0.1:{}/healthz", gw.addr.port()))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert!(plain.is_err());
    let (_, r) = post_with(&tls_client(true), url).await;
    assert_eq!(r.status, 200);
}

/// A TLS client that stops reading a long stream is disconnected once it
/// has taken nothing for `server.send_timeout_secs`, as a plain one is, and
/// the call is recorded as `client_closed`.
#[tokio::test]
async fn a_tls_client_that_stops_reading_is_let_go() {
    use tokio::io::AsyncWriteExt;
    let m = mock().await;
    let gw = tls_gateway_with(&m, "send_timeout_secs = 1\n").await;
    let mut stalled = tls_http1_connect(&gw).await;
    // About 50 MB of events: more than the socket buffers on both sides hold.
    let request = stream_request("x-mock: chunks=300000\r\n");
    stalled.write_all(request.as_bytes()).await.unwrap();
    stalled.flush().await.unwrap();
    let start = std::time::Instant::now();
    // The admin API is behind TLS too: the record is read from the database.
    let db = rusqlite::Connection::open(&gw.db).unwrap();
    let outcome = loop {
        let row = db.query_row("SELECT outcome FROM interactions", [], |r| {
            r.get::<_, String>(0)
        });
        if let Ok(outcome) = row {
            break outcome;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(8),
            "no record after {:?}",
            start.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(outcome, "client_closed");
    let url = format!("https://localhost:{}/v1/chat/completions", gw.addr.port());
    let (_, r) = post_with(&tls_client(false), url).await;
    assert_eq!(r.status, 200);
    drop(stalled);
}

#[tokio::test]
async fn h2c_prior_knowledge() {
    let m = mock().await;
    let gw = gateway(&m).await;
    let h2c: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let (version, r) = post_with(&h2c, format!("{}/v1/chat/completions", gw.url)).await;
    assert_eq!(version, http::Version::HTTP_2);
    assert_eq!(r.status, 200);
    let stream = r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}"#;
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("{}/v1/chat/completions", gw.url))
        .body(Full::new(Bytes::from_static(stream.as_bytes())))
        .unwrap();
    let r = read(h2c.request(req).await.unwrap()).await;
    assert!(r.text().contains("[DONE]"));
}

#[tokio::test]
async fn h2c_toward_the_upstream() {
    let m = mock().await;
    let gw = gateway_with(
        &format!("http://{}/v1", m.addr),
        "http2_prior_knowledge = true\n",
        &[],
    )
    .await;
    let r = gw.post("/v1/chat/completions", CHAT, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn https_upstream_with_a_private_ca() {
    let m = mock().await;
    // A TLS gateway in front of the mock plays the https upstream.
    let tls_upstream = tls_gateway(&m).await;
    let url = format!("https://localhost:{}/v1", tls_upstream.addr.port());
    let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tls/cert.pem");
    let trusted = gateway_with(&url, &format!("ca_file = \"{ca}\"\n"), &[]).await;
    let r = trusted.post("/v1/chat/completions", CHAT, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["choices"][0]["message"]["content"],
        "mock reply: over tls"
    );
    // Without the CA the certificate is not trusted: 502, and nothing leaks.
    let untrusted = gateway_with(&url, "", &[]).await;
    let r = untrusted.post("/v1/chat/completions", CHAT, &[]).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "upstream_unreachable");
}

/// A TLS connection to the gateway that offers only HTTP/1.1 by ALPN, so
/// hyper serves it as HTTP/1.1; the caller writes raw bytes on it.
async fn tls_http1_connect(gw: &Gw) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut config = tls_config();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await.unwrap()
}

/// Sends raw HTTP/1.1 bytes over TLS (ALPN http/1.1, so hyper serves them)
/// and returns the status line.
async fn raw_tls_status(gw: &Gw, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tls = tls_http1_connect(gw).await;
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), tls.read(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// RFC 9112 §3.2 holds over TLS too, where hyper serves HTTP/1.1: no Host,
/// two, or an invalid one is 400; one valid Host is served.
#[tokio::test]
async fn tls_http1_requests_name_one_valid_host() {
    let m = mock().await;
    let gw = tls_gateway(&m).await;
    for (request, want) in [
        ("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n", "200"),
        ("GET /healthz HTTP/1.1\r\n\r\n", "400"),
        ("GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "400"),
        ("GET /healthz HTTP/1.1\r\nHost: a b\r\n\r\n", "400"),
        ("GET /healthz HTTP/1.0\r\n\r\n", "200"),
    ] {
        let status = raw_tls_status(&gw, request).await;
        assert!(status.contains(want), "{request:?} -> {status}");
    }
}
