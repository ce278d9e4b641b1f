-- +goose Up
-- Engine 2's bookkeeping on top of the original's tables.

-- A test result's work is finished when it has a `processed` or `processing_failed` event (the original's rule).
-- Divergence: the join row of that terminal event is flagged `finished`, so "test results with no finished event"
-- is an index anti-join instead of a join through every event's type, and the unique index makes "finished twice"
-- impossible even if two daemons raced.
ALTER TABLE test_result_events ADD COLUMN finished boolean NOT NULL DEFAULT false;
CREATE UNIQUE INDEX test_result_events_finished_unique ON test_result_events (test_result_id) WHERE finished;

-- test_result_attempts: failed attempts at processing a test result. New: the original either gave up at once (f49)
-- or retried without a transaction and duplicated events (HEAD). Here a failed attempt rolls back completely and is
-- recorded here; the result is retried after next_attempt_at and, after the last attempt, gets a processing_failed
-- event with the reason. A successful attempt deletes the row.
CREATE TABLE test_result_attempts (
    test_result_id  bigint PRIMARY KEY REFERENCES test_results (id),
    attempts        integer NOT NULL,
    last_error      text NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Person matching by name and date of birth reads people through people_dob_name_unique; lab results are matched
-- per index case through lab_results_index_case_accession_index (both in 00002).

-- +goose Down
DROP TABLE test_result_attempts;
DROP INDEX test_result_events_finished_unique;
ALTER TABLE test_result_events DROP COLUMN finished;
