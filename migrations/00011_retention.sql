-- +goose NO TRANSACTION
-- +goose Up
-- Retention: `viaduct purge --older-than` and the daemon's `--retention` remove personal data older than a window
-- (pkg/retention says what goes and what stays, and why). What is here is the purge's own state, so that a purge
-- costs what became old since the last one, not what the history holds, and stops and resumes anywhere: every batch
-- commits its rows together with how far it got.
--
-- Applied to an existing database, nothing is rewritten: the tables are new, the column only changes the catalog
-- (under a lock held for milliseconds), and the index is built concurrently, outside a transaction, so the engines
-- keep writing meanwhile (the migrators' lock is polled, never waited on, so it cannot deadlock with the build).

-- retention_cursors: how far a purge has walked each table it walks in id order (test_results, file_row_errors,
-- events, change_logs): every row with an id at or below last_id has been purged, or had nothing to purge. A walk
-- stops before the first row that must stay as it is (written within the window, or a test result Engine 2 has
-- not finished), so nothing is ever passed over. The row named index_cases holds a transaction-id horizon instead:
-- every index case event written by a transaction below it has been seen by a purge (see index_cases.purged_at).
CREATE TABLE IF NOT EXISTS retention_cursors (
    name       text PRIMARY KEY,
    last_id    bigint NOT NULL DEFAULT 0,
    horizon    xid8,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- purges: one row per purge that ran to its end (not dry runs): when, with what window, and how many rows of each
-- table it stripped or deleted, with their bytes ({"events": {"action": "strip", "rows": n, "bytes": b}, …}).
-- Counts only, never what was removed.
CREATE TABLE IF NOT EXISTS purges (
    id           bigserial PRIMARY KEY,
    started_at   timestamptz NOT NULL,
    completed_at timestamptz NOT NULL DEFAULT now(),
    older_than   interval NOT NULL,
    cutoff       timestamptz NOT NULL,
    counts       jsonb NOT NULL
);

-- When a purge stripped an index case (with its lab results and person). A case is stripped only when every case
-- of its person is closed and has been quiet for the window; a later change (Engine 5 merging a tracer's edit back)
-- brings data back, so the next purge clears purged_at of every stripped case with an event written since its
-- horizon, and the case is considered again once quiet. NULL: never stripped, or changed since.
ALTER TABLE index_cases ADD COLUMN IF NOT EXISTS purged_at timestamptz;

-- The closed cases a purge considers, oldest write first. Partial: open cases and stripped ones are not in it, so a
-- purge reads the closed cases it has not stripped yet, not every case ever made; the engines maintain it only for
-- the rare write to a closed case.
CREATE INDEX CONCURRENTLY IF NOT EXISTS index_cases_retention_index ON index_cases (updated_at, id)
    WHERE closed AND purged_at IS NULL;

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS index_cases_retention_index;
ALTER TABLE index_cases DROP COLUMN IF EXISTS purged_at;
DROP TABLE IF EXISTS purges;
DROP TABLE IF EXISTS retention_cursors;
