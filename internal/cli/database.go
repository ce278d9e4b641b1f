package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/viaduct-nys/viaduct/migrations"
)

// openCurrentPool opens the database of a command that reads or repairs Viaduct's tables (status, extract, trace,
// the repairs) and checks that its schema is current. Each way it can fail says what to do: a database that does not
// exist, a server that cannot be reached, a schema not migrated (which would otherwise surface as `relation "files"
// does not exist`).
func openCurrentPool(ctx context.Context, databaseURL string) (*pgxpool.Pool, error) {
	pool, err := OpenPool(ctx, databaseURL)
	if err != nil {
		return nil, explainConnectError(databaseURL, err)
	}
	if err := requireCurrentSchema(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// requireCurrentSchema refuses to work on a database whose schema is not current: the commands' queries name its
// tables.
func requireCurrentSchema(ctx context.Context, pool *pgxpool.Pool) error {
	pending, err := migrations.Pending(ctx, pool)
	if err != nil {
		return fmt.Errorf("checking the database schema: %w (has `viaduct migrate` been run?)", err)
	}
	return notCurrent(pending, "")
}

// notCurrent is the error for a schema with pending migrations, nil when none is pending; remedy adds another way
// out to `viaduct migrate`.
func notCurrent(pending []string, remedy string) error {
	if len(pending) == 0 {
		return nil
	}
	return fmt.Errorf("the database schema is not current (%s): run `viaduct migrate` first%s",
		strings.Join(pending, "; "), remedy)
}

// explainConnectError rewords openPool's error for the two mistakes an operator makes first, a database not created
// and a server not running (or not where the URL says), and leaves any other as it is. Nothing it writes holds the
// password.
func explainConnectError(databaseURL string, err error) error {
	cfg, perr := pgxpool.ParseConfig(databaseURL)
	if perr != nil {
		return err
	}
	cc := cfg.ConnConfig
	server := net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port)))
	if strings.HasPrefix(cc.Host, "/") {
		server = cc.Host // a Unix socket directory
	}
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && pgErr.Code == "3D000" { // invalid_catalog_name
		return fmt.Errorf("database %q does not exist on %s: create it (createdb -h %s -p %d -U %s %s) and run "+
			"`viaduct migrate`, or fix --database-url (DATABASE_URL; now %s)",
			cc.Database, server, cc.Host, cc.Port, cc.User, cc.Database, RedactDSN(databaseURL))
	}
	if opErr, ok := errors.AsType[*net.OpError](err); ok {
		why := "is it running, and listening there?"
		if _, ok := errors.AsType[*net.DNSError](err); ok {
			why = "does the host name resolve?"
		}
		return fmt.Errorf("cannot reach PostgreSQL at %s (%w): %s --database-url (DATABASE_URL) is %s",
			server, opErr, why, RedactDSN(databaseURL))
	}
	return err
}
