// Package pgtest gives tests a real, migrated PostgreSQL database of their own.
//
// The schema (River's and Viaduct's) is applied once into a template database whose name carries a hash of the
// migrations, so a changed schema gets a new template and an unchanged one is reused across test runs. Each test then
// gets a fresh database cloned from that template (CREATE DATABASE … TEMPLATE, a file copy taking tens of
// milliseconds) and dropped at cleanup, so tests that commit — engines running for real — never see each other.
//
// The server is TEST_DATABASE_URL, or DATABASE_URL, or postgres://postgres@127.0.0.1:5432/postgres. Tests fail,
// never skip, when it cannot be reached: `make test` starts PostgreSQL before running them.
package pgtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/viaduct-nys/viaduct/migrations"
	"github.com/viaduct-nys/viaduct/pkg/advisory"
)

// DefaultURL is the server used when neither TEST_DATABASE_URL nor DATABASE_URL is set: the local PostgreSQL that
// `make test` starts, with trust authentication.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// ServerURL returns the URL of the server tests create their databases on.
func ServerURL() string {
	for _, name := range []string{"TEST_DATABASE_URL", "DATABASE_URL"} {
		if v := os.Getenv(name); v != "" {
			return v
		}
	}
	return DefaultURL
}

// DB is one test's database.
type DB struct {
	// Name is the database's name.
	Name string
	// URL connects to it; hand it to subprocesses such as the viaduct binary.
	URL string
	// Pool is a pool on it, closed at cleanup.
	Pool *pgxpool.Pool
}

var (
	templateOnce sync.Once
	templateName string
	templateErr  error
)

// New creates a fresh, fully migrated database for t and drops it when t ends.
func New(t testing.TB) *DB {
	t.Helper()
	templateOnce.Do(func() { templateName, templateErr = ensureTemplate(context.Background()) })
	if templateErr != nil {
		t.Fatalf("pgtest: preparing the template database on %s: %v", redact(ServerURL()), templateErr)
	}
	return create(t, "TEMPLATE "+templateName)
}

// NewEmpty creates a database with no schema at all, for tests of migrating itself.
func NewEmpty(t testing.TB) *DB {
	t.Helper()
	return create(t, "")
}

func create(t testing.TB, options string) *DB {
	t.Helper()
	ctx := context.Background()
	admin := connectAdmin(t)
	name := "viaduct_test_" + randomSuffix()
	if _, err := admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s %s", name, options)); err != nil {
		t.Fatalf("pgtest: creating database %s: %v", name, err)
	}
	_ = admin.Close(ctx)

	db := &DB{Name: name, URL: withDatabase(ServerURL(), name)}
	pool, err := pgxpool.New(ctx, db.URL)
	if err != nil {
		t.Fatalf("pgtest: connecting to %s: %v", name, err)
	}
	db.Pool = pool
	t.Cleanup(func() {
		pool.Close()
		admin := connectAdmin(t)
		defer admin.Close(context.Background())
		if _, err := admin.Exec(context.Background(), fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name)); err != nil {
			t.Errorf("pgtest: dropping database %s: %v", name, err)
		}
	})
	return db
}

// ensureTemplate builds the migrated template once per schema version. Several test binaries run at once, so the
// build happens under a server-wide advisory lock and the finished template appears under its final name atomically
// (built under a temporary name, then renamed).
func ensureTemplate(ctx context.Context) (string, error) {
	hash, err := migrationsHash()
	if err != nil {
		return "", err
	}
	name := "viaduct_template_" + hash[:12]

	admin, err := pgx.Connect(ctx, ServerURL())
	if err != nil {
		return "", fmt.Errorf("connecting (is PostgreSQL running? `make db` starts it): %w", err)
	}
	defer admin.Close(ctx)

	// Blocking is fine here: the lock holder runs no CREATE INDEX CONCURRENTLY on this connection's behalf.
	if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock($1)", advisory.Key(advisory.TestTemplate)); err != nil {
		return "", err
	}
	defer admin.Exec(ctx, "SELECT pg_advisory_unlock($1)", advisory.Key(advisory.TestTemplate)) //nolint:errcheck

	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}

	building := name + "_building"
	if _, err := admin.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", building)); err != nil {
		return "", err
	}
	if _, err := admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s", building)); err != nil {
		return "", err
	}
	pool, err := pgxpool.New(ctx, withDatabase(ServerURL(), building))
	if err != nil {
		return "", err
	}
	_, err = migrations.Up(ctx, pool)
	pool.Close()
	if err != nil {
		return "", fmt.Errorf("migrating the template: %w", err)
	}
	if _, err := admin.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s RENAME TO %s", building, name)); err != nil {
		return "", err
	}
	return name, nil
}

func migrationsHash() (string, error) {
	entries, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		return "", err
	}
	sort.Strings(entries)
	h := sha256.New()
	// River's schema is part of the template too; its version is pinned in go.mod, so the module's own migration
	// list is covered by rebuilding whenever our files change, and a River upgrade ships with a migration of ours.
	for _, e := range entries {
		b, err := fs.ReadFile(migrations.FS, e)
		if err != nil {
			return "", err
		}
		h.Write([]byte(e))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func connectAdmin(t testing.TB) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, ServerURL())
	if err != nil {
		t.Fatalf("pgtest: connecting to %s (is PostgreSQL running? `make db` starts it): %v", redact(ServerURL()), err)
	}
	return conn
}

func withDatabase(serverURL, name string) string {
	u, err := url.Parse(serverURL)
	if err != nil {
		return serverURL
	}
	u.Path = "/" + name
	return u.String()
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "the configured server"
	}
	return u.Redacted()
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
