//! Configuration in two stages: raw serde structs (TOML file, then `FLYWHEEL_*`
//! environment overrides, then command-line flags) are checked once by
//! [`RawConfig::validate`] into a typed [`Config`] the rest of the gateway trusts.
//!
//! Secrets (the upstream API key, the admin token, the user-hash secret) are only
//! ever read from environment variables named in the config, never inline.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod env_vars;
mod render;
#[cfg(test)]
mod tests;

pub(crate) use env_vars::env_names_ignored;

/// A rejected configuration: which key, and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: String, message: String },
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

/// Environment variables that start with `FLYWHEEL_` but are not config
/// overrides: secrets and CLI conveniences read by name elsewhere.
pub const RESERVED_ENV: &[&str] = &[
    "FLYWHEEL_URL",
    "FLYWHEEL_ADMIN_TOKEN",
    "FLYWHEEL_USER_HASH_SECRET",
    "FLYWHEEL_LOG",
    "FLYWHEEL_LOG_FORMAT",
    "FLYWHEEL_CONFIG",
    "FLYWHEEL_RAW_KEY",
    "FLYWHEEL_STORE_KEY",
    "FLYWHEEL_API_KEY",
];

/// The file as written. Every field is optional so that a file, the
/// environment and flags can each supply part of it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub upstream: RawUpstream,
    #[serde(default)]
    pub capture: RawCapture,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub auth: RawAuth,
    #[serde(default)]
    pub privacy: RawPrivacy,
    #[serde(default)]
    pub retention: RawRetention,
    #[serde(default)]
    pub datasets: RawDatasets,
    /// Logical models apps call, each with its versions. Seeds the registry at
    /// start (and on SIGHUP); the registry then owns each version's state.
    #[serde(default)]
    pub routes: Vec<RawRoute>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// The model name apps send, e.g. `support-bot`.
    pub name: String,
    /// Retry a failed canary call once on stable. Default false.
    pub retry_on_stable: Option<bool>,
    #[serde(default)]
    pub versions: Vec<RawVersion>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVersion {
    pub name: String,
    /// The version's upstream base URL, including /v1.
    pub upstream: String,
    /// The upstream's own model name; replaces `model` in requests.
    pub upstream_model: Option<String>,
    /// Environment variable holding this upstream's API key.
    pub api_key_env: Option<String>,
    pub connect_timeout_ms: Option<u64>,
    pub first_byte_timeout_ms: Option<u64>,
    pub total_timeout_ms: Option<u64>,
    /// Extra headers sent to this upstream.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A system message prepended to chat requests served by this version.
    pub system_prompt: Option<String>,
    /// State when first registered: `registered`, `approved` or `stable`.
    /// Default: `stable` for a route's first version, `registered` after that.
    pub state: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrivacy {
    /// Strip PII from everything written to the capture store. Default true.
    pub redact: Option<bool>,
    /// Per PII type, what replaces a match: `replace` (`<EMAIL>`), `mask`
    /// (`*******1234`) or `hash` (`<EMAIL:3f2a...>`, a keyed hash). Default replace.
    #[serde(default)]
    pub actions: BTreeMap<String, String>,
    /// Extra patterns to redact, each with a name (its placeholder) and an action.
    #[serde(default)]
    pub rules: Vec<RawRule>,
    /// Keep the unredacted request and response too, encrypted (AES-256-GCM) in a
    /// table of their own. Default false: no unredacted text ever reaches disk.
    pub keep_raw: Option<bool>,
    /// Environment variable holding the raw-payload key: 64 hex characters. Default `FLYWHEEL_RAW_KEY`.
    pub raw_key_env: Option<String>,
    /// File holding the raw-payload key (64 hex characters), instead of the environment.
    pub raw_key_file: Option<PathBuf>,
    /// Name of the key, stored with each payload so keys can be rotated. Default `k1`.
    pub raw_key_id: Option<String>,
    /// Encrypt what users wrote in the capture store itself (AES-256-GCM):
    /// request and response bodies, metadata and errors of interactions, and
    /// feedback values and metadata. Default false. Needs a key.
    pub encrypt_at_rest: Option<bool>,
    /// Environment variable holding the store key: 64 hex characters. Default `FLYWHEEL_STORE_KEY`.
    pub store_key_env: Option<String>,
    /// File holding the store key (64 hex characters), instead of the environment.
    pub store_key_file: Option<PathBuf>,
    /// Name of the store key, stored with each value. Default `s1`.
    pub store_key_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub name: String,
    pub pattern: String,
    pub action: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatasets {
    /// Directory that holds built dataset versions, one subdirectory each.
    /// Default: `<db file name without extension>-datasets` beside the database.
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    /// Days raw (unredacted, encrypted) payloads are kept; 0 keeps them forever. Default 7.
    pub raw_days: Option<u64>,
    /// Days captured interactions and their feedback are kept; 0 keeps them forever. Default 0.
    pub capture_days: Option<u64>,
    /// Seconds between retention sweeps. Default 3600.
    pub interval_secs: Option<u64>,
    /// Rows deleted per transaction, so a sweep never holds the writer for long. Default 1000.
    pub batch: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Address to listen on. Default `127.0.0.1:8080`.
    pub listen: Option<String>,
    /// Largest request body accepted, in bytes. Default 10 MiB.
    pub max_body_bytes: Option<u64>,
    /// Bytes of request bodies all connections together may hold while they
    /// are read and handled. A body reserves its declared length before it is
    /// read (or grows its share as it arrives); a request that does not fit
    /// gets 503 with `Retry-After`, counted in
    /// `flywheel_request_body_rejected_total`. At least `max_body_bytes`.
    /// Default 128 MiB (or `max_body_bytes`, if that is larger).
    pub body_budget_bytes: Option<u64>,
    /// Client connections open at once, over every transport. A connection
    /// accepted past it is closed at once and counted in
    /// `flywheel_connections_refused_total`. Default 4096.
    pub max_connections: Option<usize>,
    /// Seconds allowed on SIGTERM to finish in-flight requests and flush captures. Default 30.
    pub shutdown_grace_secs: Option<u64>,
    /// Seconds allowed to receive a request body; a client that trickles it
    /// slower gets 408 so it cannot hold a connection forever. Default 60.
    pub body_timeout_secs: Option<u64>,
    /// Seconds an HTTP/1 connection may go without starting a request (idle
    /// between requests, or trickling request headers) before it is closed.
    /// Default 30.
    pub header_timeout_secs: Option<u64>,
    /// Seconds a client may take none of a response being sent (it stopped
    /// reading) before its connection is closed, over every transport.
    /// Default 60.
    pub send_timeout_secs: Option<u64>,
    /// Threads serving client connections, each with its own event loop.
    /// Default 0: one per CPU.
    pub workers: Option<usize>,
    /// PEM certificate chain; with `tls_key`, the listener speaks TLS (HTTP/1.1 and h2 by ALPN).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    /// Base URL of the OpenAI-compatible upstream, including `/v1`. Required.
    pub url: Option<String>,
    /// Version label reported in `x-flywheel-model-version`. Default `default`.
    pub name: Option<String>,
    /// Name of the environment variable holding the upstream's API key. Unset: the
    /// client's own `Authorization` header is forwarded (unless client keys are on).
    pub api_key_env: Option<String>,
    /// TCP (and TLS) connect timeout, in milliseconds. Default 5000.
    pub connect_timeout_ms: Option<u64>,
    /// Time allowed until the upstream's response headers, in milliseconds. Default 60000.
    pub first_byte_timeout_ms: Option<u64>,
    /// Time allowed for the whole exchange including a streamed body, in milliseconds. Default 600000.
    pub total_timeout_ms: Option<u64>,
    /// Idle keep-alive connections kept per upstream host. Default 512.
    pub pool_max_idle_per_host: Option<usize>,
    /// Seconds an idle pooled connection is kept. Default 90.
    pub pool_idle_timeout_secs: Option<u64>,
    /// Speak HTTP/2 without TLS (h2c prior knowledge) to an `http://` upstream. Default false.
    pub http2_prior_knowledge: Option<bool>,
    /// PEM file of extra CA certificates to trust for `https://` upstreams (a
    /// private CA), on top of the public web roots and the system's store.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCapture {
    /// SQLite database file. Default `./flywheel.db`.
    pub db: Option<PathBuf>,
    /// Records waiting for the writer; when full, new records are dropped and counted. Default 65536.
    pub queue_capacity: Option<usize>,
    /// Bytes the records waiting for the writer may hold (bodies included),
    /// split evenly between the serving threads; past a thread's share its new
    /// records are dropped and counted. Default 256 MiB.
    pub queue_max_bytes: Option<u64>,
    /// Most records written in one transaction. Default 512.
    pub batch_max: Option<usize>,
    /// Longest the writer waits to fill a transaction after its first record,
    /// in milliseconds; 0 writes whatever is queued at once. Default 10.
    pub flush_interval_ms: Option<u64>,
    /// Largest request or response body kept in a record, in bytes (larger bodies are
    /// truncated and flagged). A non-streaming response longer than this is
    /// forwarded as it arrives rather than read whole first. Default 4 MiB.
    pub max_body_bytes: Option<usize>,
    /// Name of the environment variable holding the user-id HMAC secret. Default
    /// `FLYWHEEL_USER_HASH_SECRET`; unset there, a random secret is kept in the database.
    pub user_hash_secret_env: Option<String>,
    /// Name of the user-hash key, stored in every hash (`k1:3fa9...`) so a
    /// rotated key can be told apart. Default `k1`.
    pub user_hash_key_id: Option<String>,
    /// Keys used before a rotation, still needed to find a user's old records
    /// (`flywheel privacy forget`): `[{ id = "k0", secret_env = "OLD_SECRET" }]`.
    #[serde(default)]
    pub previous_user_hash_keys: Vec<RawPreviousKey>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPreviousKey {
    pub id: String,
    pub secret_env: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// Name of the environment variable holding the admin bearer token. Default
    /// `FLYWHEEL_ADMIN_TOKEN`; when it is unset or empty the admin API is off.
    pub token_env: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// Forward the client's bearer key upstream (only when client keys are configured). Default false.
    pub pass_client_key: Option<bool>,
    /// Client keys; when any is present, requests need one of them.
    #[serde(default)]
    pub keys: Vec<RawClientKey>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClientKey {
    /// The app this key belongs to, recorded on each interaction.
    pub name: String,
    /// Lowercase hex SHA-256 of the key (`flywheel keys hash` prints it).
    pub sha256: String,
    /// May pin a version with `x-flywheel-version` (tests, evaluations). Default false.
    pub pin: Option<bool>,
    /// The user segment of this app's calls (e.g. `enterprise`, `free`),
    /// recorded on each interaction in place of any `x-flywheel-segment`
    /// header. 1 to 64 visible characters. Default: none (the header decides).
    pub segment: Option<String>,
}

/// Command-line flags that override the file and the environment.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub upstream: Option<String>,
    pub db: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

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

/// Why `url` cannot be an upstream base URL, or `None` when it has the shape
/// every upstream address must have: `http://` or `https://`, a host, no
/// query, and no credentials. Credentials in the URL (`http://user:pass@host`)
/// are refused rather than used: they would travel in the Host header, in
/// logs and in every captured row's `upstream`, where a key read from the
/// environment never goes. The message never repeats them.
pub fn base_url_problem(url: &str) -> Option<String> {
    let example = "write e.g. http://127.0.0.1:9000/v1";
    let Ok(u) = url.trim_end_matches('/').parse::<http::Uri>() else {
        return Some(format!(
            "`{}` is not an http:// or https:// base URL; {example}",
            without_userinfo(url)
        ));
    };
    if u.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Some(format!(
            "`{}` carries credentials in the URL; remove them and name the environment variable that holds the key in api_key_env",
            without_userinfo(url)
        ));
    }
    let shaped = matches!(u.scheme_str(), Some("http") | Some("https"))
        && u.host().is_some()
        && u.query().is_none();
    (!shaped).then(|| format!("`{url}` is not an http:// or https:// base URL; {example}"))
}

/// `url` with anything between `//` and the authority's last `@` replaced
/// by `***`, for messages.
fn without_userinfo(url: &str) -> String {
    let Some(start) = url.find("//").map(|i| i + 2) else {
        return url.to_string();
    };
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    match url[start..end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..start], &url[start + at..]),
        None => url.to_string(),
    }
}

/// Whether a route or version name is usable: 1 to 64 visible ASCII characters
/// without `/` (names appear in URLs and metric labels).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_graphic() && b != b'/')
}

fn validate_routes(raw: Vec<RawRoute>) -> Result<Vec<RouteConfig>, ConfigError> {
    let mut out: Vec<RouteConfig> = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let key = format!("routes[{i}]");
        if !valid_name(&r.name) {
            return Err(invalid(
                &format!("{key}.name"),
                "must be 1 to 64 visible characters without `/`, e.g. support-bot",
            ));
        }
        if out.iter().any(|o| o.name == r.name) {
            return Err(invalid(
                &format!("{key}.name"),
                format!("route `{}` is listed twice; merge the two", r.name),
            ));
        }
        let mut versions: Vec<VersionConfig> = Vec::new();
        for (j, v) in r.versions.into_iter().enumerate() {
            let vkey = format!("{key}.versions[{j}]");
            if !valid_name(&v.name) {
                return Err(invalid(
                    &format!("{vkey}.name"),
                    "must be 1 to 64 visible characters without `/`, e.g. v2",
                ));
            }
            if versions.iter().any(|o| o.name == v.name) {
                return Err(invalid(
                    &format!("{vkey}.name"),
                    format!("version `{}` is listed twice", v.name),
                ));
            }
            if let Some(problem) = base_url_problem(&v.upstream) {
                return Err(invalid(&format!("{vkey}.upstream"), problem));
            }
            let state = match v.state.as_deref() {
                None if versions.is_empty() => "stable".to_string(),
                None => "registered".to_string(),
                Some(s @ ("registered" | "approved" | "stable")) => s.to_string(),
                Some(other) => {
                    return Err(invalid(
                        &format!("{vkey}.state"),
                        format!("`{other}` cannot be set from the config; use registered, approved or stable (canaries start with `flywheel rollout start`)"),
                    ))
                }
            };
            if state == "stable" && versions.iter().any(|o| o.state == "stable") {
                return Err(invalid(
                    &format!("{vkey}.state"),
                    "a route has one stable version; make the others registered or approved",
                ));
            }
            versions.push(VersionConfig {
                name: v.name,
                upstream: v.upstream.trim_end_matches('/').to_string(),
                upstream_model: v.upstream_model,
                api_key_env: v.api_key_env,
                connect_timeout_ms: v.connect_timeout_ms,
                first_byte_timeout_ms: v.first_byte_timeout_ms,
                total_timeout_ms: v.total_timeout_ms,
                headers: v.headers,
                system_prompt: v.system_prompt,
                state,
            });
        }
        out.push(RouteConfig {
            name: r.name,
            retry_on_stable: r.retry_on_stable.unwrap_or(false),
            versions,
        });
    }
    Ok(out)
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

/// A setting in seconds, capped at [`FOREVER`].
fn secs(n: u64) -> Duration {
    Duration::from_secs(n).min(FOREVER)
}

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

/// Maps `FLYWHEEL_<SECTION>_<KEY>=value` onto `[section] key = value`. Section
/// names contain no underscore, so the first one splits section from key. Values
/// are read as TOML when they parse (numbers, booleans), else as strings. A
/// name close to a real one is refused as a typo; other `FLYWHEEL_*` names
/// (Kubernetes service links, for one) are returned for a warning.
fn apply_env(
    table: &mut toml::Table,
    env: &BTreeMap<String, String>,
) -> Result<Vec<String>, ConfigError> {
    let secrets = env_vars::secret_env_names(table, env);
    let ignored = env_names_ignored(env, &secrets)?;
    for (name, value) in env {
        let env_vars::EnvName::Override { section, key } = env_vars::classify(name) else {
            continue;
        };
        let parsed = format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.clone()));
        let entry = table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match entry {
            toml::Value::Table(t) => {
                t.insert(key, parsed);
            }
            _ => return Err(invalid(&section, "must be a table")),
        }
    }
    Ok(ignored)
}

fn lookup_secret(env: &BTreeMap<String, String>, var: &str) -> Option<String> {
    env.get(var).filter(|v| !v.is_empty()).cloned()
}

impl RawConfig {
    pub fn validate(
        self,
        env: &BTreeMap<String, String>,
        flags: &Overrides,
    ) -> Result<Config, ConfigError> {
        let s = self.server;
        let listen_text = flags
            .listen
            .clone()
            .or(s.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            invalid(
                "server.listen",
                format!("`{listen_text}` is not an address; write host:port, e.g. 127.0.0.1:8080 or [::]:8080"),
            )
        })?;
        let max_body_bytes = s.max_body_bytes.unwrap_or(10 * 1024 * 1024);
        if max_body_bytes == 0 {
            return Err(invalid("server.max_body_bytes", "must be greater than 0"));
        }
        let tls = match (
            flags.tls_cert.clone().or(s.tls_cert),
            flags.tls_key.clone().or(s.tls_key),
        ) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid(
                    "server.tls_key",
                    "tls_cert is set but tls_key is not; set both or neither",
                ))
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "server.tls_cert",
                    "tls_key is set but tls_cert is not; set both or neither",
                ))
            }
        };
        let workers = match s.workers.unwrap_or(0) {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n if n > 1024 => {
                return Err(invalid(
                    "server.workers",
                    "must be at most 1024 (0 means one per CPU)",
                ))
            }
            n => n,
        };
        let body_budget_bytes = match s.body_budget_bytes {
            None => max_body_bytes.max(128 << 20),
            Some(n) if n < max_body_bytes => {
                return Err(invalid(
                    "server.body_budget_bytes",
                    format!("is smaller than server.max_body_bytes ({max_body_bytes}), so the largest body allowed could never be read; raise it or lower max_body_bytes"),
                ))
            }
            Some(n) => n,
        };
        let max_connections = match s.max_connections.unwrap_or(4096) {
            0 => return Err(invalid("server.max_connections", "must be greater than 0")),
            n => n,
        };
        let server = ServerConfig {
            listen,
            max_body_bytes,
            body_budget_bytes,
            max_connections,
            shutdown_grace: secs(s.shutdown_grace_secs.unwrap_or(30)),
            body_timeout: secs(s.body_timeout_secs.unwrap_or(60).max(1)),
            header_timeout: secs(s.header_timeout_secs.unwrap_or(30).max(1)),
            send_timeout: secs(s.send_timeout_secs.unwrap_or(60).max(1)),
            tls,
            workers,
        };

        let u = self.upstream;
        let url = flags.upstream.clone().or(u.url).ok_or_else(|| {
            invalid(
                "upstream.url",
                "no upstream is configured; pass --upstream http://host:port/v1, set [upstream] url in the config file, or FLYWHEEL_UPSTREAM_URL",
            )
        })?;
        let base_url = url.trim_end_matches('/').to_string();
        if let Some(problem) = base_url_problem(&base_url) {
            return Err(invalid("upstream.url", problem));
        }
        let api_key = match u.api_key_env {
            Some(var) => Some(lookup_secret(env, &var).ok_or_else(|| {
                invalid(
                    "upstream.api_key_env",
                    format!("environment variable {var} is not set or empty; export it or remove api_key_env"),
                )
            })?),
            None => None,
        };
        let positive = |key: &str, v: Option<u64>, default: u64| -> Result<Duration, ConfigError> {
            match v.unwrap_or(default) {
                0 => Err(invalid(key, "must be greater than 0")),
                ms => Ok(Duration::from_millis(ms)),
            }
        };
        let name = u.name.unwrap_or_else(|| "default".into());
        if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                "upstream.name",
                "must be 1 to 64 visible ASCII characters",
            ));
        }
        let upstream = UpstreamConfig {
            base_url,
            name,
            api_key,
            connect_timeout: positive("upstream.connect_timeout_ms", u.connect_timeout_ms, 5_000)?,
            first_byte_timeout: positive(
                "upstream.first_byte_timeout_ms",
                u.first_byte_timeout_ms,
                60_000,
            )?,
            total_timeout: positive("upstream.total_timeout_ms", u.total_timeout_ms, 600_000)?,
            pool_max_idle_per_host: u.pool_max_idle_per_host.unwrap_or(512),
            pool_idle_timeout: secs(u.pool_idle_timeout_secs.unwrap_or(90)),
            http2_prior_knowledge: u.http2_prior_knowledge.unwrap_or(false),
            extra_roots: match &u.ca_file {
                None => Vec::new(),
                Some(path) => {
                    use rustls_pki_types::pem::PemObject;
                    let certs: Vec<Vec<u8>> = rustls_pki_types::CertificateDer::pem_file_iter(path)
                        .and_then(|it| it.map(|c| c.map(|c| c.to_vec())).collect::<Result<_, _>>())
                        .map_err(|e| {
                            invalid(
                                "upstream.ca_file",
                                format!("cannot read certificates from {}: {e}", path.display()),
                            )
                        })?;
                    if certs.is_empty() {
                        return Err(invalid(
                            "upstream.ca_file",
                            format!("{} holds no PEM certificate", path.display()),
                        ));
                    }
                    certs
                }
            },
        };
        if upstream.first_byte_timeout > upstream.total_timeout {
            return Err(invalid(
                "upstream.first_byte_timeout_ms",
                "is larger than upstream.total_timeout_ms; the total must cover the first byte",
            ));
        }

        let c = self.capture;
        let queue_capacity = c.queue_capacity.unwrap_or(65_536);
        if queue_capacity == 0 {
            return Err(invalid("capture.queue_capacity", "must be greater than 0"));
        }
        let queue_max_bytes = c.queue_max_bytes.unwrap_or(256 << 20);
        if queue_max_bytes < 1 << 20 {
            return Err(invalid(
                "capture.queue_max_bytes",
                "must be at least 1048576 (1 MiB)",
            ));
        }
        let batch_max = c.batch_max.unwrap_or(512);
        if batch_max == 0 || batch_max > 100_000 {
            return Err(invalid("capture.batch_max", "must be between 1 and 100000"));
        }
        let secret_var = c
            .user_hash_secret_env
            .unwrap_or_else(|| "FLYWHEEL_USER_HASH_SECRET".into());
        let capture = CaptureConfig {
            db: flags
                .db
                .clone()
                .or(c.db)
                .unwrap_or_else(|| PathBuf::from("./flywheel.db")),
            queue_capacity,
            queue_max_bytes,
            batch_max,
            flush_interval: Duration::from_millis(c.flush_interval_ms.unwrap_or(10).min(10_000)),
            max_body_bytes: c.max_body_bytes.unwrap_or(4 * 1024 * 1024),
            user_hash_secret: lookup_secret(env, &secret_var).map(String::into_bytes),
            user_hash_key_id: {
                let id = c.user_hash_key_id.unwrap_or_else(|| "k1".into());
                if id.is_empty()
                    || id.len() > 16
                    || !id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    return Err(invalid(
                        "capture.user_hash_key_id",
                        "must be 1 to 16 letters, digits, - or _",
                    ));
                }
                id
            },
            previous_user_hash_keys: {
                let mut keys = Vec::new();
                for (i, k) in c.previous_user_hash_keys.into_iter().enumerate() {
                    let secret = lookup_secret(env, &k.secret_env).ok_or_else(|| {
                        invalid(
                            &format!("capture.previous_user_hash_keys[{i}].secret_env"),
                            format!("environment variable {} is not set; export the old secret or remove the entry", k.secret_env),
                        )
                    })?;
                    keys.push((k.id, secret.into_bytes()));
                }
                keys
            },
        };

        let admin = AdminConfig {
            token: lookup_secret(
                env,
                self.admin
                    .token_env
                    .as_deref()
                    .unwrap_or("FLYWHEEL_ADMIN_TOKEN"),
            ),
        };

        let mut keys = Vec::new();
        for (i, k) in self.auth.keys.into_iter().enumerate() {
            let key = format!("auth.keys[{i}].sha256");
            let sha256 = parse_sha256_hex(&k.sha256).ok_or_else(|| {
                invalid(&key, "must be 64 hex characters: the SHA-256 of the key, as printed by `flywheel keys hash`")
            })?;
            if k.name.is_empty() {
                return Err(invalid(
                    &format!("auth.keys[{i}].name"),
                    "must not be empty",
                ));
            }
            if let Some(seg) = &k.segment {
                if !valid_name(seg) {
                    return Err(invalid(
                        &format!("auth.keys[{i}].segment"),
                        "must be 1 to 64 visible characters without `/`, e.g. \"enterprise\"",
                    ));
                }
            }
            // The segment belongs to the app: every key of one app names the same.
            if let Some(other) = keys.iter().find(|o: &&ClientKey| o.name == k.name) {
                if other.segment != k.segment {
                    return Err(invalid(
                        &format!("auth.keys[{i}].segment"),
                        format!("app `{}` has another key with a different segment; give its keys one segment", k.name),
                    ));
                }
            }
            keys.push(ClientKey {
                name: k.name,
                sha256,
                may_pin: k.pin.unwrap_or(false),
                segment: k.segment,
            });
        }
        let auth = AuthConfig {
            pass_client_key: self.auth.pass_client_key.unwrap_or(false),
            keys,
        };
        let privacy = validate_privacy(self.privacy, env)?;
        let r = self.retention;
        let retention = RetentionConfig {
            raw_days: r.raw_days.unwrap_or(7),
            capture_days: r.capture_days.unwrap_or(0),
            interval: secs(r.interval_secs.unwrap_or(3600).max(1)),
            batch: r.batch.unwrap_or(1000).clamp(1, 100_000),
        };
        let datasets = DatasetsConfig {
            dir: self.datasets.dir.unwrap_or_else(|| {
                let stem = capture.db.file_stem().unwrap_or_default().to_string_lossy();
                capture.db.with_file_name(format!("{stem}-datasets"))
            }),
        };
        let routes = validate_routes(self.routes)?;
        Ok(Config {
            server,
            upstream,
            capture,
            admin,
            auth,
            privacy,
            retention,
            datasets,
            routes,
            source: None,
        })
    }
}

fn parse_action(key: &str, text: &str) -> Result<RedactAction, ConfigError> {
    match text {
        "replace" => Ok(RedactAction::Replace),
        "mask" => Ok(RedactAction::Mask),
        "hash" => Ok(RedactAction::Hash),
        other => Err(invalid(
            key,
            format!("`{other}` is not an action; use replace, mask or hash"),
        )),
    }
}

fn validate_privacy(
    p: RawPrivacy,
    env: &BTreeMap<String, String>,
) -> Result<PrivacyConfig, ConfigError> {
    let mut actions = BTreeMap::new();
    for (kind, action) in p.actions {
        if !PII_TYPES.contains(&kind.as_str()) {
            return Err(invalid(
                &format!("privacy.actions.{kind}"),
                format!("unknown PII type; the types are {}", PII_TYPES.join(", ")),
            ));
        }
        let key = format!("privacy.actions.{kind}");
        actions.insert(kind, parse_action(&key, &action)?);
    }
    let mut rules = Vec::new();
    for (i, rule) in p.rules.into_iter().enumerate() {
        let key = format!("privacy.rules[{i}]");
        let name_ok = !rule.name.is_empty()
            && rule.name.len() <= 32
            && rule
                .name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if !name_ok {
            return Err(invalid(
                &format!("{key}.name"),
                "must be 1 to 32 characters of A-Z, 0-9 and _ (it becomes the placeholder <NAME>)",
            ));
        }
        if let Err(e) = regex::Regex::new(&rule.pattern) {
            return Err(invalid(
                &format!("{key}.pattern"),
                format!("is not a valid regular expression: {e}"),
            ));
        }
        let action = match &rule.action {
            Some(a) => parse_action(&format!("{key}.action"), a)?,
            None => RedactAction::Replace,
        };
        rules.push((rule.name, rule.pattern, action));
    }
    let raw_key = load_key(
        env,
        KeySetting {
            on: p.keep_raw.unwrap_or(false),
            section: "privacy.keep_raw",
            what: "the raw-payload key",
            env_key: "privacy.raw_key_env",
            env_var: p.raw_key_env.as_deref().unwrap_or("FLYWHEEL_RAW_KEY"),
            file_key: "privacy.raw_key_file",
            file: p.raw_key_file.as_deref(),
            id_key: "privacy.raw_key_id",
            id: p.raw_key_id.as_deref().unwrap_or("k1"),
        },
    )?;
    let store_key = load_key(
        env,
        KeySetting {
            on: p.encrypt_at_rest.unwrap_or(false),
            section: "privacy.encrypt_at_rest",
            what: "the store key",
            env_key: "privacy.store_key_env",
            env_var: p.store_key_env.as_deref().unwrap_or("FLYWHEEL_STORE_KEY"),
            file_key: "privacy.store_key_file",
            file: p.store_key_file.as_deref(),
            id_key: "privacy.store_key_id",
            id: p.store_key_id.as_deref().unwrap_or("s1"),
        },
    )?;
    Ok(PrivacyConfig {
        redact: p.redact.unwrap_or(true),
        actions,
        rules,
        raw_key,
        store_key,
    })
}

/// Where a setting that needs an AES-256 key finds it, and the config keys
/// to name when it cannot.
struct KeySetting<'a> {
    on: bool,
    section: &'a str,
    what: &'a str,
    env_key: &'a str,
    env_var: &'a str,
    file_key: &'a str,
    file: Option<&'a Path>,
    id_key: &'a str,
    id: &'a str,
}

/// The key (from its file or environment variable) and its id, when the
/// setting is on.
fn load_key(
    env: &BTreeMap<String, String>,
    k: KeySetting<'_>,
) -> Result<Option<([u8; 32], String)>, ConfigError> {
    if !k.on {
        return Ok(None);
    }
    let text = match k.file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| invalid(k.file_key, format!("cannot read {}: {e}", path.display())))?,
        None => lookup_secret(env, k.env_var).ok_or_else(|| {
            invalid(
                k.section,
                format!(
                    "{} needs a key: set {} to 64 hex characters (e.g. `openssl rand -hex 32`) or {}",
                    k.section.rsplit('.').next().unwrap_or(k.section),
                    k.env_var,
                    k.file_key
                ),
            )
        })?,
    };
    let key = parse_sha256_hex(&text).ok_or_else(|| {
        invalid(
            k.env_key,
            format!(
                "{} must be 64 hex characters (32 bytes), e.g. from `openssl rand -hex 32`",
                k.what
            ),
        )
    })?;
    if k.id.is_empty() || k.id.len() > 32 {
        return Err(invalid(k.id_key, "must be 1 to 32 characters"));
    }
    Ok(Some((key, k.id.to_string())))
}

/// Parses 64 hex characters into 32 bytes.
pub fn parse_sha256_hex(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in text.as_bytes().chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}
