package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/viaduct-nys/viaduct/migrations"
)

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "status" {
		return runMigrateStatus(ctx, args[1:], getenv, stdout)
	}
	var c Config
	s := NewOptionSet("migrate", "[flags] | viaduct migrate status [flags]",
		"Apply River's and Viaduct's migrations. Several hosts may run it at once: one migrates, the others wait and find nothing to do.\n"+
			"`viaduct migrate status` lists the migrations, applied and pending, and changes nothing.", getenv)
	addDatabase(s, &c)
	AddLogging(s, &c, "json")
	if err := s.Parse(args, stdout); err != nil {
		return UsageError(err)
	}
	// The flag package stops at the first word that is not a flag: `migrate --database-url U status` must not migrate.
	if rest := s.fs.Args(); len(rest) > 0 {
		return UsageError(fmt.Errorf("unexpected argument %q: `viaduct migrate status` takes the word status first", rest[0]))
	}
	logger := NewLogger(&c, stderr)
	defer logger.Sync() //nolint:errcheck
	pool, err := OpenPool(ctx, c.DatabaseURL)
	if err != nil {
		return explainConnectError(c.DatabaseURL, err)
	}
	defer pool.Close()
	return migrate(ctx, pool, logger)
}

func migrate(ctx context.Context, pool *pgxpool.Pool, logger *zap.Logger) error {
	res, err := migrations.Up(ctx, pool)
	if err != nil {
		return err
	}
	if len(res.App) == 0 && len(res.River) == 0 {
		logger.Info("schema already current", zap.Duration("lock_wait", res.LockWait))
		return nil
	}
	logger.Info("schema migrated", zap.Ints("river_versions", res.River), zap.Int64s("viaduct_versions", res.App),
		zap.Duration("lock_wait", res.LockWait))
	return nil
}

func runMigrateStatus(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var c Config
	var asJSON bool
	s := NewOptionSet("migrate status", "[flags]",
		"List River's schema version and each of Viaduct's migrations, applied (when) or pending. Changes nothing; exits 0 "+
			"whether or not migrations are pending (`viaduct run` refuses to start until none are).", getenv)
	addDatabase(s, &c)
	s.Bool(&asJSON, "json", "", false, "Print JSON instead of a table.")
	if err := s.Parse(args, stdout); err != nil {
		return UsageError(err)
	}
	if rest := s.fs.Args(); len(rest) > 0 {
		return UsageError(fmt.Errorf("unexpected argument %q", rest[0]))
	}
	pool, err := OpenPool(ctx, c.DatabaseURL)
	if err != nil {
		return explainConnectError(c.DatabaseURL, err)
	}
	defer pool.Close()
	st, err := migrations.Status(ctx, pool)
	if err != nil {
		return err
	}
	if asJSON {
		return writeMigrationStatusJSON(stdout, st)
	}
	writeMigrationStatus(stdout, st)
	return nil
}

// migrationTime is how an applied_at is shown: goose records it without a time zone, in the server's.
const migrationTime = "2006-01-02 15:04:05"

func writeMigrationStatus(w io.Writer, st *migrations.State) {
	fmt.Fprintf(w, "river: %s\n", partState(st.River.Version, st.River.Latest, len(st.River.Pending)))
	var pending int
	var last int64
	for _, m := range st.App {
		last = max(last, m.Version)
		if !m.Applied() {
			pending++
		}
	}
	fmt.Fprintf(w, "viaduct: %s\n\n", partState(int(st.AppVersion), int(last), pending))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tNAME\tAPPLIED AT")
	for _, m := range st.App {
		applied := "pending"
		if m.Applied() {
			applied = m.AppliedAt.Format(migrationTime)
		}
		fmt.Fprintf(tw, "%05d\t%s\t%s\n", m.Version, m.Name, applied)
	}
	_ = tw.Flush()
}

// partState is one schema part's line: its version against the newest this build knows.
func partState(version, latest, pending int) string {
	switch {
	case version > latest:
		return fmt.Sprintf("version %d, newer than this build's %d (a newer viaduct migrated the database)", version, latest)
	case pending == 0:
		return fmt.Sprintf("version %d (current)", version)
	default:
		return fmt.Sprintf("version %d of %d (%d pending)", version, latest, pending)
	}
}

// migrationStatusJSON is `migrate status --json`.
type migrationStatusJSON struct {
	River struct {
		Version int   `json:"version"`
		Latest  int   `json:"latest"`
		Pending []int `json:"pending"`
	} `json:"river"`
	Viaduct struct {
		Version    int64           `json:"version"`
		Migrations []migrationJSON `json:"migrations"`
	} `json:"viaduct"`
}

type migrationJSON struct {
	Version   int64   `json:"version"`
	Name      string  `json:"name"`
	AppliedAt *string `json:"applied_at"` // null while pending
}

func writeMigrationStatusJSON(w io.Writer, st *migrations.State) error {
	var out migrationStatusJSON
	out.River.Version, out.River.Latest = st.River.Version, st.River.Latest
	out.River.Pending = append([]int{}, st.River.Pending...)
	out.Viaduct.Version = st.AppVersion
	for _, m := range st.App {
		entry := migrationJSON{Version: m.Version, Name: m.Name}
		if m.Applied() {
			at := m.AppliedAt.Format(migrationTime)
			entry.AppliedAt = &at
		}
		out.Viaduct.Migrations = append(out.Viaduct.Migrations, entry)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
