//! Privacy end to end: PII never reaches the store (checked in the SQLite file
//! itself), raw payloads are sealed, erasure and retention remove exactly what
//! they should.

use crate::common::*;
use serde_json::{json, Value};

const EMAIL: &str = "jane.doe@example.com";
const PHONE: &str = "+1 415 555 0134";
const CARD: &str = "4111 1111 1111 1111";
const SECRET: &str = "sk-proj-abc123DEF456ghi789JKLmno";
const RAW_KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn pii_message() -> String {
    format!("I am {EMAIL}, call {PHONE}, card {CARD}, key {SECRET}")
}

/// Every byte of the database files, WAL included.
fn db_bytes(db: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let p = format!("{}{suffix}", db.display());
        if let Ok(b) = std::fs::read(&p) {
            all.extend(b);
        }
    }
    all
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn assert_no_pii(bytes: &[u8]) {
    for pii in [EMAIL, PHONE, CARD, SECRET, "4111111111111111", "jane.doe"] {
        assert!(!contains(bytes, pii), "{pii} reached the database file");
    }
}

#[tokio::test]
async fn pii_in_requests_streams_tool_calls_and_feedback_never_reaches_the_store() {
    let m = mock().await;
    let gw = gateway(&m).await;
    let msg = pii_message();
    let plain = json!({"model":"m","messages":[{"role":"user","content": msg}]});
    let a = gw
        .post(
            "/v1/chat/completions",
            &plain.to_string(),
            &[("x-flywheel-meta-note", EMAIL)],
        )
        .await;
    assert!(
        a.text().contains(EMAIL),
        "the client still gets the real answer"
    );
    let stream = json!({"model":"m","stream":true,"messages":[{"role":"user","content": msg}]});
    let b = gw
        .post(
            "/v1/chat/completions",
            &stream.to_string(),
            &[("x-mock", "chunks=7")],
        )
        .await;
    assert!(
        b.text().contains("jane"),
        "streamed answer reaches the client unchanged"
    );
    let tools = json!({"model":"m","stream":true,"messages":[{"role":"user","content": msg}],
        "tools":[{"type":"function","function":{"name":"lookup","parameters":{"type":"object"}}}]});
    let c = gw
        .post("/v1/chat/completions", &tools.to_string(), &[])
        .await;
    let fb = gw
        .post(
            "/v1/feedback",
            &json!({"interaction_id": a.interaction_id(), "type": "correction", "value": format!("write to {EMAIL} instead")}).to_string(),
            &[],
        )
        .await;
    assert_eq!(fb.status, 201);
    let comment = json!({"interaction_id": b.interaction_id(), "type": "comment", "value": format!("my card {CARD} was shown")});
    assert_eq!(
        gw.post("/v1/feedback", &comment.to_string(), &[])
            .await
            .status,
        201
    );

    for r in [&a, &b, &c] {
        let rec = gw.interaction(&r.interaction_id()).await;
        assert_eq!(rec["redaction"], "redacted");
        assert!(rec["pii_found"].as_i64().unwrap() >= 4, "{rec}");
        let text = rec.to_string();
        assert!(
            text.contains("<EMAIL>") && text.contains("<CREDIT_CARD>"),
            "{text}"
        );
    }
    let streamed = gw.interaction(&b.interaction_id()).await;
    assert!(streamed["response"]["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .contains("<EMAIL>"));
    let tool = gw.interaction(&c.interaction_id()).await;
    let args = tool["response"]["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
        .as_str()
        .unwrap();
    assert!(args.contains("<PHONE>"), "{args}");
    let rec = gw.interaction(&a.interaction_id()).await;
    assert_eq!(rec["metadata"]["note"], "<EMAIL>");
    assert_eq!(rec["feedback"][0]["value"], "write to <EMAIL> instead");

    let db = gw.db.clone();
    let _dir = gw.shutdown().await;
    assert_no_pii(&db_bytes(&db));
    let conn = rusqlite::Connection::open(&db).unwrap();
    let raw: i64 = conn
        .query_row("SELECT COUNT(*) FROM raw_payloads", [], |r| r.get(0))
        .unwrap();
    assert_eq!(raw, 0, "without keep_raw no payload is kept");
}

/// Every string a client controls and the gateway stores goes through
/// redaction (or, for ids, keyed hashing): the path and query of a
/// passthrough call, the user, session and metadata headers (names and
/// values), the body's model, user, safety_identifier and metadata, and
/// feedback's value, metadata and idempotency key. The database files, WAL
/// included, are read while the gateway runs and after it stops.
#[tokio::test]
async fn pii_in_every_client_controlled_field_never_reaches_the_files() {
    let m = mock().await;
    let gw = gateway(&m).await;
    let body_user = "customer-48213";
    let session = format!("support-{EMAIL}-{PHONE}");
    let path = format!("/v1/files/{EMAIL}/{SECRET}?owner={EMAIL}&card=4111111111111111");
    let r = gw
        .post(&path, "{}", &[("x-flywheel-session", session.as_str())])
        .await;
    let passthrough = r.interaction_id();
    let chat = json!({
        "model": format!("ft:m:{EMAIL}"),
        "user": body_user,
        "safety_identifier": EMAIL,
        "metadata": {"owner": PHONE},
        "messages": [{"role": "user", "content": pii_message()}],
    });
    let a = gw
        .post(
            "/v1/chat/completions",
            &chat.to_string(),
            &[
                ("x-flywheel-user", EMAIL),
                ("x-flywheel-session", session.as_str()),
                ("x-flywheel-meta-owner", CARD),
                ("x-flywheel-meta-4111111111111111", "card as a name"),
            ],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let fb = json!({
        "interaction_id": a.interaction_id(),
        "type": "comment",
        "value": format!("reach me at {PHONE}"),
        "metadata": {"by": EMAIL},
    });
    let key = format!("fb-{EMAIL}");
    let f = gw
        .post(
            "/v1/feedback",
            &fb.to_string(),
            &[("idempotency-key", key.as_str())],
        )
        .await;
    assert_eq!(f.status, 201, "{}", f.text());
    let again = gw
        .post(
            "/v1/feedback",
            &fb.to_string(),
            &[("idempotency-key", key.as_str())],
        )
        .await;
    assert_eq!(
        again.header("idempotent-replayed").as_deref(),
        Some("true"),
        "a retry with the same key is still recognised"
    );
    gw.captured(2).await;

    let rec = gw.interaction(&a.interaction_id()).await;
    let body = &rec["request"];
    assert!(
        body["user"].as_str().is_some_and(|u| u.starts_with("k1:")),
        "the body's user is its keyed hash: {body}"
    );
    assert_eq!(
        rec["user_hash"], body["safety_identifier"],
        "same user, same hash"
    );
    let rec = gw.interaction(&passthrough).await;
    assert_eq!(rec["path"], "/v1/files/<EMAIL>/<SECRET>", "{rec}");

    let db = gw.db.clone();
    let scan = |bytes: &[u8]| {
        assert_no_pii(bytes);
        for pii in [body_user, "555 0134", "4155550134"] {
            assert!(!contains(bytes, pii), "{pii} reached the database files");
        }
    };
    scan(&db_bytes(&db));
    let _dir = gw.shutdown().await;
    scan(&db_bytes(&db));
}

/// Erasure leaves no readable copy: the erased user's text is gone from the
/// database file's free pages and from the WAL, not only from the tables.
#[tokio::test]
async fn forget_leaves_no_copy_in_the_database_files() {
    let m = mock().await;
    let gw = gateway(&m).await;
    // A marker redaction leaves alone, so only erasure can remove it.
    let marker = "quartz-heron-lantern-7781";
    for i in 0..20 {
        let chat = json!({"model":"m","messages":[{"role":"user","content": format!("{marker} note {i}")}]});
        gw.post(
            "/v1/chat/completions",
            &chat.to_string(),
            &[("x-flywheel-user", "erin")],
        )
        .await;
    }
    let chat = r#"{"model":"m","messages":[{"role":"user","content":"someone else"}]}"#;
    gw.post(
        "/v1/chat/completions",
        chat,
        &[("x-flywheel-user", "frank")],
    )
    .await;
    gw.captured(21).await;
    assert!(
        contains(&db_bytes(&gw.db), marker),
        "the marker was written before the erasure"
    );
    let h = [("authorization", format!("Bearer {ADMIN_TOKEN}"))];
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = gw
        .post("/admin/v1/privacy/forget", r#"{"user":"erin"}"#, &h)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["removed"]["interactions"], 20);
    let bytes = db_bytes(&gw.db);
    assert!(
        !contains(&bytes, marker),
        "erased text is readable in the database files"
    );
    assert!(contains(&bytes, "someone else"), "other users' data stays");
    let _dir = gw.shutdown().await;
}

#[tokio::test]
async fn raw_payloads_are_sealed_readable_with_the_key_and_audited() {
    let m = mock().await;
    let extra = "[privacy]\nkeep_raw = true\n";
    let gw = gateway_with(
        &format!("http://{}/v1", m.addr),
        extra,
        &[("FLYWHEEL_RAW_KEY", RAW_KEY)],
    )
    .await;
    let body = json!({"model":"m","messages":[{"role":"user","content": pii_message()}]});
    let r = gw
        .post("/v1/chat/completions", &body.to_string(), &[])
        .await;
    let id = r.interaction_id();
    gw.interaction(&id).await;
    let raw = gw.admin(&format!("/admin/v1/interactions/{id}/raw")).await;
    assert_eq!(raw["request"]["messages"][0]["content"], pii_message());
    assert!(raw["response"]["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .contains(EMAIL));
    assert_eq!(raw["key_id"], "k1");
    let events = gw.admin("/admin/v1/events?kind=raw_payload_read").await;
    assert_eq!(events["data"][0]["subject"], id.as_str());
    assert_eq!(events["data"][0]["actor"], "admin");

    let db = gw.db.clone();
    let dir = gw.shutdown().await;
    // Plaintext PII is nowhere in the files: the raw table holds ciphertext only.
    assert_no_pii(&db_bytes(&db));
    let conn = rusqlite::Connection::open(&db).unwrap();
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM raw_payloads", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
    drop(conn);

    // Restarted without the key, the payload cannot be read.
    let cfg = config(&format!("http://{}/v1", m.addr), &db, "", &[]);
    let gw = start(cfg, dir, db.clone()).await;
    let r = gw
        .get(
            &format!("/admin/v1/interactions/{id}/raw"),
            &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        )
        .await;
    assert_eq!(r.status, 404);
    // With a different key under the same id, it cannot be decrypted either.
    let dir = gw.shutdown().await;
    let other = "f".repeat(64);
    let cfg = config(
        &format!("http://{}/v1", m.addr),
        &db,
        extra,
        &[("FLYWHEEL_RAW_KEY", &other)],
    );
    let gw = start(cfg, dir, db).await;
    let r = gw
        .get(
            &format!("/admin/v1/interactions/{id}/raw"),
            &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        )
        .await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(!r.text().contains(EMAIL));
}

#[tokio::test]
async fn forget_removes_one_users_data_and_nothing_else() {
    let m = mock().await;
    let gw = gateway_with(
        &format!("http://{}/v1", m.addr),
        "[privacy]\nkeep_raw = true\n",
        &[("FLYWHEEL_RAW_KEY", RAW_KEY)],
    )
    .await;
    let chat = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    let mut alice = Vec::new();
    for _ in 0..3 {
        alice.push(
            gw.post(
                "/v1/chat/completions",
                chat,
                &[("x-flywheel-user", "alice")],
            )
            .await
            .interaction_id(),
        );
    }
    let bob = gw
        .post("/v1/chat/completions", chat, &[("x-flywheel-user", "bob")])
        .await
        .interaction_id();
    let body =
        json!({"model":"m","user":"alice","messages":[{"role":"user","content":"from body"}]});
    alice.push(
        gw.post("/v1/chat/completions", &body.to_string(), &[])
            .await
            .interaction_id(),
    );
    // Feedback on alice's answer (by anyone), and feedback alice gave on bob's.
    for (id, user) in [(&alice[0], "carol"), (&bob, "alice")] {
        let fb = json!({"interaction_id": id, "type": "thumbs", "value": "up", "user": user});
        assert_eq!(
            gw.post("/v1/feedback", &fb.to_string(), &[]).await.status,
            201
        );
    }
    let keep = json!({"interaction_id": bob, "type": "thumbs", "value": "down", "user": "bob"});
    gw.post("/v1/feedback", &keep.to_string(), &[]).await;
    gw.captured(5).await;

    let url = gw.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_flywheel"))
            .args(["privacy", "forget", "--user", "alice", "--json"])
            .env("FLYWHEEL_URL", &url)
            .env("FLYWHEEL_ADMIN_TOKEN", ADMIN_TOKEN)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["removed"]["interactions"], 4);
    assert_eq!(v["removed"]["feedback"], 2);
    assert_eq!(v["removed"]["raw_payloads"], 4);

    let stats = gw.admin("/admin/v1/stats").await;
    assert_eq!(stats["interactions_total"], 1);
    assert_eq!(stats["feedback_total"], 1);
    let left = gw.interaction(&bob).await;
    assert_eq!(left["feedback"][0]["value"], "down");
    let r = gw
        .get(
            &format!("/admin/v1/interactions/{}", alice[0]),
            &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        )
        .await;
    assert_eq!(r.status, 404);
    let events = gw.admin("/admin/v1/events?kind=user_forgotten").await;
    let subject = events["data"][0]["subject"].as_str().unwrap();
    assert!(
        !subject.contains("alice"),
        "the audit log names the hash, not the user"
    );
}

/// The same UUIDv7 id with its time moved `ms` milliseconds back.
fn aged_id(id: &str, ms: i64) -> String {
    let time = i64::from_str_radix(&id[..8], 16).unwrap() << 16
        | i64::from_str_radix(&id[9..13], 16).unwrap();
    let time = time - ms;
    format!("{:08x}-{:04x}{}", time >> 16, time & 0xffff, &id[13..])
}

#[tokio::test]
async fn retention_removes_expired_data_and_dry_run_only_counts() {
    let m = mock().await;
    let extra = "[privacy]\nkeep_raw = true\n[retention]\nraw_days = 1\ncapture_days = 30\n";
    let gw = gateway_with(
        &format!("http://{}/v1", m.addr),
        extra,
        &[("FLYWHEEL_RAW_KEY", RAW_KEY)],
    )
    .await;
    let chat = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(
            gw.post("/v1/chat/completions", chat, &[])
                .await
                .interaction_id(),
        );
    }
    let fb = json!({"interaction_id": ids[0], "type": "thumbs", "value": "up"});
    gw.post("/v1/feedback", &fb.to_string(), &[]).await;
    gw.captured(6).await;
    // Age the data in place: two interactions are 40 days old (past capture
    // retention), two more are 2 days old (past raw retention only). An
    // interaction's age is its UUIDv7 id's time, so the id is moved back too,
    // and with it every row that refers to it.
    let conn = rusqlite::Connection::open(&gw.db).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    let day = 86_400_000i64;
    for (id, days) in [(&ids[0], 40), (&ids[1], 40), (&ids[2], 2), (&ids[3], 2)] {
        let aged = aged_id(id, days * day);
        for sql in [
            "UPDATE interactions SET created_at_ms = created_at_ms - ?1, id = ?3 WHERE id = ?2",
            "UPDATE raw_payloads SET created_at_ms = created_at_ms - ?1, interaction_id = ?3 WHERE interaction_id = ?2",
        ] {
            conn.execute(sql, rusqlite::params![days * day, id, aged])
                .unwrap();
        }
        conn.execute(
            "UPDATE feedback SET interaction_id = ?2 WHERE interaction_id = ?1",
            rusqlite::params![id, aged],
        )
        .unwrap();
    }
    drop(conn);

    let admin = [("authorization", format!("Bearer {ADMIN_TOKEN}"))];
    let h: Vec<(&str, &str)> = admin.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let dry = gw
        .post("/admin/v1/privacy/purge?dry_run=true", "", &h)
        .await
        .json();
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["removed"]["interactions"], 2);
    assert_eq!(dry["removed"]["feedback"], 1);
    assert_eq!(dry["removed"]["raw_payloads"], 4);
    assert_eq!(
        gw.admin("/admin/v1/stats").await["interactions_total"],
        6,
        "a dry run deletes nothing"
    );

    let done = gw.post("/admin/v1/privacy/purge", "", &h).await.json();
    assert_eq!(done["removed"]["interactions"], 2);
    assert_eq!(done["removed"]["feedback"], 1);
    assert_eq!(done["removed"]["raw_payloads"], 4);
    let stats = gw.admin("/admin/v1/stats").await;
    assert_eq!(stats["interactions_total"], 4);
    assert_eq!(stats["feedback_total"], 0);
    let conn = rusqlite::Connection::open(&gw.db).unwrap();
    let raw: i64 = conn
        .query_row("SELECT COUNT(*) FROM raw_payloads", [], |r| r.get(0))
        .unwrap();
    assert_eq!(raw, 2, "only the fresh interactions keep raw payloads");
    let events = gw.admin("/admin/v1/events?kind=retention_purge").await;
    assert_eq!(events["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn user_hash_keys_rotate_and_forget_finds_both_generations() {
    let m = mock().await;
    let upstream = format!("http://{}/v1", m.addr);
    let chat = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    let gw = gateway_with(
        &upstream,
        "",
        &[
            ("FLYWHEEL_USER_HASH_SECRET", "old-secret"),
            ("FLYWHEEL_CAPTURE_USER_HASH_KEY_ID", "k1"),
        ],
    )
    .await;
    let old = gw
        .post("/v1/chat/completions", chat, &[("x-flywheel-user", "dana")])
        .await
        .interaction_id();
    let old_hash = gw.interaction(&old).await["user_hash"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(old_hash.starts_with("k1:"), "{old_hash}");
    let db = gw.db.clone();
    let dir = gw.shutdown().await;

    // Rotate: a new key k2, the old one kept only to find old records.
    // (Set through FLYWHEEL_* variables, which take TOML values, arrays included.)
    let env = [
        ("FLYWHEEL_USER_HASH_SECRET", "new-secret"),
        ("OLD_USER_KEY", "old-secret"),
        ("FLYWHEEL_CAPTURE_USER_HASH_KEY_ID", "k2"),
        (
            "FLYWHEEL_CAPTURE_PREVIOUS_USER_HASH_KEYS",
            "[{ id = \"k1\", secret_env = \"OLD_USER_KEY\" }]",
        ),
    ];
    let cfg = config(&upstream, &db, "", &env);
    let gw = start(cfg, dir, db).await;
    let new = gw
        .post("/v1/chat/completions", chat, &[("x-flywheel-user", "dana")])
        .await
        .interaction_id();
    let other = gw
        .post("/v1/chat/completions", chat, &[("x-flywheel-user", "eli")])
        .await
        .interaction_id();
    let new_hash = gw.interaction(&new).await["user_hash"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(new_hash.starts_with("k2:") && new_hash != old_hash);
    gw.interaction(&other).await;
    let h = [("authorization", format!("Bearer {ADMIN_TOKEN}"))];
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let forgot = gw
        .post("/admin/v1/privacy/forget", r#"{"user":"dana"}"#, &h)
        .await
        .json();
    assert_eq!(forgot["removed"]["interactions"], 2, "{forgot}");
    assert_eq!(gw.admin("/admin/v1/stats").await["interactions_total"], 1);
}

/// With `privacy.encrypt_at_rest`, what users wrote is unreadable in the
/// database files (WAL included) while the admin API shows it as usual.
#[tokio::test]
async fn encryption_at_rest_leaves_no_user_text_in_the_files() {
    let m = mock().await;
    let gw = gateway_with(
        &format!("http://{}/v1", m.addr),
        "[privacy]\nencrypt_at_rest = true\n",
        &[("FLYWHEEL_STORE_KEY", RAW_KEY)],
    )
    .await;
    // Words redaction leaves alone: only encryption can hide them.
    let marker = "cobalt-walrus-9043";
    let chat = json!({"model":"m","messages":[{"role":"user","content": format!("{marker} in the prompt")}]});
    let a = gw
        .post(
            "/v1/chat/completions",
            &chat.to_string(),
            &[("x-flywheel-meta-note", marker)],
        )
        .await;
    assert_eq!(a.status, 200);
    let fb = json!({"interaction_id": a.interaction_id(), "type": "correction", "value": format!("{marker} corrected")});
    assert_eq!(
        gw.post("/v1/feedback", &fb.to_string(), &[]).await.status,
        201
    );
    gw.captured(1).await;
    let rec = gw.interaction(&a.interaction_id()).await;
    assert!(rec["request"].to_string().contains(marker), "{rec}");
    assert_eq!(rec["metadata"]["note"], marker);
    assert_eq!(rec["feedback"][0]["value"], format!("{marker} corrected"));
    assert!(
        !contains(&db_bytes(&gw.db), marker),
        "user text readable in the files"
    );
    let db = gw.db.clone();
    let _dir = gw.shutdown().await;
    assert!(!contains(&db_bytes(&db), marker));
}
