-- +goose Up
-- Engine 2 writes a person, their index case and its lab results in one transaction, by COPY, in that order. Each
-- foreign key below made PostgreSQL look up and lock the referenced row for every row copied: a tenth of Engine 2's
-- time (make bench-e2). They go, as test_results' and the event join tables' went before them (00001, 00007); the
-- engines write the referenced row first in the same transaction, and their tests check that no row points at
-- nothing (engines/e2's drain, engines/e5's). index_cases keeps its key on counties: a county the county list names
-- but the counties table lacks must fail its batch, which is retried once the cache has seeded it.
ALTER TABLE lab_results DROP CONSTRAINT IF EXISTS lab_results_index_case_id_fkey;
ALTER TABLE index_cases DROP CONSTRAINT IF EXISTS index_cases_person_id_fkey;
ALTER TABLE person_keys DROP CONSTRAINT IF EXISTS person_keys_person_id_fkey;

-- +goose Down
ALTER TABLE person_keys ADD FOREIGN KEY (person_id) REFERENCES people (id);
ALTER TABLE index_cases ADD FOREIGN KEY (person_id) REFERENCES people (id);
ALTER TABLE lab_results ADD FOREIGN KEY (index_case_id) REFERENCES index_cases (id);
