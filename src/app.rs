//! The composition root: the only place that wires the parts together.
//! [`Gateway::start`] opens the store, starts the capture writer and builds
//! the proxy, the feedback endpoint and the admin API, each with only what
//! it uses; [`Gateway`] routes every request to one of them; [`run`] starts
//! the listener (`listen`) and the control loops, and on shutdown drains
//! in-flight requests, then the capture queue.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;

use crate::admin::Admin;
use crate::auth::Keys;
use crate::capture::writer::{self, RowMaker, WriterConfig, WriterHandle};
use crate::config::Config;
use crate::error::GatewayError;
use crate::feedback::http::Endpoint as FeedbackEndpoint;
use crate::http1::body::{ClientBody, ResponseBody};
use crate::http1::budget::BodyBudget;
use crate::http1::idle::{Busy, Watched};
use crate::http1::server::{Limits, Service};
use crate::metrics::Metrics;
use crate::privacy::redact::RedactError;
use crate::privacy::Privacy;
use crate::privacy::UserHasher;
use crate::proxy::routing::{Routing, RoutingError};
use crate::proxy::Proxy;
use crate::registry::Reload;
use crate::runtime::shard::{Balance, Shards};
use crate::store::sqlite::SqliteStore;
use crate::store::{RegistryStore, Store, StoreError};

mod listen;
pub mod replay;

pub use listen::TlsError;

/// Why the gateway could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("upstream: {0}")]
    Upstream(#[from] RoutingError),
    /// The config's routes could not be put into the registry or read back
    /// from it, so the routing table cannot be made.
    #[error("upstream: {0}")]
    Routes(#[source] StoreError),
    #[error("privacy: {0}")]
    Privacy(#[from] RedactError),
    #[error("tls: {0}")]
    Tls(#[from] TlsError),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// The running gateway: the parts a request can reach, and the store and
/// metrics the control loops share.
pub struct Gateway {
    pub config: Arc<Config>,
    pub proxy: Arc<Proxy>,
    pub feedback: Arc<FeedbackEndpoint>,
    pub admin: Arc<Admin>,
    pub keys: Arc<Keys>,
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    /// Reloads routing and the rollout gauges after a registry change.
    pub reload: Reload,
    limits: Limits,
}

/// Runs blocking work on the blocking pool; a panic there is an I/O error.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, RunError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RunError::Io(std::io::Error::other(e)))
}

impl Gateway {
    /// Opens the store, starts the capture writer and wires the parts.
    pub async fn start(config: Config) -> Result<(Arc<Gateway>, WriterHandle), RunError> {
        let config = Arc::new(config);
        let db = config.capture.db.clone();
        let cipher = (config.privacy.store_key.as_ref())
            .map(|(key, id)| crate::crypto::vault::Vault::new(key, id));
        let store: Arc<dyn Store> =
            Arc::new(blocking(move || SqliteStore::open_with(&db, cipher)).await??);
        let secret = match &config.capture.user_hash_secret {
            Some(s) => s.clone(),
            None => {
                let store = store.clone();
                blocking(move || store.secret("user_hash", &|| crate::crypto::random_bytes(32)))
                    .await??
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
        let privacy = Arc::new(Privacy::new(&config.privacy, &secret)?);
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
        let routing = Routing::new(config.upstream.clone(), metrics.clone())?;
        let (registry_store, routes) = (store.clone(), config.routes.clone());
        let snapshot = blocking(move || {
            crate::registry::seed_from_config(registry_store.as_ref(), &routes, "config")?;
            registry_store.load_routing()
        })
        .await?
        .map_err(RunError::Routes)?;
        routing.rebuild(&snapshot);
        let keys = Arc::new(Keys::new(&config));
        let body_budget = Arc::new(BodyBudget::new(config.server.body_budget_bytes));
        let _ = metrics.body_budget.set(body_budget.clone());
        let proxy = Arc::new(Proxy::new(
            config.clone(),
            routing,
            capture.clone(),
            metrics.clone(),
            keys.clone(),
            body_budget.clone(),
        ));
        let reload: Reload = {
            let (proxy, store, metrics) = (proxy.clone(), store.clone(), metrics.clone());
            Arc::new(move || reload_routing(&proxy, store.as_ref(), &metrics))
        };
        let feedback = Arc::new(FeedbackEndpoint {
            config: config.clone(),
            store: store.clone(),
            capture,
            privacy: privacy.clone(),
            user_hasher: user_hasher.clone(),
            metrics: metrics.clone(),
            keys: keys.clone(),
            body_budget: body_budget.clone(),
        });
        let evaluator = Arc::new(crate::experiments::evaluate::Evaluator {
            replay: Arc::new(replay::UpstreamReplay::new(proxy.clone(), store.clone())),
            store: store.clone(),
            routes: config.routes.clone(),
            datasets_root: config.datasets.dir.clone(),
            retry: Default::default(),
            metrics: metrics.clone(),
        });
        // Runs a stopped process left running end as failed, not running forever.
        let abandoned = store.clone();
        blocking(move || {
            abandoned.abandon_running("the gateway stopped during the run", crate::clock::now_ms())
        })
        .await??;
        let admin = Arc::new(Admin {
            config: config.clone(),
            store: store.clone(),
            metrics: metrics.clone(),
            keys: keys.clone(),
            user_hasher,
            previous_hashers,
            privacy,
            body_budget: body_budget.clone(),
            reload: reload.clone(),
            evaluator,
            background: tokio::runtime::Handle::current(),
        });
        let limits = Limits {
            max_body: config.server.max_body_bytes,
            body_timeout: config.server.body_timeout,
            send_timeout: config.server.send_timeout,
            body_budget,
        };
        let gw = Gateway {
            config,
            proxy,
            feedback,
            admin,
            keys,
            store,
            metrics,
            reload,
            limits,
        };
        Ok((Arc::new(gw), writer))
    }
}

/// Reloads the proxy's routing table when the registry changed since it was
/// built, and publishes each route's rollout step (1-based, 0 when none runs).
fn reload_routing(
    proxy: &Proxy,
    store: &dyn RegistryStore,
    metrics: &Metrics,
) -> Result<bool, StoreError> {
    let current = proxy.routing.current().generation;
    let changed = store.routing_generation()? != current;
    if changed {
        proxy.routing.rebuild(&store.load_routing()?);
    }
    let active = store.list_rollouts(None, true)?;
    for route in proxy.routing.current().routes.keys() {
        let step = active
            .iter()
            .find(|r| &r.route == route)
            .map_or(0, |r| r.step + 1);
        metrics.rollout_step(route, step);
    }
    Ok(changed)
}

impl Service for Gateway {
    /// The same checks the handlers make before they read a body: the admin
    /// token for `/admin`, a client key for the rest when keys are
    /// configured.
    fn admits(&self, method: &Method, path: &str, headers: &HeaderMap) -> bool {
        match (method, path) {
            (&Method::GET | &Method::HEAD, "/healthz" | "/readyz") | (&Method::GET, "/metrics") => {
                true
            }
            (_, p) if is_admin_path(p) => self.keys.is_admin(headers),
            _ => self.keys.authenticate(headers).is_ok(),
        }
    }

    /// Routes a request: the probes and `/metrics` here, `/admin` to the
    /// admin API, `POST /v1/feedback` to the feedback endpoint, the rest to
    /// the proxy.
    ///
    /// The servers call this future directly, with no async wrapper around
    /// it: each layer of futures moves the one inside it when it starts, and
    /// the proxy path's future is 4 KB.
    async fn call(
        self: Arc<Self>,
        req: Request<ClientBody>,
        busy: Busy,
    ) -> Result<Response<Watched>, Infallible> {
        let path = req.uri().path();
        let resp = match (req.method(), path) {
            // The own HTTP/1.1 server refuses such a head before it gets here;
            // requests hyper serves (HTTP/1.1 over TLS) are held to the same rule.
            _ if !hosts_ok(&req) => {
                GatewayError::BadRequest("the request must have one valid host header".into())
                    .response()
            }
            // The gateway opens no tunnels, and a TRACE would echo the request
            // with the upstream's credential added to it.
            (&Method::CONNECT | &Method::TRACE, _) => GatewayError::MethodNotAllowed {
                message: "the method is not allowed".into(),
                allow: Some("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
            }
            .response(),
            (&Method::GET | &Method::HEAD, "/healthz") => text(StatusCode::OK, "ok\n"),
            (&Method::GET | &Method::HEAD, "/readyz") => {
                if self.proxy.is_draining() {
                    text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
                } else {
                    text(StatusCode::OK, "ready\n")
                }
            }
            (&Method::GET, "/metrics") => {
                let mut r = Response::new(ResponseBody::full(self.metrics.render()));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                r
            }
            (_, p) if is_admin_path(p) => crate::admin::handle(&self.admin, req).await,
            (&Method::POST, "/v1/feedback") => {
                crate::feedback::http::handle(self.feedback.clone(), req).await
            }
            _ => crate::proxy::handle(self.proxy.clone(), req).await,
        };
        Ok(resp.map(|body| Watched::new(body, busy)))
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }
}

fn is_admin_path(p: &str) -> bool {
    p == "/admin" || p.starts_with("/admin/")
}

fn text(status: StatusCode, body: &'static str) -> Response<ResponseBody> {
    let mut r = Response::new(ResponseBody::full(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// RFC 9112 §3.2: an HTTP/1.1 request names its host exactly once, and a
/// valid one; HTTP/1.0 and HTTP/2 (whose `:authority` stands for it) name
/// it at most once.
fn hosts_ok<B>(req: &Request<B>) -> bool {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (_, Some(_)) => false,
        (Some(h), None) => crate::http1::server::valid_host(h.as_bytes()),
        (None, None) => req.version() != http::Version::HTTP_11,
    }
}

/// Runs the gateway on `listener` until `shutdown` resolves, then drains:
/// in-flight requests get `server.shutdown_grace` to finish, and every capture
/// record queued by then is written before this returns.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let tls = listen::tls_acceptor(&config)?;
    let grace = config.server.shutdown_grace;
    let (gw, writer) = Gateway::start(config).await?;
    tracing::info!(
        addr = %listener.local_addr()?,
        upstream = %gw.proxy.routing.current().default.upstream.label,
        tls = tls.is_some(),
        "flywheel listening"
    );
    let http = Arc::new(listen::hyper_builder());
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
        gw.store.clone(),
        gw.metrics.clone(),
        gw.reload.clone(),
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
        let acceptor = listen::Acceptor {
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
    gw.proxy.drain();
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
                crate::registry::seed_from_config(g.store.as_ref(), &config.routes, "config")?;
                (g.reload)().map_err(crate::registry::RegistryError::from)
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
