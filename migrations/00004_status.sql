-- +goose Up
-- The status page and `viaduct status` count events of a type in the last hour. With the type alone indexed, each
-- count read every event of that type ever recorded (a processed event per test result: millions); with the time
-- beside it, the count reads the last hour only. The composite index serves lookups by type alone as well.
CREATE INDEX events_type_inserted_at_index ON events (type, inserted_at);
DROP INDEX events_type_index;

-- +goose Down
CREATE INDEX events_type_index ON events (type);
DROP INDEX events_type_inserted_at_index;
