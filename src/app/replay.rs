//! Evaluation calls over the proxy's upstream clients: a version's target
//! (upstream, model name, system prompt, headers) as the proxy would build
//! it, the body rewritten the same way, and the answer read whole. Nothing
//! here touches capture or the live series: evaluation traffic is neither
//! recorded nor counted as live.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request};
use http_body_util::{BodyExt, Limited};

use crate::experiments::replay::{Replay, ReplayError, Reply};
use crate::http1::client::SendError;
use crate::proxy::routing::VersionTarget;
use crate::proxy::Proxy;
use crate::store::RegistryStore;

/// The most of an answer an evaluation reads (the capture limit's default).
const MAX_ANSWER_BYTES: usize = 4 << 20;

/// Sends evaluation calls to any version of a route in the registry.
pub struct UpstreamReplay {
    proxy: Arc<Proxy>,
    store: Arc<dyn RegistryStore>,
    /// Each version's target, built on its first call: what a target holds
    /// (upstream, model, system prompt, headers) never changes once a version
    /// is registered, so an evaluation reads the registry once per version,
    /// not once per call.
    targets: Mutex<HashMap<(String, String), Arc<VersionTarget>>>,
}

impl UpstreamReplay {
    pub fn new(proxy: Arc<Proxy>, store: Arc<dyn RegistryStore>) -> UpstreamReplay {
        UpstreamReplay {
            proxy,
            store,
            targets: Mutex::default(),
        }
    }

    async fn target(&self, route: &str, version: &str) -> Result<Arc<VersionTarget>, ReplayError> {
        let key = (route.to_string(), version.to_string());
        if let Some(t) = self
            .targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(t.clone());
        }
        let store = self.store.clone();
        let snapshot = tokio::task::spawn_blocking(move || store.load_routing())
            .await
            .map_err(|e| ReplayError::Protocol(e.to_string()))?
            .map_err(|e| ReplayError::Protocol(e.to_string()))?;
        let row = (snapshot.versions.iter())
            .find(|v| v.route == route && v.name == version)
            .ok_or_else(|| ReplayError::UnknownVersion {
                route: route.to_string(),
                version: version.to_string(),
            })?;
        let target =
            (self.proxy.routing.target(row)).map_err(|e| ReplayError::Protocol(e.to_string()))?;
        let mut targets = self.targets.lock().unwrap_or_else(|e| e.into_inner());
        Ok(targets.entry(key).or_insert(target).clone())
    }
}

impl Replay for UpstreamReplay {
    async fn send(&self, route: &str, version: &str, body: Bytes) -> Result<Reply, ReplayError> {
        let target = self.target(route, version).await?;
        let body = if target.rewrites_body() {
            crate::proxy::request::rewrite(&body, &target, true, false)
                .ok_or_else(|| ReplayError::Protocol("the prompt is not a JSON object".into()))?
        } else {
            body
        };
        let mut head = Request::new(());
        *head.method_mut() = Method::POST;
        *head.uri_mut() = http::Uri::from_static("/v1/chat/completions");
        head.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let (parts, ()) = head.into_parts();
        let upstream = &target.upstream;
        let mut req = (upstream.request(parts, body, false, true))
            .map_err(|e| ReplayError::Protocol(e.to_string()))?;
        for (k, v) in &target.extra_headers {
            req.headers_mut().insert(k.clone(), v.clone());
        }
        let limits = &upstream.config;
        let resp = (upstream
            .send(req, limits.first_byte_timeout.min(limits.total_timeout))
            .await)
            .map_err(|e| match e {
                SendError::Connect(m) => ReplayError::Connect(m),
                SendError::TimedOut => ReplayError::Timeout(limits.first_byte_timeout),
                other => ReplayError::Protocol(other.to_string()),
            })?;
        let status = resp.status().as_u16();
        let retry_after = (resp.headers().get(header::RETRY_AFTER))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let read = Limited::new(resp.into_body(), MAX_ANSWER_BYTES).collect();
        let body = match tokio::time::timeout(limits.total_timeout, read).await {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(e)) => return Err(ReplayError::Protocol(e.to_string())),
            Err(_) => return Err(ReplayError::Timeout(limits.total_timeout)),
        };
        Ok(Reply {
            status,
            retry_after,
            body,
        })
    }
}
