-- A version's history (`flywheel models show`) reads its events by subject.
CREATE INDEX events_subject ON events (subject, id) WHERE subject IS NOT NULL;
