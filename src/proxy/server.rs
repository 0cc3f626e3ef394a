//! The gateway's shared state and its lifecycle: open the store, start the
//! capture writer, accept connections (plain or TLS; HTTP/1.1 and HTTP/2), and on
//! shutdown drain in-flight requests, then the capture queue.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};

use super::budget::BodyBudget;
use super::h1_server::{self, ClientBody};
use super::idle::{self, Activity};
use super::routing::Routing;
use super::send_timeout::SendTimed;
use crate::capture::hash::UserHasher;
use crate::capture::writer::{self, RowMaker, WriterConfig, WriterHandle};
use crate::capture::CaptureQueue;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::privacy::Privacy;
use crate::runtime::shard::{Balance, Shards};
use crate::store::sqlite::SqliteStore;
use crate::store::Store;

/// Why the gateway could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("upstream: {0}")]
    Upstream(String),
    #[error("privacy: {0}")]
    Privacy(String),
    #[error("tls: {0}")]
    Tls(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// State shared by every connection.
pub struct Gateway {
    pub config: Config,
    /// Which version serves a call; rebuilt from the registry on every change.
    pub routing: Routing,
    pub capture: CaptureQueue,
    pub metrics: Arc<Metrics>,
    pub store: Arc<dyn Store>,
    /// Client keys as (app name, SHA-256 of the key).
    /// Client keys as (app name, SHA-256 of the key, may pin a version).
    pub client_keys: Vec<(Arc<str>, [u8; 32], bool)>,
    /// The user segment of each app whose keys name one.
    pub key_segments: std::collections::HashMap<Arc<str>, Arc<str>>,
    /// Hashes user ids given with feedback, with the same key as capture.
    pub user_hasher: UserHasher,
    /// Hashers of keys used before a rotation, for erasure.
    pub previous_hashers: Vec<UserHasher>,
    /// Redaction and raw-payload encryption, shared with the capture writer.
    pub privacy: Arc<Privacy>,
    /// Bytes of request bodies in flight, within `server.body_budget_bytes`.
    pub body_budget: Arc<BodyBudget>,
    draining: AtomicBool,
}

impl Gateway {
    /// Opens the store and starts the capture writer.
    pub async fn start(config: Config) -> Result<(Arc<Gateway>, WriterHandle), RunError> {
        let db = config.capture.db.clone();
        let cipher = (config.privacy.store_key.as_ref())
            .map(|(key, id)| crate::crypto::vault::Vault::new(key, id));
        let store: Arc<dyn Store> = Arc::new(
            tokio::task::spawn_blocking(move || SqliteStore::open_with(&db, cipher))
                .await
                .map_err(|e| RunError::Io(std::io::Error::other(e)))??,
        );
        let secret = match &config.capture.user_hash_secret {
            Some(s) => s.clone(),
            None => {
                let store = store.clone();
                tokio::task::spawn_blocking(move || {
                    store.secret("user_hash", &|| crate::crypto::random_bytes(32))
                })
                .await
                .map_err(|e| RunError::Io(std::io::Error::other(e)))??
            }
        };
        // One slot per shard for the per-request counts, plus one for the rest.
        let metrics = Arc::new(Metrics::with_stripes(config.server.workers + 1));
        let user_hasher = UserHasher::with_id(&config.capture.user_hash_key_id, &secret);
        let previous_hashers = config
            .capture
            .previous_user_hash_keys
            .iter()
            .map(|(id, secret)| UserHasher::with_id(id, secret))
            .collect();
        let privacy = Arc::new(
            Privacy::new(&config.privacy, &secret).map_err(|e| RunError::Privacy(e.to_string()))?,
        );
        let (capture, writer) = writer::start(
            store.clone(),
            RowMaker {
                hasher: user_hasher.clone(),
                privacy: privacy.clone(),
                max_body: config.capture.max_body_bytes,
            },
            WriterConfig {
                queue_capacity: config.capture.queue_capacity,
                queue_share_bytes: usize::try_from(
                    config.capture.queue_max_bytes / config.server.workers.max(1) as u64,
                )
                .unwrap_or(usize::MAX),
                batch_max: config.capture.batch_max,
                flush_interval: config.capture.flush_interval,
                max_body_bytes: config.capture.max_body_bytes,
            },
            metrics.clone(),
        )?;
        let routing =
            Routing::new(config.upstream.clone(), metrics.clone()).map_err(RunError::Upstream)?;
        let registry_store = store.clone();
        let routes = config.routes.clone();
        let snapshot = tokio::task::spawn_blocking(move || {
            crate::registry::seed_from_config(registry_store.as_ref(), &routes, "config")?;
            registry_store.load_routing()
        })
        .await
        .map_err(|e| RunError::Io(std::io::Error::other(e)))?
        .map_err(|e| RunError::Upstream(e.to_string()))?;
        routing.rebuild(&snapshot);
        let client_keys = config
            .auth
            .keys
            .iter()
            .map(|k| (Arc::from(k.name.as_str()), k.sha256, k.may_pin))
            .collect();
        let key_segments = config
            .auth
            .keys
            .iter()
            .filter_map(|k| Some((Arc::from(k.name.as_str()), Arc::from(k.segment.as_deref()?))))
            .collect();
        let body_budget = Arc::new(BodyBudget::new(config.server.body_budget_bytes));
        let _ = metrics.body_budget.set(body_budget.clone());
        let gw = Gateway {
            body_budget,
            config,
            routing,
            capture,
            metrics,
            store,
            client_keys,
            key_segments,
            user_hasher,
            previous_hashers,
            privacy,
            draining: AtomicBool::new(false),
        };
        Ok((Arc::new(gw), writer))
    }

    /// Publishes each route's rollout step (1-based, 0 when none runs).
    pub fn publish_rollout_metrics(&self) -> Result<(), crate::store::StoreError> {
        let active = self.store.list_rollouts(None, true)?;
        for route in self.routing.current().routes.keys() {
            let step = active
                .iter()
                .find(|r| &r.route == route)
                .map_or(0, |r| r.step + 1);
            self.metrics.rollout_step(route, step);
        }
        Ok(())
    }

    /// Reloads the routing table when the registry changed since it was built.
    pub fn refresh_routing(&self) -> Result<bool, String> {
        let current = self.routing.current().generation;
        let generation = self.store.routing_generation().map_err(|e| e.to_string())?;
        if generation == current {
            return Ok(false);
        }
        let snapshot = self.store.load_routing().map_err(|e| e.to_string())?;
        self.routing.rebuild(&snapshot);
        Ok(true)
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

fn tls_acceptor(config: &Config) -> Result<Option<tokio_rustls::TlsAcceptor>, RunError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let Some(files) = &config.server.tls else {
        return Ok(None);
    };
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            RunError::Tls(format!(
                "cannot read certificates from {}: {e}",
                files.cert.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(RunError::Tls(format!(
            "no certificate found in {}",
            files.cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        RunError::Tls(format!(
            "cannot read private key from {}: {e}",
            files.key.display()
        ))
    })?;
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| RunError::Tls(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| RunError::Tls(e.to_string()))?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(tls))))
}

/// Runs the gateway on `listener` until `shutdown` resolves, then drains:
/// in-flight requests get `server.shutdown_grace` to finish, and every capture
/// record queued by then is written before this returns.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let tls = tls_acceptor(&config)?;
    let grace = config.server.shutdown_grace;
    let (gw, writer) = Gateway::start(config).await?;
    tracing::info!(
        addr = %listener.local_addr()?,
        upstream = %gw.routing.current().default.upstream.label,
        tls = tls.is_some(),
        "flywheel listening"
    );
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
    let http = Arc::new(http);
    let shards = Shards::start(gw.config.server.workers)?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let retention = tokio::spawn(crate::privacy::retention::run(
        gw.store.clone(),
        gw.config.retention.clone(),
        stop_rx.clone(),
    ));
    {
        let (store, dir) = (gw.store.clone(), gw.config.datasets.dir.clone());
        tokio::task::spawn_blocking(move || crate::datasets::clean(store.as_ref(), &dir));
    }
    // Rollout decisions and routing reloads, twice a second: a weight change
    // made anywhere reaches new requests within one second.
    let controller = tokio::spawn(crate::rollout::driver::run(
        gw.clone(),
        Duration::from_millis(500),
        stop_rx.clone(),
    ));
    let reloader = tokio::spawn(reload_on_sighup(gw.clone(), stop_rx.clone()));

    // Every shard accepts on its own copy of the listening socket, so a new
    // connection is taken by a shard's thread directly and never moves.
    let listener = listener.into_std()?;
    let balance = Arc::new(Balance::new(shards.len()));
    let _ = gw.metrics.connections.set(balance.clone());
    let mut accepting = Vec::with_capacity(shards.len());
    for i in 0..shards.len() {
        // The copy joins the shard's reactor there; a failure stops the start
        // rather than leave a shard that never accepts.
        let copy = listener.try_clone()?;
        let listener = shards
            .spawn_on(i, async move { TcpListener::from_std(copy) })
            .await
            .map_err(std::io::Error::other)??;
        let acceptor = Acceptor {
            shard: i,
            listener,
            balance: balance.clone(),
            gw: gw.clone(),
            http: http.clone(),
            tls: tls.clone(),
            grace,
        };
        accepting.push(shards.spawn_on(i, acceptor.run(stop_rx.clone())));
    }

    shutdown.await;
    gw.draining.store(true, Ordering::Relaxed);
    let _ = stop_tx.send(true);
    // The shards close their copies of the socket as they stop accepting.
    drop(listener);
    let _ = retention.await;
    let _ = controller.await;
    let _ = reloader.await;
    tracing::info!(
        grace_secs = grace.as_secs_f64(),
        "shutting down: draining in-flight requests"
    );
    // The shards drain side by side, each within the grace period.
    let deadline = tokio::time::Instant::now() + grace + Duration::from_secs(1);
    let mut drained = true;
    for shard in accepting {
        drained &= matches!(tokio::time::timeout_at(deadline, shard).await, Ok(Ok(true)));
    }
    if !drained {
        tracing::warn!("grace period over with requests still in flight; closing them");
    }
    // Whatever still runs is cancelled with its shard; its calls are recorded
    // as they are dropped, before the queue is flushed below.
    shards.stop().await;
    let queued = gw.metrics.capture_queue_depth.get();
    tracing::info!(queued, "flushing capture queue");
    let flushed = writer.close(grace.max(Duration::from_secs(5))).await;
    let m = &gw.metrics;
    tracing::info!(
        written = m.capture_written.load(Ordering::Relaxed),
        dropped = m.capture_dropped.load(Ordering::Relaxed),
        flushed,
        "capture writer stopped"
    );
    Ok(())
}

type Http = auto::Builder<TokioExecutor>;

/// One shard's accept loop and what its connections need.
struct Acceptor {
    shard: usize,
    /// Registered with this shard's runtime.
    listener: TcpListener,
    balance: Arc<Balance>,
    gw: Arc<Gateway>,
    http: Arc<Http>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    grace: Duration,
}

impl Acceptor {
    /// Accepts connections while this shard holds no more of them than any
    /// other, until `stop`; then gives its connections the grace period to
    /// finish. True when they all did.
    async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) -> bool {
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
        super::handler::handle(gw.clone(), req.map(ClientBody::Incoming), busy)
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

/// On SIGHUP, reads the config file again and seeds any new routes and
/// versions into the registry. A file that no longer validates is rejected
/// with its error in the log and the running setup is kept. Other settings
/// (listener, upstream timeouts, capture) take effect at the next start.
async fn reload_on_sighup(gw: Arc<Gateway>, mut stop: tokio::sync::watch::Receiver<bool>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Some((path, flags)) = gw.config.source.clone() else {
            return;
        };
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        loop {
            tokio::select! {
                _ = hup.recv() => {}
                _ = stop.changed() => return,
            }
            let env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
            let config = match Config::load(Some(&path), &env, &flags) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, path = %path.display(), "config reload rejected; keeping the running config");
                    continue;
                }
            };
            let g = gw.clone();
            let result = tokio::task::spawn_blocking(move || {
                crate::registry::seed_from_config(g.store.as_ref(), &config.routes, "config")
                    .map_err(|e| e.to_string())?;
                g.refresh_routing()
            })
            .await;
            match result {
                Ok(Ok(_)) => {
                    tracing::info!(path = %path.display(), "config reloaded: routes and versions applied")
                }
                Ok(Err(e)) => tracing::error!(error = %e, "config reload failed"),
                Err(e) => tracing::error!(error = %e, "config reload panicked"),
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (gw, stop.changed().await);
    }
}
