-- Feedback on interactions. No foreign key: feedback may be accepted while its
-- interaction is still in the capture queue (see capture::issued).
CREATE TABLE feedback (
    id              TEXT PRIMARY KEY,       -- UUIDv7
    interaction_id  TEXT NOT NULL,
    created_at_ms   INTEGER NOT NULL,
    route           TEXT NOT NULL,
    version         TEXT NOT NULL,
    type            TEXT NOT NULL,          -- thumbs | rating | correction | comment | outcome
    value           TEXT NOT NULL,          -- JSON value as validated (text redacted)
    label           TEXT,                   -- up/down, success/failure; NULL for free text
    score           REAL,                   -- 0..1 where the type has one
    scale_min       REAL,
    scale_max       REAL,
    app             TEXT,
    user_hash       TEXT,
    metadata        TEXT,                   -- JSON object, NULL when empty
    idempotency_key TEXT,
    request_hash    TEXT NOT NULL           -- detects an idempotency key reused for other content
);

CREATE INDEX feedback_interaction ON feedback (interaction_id);
CREATE INDEX feedback_created ON feedback (created_at_ms);
CREATE UNIQUE INDEX feedback_idempotency ON feedback (COALESCE(app, ''), idempotency_key)
    WHERE idempotency_key IS NOT NULL;
