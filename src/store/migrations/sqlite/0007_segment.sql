-- The user segment of an interaction (enterprise, free tier, ...): from the
-- client key's configured segment or the x-flywheel-segment header. No index:
-- every index is paid on every captured request, and the queries that group
-- by segment (stats, rollout comparisons) read a time window or the table.
ALTER TABLE interactions ADD COLUMN segment TEXT;
