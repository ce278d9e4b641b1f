// Package e1 is Engine 1, the ECLRS extractor: it turns ECLRS exports announced on SQS into test_results rows.
//
// # Reads
//
// S3 event notifications from an SQS queue (raw, or wrapped in an SNS envelope), through watermill-aws, as S3 and
// the emulators write them: keys form-encoded, eventTime in RFC 3339 or without a zone (moto's, read as UTC), and
// nothing required beyond eventName, eventTime, bucket and key (moto sends no sequencer); the announced objects
// from S3, streamed, never held whole in memory or copied to disk; and from PostgreSQL the identity checksums of
// every row already imported (abouts), the set of the last imported file's checksums (file_checksums) and the
// files already handled (files).
//
// # Does
//
// For each announced .txt object: skip it if the same object (bucket, key, ETag, version) was already handled (a
// notification delivered twice, or moto's Put and CompleteMultipartUpload of one multipart upload) or if a later
// export is already in; otherwise stream it through bounded stages — read lines, parse and checksum
// (several workers), then de-duplicate and insert (one writer, in file order, a batch at a time). A row is new when
// its identity checksum is in no earlier file; its checksum is over the fields padded to the newest layout, so a
// result sent again in an older layout is still recognised. A row of the last imported file is recognised from that
// file's set in memory; the others are looked up in the checksum index, the authority. Malformed rows are recorded
// and counted; the rest of the file imports. An unrecognised header or a missing object fails the file with the
// reason recorded.
//
// The whole file commits in one transaction, together with its files row and statistics; only then is the SQS
// message deleted. While the import runs, the message's visibility is extended so no other consumer takes it. A
// crash at any point rolls everything back and the redelivered message starts afresh. Imports take a database-wide
// advisory lock, so any number of daemons may listen on the same queue.
//
// # Writes
//
// files (one row per object, with status imported, failed or skipped and the statistics), test_results and abouts
// (the new rows, by binary COPY), file_checksums (this file's set, replacing the last one), file_row_errors
// (malformed rows with line number, field and reason), counties (every county code seen), and a NOTIFY on
// eclrs.NotifyChannel when new test results were committed.
//
// # Notes
//
// `viaduct extract` runs the same Importer on local files or S3 objects named on the command line.
package e1
