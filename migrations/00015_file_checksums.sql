-- +goose Up
-- file_checksums: the identities of the last imported file's rows, for the next import to recognise them without
-- asking the checksum index. ECLRS sends the last 14 days every 30 minutes, so 99% of a file's rows were in the file
-- before it: probing the index for each (about 2 µs, 495,000 times a file) was most of a warm import. Engine 1
-- writes the row in the import's transaction and keeps only the newest; test_results stays the authority, and a
-- row the set lacks is looked up there as before. checksums holds the first 16 bytes of the checksum of each row of
-- the file, in file order: 8 MB for 500,000 rows, stored out of line without compression (random bytes do not
-- compress).
CREATE TABLE file_checksums (
    file_id   bigint PRIMARY KEY REFERENCES files (id),
    checksums bytea NOT NULL CHECK (octet_length(checksums) % 16 = 0)
);
ALTER TABLE file_checksums ALTER COLUMN checksums SET STORAGE EXTERNAL;

-- +goose Down
DROP TABLE file_checksums;
