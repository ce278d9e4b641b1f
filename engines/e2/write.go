package e2

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
)

// write stores the batch's outcome: new rows by COPY, changed rows by one UPDATE per table, then the change logs,
// the events and the attempts bookkeeping. It runs inside the batch's transaction, so all of it commits or none.
func (b *batch) write(ctx context.Context, tx pgx.Tx) error {
	steps := []struct {
		what string
		fn   func(context.Context, pgx.Tx) error
	}{
		{"assigning ids", b.assignIDs},
		{"writing people", b.writePeople},
		{"writing index cases", b.writeCases},
		{"writing lab results", b.writeLabs},
		{"writing change logs", b.writeChangeLogs},
		{"writing events", b.writeEvents},
		{"recording attempts", b.writeAttempts},
	}
	for _, s := range steps {
		start := time.Now()
		if err := s.fn(ctx, tx); err != nil {
			return fmt.Errorf("%s: %w", s.what, err)
		}
		b.stepTimes = append(b.stepTimes, zap.Duration(strings.ReplaceAll(s.what, " ", "_"), time.Since(start)))
	}
	return nil
}

// assignIDs gives ids to the batch's new lab results and events, in the order they happened: Engine 3 orders events
// by id.
func (b *batch) assignIDs(ctx context.Context, tx pgx.Tx) error {
	var labIDs, eventIDs []int64
	err := tx.QueryRow(ctx, `SELECT
		    coalesce((SELECT array_agg(nextval('lab_results_id_seq')) FROM generate_series(1, $1)), '{}'),
		    coalesce((SELECT array_agg(nextval('events_id_seq') ORDER BY g) FROM generate_series(1, $2) AS g), '{}')`,
		len(b.newLabs), len(b.events)).Scan(&labIDs, &eventIDs)
	if err != nil {
		return err
	}
	for i, lr := range b.newLabs {
		lr.id = labIDs[i]
	}
	for i := range b.events {
		b.events[i].id = eventIDs[i]
	}
	return nil
}

func (b *batch) writePeople(ctx context.Context, tx pgx.Tx) error {
	var rows, keyRows [][]any
	var addIDs []int64
	var addKeys []string
	for _, p := range b.people {
		switch {
		case p.created:
			keys := p.keys
			if keys == nil {
				keys = []string{}
			}
			rows = append(rows, []any{p.id, keys, nullString(p.first), nullString(p.last), nullDate(p)})
			for _, k := range keys {
				keyRows = append(keyRows, []any{k, p.id})
			}
		case len(p.added) > 0:
			for _, k := range p.added {
				addIDs = append(addIDs, p.id)
				addKeys = append(addKeys, k)
				keyRows = append(keyRows, []any{k, p.id})
			}
		}
	}
	if len(rows) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"people"},
			[]string{"id", "patient_keys", "name_first", "name_last", "dob"}, pgx.CopyFromRows(rows)); err != nil {
			return err
		}
	}
	if len(keyRows) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"person_keys"},
			[]string{"patient_key", "person_id"}, pgx.CopyFromRows(keyRows)); err != nil {
			return err
		}
	}
	if len(addIDs) > 0 {
		// Keys are prepended, newest first, to whatever the row holds now.
		if _, err := tx.Exec(ctx, `UPDATE people p SET patient_keys = a.added || p.patient_keys, updated_at = now()
			  FROM (SELECT id, array_agg(key ORDER BY ord DESC) AS added
			          FROM unnest($1::bigint[], $2::text[]) WITH ORDINALITY AS u(id, key, ord) GROUP BY id) a
			 WHERE p.id = a.id`, addIDs, addKeys); err != nil {
			return err
		}
	}
	return nil
}

func (b *batch) writeCases(ctx context.Context, tx pgx.Tx) error {
	var rows [][]any
	var changed dataUpdates
	for _, p := range b.people {
		for _, ic := range b.cases[p.id] {
			switch {
			case ic.created:
				j, err := marshalData(ic.data)
				if err != nil {
					return err
				}
				rows = append(rows, []any{ic.id, ic.personID, ic.countyID, ic.caseID, json.RawMessage(j)})
			case ic.dirty:
				if err := changed.add(ic.id, ic.data); err != nil {
					return err
				}
			}
		}
	}
	if len(rows) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"index_cases"},
			[]string{"id", "person_id", "county_id", "case_id", "data"}, pgx.CopyFromRows(rows)); err != nil {
			return err
		}
	}
	return changed.exec(ctx, tx, "index_cases")
}

func (b *batch) writeLabs(ctx context.Context, tx pgx.Tx) error {
	rows := make([][]any, 0, len(b.newLabs))
	for _, lr := range b.newLabs {
		j, err := marshalData(lr.data)
		if err != nil {
			return err
		}
		rows = append(rows, []any{lr.id, lr.indexCase.id, lr.accession, json.RawMessage(j)})
	}
	if len(rows) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"lab_results"},
			[]string{"id", "index_case_id", "accession_number", "data"}, pgx.CopyFromRows(rows)); err != nil {
			return err
		}
	}
	var changed dataUpdates
	for _, labs := range b.labs {
		for _, lr := range labs {
			if lr.dirty && !lr.created {
				if err := changed.add(lr.id, lr.data); err != nil {
					return err
				}
			}
		}
	}
	return changed.exec(ctx, tx, "lab_results")
}

// dataUpdates are new data for existing rows of a table with a data column, written with one UPDATE.
type dataUpdates struct {
	ids  []int64
	data []string
}

func (u *dataUpdates) add(id int64, data map[string]any) error {
	j, err := marshalData(data)
	if err != nil {
		return err
	}
	u.ids = append(u.ids, id)
	u.data = append(u.data, string(j))
	return nil
}

// exec writes the updates into table (index_cases or lab_results).
func (u *dataUpdates) exec(ctx context.Context, tx pgx.Tx, table string) error {
	if len(u.ids) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `UPDATE `+pgx.Identifier{table}.Sanitize()+` t SET data = u.data::jsonb, updated_at = now()
		  FROM unnest($1::bigint[], $2::text[]) AS u(id, data) WHERE t.id = u.id`, u.ids, u.data)
	return err
}

func (b *batch) writeChangeLogs(ctx context.Context, tx pgx.Tx) error {
	if len(b.changeLogs) == 0 {
		return nil
	}
	rows := make([][]any, 0, len(b.changeLogs))
	for _, c := range b.changeLogs {
		destType, destID := "index_case", int64(0)
		if c.lab != nil {
			destType, destID = "lab_result", c.lab.id
		} else {
			destID = c.indexCase.id
		}
		row := []any{"test_result", c.testResultID, destType, destID}
		for _, m := range []map[string]any{c.previous, c.applied, c.dropped} {
			if m == nil {
				m = map[string]any{}
			}
			j, err := marshalData(m)
			if err != nil {
				return err
			}
			row = append(row, json.RawMessage(j))
		}
		rows = append(rows, row)
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"change_logs"},
		[]string{"source_type", "source_id", "destination_type", "destination_id", "previous_state", "applied_changes", "dropped_changes"},
		pgx.CopyFromRows(rows))
	return err
}

func (b *batch) writeEvents(ctx context.Context, tx pgx.Tx) error {
	if len(b.events) == 0 {
		return nil
	}
	events := make([][]any, len(b.events))
	var onResults, onCases [][]any
	for i := range b.events {
		ev := &b.events[i]
		var data any
		if j := ev.data.json(); j != nil {
			data = json.RawMessage(j)
		}
		events[i] = []any{ev.id, ev.typ, data}
		if ev.testResult != 0 {
			onResults = append(onResults, []any{ev.testResult, ev.id, ev.finished})
		}
		if ev.indexCase != nil {
			onCases = append(onCases, []any{ev.indexCase.id, ev.id})
		}
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"events"}, []string{"id", "type", "data"}, pgx.CopyFromRows(events)); err != nil {
		return err
	}
	if len(onResults) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"test_result_events"},
			[]string{"test_result_id", "event_id", "finished"}, pgx.CopyFromRows(onResults)); err != nil {
			return err
		}
	}
	if len(onCases) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"index_case_events"},
			[]string{"index_case_id", "event_id"}, pgx.CopyFromRows(onCases)); err != nil {
			return err
		}
		// Delivered at commit (and not at all after a rollback), once per batch: wakes Engine 3 at once instead of at
		// its next poll.
		if _, err := tx.Exec(ctx, `SELECT pg_notify($1, '')`, casedb.ChangedChannel); err != nil {
			return fmt.Errorf("notifying: %w", err)
		}
	}
	return nil
}

// writeAttempts records failed attempts that will be retried and forgets the attempts of results now finished.
func (b *batch) writeAttempts(ctx context.Context, tx pgx.Tx) error {
	if len(b.retries) > 0 {
		ids := make([]int64, len(b.retries))
		attempts := make([]int32, len(b.retries))
		reasons := make([]string, len(b.retries))
		delays := make([]float64, len(b.retries))
		for i, r := range b.retries {
			ids[i], attempts[i], reasons[i], delays[i] = r.id, int32(r.attempts), r.reason, r.delay.Seconds()
		}
		if _, err := tx.Exec(ctx, `INSERT INTO test_result_attempts (test_result_id, attempts, last_error, next_attempt_at)
			SELECT id, n, reason, now() + make_interval(secs => delay)
			  FROM unnest($1::bigint[], $2::int[], $3::text[], $4::float8[]) AS u(id, n, reason, delay)
			ON CONFLICT (test_result_id) DO UPDATE
			   SET attempts = excluded.attempts, last_error = excluded.last_error,
			       next_attempt_at = excluded.next_attempt_at, updated_at = now()`,
			ids, attempts, reasons, delays); err != nil {
			return err
		}
	}
	if len(b.clearAttempts) > 0 {
		if _, err := tx.Exec(ctx, `DELETE FROM test_result_attempts WHERE test_result_id = ANY($1)`, b.clearAttempts); err != nil {
			return err
		}
	}
	return nil
}

func nullString(s string) pgtype.Text { return pgtype.Text{String: s, Valid: s != ""} }

func nullDate(p *person) pgtype.Date { return pgtype.Date{Time: p.dob, Valid: !p.dob.IsZero()} }
