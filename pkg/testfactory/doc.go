// Package testfactory builds rows of the case tables and of test_results for tests, in the style of River's
// internal testfactory: one function per table, each taking the test, a context, a database handle (a pool, a
// connection or a transaction: [casedb.DBTX]) and a pointer to an options struct, where nil or a zero field means a
// sensible default. Each fails the test through require when the insert fails, and returns the new row's id.
//
//   - [TestResult]: a test_results row as Engine 1 stores it ("" and the zero time as NULL), from an
//     [eclrs.TestResult]; [LoadExport] stores a whole ECLRS export with one COPY, as Engine 1 does.
//   - [Person]: a people row with its person_keys rows, written together as every writer of people must.
//   - [IndexCase], [LabResult]: an index case of a person in a county, a lab result on an index case.
//   - [Event]: an event on an index case, recorded with [casedb.RecordEvent].
//   - [County]: a bare counties row, for tests that do not seed a county list.
//
// A row that needs a parent and is given none gets a new one with defaults (a lab result without an index case
// gets an index case of a new person), so a test names only what it is about. Index cases and test results default
// to [MidsomerCountyID]; an index case's county must have a counties row (countylist.Seed with
// commcaretest.TestCounties, or [County]).
//
// The package sits apart from pkg/casedb and pkg/eclrs because it writes the tables of both: neither may import it
// (their own in-package tests could not), and it imports neither pgtest nor any other stand-in, only the packages
// whose tables it fills. It is for tests: production code must not import it.
package testfactory
