-- +goose NO TRANSACTION
-- +goose Up
-- Storage: the same information in fewer bytes per test result. Nothing here drops anything an engine, the status
-- page or an operator reads; each change is a layout change or removes a copy that the other copy rebuilds exactly.
--
-- What is deliberately not here: column compression settings and toast_tuple_target. PostgreSQL 15 hands a row to
-- the toaster only when it is longer than about 2 KB (TOAST_TUPLE_THRESHOLD, fixed at build time); a lower
-- toast_tuple_target changes how far a longer row is squeezed, not which rows are. The rows Engines 1 to 3 write
-- are shorter (test results ~1.3 KB, lab results ~1.6 KB, index cases ~1.1 KB), so neither pglz nor lz4 ever
-- touches them. The one value that is compressed, Engine 4's form in events.stash (~6 KB), keeps pglz: lz4 stores
-- it 18% larger (2,525 against 2,137 bytes on average).
--
-- Applied to an existing database, nothing is rewritten under a lock. The indexes are built concurrently (hence no
-- transaction; the migrators' lock is polled, never waited on, so it cannot deadlock with the builds); dropping the
-- columns and naming the keys only change the catalog, under a lock held for milliseconds. The dropped columns only
-- stop being written: rows written before keep their bytes until the table is rewritten, and lines already stored
-- in raw_data stay there. New rows get the new layout. To get the space back, an operator may, when convenient:
--   1. clear the lines that rebuild exactly, in batches of ids, e.g.
--        UPDATE test_results SET raw_data = NULL
--         WHERE id > $1 AND id <= $1 + 100000 AND raw_data = rebuilt_raw_line(test_results);
--      (exact by construction: the line is compared with what raw_line will give back);
--   2. rewrite test_results, events' join tables and their indexes: pg_repack (every table here has a primary key)
--      while the engines run, or VACUUM FULL in a maintenance window (it locks the table for its duration). Either
--      keeps the old row versions while any transaction older than step 1 is open, in any database of the server.

-- test_results.raw_data holds the line only when the parsed columns cannot rebuild it byte for byte. Divergence: the
-- original kept the trimmed line in every row, beside the 65 columns parsed from it, so each result was stored twice
-- (~630 bytes of ~1,300). Engine 1 now leaves raw_data NULL when rebuilt_raw_line gives the line back exactly
-- (eclrs.Record.RawRebuildable decides, and a test imports ordinary and awkward rows and compares every line):
-- the line has no quotes, its county code no leading zero, its months are in capitals, its date of birth ends in
-- :00:00:00.000000 and each timestamp is 25 characters, exists in New York and falls in 1970–2099. Every other line
-- is kept. raw_line(tr), also written tr.raw_line, is the line of any row; nothing in the engines reads it.
--
-- rebuilt_raw_line joins the columns of the file's layout (files.eclrs_version) with '|', each as Engine 1 stored
-- it: text as is and NULL as '', county_id in decimal, the date of birth as DDMMMYYYY:00:00:00.000000, timestamps
-- (UTC) as New York wall-clock time DDMMMYYYY:HH:MM:SS.ffffff.

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION eclrs_timestamp_text(ts timestamp) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN coalesce(to_char((ts AT TIME ZONE 'UTC') AT TIME ZONE 'America/New_York', 'DDMONYYYY:HH24:MI:SS.US'), '');
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION rebuilt_raw_line(t test_results) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN (SELECT concat_ws('|',
        coalesce(t.patient_name_last, ''), coalesce(t.patient_name_middle, ''), coalesce(t.patient_name_first, ''),
        coalesce(to_char(t.patient_dob, 'DDMONYYYY') || ':00:00:00.000000', ''),
        coalesce(t.patient_gender, ''), coalesce(t.patient_address_1, ''), coalesce(t.patient_address_2, ''),
        coalesce(t.patient_city, ''), coalesce(t.patient_zip, ''), t.county_id::text,
        coalesce(t.patient_phone_home, ''), coalesce(t.lab_id, ''), coalesce(t.sending_facility_clia, ''),
        coalesce(t.lab_name, ''), coalesce(t.patient_key, ''),
        coalesce(t.request_facility_address_1, ''), coalesce(t.request_facility_address_2, ''),
        coalesce(t.request_facility_city, ''), coalesce(t.request_facility_code, ''),
        coalesce(t.request_facility_name, ''), coalesce(t.request_phone_facility, ''),
        coalesce(t.request_provider_address_1, ''), coalesce(t.request_provider_city, ''),
        coalesce(t.request_provider_id, ''), coalesce(t.request_provider_name_first, ''),
        coalesce(t.request_provider_name_last, ''),
        eclrs_timestamp_text(t.request_collection_date), eclrs_timestamp_text(t.eclrs_create_date),
        coalesce(t.result_local_test_code, ''), coalesce(t.result_local_test_desc, ''),
        coalesce(t.result_loinc_code, ''), coalesce(t.result_loinc_desc, ''),
        eclrs_timestamp_text(t.result_observation_date),
        coalesce(t.result_observation_text, ''), coalesce(t.result_observation_text_short, ''),
        coalesce(t.result_status_code, ''), coalesce(t.result_producer_lab_name, ''),
        coalesce(t.result_snomed_code, ''), coalesce(t.result_snomed_desc, ''),
        coalesce(t.request_accession_number, ''), eclrs_timestamp_text(t.result_analysis_date),
        coalesce(t.request_specimen_source_name, ''), coalesce(t.message_master_key, ''),
        eclrs_timestamp_text(t.patient_updated_at),
        -- v2 and v3 only; concat_ws leaves out a NULL group with its separator
        CASE WHEN f.version >= 2 THEN concat_ws('|',
            coalesce(t.employer_name, ''), coalesce(t.employer_address, ''), coalesce(t.employer_phone, ''),
            coalesce(t.employer_phone_alt, ''), coalesce(t.employee_number, ''), coalesce(t.employee_job_title, ''),
            coalesce(t.school_name, ''), coalesce(t.school_district, ''), coalesce(t.school_code, ''),
            coalesce(t.school_job_class, ''), coalesce(t.school_present, '')) END,
        -- v3 only
        CASE WHEN f.version >= 3 THEN concat_ws('|',
            coalesce(t.first_test, ''), eclrs_timestamp_text(t.aoe_date), coalesce(t.healthcare_employee, ''),
            coalesce(t.eclrs_symptomatic, ''), eclrs_timestamp_text(t.eclrs_symptom_onset_date),
            coalesce(t.eclrs_hospitalized, ''), coalesce(t.eclrs_icu, ''),
            coalesce(t.eclrs_congregate_care_resident, ''), coalesce(t.eclrs_pregnant, '')) END,
        coalesce(t.result, ''))
      FROM (SELECT coalesce((SELECT eclrs_version FROM files WHERE id = t.file_id), 3) AS version) f);
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION raw_line(t test_results) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN coalesce(t.raw_data, rebuilt_raw_line(t));
-- +goose StatementEnd

-- The join tables lose their id and inserted_at and are keyed by what they join. Divergence: the original gave each
-- join row its own id and timestamps; nothing reads them (an event's time is events.inserted_at, its order
-- events.id), and they were a quarter of each row (16 of 64 bytes with the tuple header) plus a primary key index
-- nobody searched.
--
-- test_result_events: an event is on at most one test result, so event_id is the key. Looking up a result's events
-- goes through an index on test_result_id alone, whose duplicates PostgreSQL stores once with a list of row
-- pointers: a third of the size of the (test_result_id, event_id) index it replaces as Engine 2 grows them (64
-- against 228 bytes per test result), which no query read beyond its first column (Engine 2's claim reads
-- test_result_events_finished_unique). The key also serves the operator's "failed test results" query, which
-- starts from events.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS test_result_events_event_id_unique ON test_result_events (event_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS test_result_events_test_result_id_index ON test_result_events (test_result_id);
ALTER TABLE test_result_events DROP COLUMN IF EXISTS id, DROP COLUMN IF EXISTS inserted_at;
-- +goose StatementBegin
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_constraint WHERE conrelid = 'test_result_events'::regclass AND contype = 'p') THEN
        ALTER TABLE test_result_events
            ADD CONSTRAINT test_result_events_pkey PRIMARY KEY USING INDEX test_result_events_event_id_unique;
    END IF;
END $$;
-- +goose StatementEnd
DROP INDEX CONCURRENTLY IF EXISTS test_result_events_test_result_event_index;

-- index_case_events: the key is (index_case_id, event_id), the index Engines 3 and 4 already read a case's events
-- through (index-only), now unique, so the separate id index goes.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS index_case_events_index_case_event_unique
    ON index_case_events (index_case_id, event_id);
ALTER TABLE index_case_events DROP COLUMN IF EXISTS id, DROP COLUMN IF EXISTS inserted_at;
-- +goose StatementBegin
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_constraint WHERE conrelid = 'index_case_events'::regclass AND contype = 'p') THEN
        ALTER TABLE index_case_events
            ADD CONSTRAINT index_case_events_pkey PRIMARY KEY USING INDEX index_case_events_index_case_event_unique;
    END IF;
END $$;
-- +goose StatementEnd
DROP INDEX CONCURRENTLY IF EXISTS index_case_events_index_case_event_index;

-- +goose Down
CREATE INDEX IF NOT EXISTS index_case_events_index_case_event_index ON index_case_events (index_case_id, event_id);
ALTER TABLE index_case_events DROP CONSTRAINT IF EXISTS index_case_events_pkey;
ALTER TABLE index_case_events ADD COLUMN IF NOT EXISTS id bigserial PRIMARY KEY,
    ADD COLUMN IF NOT EXISTS inserted_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX IF NOT EXISTS test_result_events_test_result_event_index ON test_result_events (test_result_id, event_id);
DROP INDEX IF EXISTS test_result_events_test_result_id_index;
ALTER TABLE test_result_events DROP CONSTRAINT IF EXISTS test_result_events_pkey;
ALTER TABLE test_result_events ADD COLUMN IF NOT EXISTS id bigserial PRIMARY KEY,
    ADD COLUMN IF NOT EXISTS inserted_at timestamptz NOT NULL DEFAULT now();
UPDATE test_results SET raw_data = rebuilt_raw_line(test_results) WHERE raw_data IS NULL;
DROP FUNCTION IF EXISTS raw_line(test_results);
DROP FUNCTION IF EXISTS rebuilt_raw_line(test_results);
DROP FUNCTION IF EXISTS eclrs_timestamp_text(timestamp);
