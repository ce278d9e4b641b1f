-- +goose Up
-- daemons: one row per running `viaduct run`, written every few seconds (its heartbeat). The status page reads it to
-- say which daemons run each engine, to turn an engine that no live daemon runs red, and to show what a daemon
-- alone knows (Engine 1 unable to read its queue). A row whose beat is older than a few intervals is a daemon that
-- died; one with stopped_at set stopped cleanly. Rows are pruned a week after their last beat.
CREATE TABLE daemons (
    id         uuid PRIMARY KEY,
    hostname   text NOT NULL,
    pid        integer NOT NULL,
    version    text NOT NULL,
    engines    text[] NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    beat_at    timestamptz NOT NULL DEFAULT now(),
    stopped_at timestamptz,
    -- What the daemon reports about its engines that is not in the tables, keyed by engine ("e1": {"reason": …}).
    problems   jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX daemons_beat_at_index ON daemons (beat_at);

-- +goose Down
DROP TABLE daemons;
