-- Experiments: evaluation runs of a candidate version against a baseline
-- over a dataset's examples (offline) or sampled live requests (shadow),
-- with every example's outputs and scores and the run's aggregates.
CREATE TABLE experiments (
    id             TEXT PRIMARY KEY,          -- UUIDv7
    kind           TEXT NOT NULL,             -- offline | shadow
    route          TEXT NOT NULL,
    candidate      TEXT NOT NULL,             -- version names
    baseline       TEXT NOT NULL,
    dataset_id     TEXT,                      -- offline: the dataset version
    split          TEXT,                      -- offline: train | eval
    status         TEXT NOT NULL,             -- running | completed | failed | cancelled
    config         TEXT NOT NULL,             -- JSON: scorers, gate, limit, concurrency, seed
    summary        TEXT,                      -- JSON: aggregates, once finished
    verdict        TEXT,                      -- JSON: the gate's verdict, once finished
    error          TEXT,                      -- why a run failed or was cancelled
    created_at_ms  INTEGER NOT NULL,
    finished_at_ms INTEGER,
    created_by     TEXT NOT NULL
);
CREATE INDEX experiments_by_route ON experiments (route, created_at_ms);
CREATE INDEX experiments_by_candidate ON experiments (route, candidate, created_at_ms);

-- One version's answer to one example, scored.
CREATE TABLE experiment_results (
    experiment_id     TEXT NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    example           INTEGER NOT NULL,       -- position in the run
    source_id         TEXT,                   -- the example's interaction id
    side              TEXT NOT NULL,          -- candidate | baseline
    output            BLOB,                   -- JSON answer; sealed at rest when enabled
    error             TEXT,
    latency_ms        REAL,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    scores            TEXT NOT NULL,          -- JSON: scorer name -> score
    PRIMARY KEY (experiment_id, example, side)
);
