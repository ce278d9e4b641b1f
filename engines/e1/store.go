package e1

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/viaduct-nys/viaduct/pkg/eclrs"
)

// store writes one file's rows inside the import transaction, batch by batch. De-duplication is set-based: each
// batch's checksums are looked up at once (the unique index on test_results.checksum answers), so memory holds one
// batch, never the history. Rows seen earlier in the same file are found the same way, because the transaction sees
// its own inserts: their file is this file.
type store struct {
	tx     pgx.Tx
	fileID int64
	stats  eclrs.Statistics

	counties map[int64]bool // counties known to exist in this transaction

	// Reused between batches to keep the writer's allocations flat.
	seen     map[[32]byte]struct{}
	keys     [][]byte
	fresh    []*eclrs.Record
	copyBufs [][]byte

	version eclrs.Version
	workers int
	pool    eclrs.DBTX // for lookups outside the transaction; nil to do them all inside

	last     *lastFileSums // the last imported file's rows, recognised without the index; nil when unknown
	fileSums []sumPrefix   // this file's rows so far, for the next import, up to maxFileSums
	tooMany  bool          // whether the file had more rows than maxFileSums
	fromLast int64         // checksums found in last
	probed   int64         // checksums looked up in the index
}

func newStore(tx pgx.Tx, pool eclrs.DBTX, fileID int64, version eclrs.Version, workers int) *store {
	return &store{
		tx:       tx,
		pool:     pool,
		fileID:   fileID,
		counties: make(map[int64]bool),
		seen:     make(map[[32]byte]struct{}),
		copyBufs: make([][]byte, workers),
		version:  version,
		workers:  workers,
	}
}

// writeBatch classifies rows as new, matched, duplicate or malformed, and inserts the new ones into test_results.
// Rows already known are counted from their identity alone; only the others are parsed, in parallel.
func (s *store) writeBatch(ctx context.Context, rows []*row) error {
	clear(s.seen)
	s.keys = s.keys[:0]
	for _, r := range rows {
		if _, dup := s.seen[r.sum]; !dup {
			s.seen[r.sum] = struct{}{}
			s.keys = append(s.keys, r.sum[:])
		}
	}
	known, err := s.lookup(ctx)
	if err != nil {
		return err
	}
	s.parseUnknown(rows, known)

	clear(s.seen) // now: the checksums that are new in this batch
	s.fresh = s.fresh[:0]
	var malformed []rowError
	var missingCounties []int64
	for _, r := range rows {
		if firstFile, ok := known[r.sum]; ok {
			if firstFile == s.fileID {
				s.stats.Duplicate.Add(r.county, 1) // remembered when it was new
			} else {
				s.stats.Matched.Add(r.county, 1)
				s.remember(&r.sum)
			}
			continue
		}
		if r.err != nil {
			malformed = append(malformed, *r.err)
			continue
		}
		if _, dup := s.seen[r.sum]; dup {
			s.stats.Duplicate.Add(r.county, 1)
			continue
		}
		s.seen[r.sum] = struct{}{}
		s.remember(&r.sum)
		s.fresh = append(s.fresh, r.rec)
		s.stats.New.Add(r.county, 1)
		if !s.counties[r.county] {
			s.counties[r.county] = true
			missingCounties = append(missingCounties, r.county)
		}
	}
	if err := s.writeErrors(ctx, malformed); err != nil {
		return err
	}
	if len(s.fresh) == 0 {
		return nil
	}
	if len(missingCounties) > 0 {
		if _, err := s.tx.Exec(ctx, `INSERT INTO counties (id) SELECT unnest($1::bigint[]) ON CONFLICT DO NOTHING`,
			missingCounties); err != nil {
			return fmt.Errorf("recording counties: %w", err)
		}
	}
	return s.insert(ctx)
}

// remember adds a row of this file, new or matched, to the set the next import recognises rows by. A row matched
// twice in one file is added twice; the set keeps it once.
func (s *store) remember(sum *[32]byte) {
	if len(s.fileSums) == maxFileSums {
		s.tooMany, s.fileSums = true, nil
	}
	if !s.tooMany {
		s.fileSums = append(s.fileSums, prefixOf(sum))
	}
}

// parseUnknown fully parses the rows whose checksum is not known yet, spread over the workers.
func (s *store) parseUnknown(rows []*row, known map[[32]byte]int64) {
	todo := make([]*row, 0, len(rows))
	for _, r := range rows {
		if _, ok := known[r.sum]; !ok && r.rec == nil {
			todo = append(todo, r)
		}
	}
	parallel(s.workers, len(todo), func(lo, hi int) {
		for _, r := range todo[lo:hi] {
			r.rec, r.err = parseRow(s.version, r.raw, r.line)
		}
	})
}

// parallel calls f on workers contiguous parts of [0, n) at once and waits for them.
func parallel(workers, n int, f func(lo, hi int)) {
	if n < 256 || workers < 2 {
		f(0, n)
		return
	}
	var wg sync.WaitGroup
	step := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += step {
		wg.Go(func() { f(lo, min(lo+step, n)) })
	}
	wg.Wait()
}

// lookup returns, for every checksum of s.keys already imported, the file that first had it, or for a row of the
// last imported file, that file.
//
// A rolling export repeats almost every row of the one before, so those are recognised in memory (s.last) and only
// the others are looked up in the checksum index. The index probes are the warm path's critical cost when there is
// no last file to go by, so they are split over two backends at once: half on the import transaction, half on a
// pool connection. The pool connection sees only committed rows, which is all of them but this file's own; the
// checksums it misses are asked again inside the transaction, where this file's earlier rows are visible. For a
// rolling export almost nothing is missed; for a new export the second ask is cheap, because the index holds
// little yet.
func (s *store) lookup(ctx context.Context) (map[[32]byte]int64, error) {
	known := make(map[[32]byte]int64, len(s.keys))
	if s.last != nil {
		rest := s.keys[:0]
		for _, k := range s.keys {
			if s.last.contains((*[32]byte)(k)) {
				known[[32]byte(k)] = s.last.fileID
			} else {
				rest = append(rest, k)
			}
		}
		s.fromLast += int64(len(s.keys) - len(rest))
		s.keys = rest
	}
	s.probed += int64(len(s.keys))
	if s.pool == nil || len(s.keys) < 1000 {
		return known, lookupInto(ctx, s.tx, s.keys, known)
	}
	half := len(s.keys) / 2
	outside := make(map[[32]byte]int64, half)
	done := make(chan error, 1)
	go func() { done <- lookupInto(ctx, s.pool, s.keys[half:], outside) }()
	err := lookupInto(ctx, s.tx, s.keys[:half], known)
	if outErr := <-done; err == nil {
		err = outErr
	}
	if err != nil {
		return nil, err
	}
	var missed [][]byte
	for _, k := range s.keys[half:] {
		if id, ok := outside[[32]byte(k)]; ok {
			known[[32]byte(k)] = id
		} else {
			missed = append(missed, k)
		}
	}
	return known, lookupInto(ctx, s.tx, missed, known)
}

// lookupInto adds to known the first file of every checksum of keys found in test_results.
func lookupInto(ctx context.Context, db eclrs.DBTX, keys [][]byte, known map[[32]byte]int64) error {
	if len(keys) == 0 {
		return nil
	}
	rows, err := db.Query(ctx, `SELECT checksum, file_id FROM test_results WHERE checksum = ANY($1::bytea[])`, keys)
	if err != nil {
		return fmt.Errorf("looking up checksums: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var sum []byte
		var fileID int64
		if err := rows.Scan(&sum, &fileID); err != nil {
			return fmt.Errorf("looking up checksums: %w", err)
		}
		known[[32]byte(sum)] = fileID
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("looking up checksums: %w", err)
	}
	return nil
}

// insert COPYs s.fresh into test_results, with ids taken from its sequence in one query per batch.
func (s *store) insert(ctx context.Context) error {
	ids := make([]int64, 0, len(s.fresh))
	rows, err := s.tx.Query(ctx, `SELECT nextval('test_results_id_seq') FROM generate_series(1, $1)`, len(s.fresh))
	if err != nil {
		return fmt.Errorf("allocating test result ids: %w", err)
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return fmt.Errorf("allocating test result ids: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("allocating test result ids: %w", err)
	}

	// Encoding costs about as much as parsing; the workers share it, each into a part of its own.
	parts := make([][]byte, s.workers)
	step := (len(s.fresh) + len(parts) - 1) / len(parts)
	parallel(s.workers, len(s.fresh), func(lo, hi int) {
		buf := s.copyBufs[lo/step][:0]
		for i := lo; i < hi; i++ {
			buf = eclrs.AppendTestResultRow(buf, ids[i], s.fileID, s.fresh[i])
		}
		parts[lo/step] = buf
	})
	readers := make([]io.Reader, 0, len(parts)+2)
	readers = append(readers, bytes.NewReader(eclrs.CopyHeader))
	for i, p := range parts {
		s.copyBufs[i] = p
		readers = append(readers, bytes.NewReader(p))
	}
	readers = append(readers, bytes.NewReader(eclrs.CopyTrailer))
	if _, err := s.tx.Conn().PgConn().CopyFrom(ctx, io.MultiReader(readers...), eclrs.TestResultCopySQL); err != nil {
		return fmt.Errorf("copying %d test results: %w", len(s.fresh), err)
	}
	return nil
}

// writeErrors records malformed rows.
func (s *store) writeErrors(ctx context.Context, errs []rowError) error {
	if len(errs) == 0 {
		return nil
	}
	rows := make([][]any, len(errs))
	for i, e := range errs {
		rows[i] = []any{s.fileID, e.Line, e.Field, e.Reason, e.raw}
		s.stats.Error.Add(0, 1)
	}
	_, err := s.tx.CopyFrom(ctx, pgx.Identifier{"file_row_errors"},
		[]string{"file_id", "line_number", "field", "reason", "raw_data"}, pgx.CopyFromRows(rows))
	if err != nil {
		return fmt.Errorf("recording %d malformed rows: %w", len(errs), err)
	}
	return nil
}
