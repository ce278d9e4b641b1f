// Package advisory is the one list of the PostgreSQL advisory locks Viaduct takes, and the one way a lock's name
// becomes its key. A lock's key is the 64-bit FNV-1a hash of its name, computed here and passed to
// pg_advisory_lock and its kin as a bigint: 64 bits keep the per-person locks of millions of people apart, where
// PostgreSQL's 32-bit hashtext would make unrelated people wait for each other.
//
// Every name starts with "viaduct:", so no other application sharing the database can take one by accident.
package advisory

import (
	"hash/fnv"
	"strconv"
	"time"
)

// The locks with one instance each, by name.
const (
	// Migrate is held (session-level) while one process applies the migrations.
	Migrate = "viaduct:migrate"
	// E1Import is held (transaction-level) while Engine 1 inserts an export's new test results: Engine 2's claim
	// floor relies on ids committing in increasing order.
	E1Import = "viaduct:e1:import"
	// E3Pass is held (session-level) for the whole of an Engine 3 pass: one pass at a time across daemons, so the
	// horizon only moves forward.
	E3Pass = "viaduct:e3:pass"
	// E5Round is held (session-level) by the daemon leading Engine 5's rounds: one poll of CommCare at a time.
	E5Round = "viaduct:e5:round"
	// Purge is held (session-level) for the whole of a retention purge (pkg/retention): one purge at a time, whether
	// `viaduct purge` or a daemon's schedule runs it.
	Purge = "viaduct:purge"
	// TestTemplate is held by tests while they build the template database.
	TestTemplate = "viaduct:pgtest:template"
)

// Key maps a lock's name to its advisory lock key.
func Key(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return int64(h.Sum64())
}

// Person is the key of the lock on person id, which writers of the person's index cases and lab results hold
// (casedb.LockPeople).
func Person(id int64) int64 {
	return Key("viaduct:person:" + strconv.FormatInt(id, 10))
}

// PersonName and PersonKey are the keys of the locks on a person identity: a date of birth with the upper-cased last
// name and first token of the first name, or a patient key. Writers that may create a person hold them while they
// look the person up (casedb.LockIdentities).
func PersonName(dob time.Time, last, first string) int64 {
	return Key("viaduct:person-name:" + dob.Format(time.DateOnly) + "|" + last + "|" + first)
}

// PersonKey: see PersonName.
func PersonKey(patientKey string) int64 {
	return Key("viaduct:person-key:" + patientKey)
}
