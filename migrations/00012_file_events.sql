-- +goose Up
-- file_events: events about a file as a whole, as test_result_events and index_case_events are about their rows.
-- New: the original kept a file's story in its row alone. `viaduct reimport` clears a failed file's reason and
-- attempts to have Engine 1 import it again, so what it undid, who asked and why are recorded here
-- (reimport_requested, pkg/eclrs). Written by hand and rarely, so unlike the engines' join tables it keeps its
-- foreign keys.
CREATE TABLE file_events (
    event_id bigint PRIMARY KEY REFERENCES events (id),
    file_id  bigint NOT NULL REFERENCES files (id)
);
CREATE INDEX file_events_file_id_index ON file_events (file_id);

-- +goose Down
DROP TABLE file_events;
