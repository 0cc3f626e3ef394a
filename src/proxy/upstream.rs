//! The client side: one keep-alive connection pool per gateway toward the
//! upstream model servers (HTTP/1.1, or HTTP/2 by ALPN over TLS or by prior
//! knowledge), and how a client request becomes an upstream request.
//!
//! Plain `http://` upstreams spoken to in HTTP/1.1 use the pool in [`crate::http1::client`],
//! whose connections are driven by the call that holds them; HTTPS and HTTP/2
//! upstreams use hyper-util's general client.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::UpstreamConfig;
use crate::http1::body::BoxError;
use crate::http1::client::{self as h1, PooledBody};

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// Why an upstream's client could not be made from its config.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream url: {0}")]
    Url(#[source] http::uri::InvalidUri),
    #[error("upstream url: the host is not a valid header value")]
    Host,
    #[error("tls: {0}")]
    Tls(#[source] rustls::Error),
    #[error("upstream ca_file: {0}")]
    CaFile(#[source] rustls::Error),
    #[error("upstream api key holds characters not allowed in a header")]
    ApiKey,
}

/// One upstream model server and the pool of connections to it.
pub struct Upstream {
    pub config: UpstreamConfig,
    client: Client<Connector, Full<Bytes>>,
    /// The in-task pool, for plain-TCP HTTP/1.1 upstreams.
    h1: Option<Arc<h1::Pool>>,
    /// The `Host` header requests to this upstream carry.
    host: HeaderValue,
    /// `scheme://authority`, for paths outside the base URL's prefix.
    origin: String,
    /// The base URL's path, e.g. `/v1`, without a trailing slash.
    base_path: String,
    authorization: Option<HeaderValue>,
    pub label: Arc<str>,
}

/// Headers that describe one hop's connection and must not be forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none of these: one look at each name present is
    // cheaper than a hashed removal of every listed one.
    let any = headers
        .keys()
        .any(|k| k == header::TRAILER || HOP_BY_HOP.contains(k));
    if !any {
        return;
    }
    // A Connection header may name further per-hop headers.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(named.iter()) {
        headers.remove(name);
    }
    headers.remove(header::TRAILER);
}

impl Upstream {
    pub fn new(config: UpstreamConfig) -> Result<Upstream, UpstreamError> {
        let uri: Uri = config.base_url.parse().map_err(UpstreamError::Url)?;
        let origin = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("http"),
            uri.authority().map(|a| a.as_str()).unwrap_or_default()
        );
        let base_path = uri.path().trim_end_matches('/').to_string();

        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.connect_timeout));
        http.set_keepalive(Some(std::time::Duration::from_secs(60)));
        let host = HeaderValue::from_str(uri.authority().map_or("", |a| a.as_str()))
            .map_err(|_| UpstreamError::Host)?;
        let h1 = (uri.scheme() == Some(&http::uri::Scheme::HTTP) && !config.http2_prior_knowledge)
            .then(|| {
                Arc::new(h1::Pool::new(
                    http.clone(),
                    origin.parse().expect("an origin taken from a valid URI"),
                    config.pool_max_idle_per_host,
                    config.pool_idle_timeout,
                ))
            });
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(UpstreamError::Tls)?
        .with_root_certificates(roots_with(&config.extra_roots)?)
        .with_no_client_auth();
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1();
        // HTTP/2 is offered by ALPN over TLS; over plain TCP the client only
        // speaks it when told to (`http2_only` below).
        let connector = builder.enable_http2().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .http2_only(config.http2_prior_knowledge)
            .build(connector);
        let authorization = match &config.api_key {
            Some(key) => Some(
                HeaderValue::from_str(&format!("Bearer {key}"))
                    .map_err(|_| UpstreamError::ApiKey)?,
            ),
            None => None,
        };
        Ok(Upstream {
            label: Arc::from(config.base_url.as_str()),
            config,
            client,
            h1,
            host,
            origin,
            base_path,
            authorization,
        })
    }

    /// The rest of a `/v1` client path (`""`, `/...` or `?...`), which goes
    /// under the base URL's path; `None` for any other path, which goes to
    /// the upstream's origin unchanged.
    fn under_base(path_and_query: &str) -> Option<&str> {
        path_and_query
            .strip_prefix("/v1")
            .filter(|rest| rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'))
    }

    /// Where a client path goes: `/v1/...` is mapped under the base URL's path
    /// (so a base of `http://host/openai/v1` works); any other path goes to the
    /// upstream's origin unchanged.
    pub fn uri_for(&self, path_and_query: &str) -> Result<Uri, http::uri::InvalidUri> {
        let url = match Self::under_base(path_and_query) {
            Some(rest) => format!("{}{}{}", self.origin, self.base_path, rest),
            None => format!("{}{}", self.origin, path_and_query),
        };
        url.parse()
    }

    /// [`Upstream::uri_for`] in origin form (path and query only), as the
    /// in-task pool sends it. With a base path of `/v1`, the common case,
    /// the client's path is used as it is.
    fn origin_form(&self, uri: &Uri) -> Result<Uri, http::uri::InvalidUri> {
        let Some(pq) = uri.path_and_query() else {
            return Ok(Uri::from_static("/"));
        };
        match Self::under_base(pq.as_str()) {
            Some(rest) if self.base_path != "/v1" => {
                let path = format!("{}{}", self.base_path, rest);
                // A base URL without a path maps `/v1` to the root.
                if path.starts_with('/') {
                    path.parse()
                } else {
                    format!("/{path}").parse()
                }
            }
            _ => Ok(Uri::from(pq.clone())),
        }
    }

    /// Builds the upstream request: the client's method, path and headers minus
    /// per-hop and gateway headers, with the credential the config calls for.
    /// It takes the client's parts by value so their headers move over rather
    /// than being copied.
    pub fn request(
        &self,
        parts: http::request::Parts,
        body: Bytes,
        keep_client_auth: bool,
        plain_response: bool,
    ) -> Result<Request<Bytes>, http::uri::InvalidUri> {
        let uri = match &self.h1 {
            Some(_) => self.origin_form(&parts.uri)?,
            None => self.uri_for(parts.uri.path_and_query().map_or("/", |p| p.as_str()))?,
        };
        let mut headers = parts.headers;
        strip_hop_by_hop(&mut headers);
        headers.remove(header::HOST);
        headers.remove(header::CONTENT_LENGTH);
        let gateway_headers: Vec<HeaderName> = headers
            .keys()
            .filter(|k| k.as_str().starts_with("x-flywheel-"))
            .cloned()
            .collect();
        for k in gateway_headers {
            headers.remove(k);
        }
        if plain_response {
            // Captured bodies must be readable, so ask for them uncompressed.
            headers.remove(header::ACCEPT_ENCODING);
        }
        if self.h1.is_some() {
            // The general client adds Host itself; the in-task pool does not.
            headers.insert(header::HOST, self.host.clone());
        }
        match &self.authorization {
            Some(auth) => {
                headers.insert(header::AUTHORIZATION, auth.clone());
            }
            None if !keep_client_auth => {
                headers.remove(header::AUTHORIZATION);
            }
            None => {}
        }
        let mut req = Request::new(body);
        *req.method_mut() = parts.method;
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        Ok(req)
    }

    /// Sends a request made by [`Upstream::request`] and waits for the
    /// response head, for at most `limit`.
    pub async fn send(
        &self,
        req: Request<Bytes>,
        limit: std::time::Duration,
    ) -> Result<Response<UpstreamBody>, h1::SendError> {
        let Some(pool) = &self.h1 else {
            let req = req.map(Full::new);
            return match tokio::time::timeout(limit, self.client.request(req)).await {
                Ok(Ok(resp)) => Ok(resp.map(UpstreamBody::Shared)),
                Ok(Err(e)) if e.is_connect() => Err(h1::SendError::Connect(e.to_string())),
                Ok(Err(e)) => Err(h1::SendError::Other(e.to_string())),
                Err(_) => Err(h1::SendError::TimedOut),
            };
        };
        let resp = pool.send(req, limit).await?;
        Ok(resp.map(UpstreamBody::Pooled))
    }
}

/// An upstream response body, from either kind of connection.
pub enum UpstreamBody {
    Shared(Incoming),
    Pooled(PooledBody),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            UpstreamBody::Shared(b) => std::pin::Pin::new(b).poll_frame(cx).map_err(Into::into),
            UpstreamBody::Pooled(b) => std::pin::Pin::new(b).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Shared(b) => b.is_end_stream(),
            UpstreamBody::Pooled(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Shared(b) => b.size_hint(),
            UpstreamBody::Pooled(b) => b.size_hint(),
        }
    }
}

/// The shared roots plus an upstream's own extra CAs, if it has any.
fn roots_with(extra: &[Vec<u8>]) -> Result<Arc<rustls::RootCertStore>, UpstreamError> {
    if extra.is_empty() {
        return Ok(root_store());
    }
    let mut roots = (*root_store()).clone();
    for der in extra {
        roots
            .add(rustls_pki_types::CertificateDer::from(der.clone()))
            .map_err(UpstreamError::CaFile)?;
    }
    Ok(Arc::new(roots))
}

/// The public web PKI roots plus the system's trust store, so that upstreams
/// behind a private CA installed on the host work too.
fn root_store() -> Arc<rustls::RootCertStore> {
    // Loading the system store reads files; every upstream shares one copy.
    static ROOTS: std::sync::OnceLock<Arc<rustls::RootCertStore>> = std::sync::OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let native = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(native.certs);
            tracing::debug!(added, "system trust roots loaded");
            Arc::new(roots)
        })
        .clone()
}

/// An upstream at `url` with one-second limits, for unit tests.
#[cfg(test)]
pub(crate) fn test_config(url: &str) -> UpstreamConfig {
    let second = std::time::Duration::from_secs(1);
    UpstreamConfig {
        base_url: url.into(),
        name: "default".into(),
        api_key: None,
        connect_timeout: second,
        first_byte_timeout: second,
        total_timeout: second,
        pool_max_idle_per_host: 1,
        pool_idle_timeout: second,
        http2_prior_knowledge: false,
        extra_roots: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(url: &str) -> Upstream {
        Upstream::new(test_config(url)).unwrap()
    }

    #[test]
    fn maps_paths_under_the_base() {
        let u = upstream("http://h:9/openai/v1");
        assert_eq!(
            u.uri_for("/v1/chat/completions").unwrap(),
            "http://h:9/openai/v1/chat/completions"
        );
        assert_eq!(
            u.uri_for("/v1/files?limit=2").unwrap(),
            "http://h:9/openai/v1/files?limit=2"
        );
        assert_eq!(u.uri_for("/health").unwrap(), "http://h:9/health");
        assert_eq!(u.uri_for("/v1beta/x").unwrap(), "http://h:9/v1beta/x");
    }

    /// The request `u` makes of a client's request for `path`.
    fn request_for(u: &Upstream, path: &str) -> Request<Bytes> {
        let (parts, _) = http::Request::builder()
            .uri(path)
            .body(())
            .unwrap()
            .into_parts();
        u.request(parts, Bytes::new(), false, true).unwrap()
    }

    #[test]
    fn own_connections_get_origin_form_targets_and_a_host() {
        let u = upstream("http://h:9/openai/v1");
        let out = request_for(&u, "/v1/chat/completions?x=1");
        assert_eq!(out.uri(), "/openai/v1/chat/completions?x=1");
        assert_eq!(out.headers().get("host").unwrap(), "h:9");
        let u = upstream("http://h:9/v1");
        for path in ["/v1/chat/completions", "/health", "/v1beta/x"] {
            assert_eq!(request_for(&u, path).uri(), path);
        }
        // A base URL without a path: `/v1` itself maps to the root.
        let u = upstream("http://h:9");
        for (path, want) in [
            ("/v1", "/"),
            ("/v1?x=1", "/?x=1"),
            ("/v1/models", "/models"),
        ] {
            assert_eq!(request_for(&u, path).uri(), want);
        }
    }

    #[test]
    fn strips_per_hop_and_gateway_headers() {
        let u = upstream("http://h:9/v1");
        let req = || {
            http::Request::builder()
                .uri("/v1/chat/completions")
                .header("connection", "keep-alive, x-custom")
                .header("x-custom", "1")
                .header("x-flywheel-user", "alice")
                .header("authorization", "Bearer client")
                .header("accept-encoding", "gzip")
                .header("x-keep", "yes")
                .body(())
                .unwrap()
        };
        let (parts, _) = req().into_parts();
        let out = u.request(parts, Bytes::new(), false, true).unwrap();
        let h = out.headers();
        assert!(h.get("x-custom").is_none() && h.get("connection").is_none());
        assert!(h.get("x-flywheel-user").is_none());
        assert!(h.get("authorization").is_none());
        assert!(h.get("accept-encoding").is_none());
        assert_eq!(h.get("x-keep").unwrap(), "yes");
        let (parts, _) = req().into_parts();
        let out = u.request(parts, Bytes::new(), true, false).unwrap();
        assert_eq!(out.headers().get("authorization").unwrap(), "Bearer client");
    }

    #[test]
    fn strips_each_per_hop_header_alone_and_leaves_the_rest() {
        for name in ["te", "trailer", "keep-alive", "upgrade", "proxy-connection"] {
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_static("x"));
            h.insert("x-keep", HeaderValue::from_static("yes"));
            strip_hop_by_hop(&mut h);
            assert!(h.get(name).is_none(), "{name}");
            assert_eq!(h.len(), 1);
        }
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("application/json"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
    }
}
