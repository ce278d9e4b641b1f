// Package eclrs owns the ECLRS side of Viaduct: the export file format (layouts v1–v3, pipe-delimited with CSV
// quoting), the identity checksum of a row, the conversions into test_results columns, and the tables Engine 1
// writes and Engine 2 reads (files, abouts, test_results, file_row_errors, counties) with their query functions, and
// the event vocabulary of test results and files (file_events: an operator's `viaduct reimport`).
//
// Query functions take a DBTX per call, so callers decide what commits together.
package eclrs
