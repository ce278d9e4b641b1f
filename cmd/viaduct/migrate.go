package main

import (
	"context"
	"io"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/viaduct-nys/viaduct/migrations"
)

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c config
	s := newOptionSet("migrate", "[flags]",
		"Apply River's and Viaduct's migrations. Several hosts may run it at once: one migrates, the others wait and find nothing to do.", getenv)
	addDatabase(s, &c)
	addLogging(s, &c, "json")
	if err := s.parse(args, stdout); err != nil {
		return usageError(err)
	}
	logger := newLogger(&c, stderr)
	defer logger.Sync() //nolint:errcheck
	pool, err := openPool(ctx, c.DatabaseURL)
	if err != nil {
		return err
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
