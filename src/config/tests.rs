use super::env_vars::env_names_ignored;
use super::*;
use std::collections::BTreeSet;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load_str(text: &str, env_pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.toml");
    std::fs::write(&path, text).unwrap();
    Config::load(Some(&path), &env(env_pairs), &Overrides::default())
}

fn err_text(r: Result<Config, ConfigError>) -> String {
    r.expect_err("config should be rejected").to_string()
}

#[test]
fn zero_config_needs_only_an_upstream() {
    let flags = Overrides {
        upstream: Some("http://127.0.0.1:9000/v1/".into()),
        ..Default::default()
    };
    let c = Config::load(None, &env(&[]), &flags).unwrap();
    assert_eq!(c.upstream.base_url, "http://127.0.0.1:9000/v1");
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.server.max_body_bytes, 10 * 1024 * 1024);
    assert_eq!(c.upstream.name, "default");
    assert!(c.admin.token.is_none());
}

#[test]
fn missing_upstream_says_how_to_fix() {
    let msg = err_text(Config::load(None, &env(&[]), &Overrides::default()));
    assert!(
        msg.contains("upstream.url") && msg.contains("--upstream"),
        "{msg}"
    );
}

#[test]
fn the_example_config_file_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/flywheel.toml");
    let c = Config::load(Some(&path), &env(&[]), &Overrides::default()).unwrap();
    assert!(c.upstream.base_url.starts_with("http"));
}

#[test]
fn unknown_key_is_named() {
    let msg = err_text(load_str(
        "[upstream]\nurl = \"http://a/v1\"\nurll = 1\n",
        &[],
    ));
    assert!(msg.contains("urll"), "{msg}");
}

#[test]
fn bad_listen_address() {
    let msg = err_text(load_str(
        "[server]\nlisten = \"localhost\"\n[upstream]\nurl = \"http://a/v1\"\n",
        &[],
    ));
    assert!(
        msg.contains("server.listen") && msg.contains("host:port"),
        "{msg}"
    );
}

#[test]
fn bad_upstream_scheme() {
    let msg = err_text(load_str("[upstream]\nurl = \"ftp://a/v1\"\n", &[]));
    assert!(msg.contains("upstream.url"), "{msg}");
}

/// Credentials in an upstream URL would travel in the Host header and be
/// logged and stored with every row: they are refused, and the message
/// points to `api_key_env` without repeating the password.
#[test]
fn credentials_in_an_upstream_url_are_refused_without_being_repeated() {
    for url in [
        "http://user:hunter2pass@10.0.0.5:8000/v1",
        "https://hunter2pass@api.example.com/v1",
    ] {
        let msg = err_text(load_str(&format!("[upstream]\nurl = \"{url}\"\n"), &[]));
        assert!(
            msg.contains("upstream.url") && msg.contains("api_key_env"),
            "{msg}"
        );
        assert!(!msg.contains("hunter2pass"), "{msg}");
        let flags = Overrides {
            upstream: Some(url.into()),
            ..Default::default()
        };
        let msg = err_text(Config::load(None, &env(&[]), &flags));
        assert!(
            !msg.contains("hunter2pass") && msg.contains("api_key_env"),
            "{msg}"
        );
    }
    let routed = "[upstream]\nurl = \"http://a/v1\"\n[[routes]]\nname = \"r\"\n\
        [[routes.versions]]\nname = \"v1\"\nupstream = \"http://u:hunter2pass@b/v1\"\n";
    let msg = err_text(load_str(routed, &[]));
    assert!(
        msg.contains("routes[0].versions[0].upstream") && !msg.contains("hunter2pass"),
        "{msg}"
    );
    // An `@` in the path is not userinfo.
    assert!(base_url_problem("http://10.0.0.5:8000/v1/@models").is_none());
}

#[test]
fn encryption_at_rest_needs_a_key_and_says_where() {
    let text = "[upstream]\nurl = \"http://a/v1\"\n[privacy]\nencrypt_at_rest = true\n";
    let msg = err_text(load_str(text, &[]));
    assert!(
        msg.contains("privacy.encrypt_at_rest") && msg.contains("FLYWHEEL_STORE_KEY"),
        "{msg}"
    );
    let msg = err_text(load_str(text, &[("FLYWHEEL_STORE_KEY", "abc")]));
    assert!(msg.contains("64 hex"), "{msg}");
    let key = "ab".repeat(32);
    let c = load_str(text, &[("FLYWHEEL_STORE_KEY", key.as_str())]).unwrap();
    assert_eq!(
        c.privacy.store_key.as_ref().map(|k| k.1.as_str()),
        Some("s1")
    );
    assert!(!format!("{c:?}").contains(&key), "the key is never printed");
}

#[test]
fn zero_timeout_rejected() {
    let msg = err_text(load_str(
        "[upstream]\nurl = \"http://a/v1\"\nconnect_timeout_ms = 0\n",
        &[],
    ));
    assert!(msg.contains("upstream.connect_timeout_ms"), "{msg}");
}

#[test]
fn first_byte_longer_than_total_rejected() {
    let msg = err_text(load_str(
        "[upstream]\nurl = \"http://a/v1\"\nfirst_byte_timeout_ms = 10\ntotal_timeout_ms = 5\n",
        &[],
    ));
    assert!(msg.contains("first_byte_timeout_ms"), "{msg}");
}

#[test]
fn api_key_env_must_exist() {
    let text = "[upstream]\nurl = \"http://a/v1\"\napi_key_env = \"MY_KEY\"\n";
    let msg = err_text(load_str(text, &[]));
    assert!(msg.contains("MY_KEY"), "{msg}");
    let c = load_str(text, &[("MY_KEY", "sk-test")]).unwrap();
    assert_eq!(c.upstream.api_key.as_deref(), Some("sk-test"));
    assert!(
        !format!("{c:?}").contains("sk-test"),
        "secrets must not be printed"
    );
}

#[test]
fn tls_needs_both_files() {
    let msg = err_text(load_str(
        "[server]\ntls_cert = \"a.pem\"\n[upstream]\nurl = \"http://a/v1\"\n",
        &[],
    ));
    assert!(msg.contains("tls_key"), "{msg}");
}

#[test]
fn client_key_hash_must_be_hex() {
    let msg = err_text(load_str(
        "[upstream]\nurl = \"http://a/v1\"\n[[auth.keys]]\nname = \"app\"\nsha256 = \"xyz\"\n",
        &[],
    ));
    assert!(
        msg.contains("auth.keys[0].sha256") && msg.contains("keys hash"),
        "{msg}"
    );
}

#[test]
fn env_overrides_file_and_flags_override_env() {
    let c = load_str(
        "[upstream]\nurl = \"http://file/v1\"\n[capture]\nqueue_capacity = 10\n",
        &[
            ("FLYWHEEL_UPSTREAM_URL", "http://env/v1"),
            ("FLYWHEEL_CAPTURE_QUEUE_CAPACITY", "99"),
            ("FLYWHEEL_ADMIN_TOKEN", "secret"),
        ],
    )
    .unwrap();
    assert_eq!(c.upstream.base_url, "http://env/v1");
    assert_eq!(c.capture.queue_capacity, 99);
    assert_eq!(c.admin.token.as_deref(), Some("secret"));

    let flags = Overrides {
        upstream: Some("http://flag/v1".into()),
        ..Default::default()
    };
    let c = Config::load(
        None,
        &env(&[("FLYWHEEL_UPSTREAM_URL", "http://env/v1")]),
        &flags,
    )
    .unwrap();
    assert_eq!(c.upstream.base_url, "http://flag/v1");
}

#[test]
fn unknown_env_section_rejected() {
    let msg = err_text(load_str(
        "[upstream]\nurl = \"http://a/v1\"\n",
        &[("FLYWHEEL_UPSTRAEM_URL", "x")],
    ));
    assert!(
        msg.contains("FLYWHEEL_UPSTRAEM_URL")
            && msg.contains("did you mean FLYWHEEL_UPSTREAM_URL?"),
        "{msg}"
    );
}

#[test]
fn unknown_env_key_rejected() {
    let msg = err_text(load_str(
        "[upstream]\nurl = \"http://a/v1\"\n",
        &[("FLYWHEEL_SERVER_LISTN", "x")],
    ));
    assert!(
        msg.contains("did you mean FLYWHEEL_SERVER_LISTEN?"),
        "{msg}"
    );
}

/// Kubernetes gives every pod of a namespace variables for each Service in
/// it, named after the Service: a Service `flywheel` (or `flywheel-server`,
/// `flywheel-admin`, `flywheel-postgres`) yields names that look like
/// overrides but name no key. None of them may stop the start or change a
/// setting.
#[test]
fn kubernetes_service_links_do_not_stop_the_start() {
    let mut links = Vec::new();
    for service in [
        "",
        "SERVER_",
        "ADMIN_",
        "CAPTURE_",
        "POSTGRES_",
        "UPSTREAM_",
    ] {
        for (suffix, value) in [
            ("SERVICE_HOST", "10.96.0.12"),
            ("SERVICE_PORT", "8080"),
            ("SERVICE_PORT_HTTP", "8080"),
            ("SERVICE_PORT_ADMIN_API", "9090"),
            ("PORT", "tcp://10.96.0.12:8080"),
            ("PORT_8080_TCP", "tcp://10.96.0.12:8080"),
            ("PORT_8080_TCP_ADDR", "10.96.0.12"),
            ("PORT_8080_TCP_PORT", "8080"),
            ("PORT_8080_TCP_PROTO", "tcp"),
            ("PORT_5353_UDP_PROTO", "udp"),
        ] {
            links.push((format!("FLYWHEEL_{service}{suffix}"), value));
        }
    }
    let pairs: Vec<(&str, &str)> = links.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let c = load_str(UP, &pairs).unwrap_or_else(|e| panic!("refused to start: {e}"));
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.upstream.base_url, "http://a/v1");
    let ignored = env_names_ignored(&env(&pairs), &BTreeSet::new()).unwrap();
    assert_eq!(
        ignored.len(),
        links.len(),
        "each is reported for the warning"
    );
}

#[test]
fn env_typos_of_real_keys_stop_the_start_with_a_suggestion() {
    for (typo, want) in [
        ("FLYWHEEL_SERVER_LISTN", "FLYWHEEL_SERVER_LISTEN"),
        ("FLYWHEEL_SEVER_WORKERS", "FLYWHEEL_SERVER_WORKERS"),
        (
            "FLYWHEEL_CAPTURE_QUEUE_CAPACTY",
            "FLYWHEEL_CAPTURE_QUEUE_CAPACITY",
        ),
        (
            "FLYWHEEL_CAPTURE_QUEUECAPACITY",
            "FLYWHEEL_CAPTURE_QUEUE_CAPACITY",
        ),
        ("FLYWHEEL_UPSTREAM_URLS", "FLYWHEEL_UPSTREAM_URL"),
        ("FLYWHEEL_SERVER_MAX_BODY", "FLYWHEEL_SERVER_MAX_BODY_BYTES"),
        ("FLYWHEEL_RETENTION_RAW_DAY", "FLYWHEEL_RETENTION_RAW_DAYS"),
        ("FLYWHEEL_ADMIN_TOKN", "FLYWHEEL_ADMIN_TOKEN"),
        ("FLYWHEEL_LOG_FROMAT", "FLYWHEEL_LOG_FORMAT"),
        ("flywheel_server_listen", "FLYWHEEL_SERVER_LISTEN"),
    ] {
        let msg = err_text(load_str(UP, &[(typo, "1")]));
        assert!(
            msg.contains(typo) && msg.contains(&format!("did you mean {want}?")),
            "{typo}: {msg}"
        );
    }
}

#[test]
fn unrelated_flywheel_names_pass_with_a_warning() {
    let pairs = [
        ("FLYWHEEL_HOME", "/srv/flywheel"),
        ("FLYWHEEL_BUILD_SHA", "abc123"),
        ("FLYWHEEL_SERVER_REGION", "eu-west-1"),
    ];
    let c = load_str(UP, &pairs).unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(
        env_names_ignored(&env(&pairs), &BTreeSet::new()).unwrap(),
        vec![
            "FLYWHEEL_BUILD_SHA",
            "FLYWHEEL_HOME",
            "FLYWHEEL_SERVER_REGION"
        ]
    );
    // Overrides and reserved names are not reported.
    let known = env(&[("FLYWHEEL_SERVER_WORKERS", "2"), ("FLYWHEEL_LOG", "info")]);
    assert!(env_names_ignored(&known, &BTreeSet::new())
        .unwrap()
        .is_empty());
}

#[test]
fn secret_variables_the_config_names_are_neither_typos_nor_ignored() {
    let text = format!(
        "{UP}[capture]\nuser_hash_key_id = \"k2\"\nprevious_user_hash_keys = [{{ id = \"k1\", secret_env = \"FLYWHEEL_USER_HASH_SECRET_1\" }}]\n"
    );
    // Two edits from FLYWHEEL_USER_HASH_SECRET, yet the config names it.
    let c = load_str(&text, &[("FLYWHEEL_USER_HASH_SECRET_1", "old-secret")]);
    assert!(c.is_ok(), "{:?}", c.err());
    let mut table: toml::Table = text.parse().unwrap();
    let e = env(&[("FLYWHEEL_USER_HASH_SECRET_1", "old-secret")]);
    assert!(apply_env(&mut table, &e).unwrap().is_empty());
}

#[test]
fn every_config_key_is_known_to_the_env_check() {
    // A key added to a section is overridable at once, without a list to keep.
    let c = load_str(
        UP,
        &[
            ("FLYWHEEL_SERVER_SEND_TIMEOUT_SECS", "7"),
            ("FLYWHEEL_DATASETS_DIR", "/tmp/ds"),
            ("FLYWHEEL_RETENTION_INTERVAL_SECS", "30"),
        ],
    )
    .unwrap();
    assert_eq!(c.server.send_timeout, Duration::from_secs(7));
}

const UP: &str = "[upstream]\nurl = \"http://a/v1\"\n";

#[test]
fn privacy_defaults_redact_and_keep_no_raw() {
    let c = load_str(UP, &[]).unwrap();
    assert!(c.privacy.redact);
    assert!(c.privacy.raw_key.is_none());
    assert_eq!(c.retention.raw_days, 7);
    assert_eq!(c.retention.capture_days, 0);
}

#[test]
fn privacy_rejections_name_the_key() {
    let msg = err_text(load_str(
        &format!("{UP}[privacy.actions]\nemial = \"mask\"\n"),
        &[],
    ));
    assert!(
        msg.contains("privacy.actions.emial") && msg.contains("email"),
        "{msg}"
    );
    let msg = err_text(load_str(
        &format!("{UP}[privacy.actions]\nemail = \"blur\"\n"),
        &[],
    ));
    assert!(msg.contains("replace, mask or hash"), "{msg}");
    let msg = err_text(load_str(
        &format!("{UP}[[privacy.rules]]\nname = \"ORDER\"\npattern = \"(\"\n"),
        &[],
    ));
    assert!(msg.contains("privacy.rules[0].pattern"), "{msg}");
    let msg = err_text(load_str(
        &format!("{UP}[[privacy.rules]]\nname = \"order id\"\npattern = \"x\"\n"),
        &[],
    ));
    assert!(msg.contains("privacy.rules[0].name"), "{msg}");
    let msg = err_text(load_str(&format!("{UP}[privacy]\nkeep_raw = true\n"), &[]));
    assert!(
        msg.contains("FLYWHEEL_RAW_KEY") && msg.contains("openssl rand -hex 32"),
        "{msg}"
    );
    let msg = err_text(load_str(
        &format!("{UP}[privacy]\nkeep_raw = true\n"),
        &[("FLYWHEEL_RAW_KEY", "short")],
    ));
    assert!(msg.contains("64 hex"), "{msg}");
}

#[test]
fn raw_key_from_env_is_kept_secret() {
    let key = "ab".repeat(32);
    let c = load_str(
        &format!("{UP}[privacy]\nkeep_raw = true\nraw_key_id = \"2026-11\"\n"),
        &[("FLYWHEEL_RAW_KEY", &key)],
    )
    .unwrap();
    let (bytes, id) = c.privacy.raw_key.clone().unwrap();
    assert_eq!(bytes, [0xab; 32]);
    assert_eq!(id, "2026-11");
    assert!(!format!("{c:?}").contains(&key));
}

#[test]
fn previous_user_hash_keys_need_their_secret() {
    let text = format!("{UP}[capture]\nuser_hash_key_id = \"k2\"\nprevious_user_hash_keys = [{{ id = \"k1\", secret_env = \"OLD\" }}]\n");
    let msg = err_text(load_str(&text, &[]));
    assert!(
        msg.contains("previous_user_hash_keys[0].secret_env") && msg.contains("OLD"),
        "{msg}"
    );
    let c = load_str(&text, &[("OLD", "s")]).unwrap();
    assert_eq!(
        c.capture.previous_user_hash_keys,
        vec![("k1".to_string(), b"s".to_vec())]
    );
    let msg = err_text(load_str(
        &format!("{UP}[capture]\nuser_hash_key_id = \"k 1\"\n"),
        &[],
    ));
    assert!(msg.contains("user_hash_key_id"), "{msg}");
}

#[test]
fn workers_default_to_one_per_cpu_and_are_bounded() {
    let c = load_str("[upstream]\nurl = \"http://a/v1\"\n", &[]).unwrap();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(c.server.workers, cpus);
    let c = load_str(
        "[upstream]\nurl = \"http://a/v1\"\n",
        &[("FLYWHEEL_SERVER_WORKERS", "3")],
    )
    .unwrap();
    assert_eq!(c.server.workers, 3);
    let msg = err_text(load_str(
        "[server]\nworkers = 5000\n[upstream]\nurl = \"http://a/v1\"\n",
        &[],
    ));
    assert!(msg.contains("server.workers"), "{msg}");
}

#[test]
fn the_capture_queue_byte_limit_has_a_default_an_override_and_a_floor() {
    let c = load_str("[upstream]\nurl = \"http://a/v1\"\n", &[]).unwrap();
    assert_eq!(c.capture.queue_max_bytes, 256 << 20);
    let c = load_str(
        "[upstream]\nurl = \"http://a/v1\"\n",
        &[("FLYWHEEL_CAPTURE_QUEUE_MAX_BYTES", "67108864")],
    )
    .unwrap();
    assert_eq!(c.capture.queue_max_bytes, 64 << 20);
    let msg = err_text(load_str(
        "[upstream]\nurl = \"http://a/v1\"\n[capture]\nqueue_max_bytes = 1000\n",
        &[],
    ));
    assert!(msg.contains("capture.queue_max_bytes"), "{msg}");
}

#[test]
fn body_budget_must_hold_the_largest_body() {
    let msg = err_text(load_str(
        "[server]\nmax_body_bytes = 2000000\nbody_budget_bytes = 1000000\n[upstream]\nurl = \"http://a/v1\"\n",
        &[],
    ));
    assert!(
        msg.contains("server.body_budget_bytes") && msg.contains("max_body_bytes"),
        "{msg}"
    );
    let c = load_str(
        "[server]\nmax_body_bytes = 300000000\n[upstream]\nurl = \"http://a/v1\"\n",
        &[],
    )
    .unwrap();
    assert_eq!(
        c.server.body_budget_bytes, 300_000_000,
        "the default covers a larger body"
    );
}

#[test]
fn max_connections_must_be_positive() {
    let msg = err_text(load_str(
        "[server]\nmax_connections = 0\n[upstream]\nurl = \"http://a/v1\"\n",
        &[],
    ));
    assert!(msg.contains("server.max_connections"), "{msg}");
}

/// `flywheel config` prints the effective configuration as TOML that loads
/// back to the same configuration, and never prints a secret.
#[test]
fn the_effective_config_is_toml_that_loads_back_without_secrets() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/flywheel.toml");
    let secrets = [
        ("FLYWHEEL_USER_HASH_SECRET", "hash-secret-5b2f9e"),
        ("FLYWHEEL_ADMIN_TOKEN", "admin-token-77c1d0"),
    ];
    let c = Config::load(Some(&path), &env(&secrets), &Overrides::default()).unwrap();
    let text = c.to_toml();
    for (_, secret) in secrets {
        assert!(!text.contains(secret), "{text}");
    }
    let bytes = format!("{:?}", "hash-secret-5b2f9e".as_bytes());
    assert!(!text.contains(&bytes[1..12]), "no secret bytes either");
    assert!(text.contains("admin token set"), "{text}");
    let again = load_str(&text, &secrets).unwrap().to_toml();
    assert_eq!(again, text);
    // Routes, client keys and custom rules round-trip too.
    let key = "ab".repeat(32);
    let full = format!(
        "[upstream]\nurl = \"http://a/v1\"\n[[auth.keys]]\nname = \"web\"\nsha256 = \"{key}\"\nsegment = \"free\"\n\
         [[privacy.rules]]\nname = \"ORDER\"\npattern = \"ORD-[0-9]+\"\naction = \"mask\"\n\
         [[routes]]\nname = \"bot\"\n[[routes.versions]]\nname = \"v1\"\nupstream = \"http://b/v1\"\n\
         upstream_model = \"m\"\nheaders = {{ x-team = \"ml\" }}\n\
         [[routes.scorers]]\nname = \"exact\"\nkind = \"exact_match\"\n\
         [routes.gate]\nmode = \"auto\"\nprimary = \"exact\"\nmax_p95_latency_ratio = 1.5\n"
    );
    let text = load_str(&full, &[]).unwrap().to_toml();
    assert!(
        text.contains("[[routes.versions]]") && text.contains("segment = \"free\""),
        "{text}"
    );
    assert!(
        text.contains("[routes.gate]") && text.contains("max_p95_latency_ratio = 1.5"),
        "{text}"
    );
    assert_eq!(load_str(&text, &[]).unwrap().to_toml(), text);
}

#[test]
fn a_route_gate_takes_defaults_and_names_a_bad_field() {
    let route = |gate: &str| {
        format!(
            "[upstream]\nurl = \"http://a/v1\"\n[[routes]]\nname = \"bot\"\n\
             [[routes.versions]]\nname = \"v1\"\nupstream = \"http://b/v1\"\n\
             [[routes.scorers]]\nname = \"exact\"\nkind = \"exact_match\"\n[routes.gate]\n{gate}"
        )
    };
    let c = load_str(&route("primary = \"exact\"\n"), &[]).unwrap();
    let gate = c.routes[0].gate.as_ref().unwrap();
    assert_eq!(
        gate.mode,
        crate::eval::gate::GateMode::Manual,
        "adding a gate changes no state by surprise"
    );
    assert_eq!((gate.max_regression, gate.min_examples), (0.02, 30));
    let e = err_text(load_str(&route(""), &[]));
    assert!(
        e.contains("primary"),
        "a gate names its primary scorer: {e}"
    );
    let e = err_text(load_str(
        &route("primary = \"exact\"\nmax_regression = 2.0\n"),
        &[],
    ));
    assert!(
        e.contains("routes[0].gate.max_regression") && e.contains("from 0 to 1"),
        "{e}"
    );
    let e = err_text(load_str(&route("primary = \"\"\n"), &[]));
    assert!(e.contains("routes[0].gate.primary"), "{e}");
    let e = err_text(load_str(
        &route("primary = \"exact\"\nmax_regresion = 0.1\n"),
        &[],
    ));
    assert!(
        e.contains("max_regresion"),
        "an unknown key is refused: {e}"
    );
    let e = err_text(load_str(
        &route("primary = \"exact\"\nmode = \"sometimes\"\n"),
        &[],
    ));
    assert!(e.contains("sometimes"), "{e}");
}

/// The example file's commented routes section, uncommented, is a valid
/// config: every key it documents exists and takes the value shown.
#[test]
fn the_example_routes_section_is_valid_when_uncommented() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/flywheel.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let start = text.find("# [[routes]]").unwrap();
    let is_toml = |l: &str| {
        l.starts_with("# [")
            || l[2.min(l.len())..].split_once(" = ").is_some_and(|(k, _)| {
                !k.is_empty()
                    && k.chars().all(|c| {
                        c.is_ascii_lowercase()
                            || c.is_ascii_digit()
                            || c == '_'
                            || c == '"'
                            || c == '-'
                    })
            })
    };
    let routes: String = text[start..]
        .lines()
        .filter(|l| l.starts_with("# ") && is_toml(l))
        .map(|l| format!("{}\n", &l[2..]))
        .collect();
    assert!(routes.contains("[routes.gate]"), "{routes}");
    let c = load_str(
        &format!("[upstream]\nurl = \"http://a/v1\"\n{routes}"),
        &[("SUPPORT_BOT_KEY", "k")],
    )
    .unwrap();
    let gate = c.routes[0].gate.as_ref().unwrap();
    assert_eq!(
        (gate.primary.as_str(), gate.max_p95_latency_ratio),
        ("exact", Some(1.5))
    );
    assert_eq!(c.routes[0].versions.len(), 2);
}

#[test]
fn route_scorers_compile_at_load_and_the_gate_names_one() {
    let route = |scorers: &str, gate: &str| {
        format!(
            "[upstream]\nurl = \"http://a/v1\"\n[[routes]]\nname = \"bot\"\n\
             [[routes.versions]]\nname = \"v1\"\nupstream = \"http://b/v1\"\n{scorers}{gate}"
        )
    };
    let two = "[[routes.scorers]]\nname = \"exact\"\nkind = \"exact_match\"\n\
               [[routes.scorers]]\nname = \"order\"\nkind = \"regex\"\npattern = \"ORD-[0-9]+\"\n";
    let c = load_str(&route(two, "[routes.gate]\nprimary = \"order\"\n"), &[]).unwrap();
    assert_eq!(c.routes[0].scorers.len(), 2);
    let text = c.to_toml();
    assert!(
        text.contains("[[routes.scorers]]") && text.contains("ORD-[0-9]+"),
        "{text}"
    );
    assert_eq!(
        load_str(&text, &[]).unwrap().to_toml(),
        text,
        "it loads back the same"
    );
    let bad = "[[routes.scorers]]\nname = \"order\"\nkind = \"regex\"\npattern = \"ORD-[0-9\"\n";
    let e = err_text(load_str(&route(bad, ""), &[]));
    assert!(e.contains("routes[0].scorers[0].pattern"), "{e}");
    let twice = "[[routes.scorers]]\nname = \"a\"\nkind = \"token_f1\"\n\
                 [[routes.scorers]]\nname = \"a\"\nkind = \"rouge_l\"\n";
    let e = err_text(load_str(&route(twice, ""), &[]));
    assert!(
        e.contains("routes[0].scorers[1].name") && e.contains("twice"),
        "{e}"
    );
    let e = err_text(load_str(
        &route(two, "[routes.gate]\nprimary = \"judge\"\n"),
        &[],
    ));
    assert!(
        e.contains("routes[0].gate.primary") && e.contains("exact, order"),
        "{e}"
    );
    let e = err_text(load_str(
        &route("", "[routes.gate]\nprimary = \"exact\"\n"),
        &[],
    ));
    assert!(e.contains("[[routes.scorers]]"), "{e}");
    let e = err_text(load_str(
        &route("[[routes.scorers]]\nname = \"x\"\nkind = \"bleu\"\n", ""),
        &[],
    ));
    assert!(e.contains("bleu"), "an unknown kind is named: {e}");
}
