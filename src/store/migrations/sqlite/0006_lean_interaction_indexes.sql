-- Fewer secondary indexes on interactions: each one is written on every
-- captured request. interactions_route_id served no query (the admin listing
-- filters by route while walking the primary key, which gives its id order),
-- interactions_session was never read, and retention now finds expired rows
-- by a range of the UUIDv7 primary key instead of interactions_created.
DROP INDEX IF EXISTS interactions_route_id;
DROP INDEX IF EXISTS interactions_session;
DROP INDEX IF EXISTS interactions_created;
