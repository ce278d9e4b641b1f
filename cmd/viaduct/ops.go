package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/viaduct-nys/viaduct/migrations"
)

// newOpsHandler serves what operators and orchestrators poll:
//
//	/healthz  200 while the process serves at all (liveness)
//	/readyz   200 when the database answers and its schema is current, 503 with the reasons otherwise
//	/metrics  Prometheus metrics, per engine
func newOpsHandler(pool *pgxpool.Pool, reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		if err := pool.Ping(ctx); err != nil {
			http.Error(w, "database unreachable: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		pending, err := migrations.Pending(ctx, pool)
		if err != nil {
			http.Error(w, "checking migrations: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		if len(pending) > 0 {
			http.Error(w, "migrations pending: "+strings.Join(pending, "; "), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return mux
}
