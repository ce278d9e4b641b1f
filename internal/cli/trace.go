package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/eclrs"
)

// maxTraceMatches is how many journeys one trace prints; a selector matching more (a patient key with years of
// results) says how many were left out, so the operator can narrow it.
const maxTraceMatches = 50

// maxTraceCases bounds the index cases one journey follows (the cases Engine 2 touched and the transfer
// destinations reached from them), against a transfer history that loops.
const maxTraceCases = 20

func runTrace(ctx context.Context, args []string, getenv func(string) string, stdout, _ io.Writer) error {
	var c Config
	var sel traceSelector
	var fileID, line int
	var asJSON, showPII bool
	s := NewOptionSet("trace", "(--file FILE_ID --line N | --accession NUMBER | --patient-key KEY | --case-id ID) [flags]",
		"Print what happened to a test result, in time order: the file and line it arrived in, what Engine 2 made of it\n"+
			"(person, index case, lab result), each hand-off to Engine 4, each post to CommCare with its answer and domain\n"+
			"(transfers followed), each merge back from CommCare. Patient data is printed only with --show-pii.", getenv)
	addDatabase(s, &c)
	s.Int(&fileID, "file", "", 0, "The id of the file the result arrived in (files.id); with --line.")
	s.Int(&line, "line", "", 0, "The result's line in that file; with --file.")
	s.String(&sel.Accession, "accession", "", "", "Every test result with this accession number.")
	s.String(&sel.PatientKey, "patient-key", "", "", "Every test result with this patient key.")
	s.String(&sel.CaseID, "case-id", "", "", "The test results on this index case (its CommCare case id), and on the cases transferred to it.")
	s.Bool(&asJSON, "json", "", false, "Print JSON instead of a timeline.")
	s.Bool(&showPII, "show-pii", "", false, "Also print patient data: names, date of birth, address, phone, patient keys, accession numbers.")
	s.Check(func() error {
		set := map[string]bool{}
		s.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		sel.FileID, sel.Line = int64(fileID), line
		return sel.validate(set)
	})
	if err := s.Parse(args, stdout); err != nil {
		return UsageError(err)
	}
	pool, err := openCurrentPool(ctx, c.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	r, err := readTrace(ctx, pool, sel, showPII)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else {
		r.writeText(stdout)
	}
	if len(r.Matches) == 0 {
		return fmt.Errorf("nothing matches %s", sel)
	}
	return nil
}

// traceSelector is what the operator asked about: exactly one of a file and line, an accession number, a patient
// key or an index case's CommCare case id.
type traceSelector struct {
	FileID     int64  `json:"file_id,omitempty"`
	Line       int    `json:"line,omitempty"`
	Accession  string `json:"accession,omitempty"`
	PatientKey string `json:"patient_key,omitempty"`
	CaseID     string `json:"case_id,omitempty"`
}

// validate checks that exactly one selector was given, set naming the flags given on the command line.
func (sel traceSelector) validate(set map[string]bool) error {
	var errs []error
	var given []string
	switch {
	case set["file"] && set["line"]:
		given = append(given, "--file/--line")
		if sel.FileID <= 0 {
			errs = append(errs, errors.New("--file must be a file id (a positive number)"))
		}
		if sel.Line <= 0 {
			errs = append(errs, errors.New("--line must be a line number (a positive number)"))
		}
	case set["file"]:
		errs = append(errs, errors.New("--file needs --line: a result is found by its file and its line in it"))
		given = append(given, "--file")
	case set["line"]:
		errs = append(errs, errors.New("--line needs --file: a result is found by its file and its line in it"))
		given = append(given, "--line")
	}
	for _, f := range []struct {
		name, value string
	}{{"accession", sel.Accession}, {"patient-key", sel.PatientKey}, {"case-id", sel.CaseID}} {
		if !set[f.name] {
			continue
		}
		given = append(given, "--"+f.name)
		if strings.TrimSpace(f.value) == "" {
			errs = append(errs, fmt.Errorf("--%s must not be empty", f.name))
		}
	}
	switch {
	case len(given) == 0:
		errs = append(errs, errors.New("name the result: --file FILE_ID --line N, --accession NUMBER, --patient-key KEY or --case-id ID"))
	case len(given) > 1:
		errs = append(errs, fmt.Errorf("give one of --file/--line, --accession, --patient-key, --case-id, not %s",
			strings.Join(given, " and ")))
	}
	return errors.Join(errs...)
}

// String renders the selector as it was typed.
func (sel traceSelector) String() string {
	switch {
	case sel.Accession != "":
		return "--accession " + sel.Accession
	case sel.PatientKey != "":
		return "--patient-key " + sel.PatientKey
	case sel.CaseID != "":
		return "--case-id " + sel.CaseID
	default:
		return fmt.Sprintf("--file %d --line %d", sel.FileID, sel.Line)
	}
}

// traceReport is what `viaduct trace` prints: the selector and one journey per match.
type traceReport struct {
	Selector traceSelector  `json:"selector"`
	ShowPII  bool           `json:"show_pii"`
	Matches  []traceJourney `json:"matches"`
	// Omitted counts the matches beyond maxTraceMatches, left out.
	Omitted int `json:"omitted,omitempty"`
}

// traceJourney is one test result's journey; or, for a case selected by --case-id that no test result reached
// (one Engine 5 brought from CommCare), that case's.
type traceJourney struct {
	TestResultID int64 `json:"test_result_id,omitempty"`
	FileID       int64 `json:"file_id,omitempty"`
	Line         int   `json:"line,omitempty"`
	CountyID     int64 `json:"county_id,omitempty"`
	// IndexCaseID is set on a journey of a case without a test result.
	IndexCaseID int64 `json:"index_case_id,omitempty"`
	// Outcome is where the result stands with Engine 2: processed, ignored, failed, retrying or waiting.
	Outcome string `json:"outcome"`
	// Patient is the result's patient data, only with --show-pii.
	Patient *tracePatient `json:"patient,omitempty"`
	Steps   []traceStep   `json:"steps"`
	// Notes say what the journey cannot show, and why.
	Notes []string `json:"notes,omitempty"`
}

// tracePatient is the patient data of a test result as ECLRS sent it.
type tracePatient struct {
	PatientKey      string `json:"patient_key,omitempty"`
	AccessionNumber string `json:"accession_number,omitempty"`
	NameFirst       string `json:"name_first,omitempty"`
	NameMiddle      string `json:"name_middle,omitempty"`
	NameLast        string `json:"name_last,omitempty"`
	DOB             string `json:"dob,omitempty"`
	Address1        string `json:"address_1,omitempty"`
	Address2        string `json:"address_2,omitempty"`
	City            string `json:"city,omitempty"`
	Zip             string `json:"zip,omitempty"`
	Phone           string `json:"phone,omitempty"`
}

// traceStep is one step of a journey: an event, or the arrival, a retry, a job still waiting. Summary says it in a
// sentence; the other fields carry its ids and CommCare's answer for machines.
type traceStep struct {
	Time    time.Time `json:"time"`
	Stage   string    `json:"stage"`
	Type    string    `json:"type"`
	Summary string    `json:"summary"`
	EventID int64     `json:"event_id,omitempty"`

	FileID   int64  `json:"file_id,omitempty"`
	Filename string `json:"filename,omitempty"`
	Line     int    `json:"line,omitempty"`

	PersonID        int64  `json:"person_id,omitempty"`
	IndexCaseID     int64  `json:"index_case_id,omitempty"`
	CaseID          string `json:"case_id,omitempty"`
	CountyID        int64  `json:"county_id,omitempty"`
	LabResultID     int64  `json:"lab_result_id,omitempty"`
	LabResultCaseID string `json:"lab_result_case_id,omitempty"`
	AccessionNumber string `json:"accession_number,omitempty"`
	// TestResultID is another test result whose change to the case this step is.
	TestResultID int64 `json:"test_result_id,omitempty"`

	Domain       string   `json:"domain,omitempty"`
	Action       string   `json:"action,omitempty"`
	HTTPStatus   int      `json:"http_status,omitempty"`
	Response     string   `json:"response,omitempty"`
	ResponseBody string   `json:"response_body,omitempty"`
	Reason       string   `json:"reason,omitempty"`
	Properties   []string `json:"properties,omitempty"`

	DestinationIndexCaseID int64  `json:"destination_index_case_id,omitempty"`
	DestinationCaseID      string `json:"destination_case_id,omitempty"`
	TransferChain          string `json:"transfer_chain,omitempty"`

	JobID       int64  `json:"job_id,omitempty"`
	JobState    string `json:"job_state,omitempty"`
	Attempt     int    `json:"attempt,omitempty"`
	MaxAttempts int    `json:"max_attempts,omitempty"`
}

// tracer reads journeys in one snapshot.
type tracer struct {
	tx      pgx.Tx
	sel     traceSelector
	showPII bool
	cases   map[int64]*tracedCase
	labs    map[int64]*tracedLab
}

type tracedCase struct {
	id, personID, countyID int64
	caseID                 string
	transferSource         string // data.transfer_source_case_id, CommCare's record of a transfer into it
}

type tracedLab struct {
	id, indexCaseID int64
	caseID          string
	accession       string
}

// readTrace reads the journeys of everything sel matches, in one repeatable-read snapshot so that they add up.
// Every query goes through an index except finding test results by accession number or patient key, which
// test_results has no index for (see the README's "Tracing a result").
func readTrace(ctx context.Context, pool *pgxpool.Pool, sel traceSelector, showPII bool) (*traceReport, error) {
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("starting the trace's snapshot: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	t := &tracer{tx: tx, sel: sel, showPII: showPII, cases: map[int64]*tracedCase{}, labs: map[int64]*tracedLab{}}
	r := &traceReport{Selector: sel, ShowPII: showPII, Matches: []traceJourney{}}
	results, caseOnly, err := t.matches(ctx)
	if err != nil {
		return nil, err
	}
	if len(results) > maxTraceMatches {
		r.Omitted = len(results) - maxTraceMatches
		results = results[:maxTraceMatches]
	}
	for _, id := range results {
		j, err := t.testResultJourney(ctx, id)
		if err != nil {
			return nil, err
		}
		r.Matches = append(r.Matches, *j)
	}
	if caseOnly != nil {
		j, err := t.caseJourney(ctx, caseOnly)
		if err != nil {
			return nil, err
		}
		r.Matches = append(r.Matches, *j)
	}
	return r, nil
}

// matches returns the ids of the test results sel names, in id order; for --case-id naming a case no test result
// reached, that case instead.
func (t *tracer) matches(ctx context.Context) ([]int64, *tracedCase, error) {
	var query string
	var arg []any
	switch {
	case t.sel.FileID != 0:
		// test_results_file_id_index, then the file's rows are filtered by line.
		query, arg = `SELECT id FROM test_results WHERE file_id = $1 AND line_number = $2 ORDER BY id`,
			[]any{t.sel.FileID, t.sel.Line}
	case t.sel.Accession != "":
		query, arg = `SELECT id FROM test_results WHERE request_accession_number = $1 ORDER BY id`, []any{t.sel.Accession}
	case t.sel.PatientKey != "":
		query, arg = `SELECT id FROM test_results WHERE patient_key = $1 ORDER BY id`, []any{t.sel.PatientKey}
	default:
		return t.caseMatches(ctx)
	}
	rows, err := t.tx.Query(ctx, query, arg...)
	if err != nil {
		return nil, nil, fmt.Errorf("finding the test results: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, nil, fmt.Errorf("finding the test results: %w", err)
	}
	return ids, nil, nil
}

// caseMatches finds the test results on the case --case-id names and on the cases transferred into it, back along
// the transfer chain: the source named by Engine 4's index_case_created event on a destination it made, or by the
// destination's transfer_source_case_id property, CommCare's own record.
func (t *tracer) caseMatches(ctx context.Context) ([]int64, *tracedCase, error) {
	var id int64
	err := t.tx.QueryRow(ctx, `SELECT id FROM index_cases WHERE case_id = $1`, t.sel.CaseID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("finding index case %s: %w", t.sel.CaseID, err)
	}
	selected, err := t.indexCase(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	var results []int64
	queue, seen := []*tracedCase{selected}, map[int64]bool{id: true}
	for len(queue) > 0 && len(seen) <= maxTraceCases {
		ic := queue[0]
		queue = queue[1:]
		events, err := t.caseEvents(ctx, ic.id, time.Time{})
		if err != nil {
			return nil, nil, err
		}
		sources := []string{ic.transferSource}
		for _, e := range events {
			if tr := dataInt(e.data, "test_result_id"); tr != 0 && !slices.Contains(results, tr) {
				results = append(results, tr)
			}
			if e.typ == casedb.EventIndexCaseCreated {
				sources = append(sources, dataString(e.data, "transferred_from_case_id"))
			}
		}
		for _, caseID := range sources {
			if caseID == "" {
				continue
			}
			var src int64
			err := t.tx.QueryRow(ctx, `SELECT id FROM index_cases WHERE case_id = $1`, caseID).Scan(&src)
			if errors.Is(err, pgx.ErrNoRows) || seen[src] {
				continue
			}
			if err != nil {
				return nil, nil, fmt.Errorf("finding index case %s: %w", caseID, err)
			}
			seen[src] = true
			c, err := t.indexCase(ctx, src)
			if err != nil {
				return nil, nil, err
			}
			queue = append(queue, c)
		}
	}
	slices.Sort(results)
	if len(results) == 0 {
		return nil, selected, nil
	}
	return results, nil, nil
}

// tracedEvent is an events row, without its stash (Engine 4's form: patient data, and kilobytes).
type tracedEvent struct {
	id   int64
	typ  string
	data map[string]any
	at   time.Time
}

// caseEvents reads the events of index case id recorded at or after from, through index_case_events' key and
// events' primary key.
func (t *tracer) caseEvents(ctx context.Context, id int64, from time.Time) ([]tracedEvent, error) {
	rows, err := t.tx.Query(ctx, `SELECT e.id, e.type, e.data, e.inserted_at
		  FROM index_case_events j JOIN events e ON e.id = j.event_id
		 WHERE j.index_case_id = $1 AND e.inserted_at >= $2 ORDER BY e.id`, id, from)
	if err != nil {
		return nil, fmt.Errorf("reading the events of index case %d: %w", id, err)
	}
	return collectEvents(rows)
}

func collectEvents(rows pgx.Rows) ([]tracedEvent, error) {
	events, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (tracedEvent, error) {
		var e tracedEvent
		err := row.Scan(&e.id, &e.typ, &e.data, &e.at)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading events: %w", err)
	}
	return events, nil
}

// indexCase reads index case id once per trace.
func (t *tracer) indexCase(ctx context.Context, id int64) (*tracedCase, error) {
	if c, ok := t.cases[id]; ok {
		return c, nil
	}
	c := &tracedCase{id: id}
	err := t.tx.QueryRow(ctx, `SELECT person_id, county_id, case_id, coalesce(data->>'transfer_source_case_id', '')
		  FROM index_cases WHERE id = $1`, id).Scan(&c.personID, &c.countyID, &c.caseID, &c.transferSource)
	if errors.Is(err, pgx.ErrNoRows) {
		c.caseID = "(gone)"
	} else if err != nil {
		return nil, fmt.Errorf("reading index case %d: %w", id, err)
	}
	t.cases[id] = c
	return c, nil
}

// labResult reads lab result id once per trace.
func (t *tracer) labResult(ctx context.Context, id int64) (*tracedLab, error) {
	if l, ok := t.labs[id]; ok {
		return l, nil
	}
	l := &tracedLab{id: id}
	err := t.tx.QueryRow(ctx, `SELECT index_case_id, case_id, accession_number FROM lab_results WHERE id = $1`, id).
		Scan(&l.indexCaseID, &l.caseID, &l.accession)
	if errors.Is(err, pgx.ErrNoRows) {
		l.caseID = "(gone)"
	} else if err != nil {
		return nil, fmt.Errorf("reading lab result %d: %w", id, err)
	}
	t.labs[id] = l
	return l, nil
}

// identifier returns an accession number or patient key when it may be printed: with --show-pii, or when it is the
// one the operator typed.
func (t *tracer) identifier(v, selected string) string {
	if t.showPII || (v != "" && v == selected) {
		return v
	}
	return ""
}

// testResultJourney reads test result id's journey: its arrival, Engine 2's events on it, and from then on the
// events of every index case Engine 2 touched with it, transfers followed.
func (t *tracer) testResultJourney(ctx context.Context, id int64) (*traceJourney, error) {
	var j traceJourney
	var inserted time.Time
	var filename, fileStatus string
	var p tracePatient
	var dob *time.Time
	err := t.tx.QueryRow(ctx, `SELECT tr.id, tr.file_id, coalesce(tr.line_number, 0), tr.county_id, tr.inserted_at,
		       coalesce(f.filename, ''), coalesce(f.status, ''),
		       coalesce(tr.patient_key, ''), coalesce(tr.request_accession_number, ''),
		       coalesce(tr.patient_name_first, ''), coalesce(tr.patient_name_middle, ''), coalesce(tr.patient_name_last, ''),
		       tr.patient_dob, coalesce(tr.patient_address_1, ''), coalesce(tr.patient_address_2, ''),
		       coalesce(tr.patient_city, ''), coalesce(tr.patient_zip, ''), coalesce(tr.patient_phone_home, '')
		  FROM test_results tr LEFT JOIN files f ON f.id = tr.file_id WHERE tr.id = $1`, id).
		Scan(&j.TestResultID, &j.FileID, &j.Line, &j.CountyID, &inserted, &filename, &fileStatus,
			&p.PatientKey, &p.AccessionNumber, &p.NameFirst, &p.NameMiddle, &p.NameLast, &dob, &p.Address1,
			&p.Address2, &p.City, &p.Zip, &p.Phone)
	if err != nil {
		return nil, fmt.Errorf("reading test result %d: %w", id, err)
	}
	if t.showPII {
		if dob != nil {
			p.DOB = dob.Format(time.DateOnly)
		}
		j.Patient = &p
	}
	j.Steps = append(j.Steps, traceStep{Time: inserted, Stage: "E1", Type: "arrived",
		Summary: fmt.Sprintf("arrived in file %d (%s), line %d, county %d; the file is %s", j.FileID, filename,
			j.Line, j.CountyID, fileStatus),
		FileID: j.FileID, Filename: filename, Line: j.Line, CountyID: j.CountyID,
		AccessionNumber: t.identifier(p.AccessionNumber, t.sel.Accession)})
	j.Notes = append(j.Notes, "Later files that sent this row again are not recorded per test result: Engine 1 "+
		"keeps the first file a row arrived in and counts the rows it had already seen per file (files.statistics "+
		"\"matched\").")

	rows, err := t.tx.Query(ctx, `SELECT e.id, e.type, e.data, e.inserted_at
		  FROM test_result_events j JOIN events e ON e.id = j.event_id
		 WHERE j.test_result_id = $1 ORDER BY e.id`, id)
	if err != nil {
		return nil, fmt.Errorf("reading the events of test result %d: %w", id, err)
	}
	events, err := collectEvents(rows)
	if err != nil {
		return nil, err
	}
	j.Outcome = "waiting"
	var touched []int64
	for _, e := range events {
		step, err := t.resultStep(ctx, e)
		if err != nil {
			return nil, err
		}
		j.Steps = append(j.Steps, step)
		switch e.typ {
		case eclrs.EventProcessed:
			if j.Outcome != "ignored" {
				j.Outcome = "processed"
			}
		case eclrs.EventTestResultIgnored:
			j.Outcome = "ignored"
		case eclrs.EventProcessingFailed:
			j.Outcome = "failed"
		case eclrs.EventRetryRequested:
			j.Outcome = "waiting"
		}
		if ic := dataInt(e.data, "index_case_id"); ic != 0 && !slices.Contains(touched, ic) {
			touched = append(touched, ic)
		}
	}

	var attempts int
	var lastError string
	var next, updated time.Time
	err = t.tx.QueryRow(ctx, `SELECT attempts, last_error, next_attempt_at, updated_at FROM test_result_attempts
		 WHERE test_result_id = $1`, id).Scan(&attempts, &lastError, &next, &updated)
	switch {
	case err == nil && attempts == 0:
		// `viaduct retry e2` queued it, with no attempt spent.
		j.Outcome = "retrying"
		j.Steps = append(j.Steps, traceStep{Time: updated, Stage: "E2", Type: "retry_waiting",
			Summary: "waits for Engine 2, due at " + formatTraceTime(next), Reason: lastError})
	case err == nil:
		j.Outcome = "retrying"
		j.Steps = append(j.Steps, traceStep{Time: updated, Stage: "E2", Type: "attempt_failed",
			Summary: fmt.Sprintf("attempt %d failed: %s; the next is due at %s", attempts, lastError, formatTraceTime(next)),
			Reason:  lastError, Attempt: attempts})
	case !errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("reading the attempts of test result %d: %w", id, err)
	}
	if j.Outcome == "waiting" {
		j.Notes = append(j.Notes, "Engine 2 has not processed this result yet.")
	}

	if len(events) > 0 {
		steps, err := t.followCases(ctx, touched, events[0].at, id)
		if err != nil {
			return nil, err
		}
		j.Steps = append(j.Steps, steps...)
	}
	sortSteps(j.Steps)
	return &j, nil
}

// caseJourney is the journey of a case no test result reached: every event it has, transfers followed.
func (t *tracer) caseJourney(ctx context.Context, c *tracedCase) (*traceJourney, error) {
	j := &traceJourney{IndexCaseID: c.id, CountyID: c.countyID, Outcome: "no test result"}
	steps, err := t.followCases(ctx, []int64{c.id}, time.Time{}, 0)
	if err != nil {
		return nil, err
	}
	j.Steps = steps
	sortSteps(j.Steps)
	j.Notes = append(j.Notes, "No ECLRS test result reached this case: its lab results came from CommCare, or from "+
		"another case by a transfer.")
	return j, nil
}

// followCases returns the steps of the index cases ids from time from on, and of the cases their updates were
// rerouted to by a transfer, from the reroute on. resultID's own events on the cases are left out: they repeat
// its test result events.
func (t *tracer) followCases(ctx context.Context, ids []int64, from time.Time, resultID int64) ([]traceStep, error) {
	type pending struct {
		id   int64
		from time.Time
	}
	var queue []pending
	seen := map[int64]bool{}
	for _, id := range ids {
		queue = append(queue, pending{id, from})
		seen[id] = true
	}
	var steps []traceStep
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		c, err := t.indexCase(ctx, p.id)
		if err != nil {
			return nil, err
		}
		events, err := t.caseEvents(ctx, p.id, p.from)
		if err != nil {
			return nil, err
		}
		for _, e := range events {
			other := dataInt(e.data, "test_result_id")
			if other != 0 && other == resultID {
				continue
			}
			step, ok := t.caseStep(c, e, other)
			if !ok {
				continue
			}
			steps = append(steps, step)
			if dest := step.DestinationIndexCaseID; dest != 0 && !seen[dest] && len(seen) < maxTraceCases {
				seen[dest] = true
				queue = append(queue, pending{dest, e.at})
			}
		}
		jobs, err := t.waitingJobs(ctx, c)
		if err != nil {
			return nil, err
		}
		steps = append(steps, jobs...)
	}
	return steps, nil
}

// resultStep words an event on a test result: Engine 2's outcome and the rows it touched.
func (t *tracer) resultStep(ctx context.Context, e tracedEvent) (traceStep, error) {
	s := traceStep{Time: e.at, Stage: "E2", Type: e.typ, EventID: e.id, PersonID: dataInt(e.data, "person_id"),
		IndexCaseID: dataInt(e.data, "index_case_id"), LabResultID: dataInt(e.data, "lab_result_id"),
		Reason: dataString(e.data, "reason")}
	if s.IndexCaseID != 0 {
		c, err := t.indexCase(ctx, s.IndexCaseID)
		if err != nil {
			return s, err
		}
		s.CaseID, s.CountyID = c.caseID, c.countyID
	}
	var lab string
	if s.LabResultID != 0 {
		l, err := t.labResult(ctx, s.LabResultID)
		if err != nil {
			return s, err
		}
		s.LabResultCaseID, s.AccessionNumber = l.caseID, t.identifier(l.accession, t.sel.Accession)
		lab = fmt.Sprintf("lab result %d (CommCare case %s", l.id, l.caseID)
		if s.AccessionNumber != "" {
			lab += ", accession " + s.AccessionNumber
		}
		lab += ")"
	}
	ic := fmt.Sprintf("index case %d (CommCare case %s, county %d)", s.IndexCaseID, s.CaseID, s.CountyID)
	switch e.typ {
	case "person_created":
		s.Summary = fmt.Sprintf("new person %d", s.PersonID)
	case "person_matched":
		s.Summary = fmt.Sprintf("matched person %d", s.PersonID)
	case "person_added_patient_key":
		s.Summary = fmt.Sprintf("matched person %d by name and date of birth; the patient key was added to them", s.PersonID)
	case casedb.EventIndexCaseCreated:
		s.Summary = "created " + ic
	case casedb.EventIndexCaseUpdated:
		s.Summary = "updated " + ic
	case casedb.EventIndexCaseUntouched:
		s.Summary = "nothing new for " + ic
	case casedb.EventLabResultCreated:
		s.Summary = fmt.Sprintf("created %s on index case %d", lab, s.IndexCaseID)
	case casedb.EventLabResultUpdated:
		s.Summary = fmt.Sprintf("updated %s on index case %d", lab, s.IndexCaseID)
	case casedb.EventLabResultUntouched:
		s.Summary = fmt.Sprintf("nothing new for %s on index case %d", lab, s.IndexCaseID)
	case eclrs.EventTestResultIgnored:
		s.Summary = "ignored: " + s.Reason
	case "no_new_information":
		s.Summary = "nothing new in this result"
	case eclrs.EventProcessed:
		s.Summary = "processed"
	case eclrs.EventProcessingFailed:
		s.Attempt = int(dataInt(e.data, "attempts"))
		s.Summary = "failed: " + cmp.Or(s.Reason, "no reason recorded")
		switch {
		case s.Attempt == 1:
			s.Summary = "failed at its first attempt: " + cmp.Or(s.Reason, "no reason recorded")
		case s.Attempt > 1:
			s.Summary = fmt.Sprintf("failed after %d attempts: %s", s.Attempt, cmp.Or(s.Reason, "no reason recorded"))
		}
	case eclrs.EventRetryRequested:
		s.Stage = "ops"
		s.Summary = "retry asked for by " + repairAsker(e.data)
	default:
		s.Summary = e.typ
	}
	return s, nil
}

// caseStep words an event on index case c; other is the test result an Engine 2 event on the case is the twin
// of. It returns false for what a journey leaves out: another result's Engine 2 events that changed nothing.
func (t *tracer) caseStep(c *tracedCase, e tracedEvent, other int64) (traceStep, bool) {
	s := traceStep{Time: e.at, Type: e.typ, EventID: e.id, IndexCaseID: c.id, CaseID: c.caseID, CountyID: c.countyID,
		TestResultID: other, Domain: dataString(e.data, "domain"), Action: dataString(e.data, "action"),
		Reason: dataString(e.data, "reason")}
	ic := fmt.Sprintf("index case %d", c.id)
	post := fmt.Sprintf("%s (CommCare case %s) to %s", ic, c.caseID, cmp.Or(s.Domain, "its domain"))
	if s.Action != "" {
		post += " (" + s.Action + ")"
	}
	switch e.typ {
	case casedb.EventIndexCaseCreated, casedb.EventIndexCaseUpdated, casedb.EventLabResultCreated,
		casedb.EventLabResultUpdated:
		from := dataString(e.data, "transferred_from_case_id")
		switch {
		case from != "":
			s.Stage = "E4"
			s.Summary = fmt.Sprintf("created %s for CommCare case %s, which CommCare opened in county %d when it "+
				"transferred %s", ic, c.caseID, c.countyID, from)
		case other != 0:
			s.Stage = "E2"
			s.Summary = fmt.Sprintf("test result %d changed %s: %s", other, ic, strings.ReplaceAll(e.typ, "_", " "))
		default:
			s.Stage = "E2"
			s.Summary = fmt.Sprintf("%s: %s", ic, strings.ReplaceAll(e.typ, "_", " "))
		}
	case casedb.EventIndexCaseUntouched, casedb.EventLabResultUntouched:
		return s, false
	case casedb.EventSendToCommCareEnqueued:
		s.Stage = "E3"
		s.Summary = fmt.Sprintf("handed %s to Engine 4", ic)
		if by := dataString(e.data, "by"); by != "" {
			s.Stage, s.Summary = "ops", s.Summary+" (viaduct resend, by "+by+")"
		}
	case casedb.EventSendToCommCareSucceeded:
		s.Stage = "E4"
		switch {
		case dataString(e.data, "skipped") != "":
			s.Summary = fmt.Sprintf("did not post %s: %s", post, dataString(e.data, "skipped"))
		case dataInt(e.data, "status") == 900:
			s.Summary = fmt.Sprintf("did not post %s: posting is switched off (dry run)", post)
		default:
			t.response(&s, e.data)
			s.Summary = fmt.Sprintf("posted %s; CommCare answered %s", post, s.Response)
		}
	case casedb.EventSendToCommCareFailed:
		s.Stage = "E4"
		t.response(&s, e.data)
		s.Summary = fmt.Sprintf("post of %s failed: %s", post, s.Response)
		if snoozed := dataString(e.data, "snoozed"); snoozed != "" {
			s.Summary += "; retrying after " + snoozed
		} else {
			s.Summary += "; Engine 4 retries it"
		}
	case casedb.EventSendToCommCareDiscarded:
		s.Stage = "E4"
		if _, answered := e.data["response"]; answered {
			t.response(&s, e.data)
		}
		s.Summary = fmt.Sprintf("gave up sending %s: %s", post, cmp.Or(s.Reason, "no reason recorded"))
		if d := dataString(e.data, "detail"); d != "" {
			s.Summary += " (" + d + ")"
		}
	case casedb.EventSendToCommCareRerouted:
		s.Stage = "E4"
		s.DestinationIndexCaseID = dataInt(e.data, "destination_index_case_id")
		s.DestinationCaseID = dataString(e.data, "destination_case_id")
		s.TransferChain = dataString(e.data, "transfer_chain")
		s.Summary = fmt.Sprintf("CommCare transferred %s (%s); its update goes to index case %d (CommCare case %s, county %d)",
			ic, s.TransferChain, s.DestinationIndexCaseID, s.DestinationCaseID, dataInt(e.data, "destination_county_id"))
	case casedb.EventUpdatedFromCommCare:
		// Engine 4 (before it posts an update) and Engine 5 both merge with casedb.MergeIntoIndexCase, whose event
		// does not say which did.
		s.Stage = "E4/E5"
		s.Properties = dataStrings(e.data, "properties")
		s.Summary = fmt.Sprintf("merged CommCare's changes from %s into %s", cmp.Or(s.Domain, "CommCare"), ic)
		if len(s.Properties) > 0 {
			s.Summary += ": " + strings.Join(s.Properties, ", ")
		}
		if closed, ok := e.data["closed"].(bool); ok && closed {
			s.Summary += "; the case is closed"
		}
	case casedb.EventResendRequested:
		s.Stage = "ops"
		s.Summary = fmt.Sprintf("resend of %s asked for by %s", ic, repairAsker(e.data))
	case casedb.EventRetrievedFromCommCare:
		s.Stage = "E5"
		s.Summary = fmt.Sprintf("created %s from CommCare's case %s in %s, with %d lab results", ic, c.caseID,
			cmp.Or(s.Domain, "CommCare"), dataInt(e.data, "lab_results"))
	default:
		s.Stage = "?"
		s.Summary = fmt.Sprintf("%s on %s", e.typ, ic)
	}
	return s, true
}

// openRosaNature finds the nature of CommCare's answer to a form, e.g. submit_success.
var openRosaNature = regexp.MustCompile(`<message[^>]*\bnature="([^"]+)"`)

// response words CommCare's answer recorded in a post event's data. A 4xx body may quote the case it was sent, so
// bodies are kept only with --show-pii; what is printed otherwise is the answer's status and, for a form,
// OpenRosa's nature.
func (t *tracer) response(s *traceStep, data map[string]any) {
	s.HTTPStatus = int(dataInt(data, "status"))
	body := dataString(data, "response")
	nature := ""
	if m := openRosaNature.FindStringSubmatch(body); m != nil {
		nature = m[1]
	}
	switch {
	case body == "rate_limited":
		s.Response = "HTTP 429: rate limited"
	case s.HTTPStatus != 0 && nature != "":
		s.Response = fmt.Sprintf("HTTP %d, %s", s.HTTPStatus, nature)
	case s.HTTPStatus != 0:
		s.Response = fmt.Sprintf("HTTP %d", s.HTTPStatus)
	case nature != "":
		s.Response = nature
	case s.Type == casedb.EventSendToCommCareFailed:
		// No status: the request never got an answer, and the response is the error (a timeout, a refused
		// connection), which names no patient.
		s.Response = cmp.Or(body, "no answer")
	default:
		s.Response = "no message"
	}
	if t.showPII && body != "" && body != "rate_limited" {
		s.ResponseBody = body
	} else if body != "" && s.HTTPStatus != 0 && nature == "" {
		s.Response += " (its body is shown with --show-pii)"
	}
}

// waitingJobs returns a step for each Engine 4 job of case c that has not ended as completed or cancelled (whose
// outcome is an event already): one waiting, running, retrying, or discarded after its last attempt, which records
// no event. River's args index finds them.
func (t *tracer) waitingJobs(ctx context.Context, c *tracedCase) ([]traceStep, error) {
	args, err := json.Marshal(map[string]string{"case_id": c.caseID})
	if err != nil {
		return nil, err
	}
	rows, err := t.tx.Query(ctx, `SELECT id, state::text, attempt, max_attempts,
		       coalesce(finalized_at, CASE WHEN state = 'running' THEN attempted_at END, scheduled_at),
		       coalesce(errors[array_length(errors, 1)]->>'error', '')
		  FROM river_job WHERE args @> $1::jsonb AND kind = $2 AND state NOT IN ('completed', 'cancelled')
		 ORDER BY id`, args, casedb.CaseLoaderArgs{}.Kind())
	if err != nil {
		return nil, fmt.Errorf("reading the jobs of index case %d: %w", c.id, err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (traceStep, error) {
		s := traceStep{Stage: "E4", Type: "job", IndexCaseID: c.id, CaseID: c.caseID, CountyID: c.countyID}
		var lastError string
		if err := row.Scan(&s.JobID, &s.JobState, &s.Attempt, &s.MaxAttempts, &s.Time, &lastError); err != nil {
			return s, err
		}
		s.Reason = lastError
		switch s.JobState {
		case "discarded":
			s.Summary = fmt.Sprintf("gave up on job %d for index case %d after %d attempts", s.JobID, c.id, s.Attempt)
		case "running":
			s.Summary = fmt.Sprintf("job %d for index case %d is running, attempt %d of %d", s.JobID, c.id, s.Attempt, s.MaxAttempts)
		default:
			s.Summary = fmt.Sprintf("job %d for index case %d is %s: %d of %d attempts made, the next due at %s",
				s.JobID, c.id, s.JobState, s.Attempt, s.MaxAttempts, formatTraceTime(s.Time))
		}
		if lastError != "" {
			s.Summary += "; the last error: " + lastError
		}
		return s, nil
	})
}

// sortSteps puts steps in time order; steps of one transaction, which share a time, in event order.
func sortSteps(steps []traceStep) {
	slices.SortStableFunc(steps, func(a, b traceStep) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return int(a.EventID - b.EventID)
	})
}

// writeText writes the report as timelines, one per match.
func (r *traceReport) writeText(w io.Writer) {
	what := fmt.Sprintf("%d matches", len(r.Matches))
	if len(r.Matches) == 1 {
		what = "1 match"
	}
	if r.Omitted > 0 {
		what += fmt.Sprintf(" (and %d more left out: narrow the selector)", r.Omitted)
	}
	fmt.Fprintf(w, "viaduct trace %s: %s\n", r.Selector, what)
	if !r.ShowPII {
		fmt.Fprintln(w, "Patient data, patient keys and accession numbers are left out; --show-pii prints them.")
	}
	for _, j := range r.Matches {
		fmt.Fprintln(w)
		if j.TestResultID != 0 {
			fmt.Fprintf(w, "Test result %d (file %d, line %d): %s\n", j.TestResultID, j.FileID, j.Line, j.Outcome)
		} else {
			fmt.Fprintf(w, "Index case %d (county %d): %s\n", j.IndexCaseID, j.CountyID, j.Outcome)
		}
		if p := j.Patient; p != nil {
			name := strings.Join(slices.DeleteFunc([]string{p.NameFirst, p.NameMiddle, p.NameLast},
				func(s string) bool { return s == "" }), " ")
			address := strings.Join(slices.DeleteFunc([]string{p.Address1, p.Address2, p.City, p.Zip},
				func(s string) bool { return s == "" }), ", ")
			fmt.Fprintf(w, "  patient: %s, born %s, %s, phone %s; patient key %s, accession %s\n", name, p.DOB, address,
				p.Phone, p.PatientKey, p.AccessionNumber)
		}
		for _, s := range j.Steps {
			fmt.Fprintf(w, "  %s  %-5s  %s\n", formatTraceTime(s.Time), s.Stage, s.Summary)
			if s.ResponseBody != "" {
				fmt.Fprintf(w, "  %20s  %-5s  CommCare's answer: %s\n", "", "", strings.Join(strings.Fields(s.ResponseBody), " "))
			}
		}
		for _, n := range j.Notes {
			fmt.Fprintf(w, "  note: %s\n", n)
		}
	}
}

func formatTraceTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// dataInt reads a number from an event's data (JSON numbers decode as float64), 0 when absent.
func dataInt(data map[string]any, key string) int64 {
	switch v := data[key].(type) {
	case float64:
		return int64(v)
	case string:
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	}
	return 0
}

// dataString reads a string from an event's data, "" when absent; other values are rendered as JSON.
func dataString(data map[string]any, key string) string {
	switch v := data[key].(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// dataStrings reads a list of strings from an event's data.
func dataStrings(data map[string]any, key string) []string {
	list, _ := data[key].([]any)
	var out []string
	for _, v := range list {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
