-- +goose Up
-- CommCare side of the data model: what Engine 2 writes from test results, Engine 3 selects, Engine 4 posts and
-- Engine 5 merges back. Names follow the original (people, index_cases, lab_results, events and their join tables).

CREATE TABLE people (
    id           bigserial PRIMARY KEY,
    patient_keys text[] NOT NULL,
    data         jsonb NOT NULL DEFAULT '{}',
    name_first   text,                           -- upper-cased first token of the first name
    name_last    text,                           -- upper-cased last name
    dob          date,
    inserted_at  timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX people_patient_keys_gin_index ON people USING gin (patient_keys);
CREATE UNIQUE INDEX people_dob_name_unique ON people (dob, name_last, name_first)
    WHERE dob IS NOT NULL AND name_last IS NOT NULL AND name_first IS NOT NULL;

CREATE TABLE index_cases (
    id                     bigserial PRIMARY KEY,
    person_id              bigint NOT NULL REFERENCES people (id),
    county_id              bigint NOT NULL REFERENCES counties (id),
    -- CommCare's case id: generated here before the first post, or CommCare's own for cases pulled by Engine 5.
    case_id                text NOT NULL DEFAULT gen_random_uuid()::text,
    data                   jsonb NOT NULL,
    closed                 boolean NOT NULL DEFAULT false,
    commcare_date_modified timestamptz,
    tid                    varchar(255),
    inserted_at            timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT index_cases_case_id_unique UNIQUE (case_id)
);
CREATE INDEX index_cases_person_county_index ON index_cases (person_id, county_id);
CREATE INDEX index_cases_transfer_source_case_id_index ON index_cases ((data ->> 'transfer_source_case_id'));

CREATE TABLE lab_results (
    id               bigserial PRIMARY KEY,
    index_case_id    bigint NOT NULL REFERENCES index_cases (id),
    case_id          text NOT NULL DEFAULT gen_random_uuid()::text,
    accession_number text NOT NULL,
    data             jsonb NOT NULL,
    tid              varchar(255),
    inserted_at      timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX lab_results_index_case_accession_index ON lab_results (index_case_id, accession_number);

-- events: what happened, in insertion order. Engines compare event ids, never timestamps. The type names are the
-- original's and are listed with their writer and reader in pkg/eclrs/event.go and pkg/commcare/event.go.
CREATE TABLE events (
    id          bigserial PRIMARY KEY,
    type        text NOT NULL,
    data        jsonb,
    stash       text,
    inserted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_type_index ON events (type);

CREATE TABLE test_result_events (
    id             bigserial PRIMARY KEY,
    test_result_id bigint NOT NULL REFERENCES test_results (id),
    event_id       bigint NOT NULL REFERENCES events (id),
    inserted_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX test_result_events_test_result_event_index ON test_result_events (test_result_id, event_id);

CREATE TABLE index_case_events (
    id            bigserial PRIMARY KEY,
    index_case_id bigint NOT NULL REFERENCES index_cases (id),
    event_id      bigint NOT NULL REFERENCES events (id),
    inserted_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX index_case_events_index_case_event_index ON index_case_events (index_case_id, event_id);

-- change_logs: what an update added and what the "never overwrite" rule dropped. Divergence: ids are bigint (the
-- original's were 32-bit). PaperTrail's `versions` table is not carried over; events and change logs are the audit.
CREATE TABLE change_logs (
    id               bigserial PRIMARY KEY,
    source_type      text NOT NULL,
    source_id        bigint NOT NULL,
    destination_type text NOT NULL,
    destination_id   bigint NOT NULL,
    previous_state   jsonb NOT NULL,
    applied_changes  jsonb NOT NULL,
    dropped_changes  jsonb NOT NULL DEFAULT '{}',
    inserted_at      timestamptz NOT NULL DEFAULT now()
);

-- commcare_posts: the last payload Engine 4 posted successfully for a case to a domain. New: lets Engine 4 skip a
-- post when nothing changed (the original computed a diff and ignored it).
CREATE TABLE commcare_posts (
    index_case_id  bigint NOT NULL REFERENCES index_cases (id),
    domain         text NOT NULL,
    payload_sha256 bytea NOT NULL,
    posted_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (index_case_id, domain)
);

-- commcare_sync_marks: Engine 5's persisted high-water mark per domain. New: the original re-read "everything since
-- midnight" every five minutes and missed changes around midnight.
CREATE TABLE commcare_sync_marks (
    domain               text PRIMARY KEY,
    high_water           timestamptz,
    round_started_at     timestamptz,
    round_completed_at   timestamptz,
    last_error           text,
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE commcare_sync_marks;
DROP TABLE commcare_posts;
DROP TABLE change_logs;
DROP TABLE index_case_events;
DROP TABLE test_result_events;
DROP TABLE events;
DROP TABLE lab_results;
DROP TABLE index_cases;
DROP TABLE people;
