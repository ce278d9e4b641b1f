-- +goose NO TRANSACTION
-- +goose Up
-- `viaduct trace` finds a test result by file and line, or by accession number, through an index: on a history of
-- millions of results, reading the whole table per question would take seconds and evict what the engines keep
-- cached. (file_id, line_number) replaces the index on file_id alone, which is its prefix, so Engine 1 maintains no
-- more indexes for it; the accession number index is the one addition. A patient key is not indexed: the question is
-- rare, and another index on every imported row would slow Engine 1 for it, so `trace --patient-key` reads the
-- table (about a second per million results). Built concurrently, so the engines keep writing meanwhile.
CREATE INDEX CONCURRENTLY IF NOT EXISTS test_results_file_line_index ON test_results (file_id, line_number);
DROP INDEX CONCURRENTLY IF EXISTS test_results_file_id_index;
CREATE INDEX CONCURRENTLY IF NOT EXISTS test_results_accession_index ON test_results (request_accession_number);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS test_results_accession_index;
CREATE INDEX CONCURRENTLY IF NOT EXISTS test_results_file_id_index ON test_results (file_id);
DROP INDEX CONCURRENTLY IF EXISTS test_results_file_line_index;
