//! The listener: every shard accepts on its own copy of the socket, keeps
//! the connection counts even, and serves each connection until it closes
//! or the drain ends it. Plain TCP is served by the own HTTP/1.1 server
//! ([`crate::http1::server`]), which hands a connection that opens with the
//! HTTP/2 preface to hyper; TLS connections (HTTP/1.1 and HTTP/2 by ALPN)
//! are hyper's.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};

use super::Gateway;
use crate::config::Config;
use crate::http1::body::ClientBody;
use crate::http1::idle::{self, Activity};
use crate::http1::send_timeout::SendTimed;
use crate::http1::server::{self as h1_server, Service};
use crate::runtime::shard::Balance;

/// Why the listener's TLS could not be set up from `server.tls`.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificates from {}: {source}", path.display())]
    Certificates {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("no certificate found in {}", .0.display())]
    NoCertificate(PathBuf),
    #[error("cannot read private key from {}: {source}", path.display())]
    PrivateKey {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
}

pub(super) fn tls_acceptor(config: &Config) -> Result<Option<tokio_rustls::TlsAcceptor>, TlsError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let Some(files) = &config.server.tls else {
        return Ok(None);
    };
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Certificates {
            path: files.cert.clone(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(files.cert.clone()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|source| TlsError::PrivateKey {
        path: files.key.clone(),
        source,
    })?;
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(tls))))
}

pub(super) type Http = auto::Builder<TokioExecutor>;

/// Hyper's server for what the own HTTP/1.1 server hands over (HTTP/2 by
/// prior knowledge) and for TLS connections, with the gateway's limits.
pub(super) fn hyper_builder() -> Http {
    let mut http = auto::Builder::new(TokioExecutor::new());
    // Connections that send no request are closed by `idle::Activity`
    // instead of hyper's per-request header timer.
    http.http1().header_read_timeout(None);
    // Per-connection HTTP/2 limits, so that one connection cannot hold much
    // more than one HTTP/1.1 connection does: at most 64 requests at once (of
    // hyper's 200), each of which may have 256 KiB of its body sent before
    // the handler reads it, 1 MiB for all of them together, and 128 KiB of
    // response queued for a client that reads slowly (of hyper's 400 KiB per
    // stream). The header list limit is hyper's, made explicit so that an
    // upgrade cannot loosen it. Bodies the handler reads count in the body
    // budget like any other.
    http.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(64)
        .initial_stream_window_size(256 * 1024)
        .initial_connection_window_size(1024 * 1024)
        .max_send_buf_size(128 * 1024)
        .max_header_list_size(16 * 1024);
    http
}

/// One shard's accept loop and what its connections need.
pub(super) struct Acceptor {
    pub shard: usize,
    /// Registered with this shard's runtime.
    pub listener: TcpListener,
    pub balance: Arc<Balance>,
    pub gw: Arc<Gateway>,
    pub http: Arc<Http>,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub grace: Duration,
}

impl Acceptor {
    /// Accepts connections while this shard holds no more of them than any
    /// other, until `stop`; then gives its connections the grace period to
    /// finish. True when they all did.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) -> bool {
        let listener = self.listener;
        // hyper's connections (TLS, HTTP/2) are drained by its watcher; the
        // gateway's own HTTP/1.1 connections each hold a sender of `live`,
        // and see `stop` themselves.
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let (live, mut all_closed) = tokio::sync::mpsc::channel::<()>(1);
        while !*stop.borrow_and_update() {
            let turn = self.balance.turn(self.shard);
            tokio::pin!(turn);
            turn.as_mut().enable();
            if !self.balance.may_accept(self.shard) {
                // Another shard has fewer connections and takes the next one;
                // look again when the counts change.
                tokio::select! {
                    () = turn => continue,
                    _ = stop.changed() => break,
                }
            }
            let stream = tokio::select! {
                biased;
                _ = stop.changed() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _peer)) => stream,
                    Err(e) => {
                        // Running out of file descriptors must not end the
                        // server: wait a moment and keep accepting.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            // Past the limit the connection is closed before anything is
            // read from it: each one costs buffers, a task and a descriptor.
            // Shards accepting at the same moment may each take one more.
            if self.balance.total() >= self.gw.config.server.max_connections {
                self.gw
                    .metrics
                    .connections_refused
                    .fetch_add(1, Ordering::Relaxed);
                drop(stream);
                continue;
            }
            let _ = stream.set_nodelay(true);
            let open = self.balance.opened(self.shard);
            let (gw, http, tls) = (self.gw.clone(), self.http.clone(), self.tls.clone());
            let watcher = graceful.watcher();
            let (live, stop) = (live.clone(), stop.clone());
            tokio::spawn(async move {
                let _open = open;
                let timeout = gw.config.server.header_timeout;
                let activity = Arc::new(Activity::default());
                let conn =
                    serve_connection(gw, &http, tls, stream, watcher, activity.clone(), stop);
                idle::close_when_idle(conn, activity, timeout).await;
                drop(live);
            });
        }
        drop(listener);
        drop(live);
        let drained = async {
            graceful.shutdown().await;
            all_closed.recv().await;
        };
        tokio::time::timeout(self.grace, drained).await.is_ok()
    }
}

/// Serves one client connection (after the TLS handshake, if any) until it
/// closes or the graceful shutdown has it finish. Plain TCP is served by the
/// gateway's own HTTP/1.1 server, which hands a connection that opens with
/// the HTTP/2 preface back to hyper; TLS connections are hyper's. Hyper's
/// connections get the same send timeout through [`SendTimed`].
async fn serve_connection(
    gw: Arc<Gateway>,
    http: &Http,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stream: TcpStream,
    watcher: hyper_util::server::graceful::Watcher,
    activity: Arc<Activity>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let (own_gw, own_activity) = (gw.clone(), activity.clone());
    let send_timeout = gw.config.server.send_timeout;
    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let busy = activity.enter(req.version());
        gw.clone().call(req.map(ClientBody::Incoming), busy)
    });
    let result =
        match tls {
            None => match h1_server::serve(own_gw, stream, own_activity, stop).await {
                h1_server::Ended::Closed => return,
                h1_server::Ended::Http2(io, read) => {
                    let io = h1_server::Prefixed {
                        read: read.freeze(),
                        io,
                    };
                    let io = TokioIo::new(SendTimed::new(io, send_timeout));
                    let conn = http.serve_connection_with_upgrades(io, service);
                    watcher.watch(conn.into_owned()).await
                }
            },
            Some(acceptor) => {
                let tls_stream =
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => return tracing::debug!(error = %e, "tls handshake failed"),
                        Err(_) => return tracing::debug!("tls handshake timed out"),
                    };
                let io = TokioIo::new(SendTimed::new(tls_stream, send_timeout));
                let conn = http.serve_connection_with_upgrades(io, service);
                watcher.watch(conn.into_owned()).await
            }
        };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
