package e5

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"go.uber.org/zap"

	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/countylist"
)

const (
	// WebhookPath is where CommCare's data forwarding posts changed cases (the original's route).
	WebhookPath = "/api/commcare_cases"
	// WebhookUser is the HTTP Basic auth user the forwarder sends.
	WebhookUser = "commcare"
	// DefaultWebhookMaxBody bounds a forwarded case: a patient case with its lab results is a few kilobytes.
	DefaultWebhookMaxBody = 1 << 20
)

// WebhookConfig configures the endpoint CommCare forwards changed cases to.
type WebhookConfig struct {
	// Password is the one CommCare's forwarder sends with WebhookUser (HTTP Basic auth). Required.
	Password string
	// OwnUserIDs are Viaduct's own CommCare user ids, as in Config: a change by one of them is Engine 4's post
	// coming back, answered 202 and not queued.
	OwnUserIDs []string
	// MaxBody bounds a request's body; a longer one is answered 413. Defaults to DefaultWebhookMaxBody.
	MaxBody int64
}

// WebhookDeps are the webhook's collaborators.
type WebhookDeps struct {
	// Pool is the database: the inbox of forwarded cases, and River's jobs.
	Pool *pgxpool.Pool
	// Jobs inserts the importer's jobs; the process's River client, which works them where the importer is
	// registered.
	Jobs *river.Client[pgx.Tx]
	// Counties tells which domains are participating counties'.
	Counties countylist.Provider
	// Logger is Engine 5's named logger. The webhook never logs a body or credentials: case ids and domains, at
	// Debug.
	Logger *zap.Logger
	// Metrics counts requests and what became of them; nil records nothing. Share Engine 5's.
	Metrics *Metrics
}

// Webhook is the endpoint of CommCare's data forwarding (§7.2): each POST carries one changed case, which is kept
// in the inbox (commcare_case_inbox) and queued for the importer (ImportArgs), or refused with the reason. It answers:
//
//   - GET or HEAD: 200, for CommCare's connectivity check (no credentials needed, nothing revealed);
//   - 401 without user WebhookUser and the password (both compared in constant time);
//   - 415 for a body that is not declared or not parsed as JSON; 413 for one longer than MaxBody;
//   - 400 for a case without case_id, domain, user_id or properties.case_type;
//   - 422 for a case of another type than patient, or of a domain that is no participating county's;
//   - 202 for a change by Viaduct's own user (nothing queued), and for one queued;
//   - 503 when the database cannot take it (the forwarder tries again later); 405 for other methods.
type Webhook struct {
	config   WebhookConfig
	deps     WebhookDeps
	user     [sha256.Size]byte
	password [sha256.Size]byte
}

// NewWebhook validates config and returns the handler to serve on its own listener, apart from the ops address.
func NewWebhook(config WebhookConfig, deps WebhookDeps) (*Webhook, error) {
	if config.MaxBody == 0 {
		config.MaxBody = DefaultWebhookMaxBody
	}
	var errs []error
	if config.Password == "" {
		errs = append(errs, errors.New("e5: the webhook needs a password"))
	}
	if config.MaxBody < 1 {
		errs = append(errs, fmt.Errorf("e5: the webhook's body limit %d must be positive", config.MaxBody))
	}
	if deps.Pool == nil {
		errs = append(errs, errors.New("e5: a database pool is required"))
	}
	if deps.Jobs == nil {
		errs = append(errs, errors.New("e5: a River client is required"))
	}
	if deps.Counties == nil {
		errs = append(errs, errors.New("e5: a county list is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = zap.NewNop()
	}
	return &Webhook{config: config, deps: deps, user: sha256.Sum256([]byte(WebhookUser)),
		password: sha256.Sum256([]byte(config.Password))}, nil
}

// ServeHTTP answers one request from CommCare's forwarder.
func (h *Webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	status, message := h.serve(w, r)
	h.deps.Metrics.observeRequest(status)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = io.WriteString(w, message+"\n")
	}
}

// serve decides the answer to r: its status and text.
func (h *Webhook) serve(w http.ResponseWriter, r *http.Request) (int, string) {
	if r.URL.Path != WebhookPath && r.URL.Path != WebhookPath+"/" {
		return http.StatusNotFound, "Not Found"
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return http.StatusOK, "OK"
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		return http.StatusMethodNotAllowed, "Method Not Allowed"
	}
	if !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="viaduct", charset="UTF-8"`)
		return http.StatusUnauthorized, "Unauthorized"
	}
	if !isJSON(r.Header.Get("Content-Type")) {
		return http.StatusUnsupportedMediaType, "Unsupported Media Type. Send the case as application/json."
	}
	if r.ContentLength > h.config.MaxBody {
		return http.StatusRequestEntityTooLarge, "Request Entity Too Large"
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.config.MaxBody))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge, "Request Entity Too Large"
	case err != nil:
		return http.StatusBadRequest, "Bad Request"
	}
	c, err := decodeForwardedCase(body)
	switch {
	case errors.Is(err, errNotJSON):
		return http.StatusUnsupportedMediaType, "Unsupported Media Type. The body is not JSON."
	case err != nil:
		return http.StatusBadRequest, "Bad Request"
	}
	log := h.deps.Logger.With(zap.String("case_id", c.CaseID), zap.String("domain", c.Domain))
	if t := c.Property("case_type"); t != "patient" {
		return http.StatusUnprocessableEntity, fmt.Sprintf("Unprocessable Entity. Can only import `patient` cases. %s is a `%s`.",
			quoteable(c.CaseID), quoteable(t))
	}
	if slices.Contains(h.config.OwnUserIDs, c.UserID) {
		h.deps.Metrics.observeReceived("own_post")
		log.Debug("a forwarded case changed by Viaduct's own user; nothing to do")
		return http.StatusAccepted, "Accepted"
	}
	if county, ok := h.deps.Counties.Current().ByDomain(c.Domain); !ok || !county.Participating {
		return http.StatusUnprocessableEntity, fmt.Sprintf("Unprocessable Entity. %s is not the project space of a participating county.",
			quoteable(c.Domain))
	}
	coalesced, err := h.enqueue(r.Context(), c, body)
	if err != nil {
		log.Error("keeping a forwarded case failed; the forwarder will send it again", zap.Error(err))
		return http.StatusServiceUnavailable, "Service Unavailable"
	}
	outcome := "queued"
	if coalesced {
		// A job for the case was already waiting: it merges this copy, the newest.
		outcome = "coalesced"
	}
	h.deps.Metrics.observeReceived(outcome)
	log.Debug("a forwarded case was queued", zap.String("outcome", outcome))
	return http.StatusAccepted, "Accepted"
}

// authorized reports whether r carries WebhookUser and the password, comparing digests in constant time so that
// neither a value nor its length shows in the answer's timing.
func (h *Webhook) authorized(r *http.Request) bool {
	user, password, _ := r.BasicAuth()
	gotUser, gotPassword := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(password))
	return subtle.ConstantTimeCompare(gotUser[:], h.user[:])&subtle.ConstantTimeCompare(gotPassword[:], h.password[:]) == 1
}

// enqueue keeps c (body is its JSON) in the inbox, unless the inbox holds a newer copy, and queues its import, in
// one transaction. It reports whether a live job for the case already existed.
func (h *Webhook) enqueue(ctx context.Context, c *commcare.Case, body []byte) (bool, error) {
	var modified *time.Time
	if t, ok := dateModified(c); ok {
		modified = &t
	}
	tx, err := h.deps.Pool.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("beginning a transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	// A copy replaces the one waiting unless both have a date_modified and the waiting one's is later: copies of one
	// case may arrive out of order, since the forwarder retries each on its own.
	if _, err := tx.Exec(ctx, `INSERT INTO commcare_case_inbox (domain, case_id, payload, date_modified)
		VALUES ($1, $2, $3, $4)
		ON CONFLICT (domain, case_id) DO UPDATE
		   SET payload = excluded.payload, date_modified = excluded.date_modified, received_at = now()
		 WHERE commcare_case_inbox.date_modified IS NULL OR excluded.date_modified IS NULL
		    OR commcare_case_inbox.date_modified <= excluded.date_modified`,
		c.Domain, c.CaseID, body, modified); err != nil {
		return false, fmt.Errorf("keeping the case in the inbox: %w", err)
	}
	res, err := h.deps.Jobs.InsertTx(ctx, tx, ImportArgs{Domain: c.Domain, CaseID: c.CaseID}, nil)
	if err != nil {
		return false, fmt.Errorf("queueing the import: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("committing: %w", err)
	}
	return res.UniqueSkippedAsDuplicate, nil
}

// errNotJSON: the body does not parse as JSON.
var errNotJSON = errors.New("the body is not JSON")

// errNotACase: the body is JSON but not a case the forwarder sends.
var errNotACase = errors.New("the body is not a forwarded case with case_id, domain, user_id and properties.case_type")

// decodeForwardedCase reads a forwarded case: one case object as the case API has it, child_cases perhaps left out.
// It returns errNotJSON for a body that is not JSON and errNotACase for JSON that is not such a case, or lacks its
// case_id, domain, user_id or properties.case_type.
func decodeForwardedCase(body []byte) (*commcare.Case, error) {
	if !json.Valid(body) {
		return nil, errNotJSON
	}
	var c *commcare.Case
	if err := json.Unmarshal(body, &c); err != nil || c == nil {
		return nil, errNotACase
	}
	if strings.TrimSpace(c.CaseID) == "" || strings.TrimSpace(c.Domain) == "" || strings.TrimSpace(c.UserID) == "" ||
		c.Property("case_type") == "" {
		return nil, errNotACase
	}
	return c, nil
}

// isJSON reports whether a Content-Type names JSON: application/json or a +json type.
func isJSON(contentType string) bool {
	mediaType, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mediaType == "application/json" || strings.HasSuffix(mediaType, "+json"))
}

// quoteable bounds an identifier echoed in an answer, so a hostile one cannot fill it.
func quoteable(s string) string {
	const maxEcho = 100
	if len(s) <= maxEcho {
		return s
	}
	return strings.ToValidUTF8(s[:maxEcho], "") + "…"
}

// forwardingMetrics are the webhook's and the importer's metrics, part of Engine 5's.
type forwardingMetrics struct {
	requests *prometheus.CounterVec
	received *prometheus.CounterVec
	imports  *prometheus.CounterVec
}

func newForwardingMetrics(reg prometheus.Registerer) *forwardingMetrics {
	m := &forwardingMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "viaduct", Subsystem: "e5", Name: "webhook_requests_total",
			Help: "Requests to the webhook CommCare forwards changed cases to, by HTTP status: 202 taken, 401 bad credentials, 400/413/415/422 refused, 503 the database could not take it.",
		}, []string{"code"}),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "viaduct", Subsystem: "e5", Name: "webhook_cases_total",
			Help: "Forwarded patient cases taken, by outcome: queued (a job queued), coalesced (a job for the case was waiting and merges this copy), own_post (Viaduct's own change, nothing queued).",
		}, []string{"outcome"}),
		imports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "viaduct", Subsystem: "e5", Name: "imports_total",
			Help: "Import jobs of forwarded cases, by outcome: created, updated, unchanged, stale (older than the change merged), skipped (by the import rules), own_post, nothing (merged by an earlier job), lagging (waiting for CommCare's case API), rate_limited, left_to_poll, failed (retried).",
		}, []string{"outcome"}),
	}
	reg.MustRegister(m.requests, m.received, m.imports)
	return m
}

func (m *Metrics) observeRequest(status int) {
	if m == nil {
		return
	}
	m.forwarding.requests.WithLabelValues(strconv.Itoa(status)).Inc()
}

func (m *Metrics) observeReceived(outcome string) {
	if m == nil {
		return
	}
	m.forwarding.received.WithLabelValues(outcome).Inc()
}

func (m *Metrics) observeImport(outcome string) {
	if m == nil {
		return
	}
	m.forwarding.imports.WithLabelValues(outcome).Inc()
}
