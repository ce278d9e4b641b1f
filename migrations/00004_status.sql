-- +goose NO TRANSACTION
-- +goose Up
-- The status page and `viaduct status` count events of a type, and malformed rows, in the last hour or day. With
-- the type alone indexed, each count read every event of that type ever recorded (a processed event per test
-- result: millions); with the time beside it, the count reads the window only. The composite index serves lookups
-- by type alone as well. Built concurrently, outside a transaction, so the engines keep writing events meanwhile
-- (the migrators' lock is polled, never waited on, so it cannot deadlock with the build).
CREATE INDEX CONCURRENTLY IF NOT EXISTS events_type_inserted_at_index ON events (type, inserted_at);
DROP INDEX CONCURRENTLY IF EXISTS events_type_index;
CREATE INDEX CONCURRENTLY IF NOT EXISTS file_row_errors_inserted_at_index ON file_row_errors (inserted_at);

-- Since when a domain's rounds have failed, so a domain failing for hours does not read as failing since the last
-- round; cleared by the next complete round.
ALTER TABLE commcare_sync_marks ADD COLUMN IF NOT EXISTS failing_since timestamptz;

-- +goose Down
ALTER TABLE commcare_sync_marks DROP COLUMN IF EXISTS failing_since;
CREATE INDEX CONCURRENTLY IF NOT EXISTS events_type_index ON events (type);
DROP INDEX CONCURRENTLY IF EXISTS events_type_inserted_at_index;
DROP INDEX CONCURRENTLY IF EXISTS file_row_errors_inserted_at_index;
