-- Routes (logical model names apps call) and their versions (upstreams).
CREATE TABLE routes (
    name            TEXT PRIMARY KEY,
    retry_on_stable INTEGER NOT NULL DEFAULT 0,
    created_at_ms   INTEGER NOT NULL,
    created_by      TEXT NOT NULL
);

CREATE TABLE versions (
    route                 TEXT NOT NULL,
    name                  TEXT NOT NULL,
    upstream_url          TEXT NOT NULL,
    upstream_model        TEXT,
    api_key_env           TEXT,
    connect_timeout_ms    INTEGER,
    first_byte_timeout_ms INTEGER,
    total_timeout_ms      INTEGER,
    headers               TEXT,            -- JSON object of extra upstream headers
    system_prompt         TEXT,            -- prepended as a system message to chat requests
    state                 TEXT NOT NULL,   -- registered|approved|rejected|canary|stable|retired|rolled_back
    weight_bp             INTEGER NOT NULL DEFAULT 0,  -- canary share in basis points (0..10000)
    created_at_ms         INTEGER NOT NULL,
    created_by            TEXT NOT NULL,
    reason                TEXT,
    updated_at_ms         INTEGER NOT NULL,
    PRIMARY KEY (route, name)
);

-- Canary rollouts; the controller's whole state lives here, so a restart resumes it.
CREATE TABLE rollouts (
    id              TEXT PRIMARY KEY,      -- UUIDv7
    route           TEXT NOT NULL,
    canary          TEXT NOT NULL,
    baseline        TEXT NOT NULL,         -- the stable version when it started
    plan            TEXT NOT NULL,         -- JSON
    status          TEXT NOT NULL,         -- running|paused|promoted|rolled_back|aborted
    step            INTEGER NOT NULL,
    step_started_ms INTEGER NOT NULL,
    started_at_ms   INTEGER NOT NULL,
    finished_at_ms  INTEGER,
    reason          TEXT,
    updated_at_ms   INTEGER NOT NULL
);
CREATE INDEX rollouts_route ON rollouts (route, status);

-- Bumped on every routing change, so every replica can notice and reload.
CREATE TABLE routing_generation (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
);
INSERT INTO routing_generation (id, generation) VALUES (1, 0);

CREATE INDEX interactions_route_version_time ON interactions (route, version, created_at_ms);
