// Package migrations holds Viaduct's database schema as embedded SQL files and applies it, together with River's
// own schema, under one advisory lock so that any number of daemons may start at once.
//
// Files are goose migrations (`NNNNN_name.sql` with `-- +goose Up` / `-- +goose Down`), applied in version order and
// recorded in goose_db_version. River's tables are migrated from River's own code (rivermigrate) and recorded in
// river_migration; its SQL is never copied here. The daemon never migrates implicitly: `viaduct migrate` (or
// `viaduct run --migrate`) calls Up, and readiness checks call Pending.
package migrations

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/viaduct-nys/viaduct/pkg/advisory"
)

// FS holds the SQL migrations.
//
//go:embed *.sql
var FS embed.FS

// lockKey is the advisory lock every migrator takes.
var lockKey = advisory.Key(advisory.Migrate)

// lockPollInterval is how often a waiting migrator retries the lock. Waiting in pg_advisory_lock instead would hold a
// snapshot that CREATE INDEX CONCURRENTLY in the running migrator waits on: an undetectable deadlock.
const lockPollInterval = 100 * time.Millisecond

// Result says what Up applied.
type Result struct {
	// River lists the River migration versions applied by this call.
	River []int
	// App lists Viaduct's migration versions applied by this call.
	App []int64
	// LockWait is how long this call waited for another migrator.
	LockWait time.Duration
}

// Up applies River's migrations and then Viaduct's, holding the migration lock throughout. It is idempotent and safe
// to call from several processes at once: the first applies everything, the others wait and then find nothing to do.
func Up(ctx context.Context, pool *pgxpool.Pool) (*Result, error) {
	lockConn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquiring a connection for the migration lock: %w", err)
	}
	defer lockConn.Release()

	res := &Result{}
	waited, err := acquireLock(ctx, lockConn.Conn())
	res.LockWait = waited
	if err != nil {
		return nil, err
	}
	defer func() {
		// A fresh context: the lock must be released even when ctx was cancelled mid-migration.
		unlockCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := lockConn.Exec(unlockCtx, "SELECT pg_advisory_unlock($1)", lockKey); err != nil {
			// The session still holds the lock; dropping the connection releases it.
			_ = lockConn.Conn().Close(unlockCtx)
		}
	}()

	riverMigrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return nil, fmt.Errorf("creating the River migrator: %w", err)
	}
	riverRes, err := riverMigrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return nil, fmt.Errorf("applying River's migrations: %w", err)
	}
	for _, v := range riverRes.Versions {
		res.River = append(res.River, v.Version)
	}

	provider, closeProvider, err := newProvider(pool)
	if err != nil {
		return nil, err
	}
	defer closeProvider()
	appRes, err := provider.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("applying Viaduct's migrations: %w", err)
	}
	for _, r := range appRes {
		res.App = append(res.App, r.Source.Version)
	}
	return res, nil
}

// Pending returns one message per schema part that is not yet migrated; an empty slice means the schema is current.
// Readiness checks and `viaduct run` use it so a daemon never works against a stale schema.
func Pending(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	var pending []string

	riverMigrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return nil, fmt.Errorf("creating the River migrator: %w", err)
	}
	valid, err := riverMigrator.Validate(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("checking River's migrations: %w", err)
	}
	pending = append(pending, valid.Messages...)

	provider, closeProvider, err := newProvider(pool)
	if err != nil {
		return nil, err
	}
	defer closeProvider()
	current, target, err := provider.GetVersions(ctx)
	if err != nil {
		return nil, fmt.Errorf("checking Viaduct's migrations: %w", err)
	}
	if current < target {
		pending = append(pending, fmt.Sprintf("viaduct schema at version %d, expected %d", current, target))
	}
	return pending, nil
}

// State is what `viaduct migrate status` shows: every migration this build knows and whether the database has it.
type State struct {
	// River is River's schema, migrated from River's own code.
	River RiverState
	// App lists Viaduct's migrations in version order.
	App []Migration
	// AppVersion is the highest of Viaduct's versions the database records, 0 when none; above the last of App when
	// a newer build migrated the database.
	AppVersion int64
}

// RiverState is River's schema: River records its versions without the time each was applied.
type RiverState struct {
	// Version is the highest version applied, 0 when none.
	Version int
	// Latest is the highest version this build's River knows.
	Latest int
	// Pending lists the versions this build knows that the database lacks.
	Pending []int
}

// Migration is one of Viaduct's migrations.
type Migration struct {
	// Version is the number the file's name starts with.
	Version int64
	// Name is the file's name without its version and extension: 00010_trace.sql is "trace".
	Name string
	// AppliedAt is when it was applied; zero while it is pending.
	AppliedAt time.Time
}

// Applied says whether the database has the migration.
func (m Migration) Applied() bool { return !m.AppliedAt.IsZero() }

// Status reads which migrations the database has. It only reads, takes no lock and waits for no migrator: a database
// never migrated has no version tables, and every migration is then pending.
func Status(ctx context.Context, pool *pgxpool.Pool) (*State, error) {
	st := &State{}

	riverMigrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return nil, fmt.Errorf("creating the River migrator: %w", err)
	}
	existing, err := riverMigrator.ExistingVersions(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading River's migrations: %w", err)
	}
	applied := map[int]bool{}
	for _, m := range existing {
		applied[m.Version] = true
		st.River.Version = max(st.River.Version, m.Version)
	}
	for _, m := range riverMigrator.AllVersions() {
		st.River.Latest = max(st.River.Latest, m.Version)
		if !applied[m.Version] {
			st.River.Pending = append(st.River.Pending, m.Version)
		}
	}

	provider, closeProvider, err := newProvider(pool)
	if err != nil {
		return nil, err
	}
	defer closeProvider()
	// goose creates its version table when asked about a database without one; status must not write.
	var hasTable bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass('goose_db_version') IS NOT NULL").Scan(&hasTable); err != nil {
		return nil, fmt.Errorf("reading Viaduct's migrations: %w", err)
	}
	if !hasTable {
		for _, src := range provider.ListSources() {
			st.App = append(st.App, Migration{Version: src.Version, Name: migrationName(src.Path)})
		}
		return st, nil
	}
	statuses, err := provider.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading Viaduct's migrations: %w", err)
	}
	for _, s := range statuses {
		m := Migration{Version: s.Source.Version, Name: migrationName(s.Source.Path)}
		if s.State == goose.StateApplied {
			m.AppliedAt = s.AppliedAt
		}
		st.App = append(st.App, m)
	}
	if st.AppVersion, err = provider.GetDBVersion(ctx); err != nil {
		return nil, fmt.Errorf("reading Viaduct's migrations: %w", err)
	}
	return st, nil
}

// migrationName is a migration file's name without its version prefix and extension.
func migrationName(file string) string {
	name := strings.TrimSuffix(path.Base(file), ".sql")
	if _, rest, ok := strings.Cut(name, "_"); ok {
		return rest
	}
	return name
}

func newProvider(pool *pgxpool.Pool) (*goose.Provider, func(), error) {
	db := stdlib.OpenDBFromPool(pool)
	provider, err := goose.NewProvider(goose.DialectPostgres, db, FS, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		_ = db.Close()
		return nil, nil, fmt.Errorf("loading Viaduct's migrations: %w", err)
	}
	return provider, func() { _ = provider.Close() }, nil
}

func acquireLock(ctx context.Context, conn *pgx.Conn) (time.Duration, error) {
	start := time.Now()
	ticker := time.NewTicker(lockPollInterval)
	defer ticker.Stop()
	for {
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", lockKey).Scan(&ok); err != nil {
			return time.Since(start), fmt.Errorf("taking the migration lock: %w", err)
		}
		if ok {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return time.Since(start), errors.Join(errors.New("waiting for another migrator to finish"), ctx.Err())
		case <-ticker.C:
		}
	}
}
