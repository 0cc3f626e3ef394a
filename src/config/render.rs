//! The effective configuration as TOML, for `flywheel config`: every key
//! with the value the gateway would run with (defaults, file, `FLYWHEEL_*`
//! overrides and flags applied), in the file's layout. Secrets are never
//! printed: a leading comment says which are set, and their keys are left
//! out. (The `Debug` form this replaces printed the user-hash secret's bytes.)

use std::time::Duration;

use toml::{Table, Value};

use super::{Config, RedactAction};

fn secs(d: Duration) -> Value {
    Value::Integer(d.as_secs() as i64)
}

fn ms(d: Duration) -> Value {
    Value::Integer(d.as_millis() as i64)
}

fn int(n: impl TryInto<i64>) -> Value {
    Value::Integer(n.try_into().unwrap_or(i64::MAX))
}

fn text(s: impl ToString) -> Value {
    Value::String(s.to_string())
}

fn action(a: RedactAction) -> Value {
    text(match a {
        RedactAction::Replace => "replace",
        RedactAction::Mask => "mask",
        RedactAction::Hash => "hash",
    })
}

fn table<const N: usize>(pairs: [(&str, Value); N]) -> Table {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

impl Config {
    /// The effective configuration as TOML (see the module comment).
    pub fn to_toml(&self) -> String {
        let s = &self.server;
        let mut server = table([
            ("listen", text(s.listen)),
            ("workers", int(s.workers)),
            ("max_body_bytes", int(s.max_body_bytes)),
            ("body_budget_bytes", int(s.body_budget_bytes)),
            ("max_connections", int(s.max_connections)),
            ("shutdown_grace_secs", secs(s.shutdown_grace)),
            ("body_timeout_secs", secs(s.body_timeout)),
            ("header_timeout_secs", secs(s.header_timeout)),
            ("send_timeout_secs", secs(s.send_timeout)),
        ]);
        if let Some(tls) = &s.tls {
            server.insert("tls_cert".into(), text(tls.cert.display()));
            server.insert("tls_key".into(), text(tls.key.display()));
        }
        let u = &self.upstream;
        let upstream = table([
            ("url", text(&u.base_url)),
            ("name", text(&u.name)),
            ("connect_timeout_ms", ms(u.connect_timeout)),
            ("first_byte_timeout_ms", ms(u.first_byte_timeout)),
            ("total_timeout_ms", ms(u.total_timeout)),
            ("pool_max_idle_per_host", int(u.pool_max_idle_per_host)),
            ("pool_idle_timeout_secs", secs(u.pool_idle_timeout)),
            (
                "http2_prior_knowledge",
                Value::Boolean(u.http2_prior_knowledge),
            ),
        ]);
        let c = &self.capture;
        let capture = table([
            ("db", text(c.db.display())),
            ("queue_capacity", int(c.queue_capacity)),
            ("queue_max_bytes", int(c.queue_max_bytes)),
            ("batch_max", int(c.batch_max)),
            ("flush_interval_ms", ms(c.flush_interval)),
            ("max_body_bytes", int(c.max_body_bytes)),
            ("user_hash_key_id", text(&c.user_hash_key_id)),
        ]);
        let keys: Vec<Value> = (self.auth.keys.iter())
            .map(|k| {
                let mut t = table([
                    ("name", text(&k.name)),
                    ("sha256", text(crate::crypto::hex(&k.sha256))),
                    ("pin", Value::Boolean(k.may_pin)),
                ]);
                if let Some(seg) = &k.segment {
                    t.insert("segment".into(), text(seg));
                }
                Value::Table(t)
            })
            .collect();
        let auth = table([
            ("pass_client_key", Value::Boolean(self.auth.pass_client_key)),
            ("keys", Value::Array(keys)),
        ]);
        let p = &self.privacy;
        let mut privacy = table([
            ("redact", Value::Boolean(p.redact)),
            ("keep_raw", Value::Boolean(p.raw_key.is_some())),
            ("encrypt_at_rest", Value::Boolean(p.store_key.is_some())),
            (
                "actions",
                Value::Table(
                    p.actions
                        .iter()
                        .map(|(k, a)| (k.clone(), action(*a)))
                        .collect(),
                ),
            ),
        ]);
        if let Some((_, id)) = &p.raw_key {
            privacy.insert("raw_key_id".into(), text(id));
        }
        if let Some((_, id)) = &p.store_key {
            privacy.insert("store_key_id".into(), text(id));
        }
        let rules: Vec<Value> = (p.rules.iter())
            .map(|(name, pattern, a)| {
                Value::Table(table([
                    ("name", text(name)),
                    ("pattern", text(pattern)),
                    ("action", action(*a)),
                ]))
            })
            .collect();
        privacy.insert("rules".into(), Value::Array(rules));
        let r = &self.retention;
        let retention = table([
            ("raw_days", int(r.raw_days)),
            ("capture_days", int(r.capture_days)),
            ("interval_secs", secs(r.interval)),
            ("batch", int(r.batch)),
        ]);
        let datasets = table([("dir", text(self.datasets.dir.display()))]);
        let routes: Vec<Value> = (self.routes.iter())
            .map(|route| {
                let versions = (route.versions.iter())
                    .map(|v| {
                        let mut t = table([
                            ("name", text(&v.name)),
                            ("upstream", text(&v.upstream)),
                            ("state", text(&v.state)),
                        ]);
                        let optional = [
                            ("upstream_model", v.upstream_model.clone().map(text)),
                            ("api_key_env", v.api_key_env.clone().map(text)),
                            ("connect_timeout_ms", v.connect_timeout_ms.map(int)),
                            ("first_byte_timeout_ms", v.first_byte_timeout_ms.map(int)),
                            ("total_timeout_ms", v.total_timeout_ms.map(int)),
                            ("system_prompt", v.system_prompt.clone().map(text)),
                        ];
                        for (k, value) in optional {
                            if let Some(value) = value {
                                t.insert(k.into(), value);
                            }
                        }
                        if !v.headers.is_empty() {
                            let headers = v.headers.iter().map(|(k, h)| (k.clone(), text(h)));
                            t.insert("headers".into(), Value::Table(headers.collect()));
                        }
                        Value::Table(t)
                    })
                    .collect();
                let mut t = table([
                    ("name", text(&route.name)),
                    ("retry_on_stable", Value::Boolean(route.retry_on_stable)),
                    ("versions", Value::Array(versions)),
                ]);
                let scorers: Vec<Value> = (route.scorers.iter())
                    .filter_map(|sc| Value::try_from(sc).ok())
                    .collect();
                if !scorers.is_empty() {
                    t.insert("scorers".into(), Value::Array(scorers));
                }
                if let Some(gate) = route.gate.as_ref().and_then(|g| Value::try_from(g).ok()) {
                    t.insert("gate".into(), gate);
                }
                Value::Table(t)
            })
            .collect();
        let mut all = table([
            ("server", Value::Table(server)),
            ("upstream", Value::Table(upstream)),
            ("capture", Value::Table(capture)),
            ("auth", Value::Table(auth)),
            ("privacy", Value::Table(privacy)),
            ("retention", Value::Table(retention)),
            ("datasets", Value::Table(datasets)),
        ]);
        if !routes.is_empty() {
            all.insert("routes".into(), Value::Array(routes));
        }
        let set = |on: bool| if on { "set" } else { "not set" };
        let header = format!(
            "# The effective configuration (defaults, file, FLYWHEEL_* variables and flags).\n\
             # Secrets are not shown: admin token {}, upstream api key {}, user-hash secret {}\n\
             # ({} previous), raw-payload key {}, store key {}.\n\n",
            set(self.admin.token.is_some()),
            set(self.upstream.api_key.is_some()),
            if c.user_hash_secret.is_some() {
                "set"
            } else {
                "kept in the database"
            },
            c.previous_user_hash_keys.len(),
            set(p.raw_key.is_some()),
            set(p.store_key.is_some()),
        );
        header + &toml::to_string(&all).unwrap_or_default()
    }
}
