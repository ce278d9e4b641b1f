// Package pgpool configures the PostgreSQL connection pool a Viaduct process opens, so that the daemon, the
// commands and the benchmarks that measure them run on the same settings.
package pgpool

import (
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultMaxConns is the pool's size when the database URL does not set pool_max_conns. pgx's own default is the
// number of CPUs, at least four: on two cores, four connections for five engines, River and the ops listener. An
// import holds two for its whole run, each Engine 2 worker and Engine 5 domain one, River one for LISTEN; Engine 4's
// jobs then waited 5.5 ms each for a connection (make bench-e4). Twenty is well within PostgreSQL's default of 100
// connections with a few daemons running.
const DefaultMaxConns = 20

// ParseConfig parses databaseURL as pgxpool.ParseConfig does and applies Viaduct's defaults where the URL says
// nothing: DefaultMaxConns connections, and JIT compilation off.
func ParseConfig(databaseURL string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, err
	}
	// pgxpool consumes the setting while parsing, so whether the URL had it can only be read from the URL.
	if !strings.Contains(databaseURL, "pool_max_conns") {
		cfg.MaxConns = DefaultMaxConns
	}
	// Viaduct's queries are many and short. PostgreSQL compiles a query with JIT when its estimated cost is high,
	// and rules written for every case (a branch a pass never runs, a table not analyzed yet) are estimated high:
	// the compile then costs a third of a second where the query takes milliseconds.
	if _, set := cfg.ConnConfig.RuntimeParams["jit"]; !set {
		cfg.ConnConfig.RuntimeParams["jit"] = "off"
	}
	return cfg, nil
}
