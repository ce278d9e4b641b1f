package retention

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/viaduct-nys/viaduct/pkg/advisory"
	"github.com/viaduct-nys/viaduct/pkg/casedb"
)

// CaseDataKeys are the keys of index_cases.data a stripped case keeps: the CommCare case it was transferred from,
// which Engine 4 looks up among the local cases when it follows another case's transfer.
var CaseDataKeys = []string{"transfer_source_case_id"}

// postedTypes are the events that record that a case's data reached CommCare: a post that succeeded (or was
// skipped as unchanged), or a transfer's update sent to the destination case.
var postedTypes = []string{casedb.EventSendToCommCareSucceeded, casedb.EventSendToCommCareRerouted}

// quietCase is true for the index case aliased ic when its person's data may go, with $2 the cutoff: closed in
// CommCare, not written and no event on it since the cutoff, and posted to CommCare after its last change (one with
// no change at all came from CommCare, through Engine 5). A case whose last change never reached CommCare (its
// post given up) is unfinished work, and kept.
var quietCase = `ic.closed AND ic.updated_at < $2
	AND NOT EXISTS (SELECT FROM index_case_events j,
	                       LATERAL (SELECT e.inserted_at FROM events e WHERE e.id = j.event_id OFFSET 0) e
	                 WHERE j.index_case_id = ic.id AND e.inserted_at >= $2)
	AND NOT EXISTS (
	    SELECT FROM (SELECT max(x.event_id) FILTER (WHERE x.type = ANY(` + textArray(casedb.ChangeEventTypes) + `)) AS changed,
	                        max(x.event_id) FILTER (WHERE x.type = ANY(` + textArray(postedTypes) + `)) AS posted
	                   FROM ` + casedb.CaseEventsSQL("ic.id") + ` x) m
	     WHERE m.changed IS NOT NULL AND (m.posted IS NULL OR m.posted < m.changed))`

// textArray spells event type names, identifiers of our own, as a SQL text array literal.
func textArray(names []string) string {
	return "'{" + strings.Join(names, ",") + "}'::text[]"
}

// quietPeople selects, among the people $1, those whose data may go ($2: the cutoff): not written since the cutoff,
// with at least one index case, and every one of them quiet.
var quietPeople = `SELECT p.id FROM people p
	 WHERE p.id = ANY($1) AND p.updated_at < $2
	   AND EXISTS (SELECT FROM index_cases ic WHERE ic.person_id = p.id)
	   AND NOT EXISTS (SELECT FROM index_cases ic WHERE ic.person_id = p.id AND NOT (` + quietCase + `))
	 ORDER BY p.id`

// The rows of the quiet people $1 to strip or delete, each with the bytes it frees; $2 is, for index cases,
// CaseDataKeys and, for person_keys, the people's patient keys.
const (
	doomedPeople = `SELECT p.id, (coalesce(pg_column_size(p.patient_keys), 0) + coalesce(pg_column_size(p.data), 0)
	        + coalesce(pg_column_size(p.name_first), 0) + coalesce(pg_column_size(p.name_last), 0)
	        + coalesce(pg_column_size(p.dob), 0))::bigint AS bytes
	   FROM people p
	  WHERE p.id = ANY($1)
	    AND NOT (p.patient_keys = '{}' AND p.data = '{}' AND p.name_first IS NULL AND p.name_last IS NULL
	             AND p.dob IS NULL)`
	// person_keys has no index on person_id: its rows are found by their keys, which people.patient_keys holds too
	// (every writer writes both), and must still point at one of the people.
	doomedPersonKeys = `SELECT k.patient_key, (pg_column_size(k.patient_key) + 8)::bigint AS bytes FROM person_keys k
	  WHERE k.patient_key = ANY($2::text[]) AND k.person_id = ANY($1)`
	strippedCaseData = `coalesce((SELECT jsonb_object_agg(k, v) FROM jsonb_each(ic.data) AS x(k, v)
	         WHERE k = ANY($2::text[])), '{}'::jsonb)`
	doomedCases = `SELECT ic.id, (pg_column_size(ic.data) - pg_column_size(` + strippedCaseData + `))::bigint AS bytes,
	        ic.data <> ` + strippedCaseData + ` AS dirty
	   FROM index_cases ic WHERE ic.person_id = ANY($1)`
	doomedLabs = `SELECT lr.id, (pg_column_size(lr.data) + pg_column_size(lr.accession_number) - 4)::bigint AS bytes
	   FROM index_cases ic JOIN lab_results lr ON lr.index_case_id = ic.id
	  WHERE ic.person_id = ANY($1) AND (lr.data <> '{}' OR lr.accession_number <> '')`
)

// stripSQL and countSQL are, per table, the statement that strips or deletes the quiet people's rows and the one
// that counts them for a dry run; both give rows and bytes. Every case of a quiet person gets purged_at, whatever
// its data held, so it leaves the purge's index; only those whose data changed are counted.
var (
	stripSQL = map[string]string{
		"people": `WITH d AS (` + doomedPeople + `), done AS (UPDATE people p SET patient_keys = '{}', data = '{}',
			    name_first = NULL, name_last = NULL, dob = NULL FROM d WHERE p.id = d.id RETURNING d.bytes)
			SELECT count(*), coalesce(sum(bytes), 0)::bigint FROM done`,
		"person_keys": `WITH d AS (` + doomedPersonKeys + `), done AS (DELETE FROM person_keys k USING d
			    WHERE k.patient_key = d.patient_key RETURNING d.bytes)
			SELECT count(*), coalesce(sum(bytes), 0)::bigint FROM done`,
		"index_cases": `WITH d AS (` + doomedCases + `), done AS (UPDATE index_cases ic SET data = ` + strippedCaseData + `,
			    purged_at = now() FROM d WHERE ic.id = d.id RETURNING d.bytes, d.dirty)
			SELECT count(*) FILTER (WHERE dirty), coalesce(sum(bytes) FILTER (WHERE dirty), 0)::bigint FROM done`,
		"lab_results": `WITH d AS (` + doomedLabs + `), done AS (UPDATE lab_results lr SET data = '{}', accession_number = ''
			    FROM d WHERE lr.id = d.id RETURNING d.bytes)
			SELECT count(*), coalesce(sum(bytes), 0)::bigint FROM done`,
	}
	countSQL = map[string]string{
		"people":      `SELECT count(*), coalesce(sum(bytes), 0)::bigint FROM (` + doomedPeople + `) d`,
		"person_keys": `SELECT count(*), coalesce(sum(bytes), 0)::bigint FROM (` + doomedPersonKeys + `) d`,
		"index_cases": `SELECT count(*) FILTER (WHERE dirty), coalesce(sum(bytes) FILTER (WHERE dirty), 0)::bigint
			  FROM (` + doomedCases + `) d`,
		"lab_results": `SELECT count(*), coalesce(sum(bytes), 0)::bigint FROM (` + doomedLabs + `) d`,
	}
)

// peopleTables are the tables a purge strips people in, in the order it reports them.
var peopleTables = []Table{{Name: "people", Action: ActionStrip}, {Name: "person_keys", Action: ActionDelete},
	{Name: "index_cases", Action: ActionStrip}, {Name: "lab_results", Action: ActionStrip}}

// people strips the data of the people all of whose index cases are closed and quiet, with their cases and lab
// results. It reads the closed cases not stripped yet that were last written before the cutoff, oldest first
// (index_cases_retention_index), and considers their people a batch at a time.
func (r *run) people(ctx context.Context) ([]Table, error) {
	tables := slices.Clone(peopleTables)
	if !r.p.config.DryRun {
		if err := r.reset(ctx); err != nil {
			return tables, err
		}
	}
	per := max(1, r.p.config.BatchSize/10)
	seen := map[int64]bool{}
	var afterAt time.Time
	var afterID int64
	for {
		rows, err := r.conn.Query(ctx, `SELECT id, person_id, updated_at FROM index_cases
			 WHERE closed AND purged_at IS NULL AND updated_at < $1 AND (updated_at, id) > ($2, $3)
			 ORDER BY updated_at, id LIMIT $4`, r.cutoff, afterAt, afterID, per)
		if err != nil {
			return tables, fmt.Errorf("reading the closed index cases: %w", err)
		}
		var people []int64
		read := 0
		for rows.Next() {
			var person int64
			if err := rows.Scan(&afterID, &person, &afterAt); err != nil {
				rows.Close()
				return tables, fmt.Errorf("reading the closed index cases: %w", err)
			}
			read++
			if !seen[person] {
				seen[person] = true
				people = append(people, person)
			}
		}
		if err := rows.Err(); err != nil {
			return tables, fmt.Errorf("reading the closed index cases: %w", err)
		}
		if len(people) > 0 {
			slices.Sort(people)
			if err := r.stripPeople(ctx, people, tables); err != nil {
				return tables, err
			}
		}
		if read < per {
			return tables, nil
		}
		if err := r.between(ctx); err != nil {
			return tables, err
		}
	}
}

// stripPeople strips, in one transaction, those of people that are quiet and that no other transaction holds, and
// adds what it did to tables. A dry run counts, without locks.
func (r *run) stripPeople(ctx context.Context, people []int64, tables []Table) error {
	counts := make([][2]int64, len(tables))
	step := func(tx pgx.Tx) error {
		clear(counts)
		candidates := people
		if !r.p.config.DryRun {
			var err error
			if candidates, err = lockPeople(ctx, tx, people); err != nil {
				return err
			}
		}
		rows, err := tx.Query(ctx, quietPeople, candidates, r.cutoff)
		if err != nil {
			return fmt.Errorf("finding the people whose data may go: %w", err)
		}
		quiet, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return fmt.Errorf("finding the people whose data may go: %w", err)
		}
		if len(quiet) == 0 {
			return nil
		}
		var keys []string
		if err := tx.QueryRow(ctx, `SELECT coalesce(array_agg(k), '{}') FROM people p, unnest(p.patient_keys) k
			 WHERE p.id = ANY($1)`, quiet).Scan(&keys); err != nil {
			return fmt.Errorf("reading the patient keys: %w", err)
		}
		for i, t := range tables {
			sql, args := stripSQL[t.Name], []any{quiet}
			if r.p.config.DryRun {
				sql = countSQL[t.Name]
			}
			switch t.Name {
			case "person_keys":
				args = append(args, keys)
			case "index_cases":
				args = append(args, CaseDataKeys)
			}
			if err := tx.QueryRow(ctx, sql, args...).Scan(&counts[i][0], &counts[i][1]); err != nil {
				return fmt.Errorf("stripping %s: %w", t.Name, err)
			}
		}
		return nil
	}
	var err error
	if r.p.config.DryRun {
		err = r.readOnly(ctx, step)
	} else {
		err = r.batch(ctx, "people", step)
	}
	if err != nil {
		return err
	}
	for i := range tables {
		tables[i].Rows += counts[i][0]
		tables[i].Bytes += counts[i][1]
	}
	return nil
}

// lockPeople takes, without waiting, the locks every writer of a person takes (casedb): their identities (names and
// date of birth, patient keys), the person, then the rows of their index cases. It returns the people it got every
// lock of; the others are busy, so not quiet, and are left for the next purge. Locks it got of a person it then
// leaves are held until the transaction ends, a few milliseconds.
func lockPeople(ctx context.Context, tx pgx.Tx, people []int64) ([]int64, error) {
	rows, err := tx.Query(ctx, `SELECT id, dob, coalesce(name_last, ''), coalesce(name_first, ''),
		  array_remove(patient_keys, NULL) FROM people WHERE id = ANY($1)`, people)
	if err != nil {
		return nil, fmt.Errorf("reading the people's identities: %w", err)
	}
	var owners, keys []int64
	for rows.Next() {
		var id int64
		var dob pgtype.Date
		var last, first string
		var patientKeys []string
		if err := rows.Scan(&id, &dob, &last, &first, &patientKeys); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading the people's identities: %w", err)
		}
		if dob.Valid && last != "" && first != "" {
			owners, keys = append(owners, id), append(keys, advisory.PersonName(dob.Time, last, first))
		}
		for _, k := range patientKeys {
			owners, keys = append(owners, id), append(keys, advisory.PersonKey(k))
		}
		owners, keys = append(owners, id), append(keys, advisory.Person(id))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the people's identities: %w", err)
	}
	// Tried, never waited for: whatever the order, a purge never waits on a writer, so it cannot close a cycle.
	rows, err = tx.Query(ctx, `SELECT person FROM unnest($1::bigint[], $2::bigint[]) AS u(person, key)
		 GROUP BY person HAVING bool_and(pg_try_advisory_xact_lock(key))`, owners, keys)
	if err != nil {
		return nil, fmt.Errorf("locking the people: %w", err)
	}
	locked, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("locking the people: %w", err)
	}
	if len(locked) == 0 {
		return nil, nil
	}
	all, err := casesPerPerson(ctx, tx, `SELECT person_id, count(*) FROM index_cases WHERE person_id = ANY($1)
		 GROUP BY person_id`, locked)
	if err != nil {
		return nil, err
	}
	got, err := casesPerPerson(ctx, tx, `SELECT person_id, count(*) FROM (SELECT person_id FROM index_cases
		 WHERE person_id = ANY($1) FOR UPDATE SKIP LOCKED) l GROUP BY person_id`, locked)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(locked, func(id int64) bool { return got[id] != all[id] }), nil
}

// casesPerPerson runs sql, which counts index cases per person of people ($1).
func casesPerPerson(ctx context.Context, tx pgx.Tx, sql string, people []int64) (map[int64]int64, error) {
	rows, err := tx.Query(ctx, sql, people)
	if err != nil {
		return nil, fmt.Errorf("locking the index cases: %w", err)
	}
	counts := map[int64]int64{}
	var person, n int64
	_, err = pgx.ForEachRow(rows, []any{&person, &n}, func() error {
		counts[person] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("locking the index cases: %w", err)
	}
	return counts, nil
}

// reset makes the stripped cases that changed since the last purge (an event written by a transaction at or above
// its horizon: Engine 5 merged CommCare's values into one) candidates again, and moves the horizon to the xmin of a
// snapshot taken before they are read: every transaction below it has ended, so its events are seen here.
func (r *run) reset(ctx context.Context) error {
	return r.batch(ctx, "index_cases", func(tx pgx.Tx) error {
		var from pgtype.Text
		var next string
		if err := tx.QueryRow(ctx, `SELECT (SELECT horizon::text FROM retention_cursors WHERE name = 'index_cases'),
			  pg_snapshot_xmin(pg_current_snapshot())::text`).Scan(&from, &next); err != nil {
			return fmt.Errorf("reading the purge's horizon: %w", err)
		}
		if from.Valid {
			// The cases are found through Engine 3's index on xid and updated by id: the stripped cases are most
			// of the history, and are never read whole.
			if _, err := tx.Exec(ctx, `UPDATE index_cases SET purged_at = NULL
				 WHERE id = ANY(ARRAY(SELECT DISTINCT index_case_id FROM index_case_events
				                       WHERE xid >= $1::text::xid8 AND xid IS NOT NULL))
				   AND purged_at IS NOT NULL`, from.String); err != nil {
				return fmt.Errorf("finding the stripped index cases that changed: %w", err)
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO retention_cursors (name, horizon) VALUES ('index_cases', $1::text::xid8)
			ON CONFLICT (name) DO UPDATE SET horizon = excluded.horizon, updated_at = now()`, next)
		return err
	})
}
