//! Routing: which version of which route serves a call.
//!
//! The table is rebuilt from the registry (routes and versions in the store)
//! whenever the registry's generation changes, and swapped in whole; a call
//! takes one `Arc` of the current table and never sees a half-applied change.
//!
//! Each serving thread (shard) takes its calls' targets from a copy of the
//! table of its own, made when the table changes: every call clones a target
//! and its labels, and on a table all shards share, each of those reference
//! counts would move its cache line from core to core on every request.
//!
//! The canary split is sticky and monotone: a caller's key (hashed user id,
//! else session id, else a random draw) maps to a bucket in 0..10000, and the
//! canary takes the buckets below its weight. The same caller stays on the
//! same version while the weight holds, and when the weight grows only callers
//! from stable move to the canary, never back.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::crypto::Sha256;
use http::header::{HeaderName, HeaderValue};

use super::upstream::{Upstream, UpstreamError};
use crate::config::UpstreamConfig;
use crate::metrics::{Metrics, RouteSeries};
use crate::store::{RoutingSnapshot, VersionRow};

/// Buckets of the split: weights are in basis points.
pub const BUCKETS: u64 = 10_000;

/// Everything a call needs about the version that serves it.
pub struct VersionTarget {
    pub route: Arc<str>,
    pub version: Arc<str>,
    pub upstream: Arc<Upstream>,
    /// Replaces the request's `model` when set.
    pub upstream_model: Option<String>,
    /// Prepended as a system message to chat requests when set.
    pub system_prompt: Option<String>,
    pub extra_headers: Vec<(HeaderName, HeaderValue)>,
    pub version_header: HeaderValue,
    pub series: Arc<RouteSeries>,
}

impl VersionTarget {
    /// Whether the request body must be rewritten for this version.
    pub fn rewrites_body(&self) -> bool {
        self.upstream_model.is_some() || self.system_prompt.is_some()
    }

    /// A copy whose labels and header values have reference counts of their
    /// own; the upstream, its pool and the metric series stay shared.
    fn copy(&self) -> VersionTarget {
        let value = |v: &HeaderValue| HeaderValue::from_bytes(v.as_bytes()).unwrap_or(v.clone());
        VersionTarget {
            route: Arc::from(&*self.route),
            version: Arc::from(&*self.version),
            upstream: self.upstream.clone(),
            upstream_model: self.upstream_model.clone(),
            system_prompt: self.system_prompt.clone(),
            extra_headers: self
                .extra_headers
                .iter()
                .map(|(k, v)| {
                    (
                        HeaderName::from_bytes(k.as_ref()).unwrap_or(k.clone()),
                        value(v),
                    )
                })
                .collect(),
            version_header: value(&self.version_header),
            series: self.series.clone(),
        }
    }
}

pub struct RouteEntry {
    pub stable: Arc<VersionTarget>,
    /// The canary and its weight in basis points.
    pub canary: Option<(Arc<VersionTarget>, u64)>,
    /// Versions that may be pinned with `x-flywheel-version` (approved, canary, stable).
    pub pinnable: HashMap<String, Arc<VersionTarget>>,
    pub retry_on_stable: bool,
}

pub struct RoutingTable {
    pub generation: i64,
    pub routes: HashMap<String, RouteEntry>,
    /// Serves every model name that is not a route (zero-config mode).
    pub default: Arc<VersionTarget>,
}

/// Why a pin was refused.
#[derive(Debug, PartialEq)]
pub enum PinError {
    UnknownVersion(String),
}

impl RoutingTable {
    /// Picks the version for a call. `key` is the sticky caller key; `None`
    /// means a random draw.
    pub fn resolve(
        &self,
        model: Option<&str>,
        key: Option<&str>,
        pin: Option<&str>,
    ) -> Result<Arc<VersionTarget>, PinError> {
        let Some(entry) = model.and_then(|m| self.routes.get(m)) else {
            if let Some(p) = pin {
                if p != &*self.default.version {
                    return Err(PinError::UnknownVersion(p.to_string()));
                }
            }
            return Ok(self.default.clone());
        };
        if let Some(p) = pin {
            return entry
                .pinnable
                .get(p)
                .cloned()
                .ok_or_else(|| PinError::UnknownVersion(p.to_string()));
        }
        if let Some((canary, weight)) = &entry.canary {
            let route = model.unwrap_or_default();
            let b = match key {
                Some(k) => bucket(route, k),
                None => random_bucket(),
            };
            if b < *weight {
                return Ok(canary.clone());
            }
        }
        Ok(entry.stable.clone())
    }

    /// Where a failed call on `target` may be retried: the route's stable
    /// version, when `target` is its canary and the route asks for the retry.
    pub fn fallback(
        &self,
        model: Option<&str>,
        target: &Arc<VersionTarget>,
    ) -> Option<Arc<VersionTarget>> {
        let entry = self.routes.get(model?)?;
        let is_canary = entry
            .canary
            .as_ref()
            .is_some_and(|(c, _)| Arc::ptr_eq(c, target));
        (entry.retry_on_stable && is_canary).then(|| entry.stable.clone())
    }

    /// A copy for one thread (see the module notes). Targets that are the same
    /// in this table (a route's stable version is also pinnable) are the same
    /// in the copy.
    fn copy(&self) -> RoutingTable {
        let mut made: HashMap<*const VersionTarget, Arc<VersionTarget>> = HashMap::new();
        let mut copy = |t: &Arc<VersionTarget>| {
            made.entry(Arc::as_ptr(t))
                .or_insert_with(|| Arc::new(t.copy()))
                .clone()
        };
        let default = copy(&self.default);
        let routes = self
            .routes
            .iter()
            .map(|(name, e)| {
                let entry = RouteEntry {
                    stable: copy(&e.stable),
                    canary: e.canary.as_ref().map(|(c, w)| (copy(c), *w)),
                    pinnable: e
                        .pinnable
                        .iter()
                        .map(|(k, v)| (k.clone(), copy(v)))
                        .collect(),
                    retry_on_stable: e.retry_on_stable,
                };
                (name.clone(), entry)
            })
            .collect();
        RoutingTable {
            generation: self.generation,
            routes,
            default,
        }
    }

    /// The route names, for `GET /v1/models`.
    pub fn route_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.routes.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

/// The caller's bucket for a route: the first 8 bytes of SHA-256(route, key),
/// a fixed function so every replica and every release agrees.
pub fn bucket(route: &str, key: &str) -> u64 {
    let mut h = Sha256::default();
    h.update(route.as_bytes());
    h.update([0u8]);
    h.update(key.as_bytes());
    let d = h.finish();
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]) % BUCKETS
}

fn random_bucket() -> u64 {
    crate::capture::id::random_u64() % BUCKETS
}

/// Why a version (or the default upstream) cannot serve: its upstream's
/// client cannot be made, the variable holding its key is unset, or a
/// header it sends is not valid.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// A version name is sent as `x-flywheel-model-version`.
    #[error(transparent)]
    VersionName(http::header::InvalidHeaderValue),
    #[error("version {route}/{version}: environment variable {var} (api_key_env) is not set")]
    ApiKeyEnv {
        route: String,
        version: String,
        var: String,
    },
    #[error("header {name}: {source}")]
    HeaderName {
        name: String,
        source: http::header::InvalidHeaderName,
    },
    #[error("header {name}: {source}")]
    HeaderValue {
        name: String,
        source: http::header::InvalidHeaderValue,
    },
}

/// The shared, swappable table plus the upstream clients it is built from,
/// kept across rebuilds so connection pools survive a weight change.
pub struct Routing {
    /// Tells this table's copies from those of another gateway in the process.
    id: u64,
    /// Counts the swaps, so a shard sees its copy is out of date.
    swaps: AtomicU64,
    table: RwLock<Arc<RoutingTable>>,
    upstreams: Mutex<HashMap<String, Arc<Upstream>>>,
    base: UpstreamConfig,
    metrics: Arc<Metrics>,
}

impl Routing {
    /// A table with only the default upstream; `rebuild` adds the registry.
    pub fn new(base: UpstreamConfig, metrics: Arc<Metrics>) -> Result<Routing, RoutingError> {
        let upstream = Arc::new(Upstream::new(base.clone())?);
        let default = Arc::new(VersionTarget {
            route: Arc::from("default"),
            version: Arc::from(base.name.as_str()),
            upstream: upstream.clone(),
            upstream_model: None,
            system_prompt: None,
            extra_headers: Vec::new(),
            version_header: HeaderValue::from_str(&base.name).map_err(RoutingError::VersionName)?,
            series: metrics.route("default", &base.name),
        });
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Ok(Routing {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            swaps: AtomicU64::new(0),
            table: RwLock::new(Arc::new(RoutingTable {
                generation: -1,
                routes: HashMap::new(),
                default,
            })),
            upstreams: Mutex::new(HashMap::from([(upstream_key(&base), upstream)])),
            base,
            metrics,
        })
    }

    /// The table now: on a shard, that shard's copy of it.
    pub fn current(&self) -> Arc<RoutingTable> {
        if crate::runtime::shard::current() == 0 {
            return self.shared();
        }
        // Read before the table: a swap in between only makes the next call
        // copy again.
        let swaps = self.swaps.load(Ordering::Acquire);
        COPY.with(|c| {
            let mut c = c.borrow_mut();
            if let Some(copy) = c.as_ref() {
                if copy.routing == self.id && copy.swaps == swaps {
                    return copy.table.clone();
                }
            }
            let table = Arc::new(self.shared().copy());
            *c = Some(ThreadCopy {
                routing: self.id,
                swaps,
                table: table.clone(),
            });
            table
        })
    }

    fn shared(&self) -> Arc<RoutingTable> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn upstream(&self, cfg: UpstreamConfig) -> Result<Arc<Upstream>, RoutingError> {
        let key = upstream_key(&cfg);
        let mut cache = self.upstreams.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(u) = cache.get(&key) {
            return Ok(u.clone());
        }
        let u = Arc::new(Upstream::new(cfg)?);
        cache.insert(key, u.clone());
        Ok(u)
    }

    /// What a call to this version needs, whatever its state: the table
    /// holds only versions that take traffic, and an evaluation calls
    /// candidates before they do. Upstream clients are shared with the table.
    pub fn target(&self, v: &VersionRow) -> Result<Arc<VersionTarget>, RoutingError> {
        let ms = |x: Option<i64>, d: Duration| {
            x.filter(|n| *n > 0)
                .map_or(d, |n| Duration::from_millis(n as u64))
        };
        let api_key = match &v.api_key_env {
            Some(var) => Some(std::env::var(var).map_err(|_| RoutingError::ApiKeyEnv {
                route: v.route.clone(),
                version: v.name.clone(),
                var: var.clone(),
            })?),
            None => self.base.api_key.clone(),
        };
        let cfg = UpstreamConfig {
            base_url: v.upstream_url.trim_end_matches('/').to_string(),
            name: v.name.clone(),
            api_key,
            connect_timeout: ms(v.connect_timeout_ms, self.base.connect_timeout),
            first_byte_timeout: ms(v.first_byte_timeout_ms, self.base.first_byte_timeout),
            total_timeout: ms(v.total_timeout_ms, self.base.total_timeout),
            pool_max_idle_per_host: self.base.pool_max_idle_per_host,
            pool_idle_timeout: self.base.pool_idle_timeout,
            http2_prior_knowledge: false,
            extra_roots: self.base.extra_roots.clone(),
        };
        let mut extra_headers = Vec::new();
        for (k, val) in &v.headers {
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|source| {
                RoutingError::HeaderName {
                    name: k.clone(),
                    source,
                }
            })?;
            let value = HeaderValue::from_str(val).map_err(|source| RoutingError::HeaderValue {
                name: k.clone(),
                source,
            })?;
            extra_headers.push((name, value));
        }
        Ok(Arc::new(VersionTarget {
            route: Arc::from(v.route.as_str()),
            version: Arc::from(v.name.as_str()),
            upstream: self.upstream(cfg)?,
            upstream_model: v.upstream_model.clone(),
            system_prompt: v.system_prompt.clone(),
            extra_headers,
            version_header: HeaderValue::from_str(&v.name).map_err(RoutingError::VersionName)?,
            series: self.metrics.route(&v.route, &v.name),
        }))
    }

    /// Builds and swaps in a table from a registry snapshot. A version that
    /// cannot be built (say, its key's variable is unset) is left out with an
    /// error in the log; the rest of the table still applies.
    pub fn rebuild(&self, snap: &RoutingSnapshot) {
        let mut routes = HashMap::new();
        for r in &snap.routes {
            let mut stable = None;
            let mut canary = None;
            let mut pinnable = HashMap::new();
            for v in snap.versions.iter().filter(|v| v.route == r.name) {
                if !matches!(v.state.as_str(), "approved" | "canary" | "stable") {
                    continue;
                }
                let t = match self.target(v) {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::error!(error = %e, "version left out of routing");
                        continue;
                    }
                };
                match v.state.as_str() {
                    "stable" => stable = Some(t.clone()),
                    "canary" if v.weight_bp > 0 => {
                        canary = Some((t.clone(), v.weight_bp.clamp(0, BUCKETS as i64) as u64))
                    }
                    _ => {}
                }
                pinnable.insert(v.name.clone(), t);
            }
            // A route serves only once it has a stable version; until then its
            // name goes to the default upstream like any other model name.
            if let Some(stable) = stable {
                routes.insert(
                    r.name.clone(),
                    RouteEntry {
                        stable,
                        canary,
                        pinnable,
                        retry_on_stable: r.retry_on_stable,
                    },
                );
            }
        }
        let default = self.shared().default.clone();
        for v in &snap.versions {
            let weight = match v.state.as_str() {
                "canary" => v.weight_bp,
                "stable" => {
                    BUCKETS as i64
                        - snap
                            .versions
                            .iter()
                            .filter(|c| c.route == v.route && c.state == "canary")
                            .map(|c| c.weight_bp)
                            .sum::<i64>()
                }
                _ => 0,
            };
            self.metrics
                .route_weight(&v.route, &v.name, weight as f64 / BUCKETS as f64);
        }
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(RoutingTable {
            generation: snap.generation,
            routes,
            default,
        });
        self.swaps.fetch_add(1, Ordering::Release);
    }
}

/// A shard's copy of the table, and which table and swap it was made from.
struct ThreadCopy {
    routing: u64,
    swaps: u64,
    table: Arc<RoutingTable>,
}

thread_local! {
    static COPY: RefCell<Option<ThreadCopy>> = const { RefCell::new(None) };
}

/// Upstreams with the same address, credential and limits share one pool.
fn upstream_key(cfg: &UpstreamConfig) -> String {
    let key_digest = cfg
        .api_key
        .as_deref()
        .map(|k| crate::crypto::hex(&crate::crypto::sha256(k.as_bytes())));
    format!(
        "{}|{:?}|{:?}|{:?}|{:?}|{}",
        cfg.base_url,
        key_digest,
        cfg.connect_timeout,
        cfg.first_byte_timeout,
        cfg.total_timeout,
        cfg.http2_prior_knowledge
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RouteRow;

    fn snapshot(generation: i64, canary_bp: i64) -> RoutingSnapshot {
        let version = |name: &str, state: &str, weight_bp: i64| VersionRow {
            route: "bot".into(),
            name: name.into(),
            upstream_url: "http://127.0.0.1:9/v1".into(),
            state: state.into(),
            weight_bp,
            ..Default::default()
        };
        RoutingSnapshot {
            generation,
            routes: vec![RouteRow {
                name: "bot".into(),
                retry_on_stable: true,
                ..Default::default()
            }],
            versions: vec![
                version("v1", "stable", 0),
                version("v2", "canary", canary_bp),
            ],
        }
    }

    /// A shard works on a copy of its own, the same one until the table is
    /// swapped, in which a target shared by two places is still one target.
    #[test]
    fn shards_take_their_own_copy_and_see_every_swap() {
        let base = super::super::upstream::test_config("http://127.0.0.1:9/v1");
        let routing = Arc::new(Routing::new(base, Arc::new(Metrics::default())).unwrap());
        routing.rebuild(&snapshot(1, 10_000));
        let shards = crate::runtime::shard::Shards::start(1).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let on_shard = |f: fn(&Routing) -> (i64, bool, bool)| {
            let routing = routing.clone();
            rt.block_on(shards.spawn_on(0, async move { f(&routing) }))
                .unwrap()
        };
        let look = |r: &Routing| {
            let (a, b) = (r.current(), r.current());
            let shared = r.shared();
            let canary = a.resolve(Some("bot"), Some("k"), None).unwrap();
            let stable = a
                .fallback(Some("bot"), &canary)
                .expect("a canary falls back");
            (
                a.generation,
                Arc::ptr_eq(&a, &b) && !Arc::ptr_eq(&a, &shared),
                Arc::ptr_eq(&stable, &a.routes["bot"].pinnable["v1"])
                    && !Arc::ptr_eq(&stable, &shared.routes["bot"].stable)
                    && &*canary.version == "v2",
            )
        };
        assert_eq!(on_shard(look), (1, true, true));
        routing.rebuild(&snapshot(2, 10_000));
        assert_eq!(on_shard(look), (2, true, true));
        // Off the shards, the shared table itself.
        let off = routing.current();
        assert!(Arc::ptr_eq(&off, &routing.shared()));
        assert_eq!(off.generation, 2);
        rt.block_on(shards.stop());
    }

    #[test]
    fn split_is_accurate_sticky_and_monotone() {
        let n = 100_000;
        let keys: Vec<String> = (0..n).map(|i| format!("user-{i}")).collect();
        let at = |weight: u64| {
            keys.iter()
                .filter(|k| bucket("support-bot", k) < weight)
                .count()
        };
        let ten = at(1000) as f64 / n as f64;
        assert!((ten - 0.10).abs() <= 0.005, "10% weight gave {ten}");
        let fifty = at(5000) as f64 / n as f64;
        assert!((fifty - 0.50).abs() <= 0.005, "50% weight gave {fifty}");
        // Sticky: the same key always lands in the same bucket.
        assert!(keys
            .iter()
            .take(100)
            .all(|k| bucket("support-bot", k) == bucket("support-bot", k)));
        // Monotone: everyone on the canary at 10% is still on it at 25%.
        assert!(keys
            .iter()
            .filter(|k| bucket("support-bot", k) < 1000)
            .all(|k| bucket("support-bot", k) < 2500));
        // Routes split independently.
        let same = keys
            .iter()
            .take(1000)
            .filter(|k| bucket("a", k) == bucket("b", k))
            .count();
        assert!(same < 10);
    }
}
