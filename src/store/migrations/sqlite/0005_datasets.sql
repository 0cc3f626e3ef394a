-- Dataset versions: immutable once written. The files live in the datasets
-- directory under the id; this row is the commit point of a build (a directory
-- without a row is an unfinished build and is removed by the next one).
CREATE TABLE datasets (
    id TEXT PRIMARY KEY,
    created_at_ms INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    route TEXT,
    parent TEXT,
    content_hash TEXT NOT NULL,
    -- The whole manifest (spec, counts, files with sha256, lineage) as JSON.
    manifest TEXT NOT NULL
);
CREATE INDEX datasets_route ON datasets (route, created_at_ms);
