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

-- The join tables carry no foreign keys. Divergence: they are written in bulk by every engine (six rows per new test
-- result), and their per-row trigger checks cost more than the rest of the insert. They are only ever written in the
-- transaction that writes the rows they point at; referential integrity is asserted in the tests instead.
ALTER TABLE test_result_events DROP CONSTRAINT test_result_events_test_result_id_fkey;
ALTER TABLE test_result_events DROP CONSTRAINT test_result_events_event_id_fkey;
ALTER TABLE index_case_events DROP CONSTRAINT index_case_events_index_case_id_fkey;
ALTER TABLE index_case_events DROP CONSTRAINT index_case_events_event_id_fkey;

-- person_keys: which person a patient key belongs to. New: people.patient_keys (the original's column, still
-- written) can only be searched through a GIN index, whose pending list made each lookup cost milliseconds under
-- Engine 2's steady inserts; a btree lookup is microseconds. The primary key also makes the original's "a key
-- shared by two people" (which crashed its lookup) impossible. Every writer of people.patient_keys writes the same
-- keys here in the same transaction (tested).
CREATE TABLE person_keys (
    patient_key text PRIMARY KEY,
    person_id   bigint NOT NULL REFERENCES people (id)
);
DROP INDEX people_patient_keys_gin_index;

-- Only cases that came through a CommCare transfer have a transfer source; the index skips the others, so the bulk
-- of inserts do not maintain it.
DROP INDEX index_cases_transfer_source_case_id_index;
CREATE INDEX index_cases_transfer_source_case_id_index ON index_cases ((data ->> 'transfer_source_case_id'))
    WHERE data ? 'transfer_source_case_id';

-- Person matching by name and date of birth reads people through people_dob_name_unique; lab results are matched
-- per index case through lab_results_index_case_accession_index (both in 00002).

-- +goose Down
DROP INDEX index_cases_transfer_source_case_id_index;
CREATE INDEX index_cases_transfer_source_case_id_index ON index_cases ((data ->> 'transfer_source_case_id'));
ALTER TABLE index_case_events ADD FOREIGN KEY (event_id) REFERENCES events (id);
ALTER TABLE index_case_events ADD FOREIGN KEY (index_case_id) REFERENCES index_cases (id);
ALTER TABLE test_result_events ADD FOREIGN KEY (event_id) REFERENCES events (id);
ALTER TABLE test_result_events ADD FOREIGN KEY (test_result_id) REFERENCES test_results (id);
CREATE INDEX people_patient_keys_gin_index ON people USING gin (patient_keys);
DROP TABLE person_keys;
DROP TABLE test_result_attempts;
DROP INDEX test_result_events_finished_unique;
ALTER TABLE test_result_events DROP COLUMN finished;
