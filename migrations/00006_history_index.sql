-- +goose NO TRANSACTION
-- +goose Up
-- Engine 3 reads the index case events written since its horizon (00005) through this index. Rows from before 00005
-- have no xid and are left out, so the build is quick even on a long history; built concurrently so the engines keep
-- writing meanwhile. index_case_id rides along: the pass needs nothing else from the row.
CREATE INDEX CONCURRENTLY IF NOT EXISTS index_case_events_xid_index ON index_case_events (xid) INCLUDE (index_case_id)
    WHERE xid IS NOT NULL;

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS index_case_events_xid_index;
