package casedb

import (
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// CaseLoaderQueue is the River queue Engine 4's jobs run in.
const CaseLoaderQueue = "commcare"

// CaseLoaderMaxAttempts is how many times Engine 4 tries to hand a case to CommCare before giving up.
const CaseLoaderMaxAttempts = 20

// CaseLoaderArgs is the job Engine 3 inserts and Engine 4 works: send one index case, with its lab results, to
// CommCare. It names the case; Engine 4 reads what to send from the database when it runs, so a job that waits
// still sends the newest data.
type CaseLoaderArgs struct {
	// CaseID is index_cases.case_id.
	CaseID string `json:"case_id" river:"unique"`
	// CountyID is the county the case is filed under (index_cases.county_id), whose domain it goes to.
	CountyID int64 `json:"county_id"`
}

// Kind names the job for River.
func (CaseLoaderArgs) Kind() string { return "commcare_case_loader" }

// InsertOpts make a case's job unique while it waits, runs or waits to retry: a case is never queued twice at
// once. A case that changes while its job runs is not queued again then; Engine 3 finds it still changed and
// queues it once the running job has finished.
func (CaseLoaderArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:       CaseLoaderQueue,
		MaxAttempts: CaseLoaderMaxAttempts,
		UniqueOpts: river.UniqueOpts{
			ByArgs: true,
			ByState: []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStatePending,
				rivertype.JobStateRunning, rivertype.JobStateRetryable, rivertype.JobStateScheduled},
		},
	}
}
