//! Configuration in two stages: raw serde structs (TOML file, then `FLYWHEEL_*`
//! environment overrides, then command-line flags) are checked once by
//! [`RawConfig::validate`] into a typed [`Config`] the rest of the gateway trusts.
//!
//! Secrets (the upstream API key, the admin token, the user-hash secret) are only
//! ever read from environment variables named in the config, never inline.
//!
//! - `raw.rs`: what the file deserialises into, and the flags that override it.
//! - `env_vars.rs`: which `FLYWHEEL_*` variables are overrides, and applying them.
//! - `validate.rs`: raw + environment + flags -> [`Config`], and every refusal.
//! - `render.rs`: the effective configuration printed back as TOML.
//! - this file: the typed [`Config`] and its parts, and [`Config::load`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod env_vars;
mod raw;
mod render;
#[cfg(test)]
mod tests;
mod validate;

use env_vars::apply_env;
pub use env_vars::RESERVED_ENV;
pub use raw::{
    Overrides, RawAdmin, RawAuth, RawCapture, RawClientKey, RawConfig, RawDatasets, RawPreviousKey,
    RawPrivacy, RawRetention, RawRoute, RawRule, RawServer, RawUpstream, RawVersion,
};
pub use validate::{base_url_problem, parse_sha256_hex, valid_name, ConfigError};

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub upstream: UpstreamConfig,
    pub capture: CaptureConfig,
    pub admin: AdminConfig,
    pub auth: AuthConfig,
    pub privacy: PrivacyConfig,
    pub retention: RetentionConfig,
    pub datasets: DatasetsConfig,
    pub routes: Vec<RouteConfig>,
    /// Where this config came from, so SIGHUP can read it again.
    pub source: Option<(PathBuf, Overrides)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    pub name: String,
    pub retry_on_stable: bool,
    pub versions: Vec<VersionConfig>,
    /// `[[routes.scorers]]`: how evaluations score this route's answers
    /// (each compiles: regexes and schemas were checked at load).
    pub scorers: Vec<crate::eval::score::ScorerSpec>,
    /// `[routes.gate]`: what an evaluation must show for a candidate to pass.
    pub gate: Option<crate::eval::gate::GateSpec>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VersionConfig {
    pub name: String,
    pub upstream: String,
    pub upstream_model: Option<String>,
    pub api_key_env: Option<String>,
    pub connect_timeout_ms: Option<u64>,
    pub first_byte_timeout_ms: Option<u64>,
    pub total_timeout_ms: Option<u64>,
    pub headers: BTreeMap<String, String>,
    pub system_prompt: Option<String>,
    pub state: String,
}

/// What replaces a PII match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedactAction {
    Replace,
    Mask,
    Hash,
}

/// The PII types the redactor knows, as named in `[privacy.actions]`.
pub const PII_TYPES: [&str; 8] = [
    "email",
    "phone",
    "credit_card",
    "iban",
    "ssn",
    "ip_address",
    "mac_address",
    "secret",
];

#[derive(Clone)]
pub struct PrivacyConfig {
    pub redact: bool,
    pub actions: BTreeMap<String, RedactAction>,
    /// Extra rules: (name, pattern, action).
    pub rules: Vec<(String, String, RedactAction)>,
    /// The raw-payload key and its id, when `keep_raw` is on.
    pub raw_key: Option<([u8; 32], String)>,
    /// The store key and its id, when `encrypt_at_rest` is on.
    pub store_key: Option<([u8; 32], String)>,
}

impl std::fmt::Debug for PrivacyConfig {
    // The raw key is a secret: only its id is printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivacyConfig")
            .field("redact", &self.redact)
            .field("actions", &self.actions)
            .field("rules", &self.rules)
            .field("raw_key_id", &self.raw_key.as_ref().map(|k| &k.1))
            .field("store_key_id", &self.store_key.as_ref().map(|k| &k.1))
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct DatasetsConfig {
    pub dir: PathBuf,
}

#[derive(Debug, Clone)]
pub struct RetentionConfig {
    pub raw_days: u64,
    pub capture_days: u64,
    pub interval: Duration,
    pub batch: usize,
}

/// The longest duration a setting in seconds stands for. An `Instant` plus
/// `i64::MAX` seconds (the largest TOML integer) overflows and panics where
/// a deadline is computed; thirty years is as good as never. (Settings in
/// milliseconds stay far below the overflow.)
pub const FOREVER: Duration = Duration::from_secs(30 * 365 * 86_400);

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub max_body_bytes: u64,
    /// Bytes of request bodies in flight, all connections together.
    pub body_budget_bytes: u64,
    pub max_connections: usize,
    pub shutdown_grace: Duration,
    pub body_timeout: Duration,
    pub header_timeout: Duration,
    pub send_timeout: Duration,
    pub tls: Option<TlsFiles>,
    /// Shard threads serving connections (resolved: at least 1).
    pub workers: usize,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Clone)]
pub struct UpstreamConfig {
    /// Base URL without a trailing slash, e.g. `http://127.0.0.1:9000/v1`.
    pub base_url: String,
    pub name: String,
    pub api_key: Option<String>,
    pub connect_timeout: Duration,
    pub first_byte_timeout: Duration,
    pub total_timeout: Duration,
    pub pool_max_idle_per_host: usize,
    pub pool_idle_timeout: Duration,
    pub http2_prior_knowledge: bool,
    /// Extra trusted CA certificates (DER), read from `ca_file` at start.
    pub extra_roots: Vec<Vec<u8>>,
}

impl std::fmt::Debug for UpstreamConfig {
    // The API key is a secret: it must never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamConfig")
            .field("base_url", &self.base_url)
            .field("name", &self.name)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("connect_timeout", &self.connect_timeout)
            .field("first_byte_timeout", &self.first_byte_timeout)
            .field("total_timeout", &self.total_timeout)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct CaptureConfig {
    pub db: PathBuf,
    pub queue_capacity: usize,
    pub queue_max_bytes: u64,
    pub batch_max: usize,
    pub flush_interval: Duration,
    pub max_body_bytes: usize,
    /// `None` means: use (or create) the secret kept in the database.
    pub user_hash_secret: Option<Vec<u8>>,
    pub user_hash_key_id: String,
    /// (key id, secret) of keys used before a rotation.
    pub previous_user_hash_keys: Vec<(String, Vec<u8>)>,
}

#[derive(Clone, Default)]
pub struct AdminConfig {
    pub token: Option<String>,
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    pub pass_client_key: bool,
    pub keys: Vec<ClientKey>,
}

#[derive(Debug, Clone)]
pub struct ClientKey {
    pub name: String,
    pub sha256: [u8; 32],
    pub may_pin: bool,
    pub segment: Option<String>,
}

impl Config {
    /// Loads the file (if any), applies `FLYWHEEL_*` overrides from `env`, then
    /// the flags, and validates the result. `env` is passed in so tests need not
    /// touch the process environment.
    pub fn load(
        path: Option<&Path>,
        env: &BTreeMap<String, String>,
        flags: &Overrides,
    ) -> Result<Config, ConfigError> {
        let mut table = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError::Parse {
                        path: path.display().to_string(),
                        message: e.to_string(),
                    })?
            }
            None => toml::Table::new(),
        };
        let ignored = apply_env(&mut table, env)?;
        if !ignored.is_empty() {
            tracing::warn!(
                names = ?ignored,
                sections = ?env_vars::section_names(),
                "ignoring environment variables that start with FLYWHEEL_ but name no config key (Kubernetes service links look like this); an override is FLYWHEEL_<SECTION>_<KEY>"
            );
        }
        let raw: RawConfig =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    path: path.map_or("(environment)".into(), |p| p.display().to_string()),
                    message: e.to_string(),
                })?;
        let mut config = raw.validate(env, flags)?;
        config.source = path.map(|p| (p.to_path_buf(), flags.clone()));
        Ok(config)
    }
}
