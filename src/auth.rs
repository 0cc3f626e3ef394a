//! Who may call: the client keys of `[[auth.keys]]` for `/v1`, and the admin
//! token for `/admin` (which also counts as a client key that may pin a
//! version). Keys are held as SHA-256 digests and compared in constant time.

use std::collections::HashMap;
use std::sync::Arc;

use http::header::{self, HeaderMap};

use crate::config::Config;
use crate::crypto;
use crate::error::GatewayError;

/// The configured keys, built once at start.
pub struct Keys {
    admin_token: Option<String>,
    /// (app name, SHA-256 of the key, may pin a version).
    clients: Vec<(Arc<str>, [u8; 32], bool)>,
    /// The user segment of each app whose keys name one.
    segments: HashMap<Arc<str>, Arc<str>>,
}

/// A caller that passed [`Keys::authenticate`].
pub struct Caller {
    /// The app its key belongs to; `None` when no keys are configured.
    pub app: Option<Arc<str>>,
    /// Whether it may pin a version with `x-flywheel-version`.
    pub may_pin: bool,
}

impl Keys {
    pub fn new(config: &Config) -> Keys {
        let keys = &config.auth.keys;
        Keys {
            admin_token: config.admin.token.clone(),
            clients: keys
                .iter()
                .map(|k| (Arc::from(k.name.as_str()), k.sha256, k.may_pin))
                .collect(),
            segments: keys
                .iter()
                .filter_map(|k| {
                    Some((Arc::from(k.name.as_str()), Arc::from(k.segment.as_deref()?)))
                })
                .collect(),
        }
    }

    /// True when no client keys are configured: `/v1` is open.
    pub fn open(&self) -> bool {
        self.clients.is_empty()
    }

    /// Checks the client key when keys are configured. The admin token counts
    /// as a key (app `admin`) that may pin, so operators and tests can reach
    /// any version.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, GatewayError> {
        let key = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        if let (Some(k), Some(admin)) = (key, self.admin_token.as_deref()) {
            if crypto::secret_eq(k.as_bytes(), admin.as_bytes()) {
                return Ok(Caller {
                    app: Some(Arc::from("admin")),
                    may_pin: true,
                });
            }
        }
        if self.clients.is_empty() {
            return Ok(Caller {
                app: None,
                may_pin: false,
            });
        }
        let key = key.ok_or(GatewayError::Unauthorized)?;
        let digest = crypto::sha256(key.as_bytes());
        // Every configured key is compared, so timing does not tell which one matched.
        let mut found = None;
        for (name, expected, may_pin) in &self.clients {
            if crypto::digest_eq(&digest, expected) {
                found = Some(Caller {
                    app: Some(name.clone()),
                    may_pin: *may_pin,
                });
            }
        }
        found.ok_or(GatewayError::Unauthorized)
    }

    /// The segment configured for an app's keys, which outranks what its
    /// callers claim.
    pub fn segment(&self, app: &str) -> Option<&Arc<str>> {
        self.segments.get(app)
    }

    /// Whether the admin API is enabled (a token is configured).
    pub fn admin_enabled(&self) -> bool {
        self.admin_token.is_some()
    }

    /// Whether the request carries the admin token as `Bearer <token>`;
    /// false when none is configured.
    pub fn is_admin(&self, headers: &HeaderMap) -> bool {
        let Some(token) = self.admin_token.as_deref() else {
            return false;
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        crypto::secret_eq(given.as_bytes(), token.as_bytes())
    }
}
