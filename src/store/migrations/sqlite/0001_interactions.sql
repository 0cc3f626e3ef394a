-- Captured interactions: one row per proxied request.
CREATE TABLE interactions (
    id                TEXT PRIMARY KEY,      -- UUIDv7: sorts by creation time
    created_at_ms     INTEGER NOT NULL,
    endpoint          TEXT NOT NULL,
    method            TEXT NOT NULL,
    path              TEXT NOT NULL,
    route             TEXT NOT NULL,
    requested_model   TEXT,
    version           TEXT NOT NULL,
    upstream          TEXT NOT NULL,
    status            INTEGER NOT NULL,
    outcome           TEXT NOT NULL,
    stream            INTEGER NOT NULL,
    request_body      TEXT NOT NULL,
    response_body     TEXT,
    truncated         INTEGER NOT NULL DEFAULT 0,
    finish_reason     TEXT,
    latency_ms        REAL NOT NULL,
    ttft_ms           REAL,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    total_tokens      INTEGER,
    tokens_estimated  INTEGER NOT NULL DEFAULT 0,
    app               TEXT,
    user_hash         TEXT,
    session_id        TEXT,
    metadata          TEXT,                  -- JSON object, NULL when empty
    error             TEXT
);

CREATE INDEX interactions_route_id ON interactions (route, id);
CREATE INDEX interactions_created ON interactions (created_at_ms);
CREATE INDEX interactions_user ON interactions (user_hash) WHERE user_hash IS NOT NULL;
CREATE INDEX interactions_session ON interactions (session_id) WHERE session_id IS NOT NULL;

-- Secrets the gateway generates for itself (e.g. the user-hash key in zero-config mode).
CREATE TABLE secrets (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
