package e1

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/viaduct-nys/viaduct/pkg/advisory"
	"github.com/viaduct-nys/viaduct/pkg/eclrs"
	"github.com/viaduct-nys/viaduct/pkg/tally"
)

// OpenFunc opens an export for reading from its start. The importer reads it once, as a stream.
type OpenFunc func(ctx context.Context) (io.ReadCloser, error)

// PermanentError marks a failure that will not go away by trying again (the object is gone, access is denied). The
// importer records the file as failed instead of returning the error for a retry.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// SupersededError says the announced object is no longer the one in the bucket: it was overwritten (or deleted)
// after the notification. The file is recorded as skipped, not failed: the newer object has a notification of its
// own, which imports it.
type SupersededError struct{ Err error }

func (e *SupersededError) Error() string { return e.Err.Error() }
func (e *SupersededError) Unwrap() error { return e.Err }

// Result is what one import did. Its JSON form is what `viaduct extract` prints.
type Result struct {
	// File is the file's name: s3://bucket/key or a local path.
	File string `json:"file"`
	// FileID is the files row.
	FileID int64 `json:"file_id"`
	// Status is the files row's status after this call: imported, failed or skipped. A file imported or failed
	// by an earlier call keeps that status, and Already is true.
	Status string `json:"status"`
	// Already is true when an earlier import had already settled this file; nothing was done.
	Already bool `json:"already,omitempty"`
	// Reason says why the file failed or was skipped.
	Reason string `json:"reason,omitempty"`
	// Version is the ECLRS layout (1, 2 or 3); 0 when the header was not recognised.
	Version int `json:"version"`
	// Rows is the number of data rows read.
	Rows int64 `json:"rows"`
	// New, Matched, Duplicate and Errors split Rows: never seen before, seen in an earlier file, seen earlier in this
	// file, malformed.
	New       int64 `json:"new"`
	Matched   int64 `json:"matched"`
	Duplicate int64 `json:"duplicate"`
	Errors    int64 `json:"errors"`
	// Seconds is how long the import took.
	Seconds float64 `json:"seconds"`
}

// ImporterConfig tunes the pipeline. The zero value is usable.
type ImporterConfig struct {
	// BatchRows is how many rows are de-duplicated and inserted together. Defaults to 10,000.
	BatchRows int
	// ChunkLines is how many lines the reader hands a parse worker at a time. Defaults to 2,000.
	ChunkLines int
	// ParseWorkers is how many goroutines identify, parse and encode rows. Defaults to GOMAXPROCS.
	ParseWorkers int
	// ProgressInterval is how often a long import logs its progress. Defaults to 15 seconds.
	ProgressInterval time.Duration
}

func (c ImporterConfig) withDefaults() ImporterConfig {
	if c.BatchRows <= 0 {
		c.BatchRows = 10_000
	}
	if c.ChunkLines <= 0 {
		c.ChunkLines = 2_000
	}
	if c.ParseWorkers <= 0 {
		c.ParseWorkers = runtime.GOMAXPROCS(0)
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = 15 * time.Second
	}
	return c
}

// Importer imports ECLRS exports into test_results, abouts and files. It is what Engine 1 runs for every
// notification and what `viaduct extract` runs for files named on the command line.
type Importer struct {
	config  ImporterConfig
	pool    *pgxpool.Pool
	logger  *zap.Logger
	metrics *Metrics
}

// NewImporter returns an Importer writing through pool. metrics may be nil.
func NewImporter(config ImporterConfig, pool *pgxpool.Pool, logger *zap.Logger, metrics *Metrics) *Importer {
	return &Importer{config: config.withDefaults(), pool: pool, logger: logger, metrics: metrics}
}

// importLock serialises imports across every daemon on the database. Exports are full rolling windows, so there is
// nothing to gain from importing two at once, and one importer at a time lets rows go in by COPY without racing
// another importer for the same checksum.
var importLock = advisory.Key(advisory.E1Import)

// Import imports obj. All of the file's rows, its malformed-row records and its files row commit in one
// transaction: a crash at any point leaves the database as it was, and the retry starts clean.
//
// A returned error is worth retrying (database or network trouble). Failures that a retry cannot fix — an
// unrecognised header, a missing object — are recorded on the files row and returned as a Result with status failed
// and a nil error, so the caller can acknowledge the notification.
func (im *Importer) Import(ctx context.Context, obj eclrs.Object, open OpenFunc) (*Result, error) {
	start := time.Now()
	res := &Result{File: obj.Filename}
	defer func() { res.Seconds = time.Since(start).Seconds() }()

	f, err := eclrs.StartFile(ctx, im.pool, obj)
	if err != nil {
		return nil, err
	}
	res.FileID = f.ID
	if f.Status != eclrs.FileImporting {
		return settled(res, f), nil
	}

	tx, err := im.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("beginning the import of %s: %w", obj.Filename, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit

	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, importLock); err != nil {
		return nil, fmt.Errorf("waiting for other imports: %w", err)
	}
	status, err := eclrs.LockFile(ctx, tx, f.ID)
	if err != nil {
		return nil, err
	}
	if status != eclrs.FileImporting {
		// Another daemon settled it while this one waited for the lock.
		f, err := eclrs.GetFile(ctx, tx, f.ID)
		if err != nil {
			return nil, err
		}
		return settled(res, f), nil
	}

	if !obj.EventTime.IsZero() {
		newer, err := eclrs.NewerImportedFile(ctx, tx, obj.EventTime)
		if err != nil {
			return nil, err
		}
		if newer != nil {
			res.Status = eclrs.FileSkipped
			res.Reason = fmt.Sprintf("an export announced later (%s, file %d) is already imported", newer.Filename, newer.ID)
			if err := eclrs.FinishFile(ctx, tx, f.ID, eclrs.FileOutcome{Status: eclrs.FileSkipped, FailureReason: res.Reason}); err != nil {
				return nil, err
			}
			return res, commit(ctx, tx, obj)
		}
	}

	body, err := open(ctx)
	if err != nil {
		return im.failOrRetry(ctx, tx, res, f.ID, 0, err)
	}
	defer body.Close()

	out, err := im.stream(ctx, tx, f.ID, body, obj.Filename)
	res.Version = int(out.version)
	if err != nil {
		return im.failOrRetry(ctx, tx, res, f.ID, out.version, err)
	}

	if err := saveFileSums(ctx, tx, f.ID, out.store.fileSums, !out.store.tooMany); err != nil {
		return nil, err
	}
	im.metrics.observeLookups(out.store.fromLast, out.store.probed)
	stats := out.store.stats
	res.Status = eclrs.FileImported
	res.Rows = out.rows
	res.New, res.Matched, res.Duplicate, res.Errors = stats.New.Total, stats.Matched.Total, stats.Duplicate.Total, stats.Error.Total
	if err := eclrs.FinishFile(ctx, tx, f.ID, eclrs.FileOutcome{
		Status: eclrs.FileImported, ECLRSVersion: int(out.version), LineCount: out.rows, Statistics: &stats,
	}); err != nil {
		return nil, err
	}
	// test_results has no tally trigger: a transition table would hold a copy of the whole load (see 00005).
	if err := tally.Add(ctx, tx, tally.TestResults, int64(stats.New.Total)); err != nil {
		return nil, err
	}
	if res.New > 0 {
		// Delivered on commit: wakes Engine 2 at once instead of at its next poll.
		if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, eclrs.NotifyChannel, fmt.Sprint(f.ID)); err != nil {
			return nil, fmt.Errorf("notifying: %w", err)
		}
	}
	if err := commit(ctx, tx, obj); err != nil {
		return nil, err
	}
	if res.New > 0 {
		im.vacuum(ctx)
	}
	return res, nil
}

// vacuum marks the pages just written all-visible, so that the next import's de-duplication reads only the checksum
// index (an index-only scan) instead of visiting the rows. VACUUM skips pages already all-visible, so its cost
// follows the rows added, not the table. ANALYZE is left to autovacuum: sampling the wide table costs more than the
// whole de-duplication. It is housekeeping: failure is logged and autovacuum catches up later.
func (im *Importer) vacuum(ctx context.Context) {
	if _, err := im.pool.Exec(ctx, `VACUUM (SKIP_LOCKED) test_results`); err != nil && ctx.Err() == nil {
		im.logger.Warn("vacuuming test_results after an import", zap.Error(err))
	}
}

func commit(ctx context.Context, tx pgx.Tx, obj eclrs.Object) error {
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("committing the import of %s: %w", obj.Filename, err)
	}
	return nil
}

// settled describes a file an earlier import already finished.
func settled(res *Result, f *eclrs.File) *Result {
	res.Status = f.Status
	res.Already = true
	res.Reason = f.FailureReason
	if f.ECLRSVersion != nil {
		res.Version = *f.ECLRSVersion
	}
	if f.LineCount != nil {
		res.Rows = *f.LineCount
	}
	if s := f.Statistics; s != nil {
		res.New, res.Matched, res.Duplicate, res.Errors = s.New.Total, s.Matched.Total, s.Duplicate.Total, s.Error.Total
	}
	return res
}

// failOrRetry rolls back what the import wrote. A permanent failure is then recorded on the files row in a
// transaction of its own and reported as a failed Result, an object overwritten since its notification as a
// skipped one; anything else is returned for a retry.
func (im *Importer) failOrRetry(ctx context.Context, tx pgx.Tx, res *Result, fileID int64, version eclrs.Version, cause error) (*Result, error) {
	if err := tx.Rollback(ctx); err != nil && !errors.Is(err, pgx.ErrTxClosed) {
		return nil, errors.Join(cause, err)
	}
	var header *eclrs.HeaderError
	var permanent *PermanentError
	var superseded *SupersededError
	switch {
	case errors.As(cause, &superseded):
		res.Status = eclrs.FileSkipped
	case errors.As(cause, &header), errors.As(cause, &permanent):
		res.Status = eclrs.FileFailed
	default:
		return nil, cause
	}
	res.Reason = cause.Error()
	err := eclrs.FinishFile(ctx, im.pool, fileID, eclrs.FileOutcome{
		Status: res.Status, FailureReason: res.Reason, ECLRSVersion: int(version),
	})
	if err != nil {
		return nil, errors.Join(cause, err)
	}
	return res, nil
}

// compressed names the compressed format the first bytes of a file are in, or "" when they are in none: a
// compressed export would otherwise be reported as a file without its header.
func compressed(first []byte) string {
	switch {
	case bytes.HasPrefix(first, []byte{0x1f, 0x8b}):
		return "gzip-compressed"
	case bytes.HasPrefix(first, []byte("PK\x03\x04")):
		return "a zip archive"
	case bytes.HasPrefix(first, []byte("BZh")):
		return "bzip2-compressed"
	case bytes.HasPrefix(first, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return "zstd-compressed"
	}
	return ""
}

// streamOutcome is what stream read and wrote.
type streamOutcome struct {
	version eclrs.Version
	rows    int64
	store   *store
}

// stream runs the pipeline over body: read lines → identify (checksum and county, several workers) → de-duplicate,
// parse what is new, insert (one writer, in file order). Every channel between stages is bounded, so memory does not
// grow with the file.
func (im *Importer) stream(ctx context.Context, tx pgx.Tx, fileID int64, body io.Reader, name string) (streamOutcome, error) {
	out := streamOutcome{}
	lr := newLineReader(body)
	header, err := lr.next()
	if errors.Is(err, io.EOF) {
		return out, &eclrs.HeaderError{Got: ""}
	}
	if err != nil {
		return out, err
	}
	if kind := compressed(header); kind != "" {
		return out, &PermanentError{Err: fmt.Errorf("%s is %s, not a text export: Engine 1 reads uncompressed "+
			"pipe-delimited ECLRS exports", name, kind)}
	}
	out.version, err = eclrs.DetectVersion(header)
	if err != nil {
		return out, err
	}

	cfg := im.config
	out.store = newStore(tx, im.pool, fileID, out.version, cfg.ParseWorkers)
	if out.store.last, err = loadLastFileSums(ctx, tx); err != nil {
		return out, err
	}
	work := make(chan *chunk, cfg.ParseWorkers)
	ordered := make(chan *chunk, 2*cfg.ParseWorkers)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return readChunks(gctx, lr, cfg.ChunkLines, work, ordered) })
	for range cfg.ParseWorkers {
		g.Go(func() error { return identifyChunks(gctx, out.version, work) })
	}
	g.Go(func() error {
		n, err := im.write(gctx, out.store, ordered, name)
		out.rows = n
		return err
	})
	if err := g.Wait(); err != nil {
		return out, err
	}
	return out, nil
}

// write is the writer stage: it takes parsed chunks in file order and writes a batch whenever BatchRows rows have
// gathered. It returns the number of data rows seen.
func (im *Importer) write(ctx context.Context, s *store, ordered <-chan *chunk, name string) (int64, error) {
	var rows int64
	batch := make([]*row, 0, im.config.BatchRows+im.config.ChunkLines)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		start := time.Now()
		err := s.writeBatch(ctx, batch)
		im.metrics.observeBatch(time.Since(start))
		batch = batch[:0]
		return err
	}
	lastProgress := time.Now()
	for c := range ordered {
		var p *identifiedChunk
		select {
		case p = <-c.identified:
		case <-ctx.Done():
			return rows, ctx.Err()
		}
		rows += int64(len(p.rows) + len(p.errors))
		if err := s.writeErrors(ctx, p.errors); err != nil {
			return rows, err
		}
		for i := range p.rows {
			batch = append(batch, &p.rows[i])
		}
		if len(batch) >= im.config.BatchRows {
			if err := flush(); err != nil {
				return rows, err
			}
		}
		if time.Since(lastProgress) >= im.config.ProgressInterval {
			lastProgress = time.Now()
			im.logger.Info("import progress", zap.String("file", name), zap.Int64("rows", rows),
				zap.Int64("new", s.stats.New.Total), zap.Int64("matched", s.stats.Matched.Total),
				zap.Int64("errors", s.stats.Error.Total))
		}
	}
	return rows, flush()
}
