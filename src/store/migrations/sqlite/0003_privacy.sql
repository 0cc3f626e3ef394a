-- Whether and how an interaction's text was redacted: 'redacted' (ran; pii_found
-- matches replaced), 'failed' (could not run: bodies were not stored), or 'off'.
ALTER TABLE interactions ADD COLUMN redaction TEXT NOT NULL DEFAULT 'off';
ALTER TABLE interactions ADD COLUMN pii_found INTEGER NOT NULL DEFAULT 0;

-- Unredacted payloads, only with privacy.keep_raw: AES-256-GCM, bound to the
-- interaction id, apart from the training data and with their own retention.
CREATE TABLE raw_payloads (
    interaction_id TEXT PRIMARY KEY,
    created_at_ms  INTEGER NOT NULL,
    key_id         TEXT NOT NULL,
    nonce          BLOB NOT NULL,
    ciphertext     BLOB NOT NULL
);
CREATE INDEX raw_payloads_created ON raw_payloads (created_at_ms);

-- The audit log: every operator action and every access to raw payloads.
CREATE TABLE events (
    id       TEXT PRIMARY KEY,   -- UUIDv7
    at_ms    INTEGER NOT NULL,
    actor    TEXT NOT NULL,
    kind     TEXT NOT NULL,
    subject  TEXT,
    detail   TEXT                -- JSON object
);
CREATE INDEX events_kind ON events (kind, id);

CREATE INDEX feedback_user ON feedback (user_hash) WHERE user_hash IS NOT NULL;
