//! Raw settings, the environment and flags in; a typed [`Config`] or the
//! [`ConfigError`] that names the key and says how to fix it out. Every
//! default and every refusal lives here. It reads the key and certificate
//! files the config names, and nothing else.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::env_vars::lookup_secret;
use super::{
    AdminConfig, AuthConfig, CaptureConfig, ClientKey, Config, DatasetsConfig, Overrides,
    PrivacyConfig, RawConfig, RawPrivacy, RawRoute, RedactAction, RetentionConfig, RouteConfig,
    ServerConfig, TlsFiles, UpstreamConfig, VersionConfig, FOREVER, PII_TYPES,
};

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

pub(super) fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

/// A setting in seconds, capped at [`FOREVER`].
fn secs(n: u64) -> Duration {
    Duration::from_secs(n).min(FOREVER)
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
        for (k, spec) in r.scorers.iter().enumerate() {
            let skey = format!("{key}.scorers[{k}]");
            spec.compile()
                .map_err(|e| invalid(&format!("{skey}.{}", e.field()), e.to_string()))?;
            if r.scorers[..k].iter().any(|o| o.name() == spec.name()) {
                return Err(invalid(
                    &format!("{skey}.name"),
                    format!(
                        "scorer `{}` is listed twice; give each its own name",
                        spec.name()
                    ),
                ));
            }
        }
        if let Some(gate) = &r.gate {
            gate.validate().map_err(|e| {
                let field = e.field();
                let text = e.to_string();
                let message = text.strip_prefix(&format!("{field}: ")).unwrap_or(&text);
                invalid(&format!("{key}.gate.{field}"), message)
            })?;
            if !r.scorers.iter().any(|s| s.name() == gate.primary) {
                let names: Vec<&str> = r.scorers.iter().map(|s| s.name()).collect();
                return Err(invalid(
                    &format!("{key}.gate.primary"),
                    if names.is_empty() {
                        format!(
                            "`{}` names no scorer: add a [[routes.scorers]] with name = \"{}\"",
                            gate.primary, gate.primary
                        )
                    } else {
                        format!(
                            "`{}` names no scorer of this route; its scorers are {}",
                            gate.primary,
                            names.join(", ")
                        )
                    },
                ));
            }
        }
        out.push(RouteConfig {
            name: r.name,
            retry_on_stable: r.retry_on_stable.unwrap_or(false),
            versions,
            scorers: r.scorers,
            gate: r.gate,
        });
    }
    Ok(out)
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
