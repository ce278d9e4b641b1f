package eclrs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// File statuses (files.status).
const (
	// FileImporting: the file was announced and is not settled yet: being imported now, or waiting to be resumed
	// from S3 after an attempt failed or its importer died (Engine 1 resumes stale ones; see RecordFile).
	FileImporting = "importing"
	// FileImported: every row was committed together with the statistics.
	FileImported = "imported"
	// FileFailed: the file can never import (bad header, object gone); failure_reason says why.
	FileFailed = "failed"
	// FileSkipped: an export newer than this one had already been imported.
	FileSkipped = "skipped"
)

// Object identifies one ECLRS export: an S3 object version, or a local file.
type Object struct {
	// Filename is how people refer to it: s3://bucket/key or a local path.
	Filename string
	// Bucket is the S3 bucket; empty for local files.
	Bucket string
	// Key is the S3 key or the absolute local path.
	Key string
	// ETag is the S3 ETag, or for local files a fingerprint of size and modification time.
	ETag string
	// VersionID is the S3 version id when the bucket is versioned.
	VersionID string
	// Size is the object's size in bytes, when known.
	Size int64
	// EventTime is when the object was created according to its notification; zero when unknown.
	EventTime time.Time
}

// nullables returns the event time and size as the files row stores them: NULL when unknown.
func (obj Object) nullables() (eventTime *time.Time, size *int64) {
	if !obj.EventTime.IsZero() {
		t := obj.EventTime.UTC()
		eventTime = &t
	}
	if obj.Size > 0 {
		size = &obj.Size
	}
	return eventTime, size
}

// File is a row of files. Its JSON (in `viaduct status --json` and /status?format=json) uses the columns' names.
type File struct {
	ID            int64       `json:"id"`
	Filename      string      `json:"filename"`
	Status        string      `json:"status"`
	FailureReason string      `json:"failure_reason,omitempty"`
	EventTime     *time.Time  `json:"event_time"`
	ECLRSVersion  *int        `json:"eclrs_version"`
	Attempts      int         `json:"attempts"`
	LineCount     *int64      `json:"line_count"`
	Statistics    *Statistics `json:"statistics"`
	StartedAt     *time.Time  `json:"processing_started_at"`
	CompletedAt   *time.Time  `json:"processing_completed_at"`
	InsertedAt    time.Time   `json:"inserted_at"`
}

const fileColumns = `id, filename, status, coalesce(failure_reason, ''), event_time, eclrs_version, attempts, line_count,
	statistics, processing_started_at, processing_completed_at, inserted_at`

func scanFile(row pgx.Row) (*File, error) {
	var f File
	err := row.Scan(&f.ID, &f.Filename, &f.Status, &f.FailureReason, &f.EventTime, &f.ECLRSVersion, &f.Attempts,
		&f.LineCount, &f.Statistics, &f.StartedAt, &f.CompletedAt, &f.InsertedAt)
	if err != nil {
		return nil, err
	}
	return &f, nil
}

// RecordFile records that obj was announced, without starting an attempt, and returns its files row: the new one,
// or the one an earlier notification of the same object made. Once it has committed the file is Engine 1's durable
// work item: an import attempt that fails, a daemon that dies, a notification lost to a dead-letter queue, none of
// them lose it, because a file importing for long with no import under way is resumed from S3 (ClaimStaleFile).
func RecordFile(ctx context.Context, db DBTX, obj Object) (*File, error) {
	eventTime, size := obj.nullables()
	// The no-op update makes RETURNING give the existing row too.
	f, err := scanFile(db.QueryRow(ctx, `
		INSERT INTO files (filename, bucket, key, etag, version_id, size_bytes, event_time)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT ON CONSTRAINT files_object_identity DO UPDATE SET filename = files.filename
		RETURNING `+fileColumns,
		obj.Filename, obj.Bucket, obj.Key, obj.ETag, obj.VersionID, size, eventTime))
	if err != nil {
		return nil, fmt.Errorf("recording file %s: %w", obj.Filename, err)
	}
	return f, nil
}

// NoteAttemptFailed records why the latest import attempt of file id failed, leaving it importing: the reason shows
// on the status page, and the file is resumed once it is stale.
func NoteAttemptFailed(ctx context.Context, db DBTX, id int64, reason string) error {
	_, err := db.Exec(ctx, `UPDATE files SET failure_reason = $2, updated_at = now() WHERE id = $1 AND status = $3`,
		id, reason, FileImporting)
	if err != nil {
		return fmt.Errorf("recording the failed attempt at file %d: %w", id, err)
	}
	return nil
}

// ClaimStaleFile takes the oldest announced S3 file that has been importing, untouched, for longer than staleAfter
// and that no import holds (an import locks its row for its whole transaction), and marks it touched so that other
// daemons leave it alone for staleAfter. It returns nil when there is none. Local files are not resumed: only the
// command that named them can read them.
func ClaimStaleFile(ctx context.Context, db DBTX, staleAfter time.Duration) (*File, Object, error) {
	var obj Object
	var size *int64
	row := db.QueryRow(ctx, `UPDATE files SET updated_at = now()
		 WHERE id = (SELECT id FROM files
		              WHERE status = $1 AND bucket <> '' AND updated_at <= now() - make_interval(secs => $2)
		              ORDER BY event_time NULLS FIRST, id LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING `+fileColumns+`, bucket, key, etag, version_id, size_bytes`, FileImporting, staleAfter.Seconds())
	var f File
	err := row.Scan(&f.ID, &f.Filename, &f.Status, &f.FailureReason, &f.EventTime, &f.ECLRSVersion, &f.Attempts,
		&f.LineCount, &f.Statistics, &f.StartedAt, &f.CompletedAt, &f.InsertedAt,
		&obj.Bucket, &obj.Key, &obj.ETag, &obj.VersionID, &size)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, obj, nil
	}
	if err != nil {
		return nil, obj, fmt.Errorf("looking for stale imports: %w", err)
	}
	obj.Filename = f.Filename
	if size != nil {
		obj.Size = *size
	}
	if f.EventTime != nil {
		obj.EventTime = *f.EventTime
	}
	return &f, obj, nil
}

// RequeueFailedFile sets failed file id importing again, with its attempts and failure reason cleared and stale
// since forever, so that the next resume pass of any daemon running Engine 1 (ClaimStaleFile, every minute at most)
// reads it again from S3 without waiting out the resume-after delay, and has every attempt again. It returns false,
// changing nothing, when the file is not failed or is a local file, which no daemon can read. Run it in the
// transaction that records who asked (EventReimportRequested).
func RequeueFailedFile(ctx context.Context, db DBTX, id int64) (bool, error) {
	tag, err := db.Exec(ctx, `UPDATE files SET status = $2, attempts = 0, failure_reason = NULL,
		       processing_started_at = NULL, processing_completed_at = NULL, updated_at = '-infinity'
		 WHERE id = $1 AND status = $3 AND bucket <> ''`, id, FileImporting, FileFailed)
	if err != nil {
		return false, fmt.Errorf("setting file %d importing again: %w", id, err)
	}
	return tag.RowsAffected() == 1, nil
}

// RecordFileEvent inserts an event of type typ with data (JSON) on file id.
func RecordFileEvent(ctx context.Context, db DBTX, id int64, typ string, data []byte) error {
	_, err := db.Exec(ctx, `WITH ev AS (INSERT INTO events (type, data) VALUES ($1, $2) RETURNING id)
		INSERT INTO file_events (event_id, file_id) SELECT id, $3 FROM ev`, typ, data, id)
	if err != nil {
		return fmt.Errorf("recording a %s event on file %d: %w", typ, id, err)
	}
	return nil
}

// Unsettled counts the announced S3 files still importing: work Engine 1 has not finished, whatever its queue says.
func Unsettled(ctx context.Context, db DBTX) (int64, error) {
	var n int64
	if err := db.QueryRow(ctx, `SELECT count(*) FROM files WHERE status = $1 AND bucket <> ''`, FileImporting).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting unsettled files: %w", err)
	}
	return n, nil
}

// StartFile records an import attempt of obj and returns its files row. The row is found by the object's identity
// (bucket, key, ETag, version), so a notification delivered twice finds the row of the first delivery; its status
// tells the caller whether there is anything left to do.
func StartFile(ctx context.Context, db DBTX, obj Object) (*File, error) {
	eventTime, size := obj.nullables()
	f, err := scanFile(db.QueryRow(ctx, `
		INSERT INTO files (filename, bucket, key, etag, version_id, size_bytes, event_time, attempts, processing_started_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, 1, now())
		ON CONFLICT ON CONSTRAINT files_object_identity DO UPDATE
		   SET attempts = files.attempts + CASE WHEN files.status = 'importing' THEN 1 ELSE 0 END,
		       processing_started_at = CASE WHEN files.status = 'importing' THEN now() ELSE files.processing_started_at END,
		       updated_at = now()
		RETURNING `+fileColumns,
		obj.Filename, obj.Bucket, obj.Key, obj.ETag, obj.VersionID, size, eventTime))
	if err != nil {
		return nil, fmt.Errorf("recording file %s: %w", obj.Filename, err)
	}
	return f, nil
}

// LockFile locks the files row for the rest of tx and returns its current status, so that of several daemons handed
// the same object only one imports it and the others see the outcome.
func LockFile(ctx context.Context, tx DBTX, id int64) (string, error) {
	var status string
	if err := tx.QueryRow(ctx, `SELECT status FROM files WHERE id = $1 FOR UPDATE`, id).Scan(&status); err != nil {
		return "", fmt.Errorf("locking file %d: %w", id, err)
	}
	return status, nil
}

// NewerImportedFile returns the newest imported file whose notification is later than eventTime, or nil. Each export
// is a full rolling window, so once a newer one is in, an older one has nothing to add.
func NewerImportedFile(ctx context.Context, db DBTX, eventTime time.Time) (*File, error) {
	f, err := scanFile(db.QueryRow(ctx, `SELECT `+fileColumns+` FROM files
		WHERE status = 'imported' AND event_time > $1 ORDER BY event_time DESC LIMIT 1`, eventTime.UTC()))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("looking for a newer imported file: %w", err)
	}
	return f, nil
}

// FileOutcome is what FinishFile records.
type FileOutcome struct {
	Status        string
	FailureReason string
	ECLRSVersion  int
	LineCount     int64
	Statistics    *Statistics
}

// FinishFile records how an import ended. For an imported file it must run in the transaction that wrote the rows,
// so that the status and the rows commit together.
func FinishFile(ctx context.Context, db DBTX, id int64, out FileOutcome) error {
	var version *int
	if out.ECLRSVersion != 0 {
		version = &out.ECLRSVersion
	}
	var reason *string
	if out.FailureReason != "" {
		reason = &out.FailureReason
	}
	_, err := db.Exec(ctx, `UPDATE files SET status = $2, failure_reason = $3, eclrs_version = coalesce($4, eclrs_version),
		line_count = $5, statistics = $6, processing_completed_at = now(), updated_at = now() WHERE id = $1`,
		id, out.Status, reason, version, out.LineCount, out.Statistics)
	if err != nil {
		return fmt.Errorf("recording the outcome of file %d: %w", id, err)
	}
	return nil
}

// GetFile returns a files row by id.
func GetFile(ctx context.Context, db DBTX, id int64) (*File, error) {
	f, err := scanFile(db.QueryRow(ctx, `SELECT `+fileColumns+` FROM files WHERE id = $1`, id))
	if err != nil {
		return nil, fmt.Errorf("reading file %d: %w", id, err)
	}
	return f, nil
}
