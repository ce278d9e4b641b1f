package cli

import (
	"context"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/riverqueue/river"
	"riverqueue.com/riverui"

	"github.com/viaduct-nys/viaduct/migrations"
	"github.com/viaduct-nys/viaduct/pkg/status/report"
)

// newOpsHandler serves what operators and orchestrators poll:
//
//	/healthz  200 while the process serves at all (liveness)
//	/readyz   200 when the database answers and its schema is current, 503 with the reasons otherwise
//	/metrics  Prometheus metrics: reg's (per engine), viaduct_build_info and the status metrics (registered here)
//	/status   every engine's state (judged by th), work waiting, done and failed, for people (HTML) or scripts
//	          (?format=json); / leads here
//	/riverui/ River UI: Engine 4's jobs, their attempts and errors (when ui is not nil)
func newOpsHandler(pool *pgxpool.Pool, reg *prometheus.Registry, ui http.Handler, th report.Thresholds) http.Handler {
	reg.MustRegister(newBuildInfo())
	mux := http.NewServeMux()
	if ui != nil {
		mux.Handle(riverUIPrefix+"/", ui)
	}
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
	mux.Handle("GET /status", newStatusPage(pool, reg, ui != nil, th))
	mux.Handle("GET /{$}", http.RedirectHandler("/status", http.StatusFound))
	return mux
}

// newBuildInfo is viaduct_build_info: always 1, its labels the build's version (as the heartbeat records it) and Go
// version, so that dashboards show what runs and alerts can tell a deploy.
func newBuildInfo() prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "viaduct_build_info",
		Help:        "Always 1: the version of the viaduct binary serving these metrics, and the Go it was built with.",
		ConstLabels: prometheus.Labels{"version": buildVersion(), "goversion": runtime.Version()}})
	g.Set(1)
	return g
}

// riverUIPrefix is where the daemon serves River UI.
const riverUIPrefix = "/riverui"

// newRiverUI returns River UI for the jobs in client's database, served under riverUIPrefix; its background work
// stops with ctx. Without a password it is read-only: the ops address is often reachable by monitoring, and River
// UI can cancel, retry and delete jobs. With one, every request needs it (HTTP basic auth, any user name).
func newRiverUI(ctx context.Context, client *river.Client[pgx.Tx], logger *slog.Logger, password string) (http.Handler, error) {
	h, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(client, nil),
		Logger:    logger,
		Prefix:    riverUIPrefix,
	})
	if err != nil {
		return nil, fmt.Errorf("creating River UI: %w", err)
	}
	if err := h.Start(ctx); err != nil {
		return nil, fmt.Errorf("starting River UI: %w", err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if password == "" {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				http.Error(w, "River UI is read-only: set --riverui-password (VIADUCT_RIVERUI_PASSWORD) to act on jobs",
					http.StatusForbidden)
				return
			}
		} else if _, given, ok := r.BasicAuth(); !ok || subtle.ConstantTimeCompare([]byte(given), []byte(password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="viaduct River UI", charset="UTF-8"`)
			http.Error(w, "River UI needs the password set with --riverui-password", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}), nil
}
