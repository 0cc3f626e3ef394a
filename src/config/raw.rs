//! What a config file deserialises into: every field optional, unknown keys
//! refused, each documented with its unit and default. Also the command-line
//! flags that override the file. Nothing here checks a value or fills in a
//! default: both are `validate.rs`'s job, so they live in one place.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

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
    /// How evaluations score this route's answers.
    #[serde(default)]
    pub scorers: Vec<crate::eval::score::ScorerSpec>,
    /// The evaluation gate a candidate of this route must pass.
    pub gate: Option<crate::eval::gate::GateSpec>,
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
