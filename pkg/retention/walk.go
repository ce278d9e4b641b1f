package retention

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/viaduct-nys/viaduct/pkg/eclrs"
)

// walk is how a purge goes through a table in id order. The SQL fragments are over the table aliased t, with the
// cutoff as $3; dirty, freed and set may use $4, the walk's own argument (arg).
type walk struct {
	table  string
	action string
	// keep is true for a row that must stay as it is for now: the walk stops before the first one.
	keep string
	// dirty is true for a row that still holds something to remove, so that a purge run again counts nothing.
	dirty string
	// freed is about how many bytes stripping or deleting the row frees.
	freed string
	// set strips a row (an UPDATE's SET list); "" deletes it.
	set string
	// arg is $4, when the fragments use it.
	arg any
}

// EventKeys are the keys of events.data a purge keeps: ids of rows and cases, domains, outcomes and counts, which
// `viaduct trace` reads and which hold no patient data. Every other key goes (reasons and CommCare's answers may
// quote patient data), with the stash.
var EventKeys = []string{
	// Engine 2: the rows an event is about, and a retry's count.
	"person_id", "index_case_id", "lab_result_id", "test_result_id", "attempts",
	// Engine 4: a post's domain, action, time, HTTP status, why it was skipped or snoozed; a transfer's destination.
	"action", "domain", "timestamp", "status", "skipped", "snoozed", "destination_index_case_id",
	"destination_case_id", "destination_county_id", "transfer_chain", "transferred_from_case_id",
	// Engine 5: the names of the properties a merge changed (never their values), the closed flag, a count.
	"properties", "closed", "lab_results",
	// The repair commands (retry, resend, reimport): the job and event they acted on, and the operator who asked.
	"job_id", "job", "failed_event_id", "by",
}

// testResultPersonal are the test_results columns a purge clears: the line, every column parsed from it and the
// patient key's number. What stays is the row's identity (checksum, checksum_version), where it came from (file_id,
// line_number, county_id) and its times.
var testResultPersonal = append(slices.DeleteFunc(slices.Clone(eclrs.TestResultColumns), func(c string) bool {
	return c == "id" || c == "file_id" || c == "line_number" || c == "county_id"
}), "patient_key_id")

// walks are the tables a purge walks in id order, in the order it walks them.
var walks = []walk{{
	table:  "test_results",
	action: ActionStrip,
	keep: `t.inserted_at >= $3
	       OR NOT EXISTS (SELECT FROM test_result_events j WHERE j.test_result_id = t.id AND j.finished)`,
	dirty: "num_nonnulls(" + columnList("t.", testResultPersonal, ", ") + ") > 0",
	freed: columnList("coalesce(pg_column_size(t.", testResultPersonal, "), 0) + ") + "), 0)",
	set:   columnList("", testResultPersonal, " = NULL, ") + " = NULL",
}, {
	table:  "file_row_errors",
	action: ActionStrip,
	keep:   `t.inserted_at >= $3`,
	dirty:  `t.raw_data <> '' OR t.reason <> ''`,
	freed:  `pg_column_size(t.raw_data) + pg_column_size(t.reason) - 2`,
	set:    `raw_data = '', reason = ''`,
}, {
	table:  "events",
	action: ActionStrip,
	keep:   `t.inserted_at >= $3`,
	dirty:  `t.stash IS NOT NULL OR (jsonb_typeof(t.data) = 'object' AND t.data - $4::text[] <> '{}')`,
	freed: `coalesce(pg_column_size(t.stash), 0) + coalesce(pg_column_size(t.data), 0)
	        - coalesce(pg_column_size(` + strippedEventData + `), 0)`,
	set: `stash = NULL, data = ` + strippedEventData,
	arg: EventKeys,
}, {
	table:  "change_logs",
	action: ActionDelete,
	keep:   `t.inserted_at >= $3`,
	dirty:  `true`,
	freed: `pg_column_size(t.previous_state) + pg_column_size(t.applied_changes) + pg_column_size(t.dropped_changes)
	        + pg_column_size(t.source_type) + pg_column_size(t.destination_type) + 40`,
}}

// strippedEventData is an event's data with the keys in $4 only; NULL when none is left.
const strippedEventData = `CASE WHEN jsonb_typeof(t.data) = 'object'
	THEN (SELECT jsonb_object_agg(k, v) FROM jsonb_each(t.data) AS x(k, v) WHERE k = ANY($4::text[])) END`

// columnList joins each column between prefix and sep: columnList("t.", {"a", "b"}, ", ") is "t.a, t.b".
func columnList(prefix string, columns []string, sep string) string {
	parts := make([]string, len(columns))
	for i, c := range columns {
		parts[i] = prefix + c
	}
	return strings.Join(parts, sep)
}

// scanSQL reads the batch after cursor $1, at most $2 rows: how far the batch goes (to just before the first row to
// keep, else to its last row) and how many rows it read.
func (w walk) scanSQL() string {
	return `SELECT coalesce(min(id) FILTER (WHERE keep) - 1, max(id), $1), count(*), coalesce(bool_or(keep), false)
		  FROM (SELECT t.id, (` + w.keep + `) AS keep FROM ` + w.table + ` t WHERE t.id > $1 ORDER BY t.id LIMIT $2) s`
}

// doomed selects the rows of the batch from after $1 to $2 to purge, with the bytes each frees.
func (w walk) doomed() string {
	return `SELECT t.id, (` + w.freed + `)::bigint AS bytes FROM ` + w.table + ` t
		 WHERE t.id > $1 AND t.id <= $2 AND NOT (` + w.keep + `) AND (` + w.dirty + `)`
}

// countSQL counts what purging the batch would strip or delete.
func (w walk) countSQL() string {
	return `SELECT count(*), coalesce(sum(bytes), 0)::bigint FROM (` + w.doomed() + `) d`
}

// applySQL strips or deletes the batch's rows and counts them.
func (w walk) applySQL() string {
	change := `UPDATE ` + w.table + ` t SET ` + w.set + ` FROM doomed d WHERE t.id = d.id RETURNING d.bytes`
	if w.set == "" {
		change = `DELETE FROM ` + w.table + ` t USING doomed d WHERE t.id = d.id RETURNING d.bytes`
	}
	return `WITH doomed AS (` + w.doomed() + ` FOR UPDATE OF t), done AS (` + change + `)
		SELECT count(*), coalesce(sum(bytes), 0)::bigint FROM done`
}

// args are the arguments of countSQL and applySQL for the batch from after cursor to upto.
func (w walk) args(cursor, upto int64, cutoff time.Time) []any {
	args := []any{cursor, upto, cutoff}
	if w.arg != nil {
		args = append(args, w.arg)
	}
	return args
}

// walk purges w's table from its cursor, a batch at a time, until it reaches a row to keep or the table's end.
func (r *run) walk(ctx context.Context, w walk) (Table, error) {
	res := Table{Name: w.table, Action: w.action}
	var cursor int64
	if err := r.conn.QueryRow(ctx, `SELECT coalesce((SELECT last_id FROM retention_cursors WHERE name = $1), 0)`,
		w.table).Scan(&cursor); err != nil {
		return res, fmt.Errorf("reading the purge's cursor for %s: %w", w.table, err)
	}
	size := r.p.config.BatchSize
	for {
		var upto, scanned, rows, bytes int64
		var stopped bool
		step := func(db pgx.Tx) error {
			if err := db.QueryRow(ctx, w.scanSQL(), cursor, size, r.cutoff).Scan(&upto, &scanned, &stopped); err != nil {
				return err
			}
			if upto == cursor {
				return nil
			}
			sql := w.applySQL()
			if r.p.config.DryRun {
				sql = w.countSQL()
			}
			if err := db.QueryRow(ctx, sql, w.args(cursor, upto, r.cutoff)...).Scan(&rows, &bytes); err != nil {
				return err
			}
			if r.p.config.DryRun {
				return nil
			}
			_, err := db.Exec(ctx, `INSERT INTO retention_cursors (name, last_id) VALUES ($1, $2)
				ON CONFLICT (name) DO UPDATE SET last_id = greatest(retention_cursors.last_id, excluded.last_id),
				    updated_at = now()`, w.table, upto)
			return err
		}
		var err error
		if r.p.config.DryRun {
			err = r.readOnly(ctx, step)
		} else {
			err = r.batch(ctx, w.table, step)
		}
		if err != nil {
			return res, err
		}
		res.Rows += rows
		res.Bytes += bytes
		cursor = upto
		if stopped || scanned < int64(size) {
			return res, nil
		}
		if err := r.between(ctx); err != nil {
			return res, err
		}
	}
}

// readOnly runs f in a read-only transaction: a dry run's batch.
func (r *run) readOnly(ctx context.Context, f func(tx pgx.Tx) error) error {
	err := pgx.BeginTxFunc(ctx, r.conn, pgx.TxOptions{AccessMode: pgx.ReadOnly}, f)
	if err != nil {
		return fmt.Errorf("counting what a purge would remove: %w", err)
	}
	return nil
}

// inbox deletes the forwarded cases Engine 5's importer left in commcare_case_inbox for longer than the window: its
// job gave up, and polling reads the case's changes anyway. Rows an import holds are left for the next purge.
func (r *run) inbox(ctx context.Context) (Table, error) {
	res := Table{Name: "commcare_case_inbox", Action: ActionDelete}
	if r.p.config.DryRun {
		err := r.readOnly(ctx, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, `SELECT count(*), coalesce(sum(pg_column_size(i.payload)), 0)::bigint
				  FROM commcare_case_inbox i WHERE received_at < $1`, r.cutoff).Scan(&res.Rows, &res.Bytes)
		})
		return res, err
	}
	for {
		var rows, bytes int64
		err := r.batch(ctx, res.Name, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, `WITH doomed AS (
				    SELECT domain, case_id, pg_column_size(i.payload)::bigint AS bytes FROM commcare_case_inbox i
				     WHERE received_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED),
				  done AS (DELETE FROM commcare_case_inbox i USING doomed d
				            WHERE i.domain = d.domain AND i.case_id = d.case_id RETURNING d.bytes)
				SELECT count(*), coalesce(sum(bytes), 0)::bigint FROM done`, r.cutoff, r.p.config.BatchSize).
				Scan(&rows, &bytes)
		})
		if err != nil {
			return res, err
		}
		res.Rows += rows
		res.Bytes += bytes
		if rows < int64(r.p.config.BatchSize) {
			return res, nil
		}
		if err := r.between(ctx); err != nil {
			return res, err
		}
	}
}
