// Package eclrsgen writes synthetic ECLRS exports for benchmarks, tests and demos.
//
// The output is deterministic: row i is a pure function of the seed and i, so two
// files whose row ranges overlap share those lines byte for byte, exactly as two
// consecutive 14-day rolling exports do. Values look like real exports (names, dates
// of birth, New York addresses and counties, phone numbers in several styles,
// 14-digit patient keys, lab and LOINC codes, New York timestamps, some employer,
// school and "ask on order entry" answers) and rows average about 600 bytes. About a
// third of the rows are a further test of a person who already has a row (same name,
// date of birth and patient key, another accession number), which is what Engine 2
// has to match. A few rows carry quoted values with "|" or doubled quotes, so the
// slow parsing path is exercised too.
//
// Every name, address and number is invented; nothing comes from real exports.
package eclrsgen
