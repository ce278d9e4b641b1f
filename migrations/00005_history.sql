-- +goose Up
-- Constant cost with a growing history. Every engine pass and every status read must cost what the new work costs,
-- not what the history costs: with tens of thousands of results a day, a scan of everything becomes seconds within
-- weeks and minutes within a year. Three pieces of state make that possible; each is only ever an optimisation of a
-- rule that stays defined on the original's tables (the rules and their proofs are in the engines' doc.go files).

-- Engine 2's claim floor: every test result with an id at or below it is finished, or waits for a retry in
-- test_result_attempts (claimed from there). Engine 1 inserts test results only under its import lock, so ids commit
-- in increasing order and no result can appear below the floor later. Each daemon starts from it instead of from 0.
CREATE TABLE e2_claim_floor (
    singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    test_result_id bigint NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
INSERT INTO e2_claim_floor (test_result_id) VALUES (0);

-- Which transaction wrote each index case event. Engine 3 reads the events written since its horizon instead of
-- evaluating its rule on every index case. Event ids are taken before commit and commit out of order, so an id
-- cursor could pass an event still being written; a transaction id cannot: every transaction with an id below a
-- snapshot's xmin has ended, so once a pass has read everything at or above its horizon, the xmin it started with is
-- the next horizon. Rows written before this migration have no xid; Engine 3's first pass reads every index case.
-- The default applies to COPY as well, so no writer has to remember it.
ALTER TABLE index_case_events ADD COLUMN xid xid8;
ALTER TABLE index_case_events ALTER COLUMN xid SET DEFAULT pg_current_xact_id();

-- Engine 3's horizon: every index case event written by a transaction whose id is below it has been considered
-- (handed off, found unchanged, or deferred below). NULL: the next pass considers every index case.
CREATE TABLE e3_cursor (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    horizon    xid8,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO e3_cursor (horizon) VALUES (NULL);

-- Changed index cases whose Engine 4 job was running when Engine 3 looked: they are handed off again once that job
-- has finished. Engine 3 re-reads them on every pass, whatever the horizon; they are a handful at any time.
CREATE TABLE e3_deferred (
    index_case_id bigint PRIMARY KEY,
    since         timestamptz NOT NULL DEFAULT now()
);

-- tallies: exact row counts for the status page, kept as deltas. Counting a table of millions of rows takes seconds;
-- summing a few delta rows takes microseconds. Writers append one row per statement (statement-level triggers over
-- the statement's new or old rows, or Engine 1 for its COPY into test_results, whose transition table would double
-- the cost of the load), so concurrent writers never contend on a counter row. Readers sum by name in their own
-- snapshot, which makes the counts agree with the rows that snapshot sees; status readers fold the deltas into one
-- row per name now and then (pkg/status).
CREATE TABLE tallies (
    name text NOT NULL,
    n    bigint NOT NULL
);

-- +goose StatementBegin
CREATE FUNCTION tally_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO tallies (name, n) SELECT TG_TABLE_NAME, count(*) FROM new_rows HAVING count(*) > 0;
    ELSE
        INSERT INTO tallies (name, n) SELECT TG_TABLE_NAME, -count(*) FROM old_rows HAVING count(*) > 0;
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION tally_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO tallies (name, n) SELECT 'events:' || type, count(*) FROM new_rows GROUP BY type;
    ELSE
        INSERT INTO tallies (name, n) SELECT 'events:' || type, -count(*) FROM old_rows GROUP BY type;
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd

CREATE TRIGGER people_tally_insert AFTER INSERT ON people
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tally_rows();
CREATE TRIGGER people_tally_delete AFTER DELETE ON people
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION tally_rows();
CREATE TRIGGER index_cases_tally_insert AFTER INSERT ON index_cases
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tally_rows();
CREATE TRIGGER index_cases_tally_delete AFTER DELETE ON index_cases
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION tally_rows();
CREATE TRIGGER lab_results_tally_insert AFTER INSERT ON lab_results
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tally_rows();
CREATE TRIGGER lab_results_tally_delete AFTER DELETE ON lab_results
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION tally_rows();
CREATE TRIGGER file_row_errors_tally_insert AFTER INSERT ON file_row_errors
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tally_rows();
CREATE TRIGGER file_row_errors_tally_delete AFTER DELETE ON file_row_errors
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION tally_rows();
CREATE TRIGGER test_results_tally_delete AFTER DELETE ON test_results
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION tally_rows();
CREATE TRIGGER events_tally_insert AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tally_events();
CREATE TRIGGER events_tally_delete AFTER DELETE ON events
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION tally_events();

-- The counts so far. CREATE TRIGGER holds off writers to these tables until this transaction commits, and the lock
-- does the same for Engine 1's imports, so the seed and the deltas neither miss nor double a row.
LOCK TABLE test_results IN SHARE MODE;
INSERT INTO tallies (name, n)
    SELECT 'people', count(*) FROM people
    UNION ALL SELECT 'index_cases', count(*) FROM index_cases
    UNION ALL SELECT 'lab_results', count(*) FROM lab_results
    UNION ALL SELECT 'file_row_errors', count(*) FROM file_row_errors
    UNION ALL SELECT 'test_results', count(*) FROM test_results
    UNION ALL SELECT 'events:' || type, count(*) FROM events GROUP BY type;

-- +goose Down
DROP TRIGGER events_tally_delete ON events;
DROP TRIGGER events_tally_insert ON events;
DROP TRIGGER test_results_tally_delete ON test_results;
DROP TRIGGER file_row_errors_tally_delete ON file_row_errors;
DROP TRIGGER file_row_errors_tally_insert ON file_row_errors;
DROP TRIGGER lab_results_tally_delete ON lab_results;
DROP TRIGGER lab_results_tally_insert ON lab_results;
DROP TRIGGER index_cases_tally_delete ON index_cases;
DROP TRIGGER index_cases_tally_insert ON index_cases;
DROP TRIGGER people_tally_delete ON people;
DROP TRIGGER people_tally_insert ON people;
DROP FUNCTION tally_events();
DROP FUNCTION tally_rows();
DROP TABLE tallies;
DROP TABLE e3_deferred;
DROP TABLE e3_cursor;
ALTER TABLE index_case_events DROP COLUMN xid;
DROP TABLE e2_claim_floor;
