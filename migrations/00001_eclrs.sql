-- +goose Up
-- ECLRS side of the data model: what Engine 1 writes and Engine 2 reads.
--
-- Table names follow the original system (files, abouts, test_results, counties) so its reference documents map
-- one-to-one. Divergences are noted where they occur. Timestamps that Viaduct records about its own work are
-- timestamptz; timestamps copied out of ECLRS rows are `timestamp` holding UTC, as in the original.

-- counties: one row per FIPS code, either seen in an ECLRS row (Engine 1) or seeded from the CommCare county list
-- (Engine 2), so the statewide fallback never fails a foreign key.
CREATE TABLE counties (
    id          bigint PRIMARY KEY,           -- the FIPS code itself; no sequence
    tid         varchar(255),
    inserted_at timestamptz NOT NULL DEFAULT now()
);

-- files: one row per S3 object (or local file) Engine 1 was asked to import.
-- Divergence: the original keyed files on a random temp path, so one object could be imported twice. A file is
-- identified here by (bucket, key, etag, version_id); a redelivered notification for the same object is a no-op.
-- A failed import is recorded with its reason instead of being left half-written.
CREATE TABLE files (
    id                      bigserial PRIMARY KEY,
    filename                text NOT NULL,         -- s3://bucket/key or the local path, for people
    bucket                  text NOT NULL DEFAULT '',
    key                     text NOT NULL,
    etag                    text NOT NULL DEFAULT '',
    version_id              text NOT NULL DEFAULT '',
    size_bytes              bigint,
    event_time              timestamptz,           -- when S3 said the object was created; "newest export wins"
    eclrs_version           integer,               -- 1, 2 or 3, set once the header is recognised
    status                  text NOT NULL DEFAULT 'importing'
        CHECK (status IN ('importing', 'imported', 'failed', 'skipped')),
    failure_reason          text,
    attempts                integer NOT NULL DEFAULT 0,
    line_count              bigint,                -- data lines read (the header excluded)
    statistics              jsonb,                 -- {"new":{"total":n,"<fips>":n},"matched":…,"duplicate":…,"error":…}
    processing_started_at   timestamptz,
    processing_completed_at timestamptz,
    tid                     varchar(255),
    inserted_at             timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT files_object_identity UNIQUE (bucket, key, etag, version_id)
);
CREATE INDEX files_status_event_time_index ON files (status, event_time);

-- file_row_errors: malformed rows. Divergence: the original crashed the whole file on one bad line (HEAD) or
-- dropped the row without a trace (f49). Here each bad row is recorded with its line number and reason, and the
-- rest of the file imports.
CREATE TABLE file_row_errors (
    id          bigserial PRIMARY KEY,
    file_id     bigint NOT NULL REFERENCES files (id),
    line_number integer NOT NULL,
    field       text NOT NULL DEFAULT '',        -- ECLRS header name, '' when the whole row is at fault
    reason      text NOT NULL,
    raw_data    text NOT NULL,                   -- the trimmed line, so the row can be fixed and re-sent
    inserted_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT file_row_errors_line UNIQUE (file_id, line_number)
);

-- test_results: one row per ECLRS row never seen before. Columns and conversions are the original's (HEAD, v3).
--
-- Divergences, all for the bulk load (500k rows every 30 minutes):
-- * The row's identity lives here (checksum, checksum_version, patient_key_id), and abouts is a view over it: one
--   COPY and one index per new row instead of two tables kept 1:1. The original kept three versioned checksums and
--   matched on the one of the layout a row was first imported in; here one identity checksum, SHA-256 of the row's
--   fields padded to the newest layout (v3) and re-serialised, recognises the same result sent in an older layout.
--   It equals the original's v3 checksum. checksum_version names the layout it is computed in, so a future layout
--   can be added beside it.
-- * file_id and county_id carry no foreign-key constraints: a per-row trigger check cost more than the rest of the
--   insert. Engine 1 records the file and the counties before the rows, in the same transaction (tested).
-- * The exclusion constraint on raw_data is gone: identity is the checksum. line_number is new. The search indexes
--   on names, phones and keys are left to the engines that need them.
CREATE TABLE test_results (
    id                                 bigserial PRIMARY KEY,
    file_id                            bigint NOT NULL,
    line_number                        integer,
    county_id                          bigint NOT NULL,
    raw_data                           text,
    patient_name_last                  text,
    patient_name_middle                text,
    patient_name_first                 text,
    patient_dob                        date,
    patient_gender                     text,
    patient_address_1                  text,
    patient_address_2                  text,
    patient_city                       text,
    patient_zip                        text,
    patient_phone_home                 text,
    patient_phone_home_normalized      varchar(255),
    lab_id                             text,
    sending_facility_clia              text,
    lab_name                           text,
    patient_key                        text,
    request_facility_address_1         text,
    request_facility_address_2         text,
    request_facility_city              text,
    request_facility_code              text,
    request_facility_name              text,
    request_phone_facility             text,
    request_phone_facility_normalized  varchar(255),
    request_provider_address_1         text,
    request_provider_city              text,
    request_provider_id                text,
    request_provider_name_first        text,
    request_provider_name_last         text,
    request_collection_date            timestamp(6),
    eclrs_create_date                  timestamp(6),
    result_local_test_code             text,
    result_local_test_desc             text,
    result_loinc_code                  text,
    result_loinc_desc                  text,
    result_observation_date            timestamp(6),
    result_observation_text            text,
    result_observation_text_short      text,
    result_status_code                 text,
    result_producer_lab_name           text,
    result_snomed_code                 text,
    result_snomed_desc                 text,
    request_accession_number           text,
    result_analysis_date               timestamp(6),
    request_specimen_source_name       text,
    message_master_key                 text,
    patient_updated_at                 timestamp(6),
    employer_name                      varchar(255),
    employer_address                   varchar(255),
    employer_phone                     varchar(255),
    employer_phone_alt                 varchar(255),
    employee_number                    varchar(255),
    employee_job_title                 varchar(255),
    school_name                        varchar(255),
    school_district                    varchar(255),
    school_code                        varchar(255),
    school_job_class                   varchar(255),
    school_present                     varchar(255),
    first_test                         text,
    aoe_date                           timestamp(6),
    healthcare_employee                text,
    eclrs_symptomatic                  text,
    eclrs_symptom_onset_date           timestamp(6),
    eclrs_hospitalized                 text,
    eclrs_icu                          text,
    eclrs_congregate_care_resident     text,
    eclrs_pregnant                     text,
    result                             text,
    checksum                           bytea NOT NULL CHECK (octet_length(checksum) = 32),
    checksum_version                   smallint NOT NULL DEFAULT 3,
    patient_key_id                     bigint,    -- PIDPATIENTKEY as a number; NULL when it is not one
    tid                                varchar(255),
    inserted_at                        timestamptz NOT NULL DEFAULT now(),
    updated_at                         timestamptz NOT NULL DEFAULT now(),
    -- file_id rides along in the index so that de-duplication is an index-only scan: it tells a row seen in an
    -- earlier file (matched) from one seen earlier in the same file (duplicate) without touching the wide heap.
    CONSTRAINT test_results_checksum_unique UNIQUE (checksum) INCLUDE (file_id)
);
CREATE INDEX test_results_file_id_index ON test_results (file_id);

-- abouts: the identity of every imported row, under the original's name and column names. A view: see the notes on
-- test_results. last_seen_file_id/last_seen_at are not kept: refreshing them rewrote ~500k rows every 30 minutes;
-- each file's statistics count its matched rows instead.
CREATE VIEW abouts AS
    SELECT id AS test_result_id, checksum, checksum_version, patient_key_id, county_id,
           file_id AS first_seen_file_id, tid, inserted_at
      FROM test_results;

-- +goose Down
DROP VIEW abouts;
DROP TABLE test_results;
DROP TABLE file_row_errors;
DROP TABLE files;
DROP TABLE counties;
