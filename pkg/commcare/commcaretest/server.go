package commcaretest

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/countylist"
)

const (
	// DefaultCredentials are the API key credentials a Server accepts unless Options say otherwise.
	DefaultCredentials = "viaduct@example.org:test-api-key"
	// DefaultRootDomain is the project space holding the county list unless Options say otherwise.
	DefaultRootDomain = "ny-statewide-cdcms"
)

// maxRequestBytes bounds a recorded request body; Viaduct's largest, an XForm, is a few kilobytes.
const maxRequestBytes = 16 << 20

// Options configure a [Server].
type Options struct {
	// Counties is the county list served. Defaults to NewYorkCounties().
	Counties []countylist.County
	// Credentials is the "<username>:<api key>" the Authorization header must carry. Defaults to
	// DefaultCredentials.
	Credentials string
	// RootDomain is the project space that serves the county list. Defaults to DefaultRootDomain.
	RootDomain string

	// Now is the server's clock, read for server_date_modified and the like, so a test can place cases before or
	// after a boundary without waiting. Defaults to time.Now. The server never hands out the same instant twice:
	// each form or edit gets a stamp strictly after the previous one, whatever Now says.
	Now func() time.Time
	// Latency is waited before every answer, to make a fast loopback server feel like a remote one.
	Latency time.Duration

	// FaultRate is the probability, from 0 to 1, that a case API or receiver request fails at random instead of
	// being answered, so retry paths get exercised without scripting each failure. FaultSeed seeds the choice, so a
	// run can be repeated. FaultKinds are the failures chosen from, uniformly; empty means all of them.
	FaultRate  float64
	FaultSeed  int64
	FaultKinds []FaultKind
	// RetryAfter is what a random 429 asks the client to wait, sent in whole seconds (rounded up). Defaults to 1 s.
	RetryAfter time.Duration
	// TimeoutDelay is how long a random timeout holds its request before answering 504 Gateway Timeout, unless the
	// client gives up or the server stops first. Defaults to 2 minutes, well past any client's patience.
	TimeoutDelay time.Duration

	// SubmitErrorStatus is the HTTP status of a form the receiver rejects while processing it (a case that does not
	// exist, a bad index…). Defaults to 201, as the spec and the original's tests have it; today's CommCare answers
	// 422, which a test can choose to check the client treats both as failures.
	SubmitErrorStatus int
	// ChildCaseTypeField makes child case objects also carry a top-level case_type, as some CommCare responses do
	// and the original's transfer code expected, so a client can be tested against both shapes.
	ChildCaseTypeField bool
}

// FaultKind names a way a request can fail; [Server.FaultsInjected] counts them.
type FaultKind string

const (
	// FaultRateLimit answers 429 Too Many Requests with a Retry-After header.
	FaultRateLimit FaultKind = "rate_limit"
	// FaultServerError answers 500 with the body "500 Internal Server Error", one of the bodies CommCare sends.
	FaultServerError FaultKind = "server_error"
	// FaultTimeout holds the request until the client gives up (or Options.TimeoutDelay passes: then 504).
	FaultTimeout FaultKind = "timeout"
	// FaultExplicit counts the faults set with [Server.Fail] that applied.
	FaultExplicit FaultKind = "explicit"
)

// randomFaultKinds are the kinds random faults choose from by default.
var randomFaultKinds = []FaultKind{FaultRateLimit, FaultServerError, FaultTimeout}

// Request is one request the server received, recorded before it was authenticated or answered.
type Request struct {
	// Body is the request body.
	Body []byte
	// Header is the request's header.
	Header http.Header
	// Method is the request's method.
	Method string
	// Path is the path as sent, still escaped: a domain "a/b" shows as "a%2Fb".
	Path string
	// RawQuery is the query string as sent, without the "?".
	RawQuery string
}

// Query returns the parsed query string.
func (r Request) Query() url.Values {
	q, _ := url.ParseQuery(r.RawQuery)
	return q
}

// Fault is what the server does instead of answering a matching request normally.
type Fault struct {
	// Body is the response body sent with Status.
	Body string
	// Header is added to the response sent with Status, e.g. a Retry-After on a 429.
	Header http.Header
	// Delay is waited before answering (or before failing, when Status is set). A client that gives up first
	// ends the wait.
	Delay time.Duration
	// Status, when not zero, is answered instead of the normal response. Zero only delays.
	Status int
	// Times is how many matching requests the fault applies to; 0 applies it until ClearFaults.
	Times int
	// AnswerLost serves the request (a form is applied) and then drops the connection without an answer, as when
	// the network or the sender's side fails after CommCare applied a post. Status and Body are not used.
	AnswerLost bool
}

type fault struct {
	Fault
	method, path string
	remaining    int
}

// Server is a fake CommCare HQ. Its methods are safe for concurrent use, including while it serves.
type Server struct {
	credentials string
	rootDomain  string
	stopping    chan struct{} // closed when the server stops, ending delays early
	stopOnce    sync.Once

	mu       sync.Mutex
	counties []countylist.County
	faults   []*fault
	requests []Request
	url      string

	now                func() time.Time
	lastStamp          time.Time
	latency            time.Duration
	faultRate          float64
	faultKinds         []FaultKind
	rng                *rand.Rand
	retryAfter         time.Duration
	timeoutDelay       time.Duration
	faultCounts        map[FaultKind]int
	submitErrorStatus  int
	childCaseTypeField bool

	// cases holds each domain's cases by id; caseDomain says which domain holds a case id, because CommCare's case
	// ids are unique across domains and a form may not touch another domain's case.
	cases      map[string]map[string]*commcare.Case
	caseDomain map[string]string
	// children maps, per domain, a case id to the sorted ids of that domain's cases indexing it; listed holds each
	// domain's cases in list order. storeCase, the one place cases change, keeps children current and drops listed,
	// so that a case list request does not parse, sort and index the whole domain again.
	children   map[string]map[string][]string
	listed     map[string][]listEntry
	forms      map[string][]Form
	instances  map[string]map[string]bool // instanceIDs applied, by domain
	duplicates int
	// caseLists counts, by domain, the case list requests served; beforeCaseList is BeforeCaseList's hook.
	caseLists      map[string]int
	beforeCaseList func(domain string, n int, query url.Values)
	// forwarder, when set (ForwardTo), is told of every change a form or an edit makes (forward.go).
	forwarder *Forwarder
}

// NewServer returns a server with opts; serve it with Handler, Serve or StartTest. It panics when opts.FaultRate is
// not between 0 and 1 or a fault kind is unknown: that is a mistake in the test, not a condition to handle.
func NewServer(opts Options) *Server {
	counties := opts.Counties
	if counties == nil {
		counties = NewYorkCounties()
	}
	s := &Server{
		counties:           slices.Clone(counties),
		credentials:        cmp.Or(opts.Credentials, DefaultCredentials),
		rootDomain:         cmp.Or(opts.RootDomain, DefaultRootDomain),
		stopping:           make(chan struct{}),
		now:                opts.Now,
		latency:            opts.Latency,
		retryAfter:         cmp.Or(opts.RetryAfter, time.Second),
		timeoutDelay:       cmp.Or(opts.TimeoutDelay, 2*time.Minute),
		faultCounts:        make(map[FaultKind]int),
		submitErrorStatus:  cmp.Or(opts.SubmitErrorStatus, http.StatusCreated),
		childCaseTypeField: opts.ChildCaseTypeField,
		cases:              make(map[string]map[string]*commcare.Case),
		caseDomain:         make(map[string]string),
		children:           make(map[string]map[string][]string),
		listed:             make(map[string][]listEntry),
		forms:              make(map[string][]Form),
		instances:          make(map[string]map[string]bool),
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.SetFaultRate(opts.FaultRate, opts.FaultSeed)
	s.SetFaultKinds(opts.FaultKinds...)
	return s
}

// TB is the part of testing.TB that StartTest needs; a *testing.T is one. The package declares it rather than
// importing testing, so the daemon can link the package.
type TB interface {
	Cleanup(func())
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Helper()
}

// StartTest starts a server with opts on a loopback port and stops it when t ends.
func StartTest(t TB, opts Options) *Server {
	t.Helper()
	s := NewServer(opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("commcaretest: listening: %v", err)
	}
	// Known before Serve runs, so URL works as soon as StartTest returns.
	s.mu.Lock()
	s.url = "http://" + ln.Addr().String()
	s.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("commcaretest: serving: %v", err)
		}
	})
	return s
}

// Serve answers requests on ln until ctx is done, then stops (ending delayed responses) and returns nil. It returns
// an error only when ln fails.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	s.url = "http://" + ln.Addr().String()
	s.mu.Unlock()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	s.stopOnce.Do(func() { close(s.stopping) })
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// URL returns the server's base URL once Serve or StartTest has it listening, "" before.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// ClientConfig returns what a commcare.Client needs to talk to this server.
func (s *Server) ClientConfig() commcare.ClientConfig {
	return commcare.ClientConfig{BaseURL: s.URL(), Credentials: s.credentials, RootDomain: s.rootDomain}
}

// Credentials returns the "<username>:<api key>" the server accepts.
func (s *Server) Credentials() string {
	return s.credentials
}

// RootDomain returns the project space that serves the county list.
func (s *Server) RootDomain() string {
	return s.rootDomain
}

// SetCounties replaces the county list served from the next request on.
func (s *Server) SetCounties(counties []countylist.County) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counties = slices.Clone(counties)
}

// Requests returns every request received so far, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Fail makes requests with method (any method when "") to path (as sent, escaped, without the query) get f instead
// of the normal response, before the request is authenticated. Faults are matched in the order added; the first that
// matches applies.
func (s *Server) Fail(method, path string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &fault{Fault: f, method: method, path: path, remaining: f.Times})
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// SetLatency changes the wait before every answer, from the next request on.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// SetFaultRate makes each case API or receiver request fail at random with probability rate (0 turns random faults
// off), choosing with a generator seeded by seed so a run can be repeated. It panics when rate is not between 0
// and 1.
func (s *Server) SetFaultRate(rate float64, seed int64) {
	if math.IsNaN(rate) || rate < 0 || rate > 1 {
		panic(fmt.Sprintf("commcaretest: fault rate %v is not between 0 and 1", rate))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faultRate = rate
	s.rng = rand.New(rand.NewPCG(uint64(seed), 0x76696164756374))
}

// SetFaultKinds restricts random faults to kinds (none: all of rate_limit, server_error and timeout), so a test can
// exercise one failure mode at a time. It panics on a kind random faults cannot produce.
func (s *Server) SetFaultKinds(kinds ...FaultKind) {
	for _, k := range kinds {
		if !slices.Contains(randomFaultKinds, k) {
			panic(fmt.Sprintf("commcaretest: %q is not a random fault kind", k))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(kinds) == 0 {
		kinds = randomFaultKinds
	}
	s.faultKinds = slices.Clone(kinds)
}

// FaultsInjected returns how many requests failed on purpose so far, by kind, so a test can tell its retries were
// exercised.
func (s *Server) FaultsInjected() map[FaultKind]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.faultCounts)
}

// Handler returns the server's HTTP handler, for serving it some other way.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(s.serveHTTP)
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBytes))
	if err != nil {
		writeError(w, http.StatusBadRequest, "reading the request body: "+err.Error())
		return
	}
	path := r.URL.EscapedPath()
	f, latency := s.record(Request{
		Body:     body,
		Header:   r.Header.Clone(),
		Method:   r.Method,
		Path:     path,
		RawQuery: r.URL.RawQuery,
	})
	if !s.wait(r, latency) {
		return
	}
	if f != nil {
		if !s.wait(r, f.Delay) {
			return
		}
		if f.AnswerLost {
			s.serve(httptest.NewRecorder(), r, path, body)
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				_ = conn.Close()
			}
			return
		}
		if f.Status != 0 {
			contentType := "text/plain; charset=utf-8"
			if json.Valid([]byte(f.Body)) {
				contentType = "application/json"
			}
			w.Header().Set("Content-Type", contentType)
			for k, vs := range f.Header {
				w.Header()[http.CanonicalHeaderKey(k)] = slices.Clone(vs)
			}
			w.WriteHeader(f.Status)
			_, _ = io.WriteString(w, f.Body)
			return
		}
	}

	s.serve(w, r, path, body)
}

// serve answers a request that no explicit fault took.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, path string, body []byte) {
	segments, ok := splitPath(path)
	if ok && r.Method == http.MethodGet && matchPath(segments, "accounts", "login", "") {
		// The login page is public; the original pinged it to check CommCare was up.
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, "<!DOCTYPE html><html><head><title>Log In :: CommCare HQ</title></head><body></body></html>\n")
		return
	}

	if r.Header.Get("Authorization") != "ApiKey "+s.credentials {
		writeError(w, http.StatusUnauthorized, "missing or invalid Authorization header; expected ApiKey <username>:<api key>")
		return
	}

	var handle func(domain string)
	switch {
	case !ok:
		writeError(w, http.StatusBadRequest, "malformed path")
		return
	case r.Method == http.MethodGet && matchPath(segments, "a", "*", "api", "v0.5", "fixture", ""):
		s.serveFixture(w, r, segments[1])
		return
	case r.Method == http.MethodGet && (matchPath(segments, "a", "*", "api", "v0.5", "case") ||
		matchPath(segments, "a", "*", "api", "v0.5", "case", "*")):
		// CommCare (Django) redirects to the slash-terminated path; clients must follow.
		target := path + "/"
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, target, http.StatusMovedPermanently)
		return
	case r.Method == http.MethodGet && matchPath(segments, "a", "*", "api", "v0.5", "case", ""):
		handle = func(domain string) { s.serveCaseList(w, r, domain) }
	case r.Method == http.MethodGet && matchPath(segments, "a", "*", "api", "v0.5", "case", "*", ""):
		handle = func(domain string) { s.serveCase(w, r, domain, segments[5]) }
	case r.Method == http.MethodPost && matchPath(segments, "a", "*", "receiver", ""):
		handle = func(domain string) { s.serveReceiver(w, domain, body) }
	default:
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+path)
		return
	}

	// Random faults strike before anything is looked up or applied, so a failed submission changes nothing.
	if f, failed := s.rollFault(); failed {
		s.fail(w, r, f)
		return
	}
	domain := segments[1]
	if !s.domainExists(domain) {
		writeError(w, http.StatusNotFound, "no project space "+domain)
		return
	}
	handle(domain)
}

// record keeps req and returns the fault that applies to it, if any, and the latency to add.
func (s *Server) record(req Request) (*Fault, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, req)
	for i, f := range s.faults {
		if (f.method != "" && f.method != req.Method) || f.path != req.Path {
			continue
		}
		applied := f.Fault
		if f.Times > 0 {
			if f.remaining--; f.remaining == 0 {
				s.faults = slices.Delete(s.faults, i, i+1)
			}
		}
		s.faultCounts[FaultExplicit]++
		return &applied, s.latency
	}
	return nil, s.latency
}

// wait waits d and reports whether to go on answering: false when the client gave up or the server is stopping.
func (s *Server) wait(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-r.Context().Done():
		return false
	case <-s.stopping:
		return false
	}
}

// randomFault is a failure rollFault chose, with the settings in force when it did.
type randomFault struct {
	kind       FaultKind
	retryAfter time.Duration
	hold       time.Duration
}

// rollFault decides whether this request fails at random, and how.
func (s *Server) rollFault() (randomFault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.faultRate == 0 || s.rng.Float64() >= s.faultRate {
		return randomFault{}, false
	}
	f := randomFault{kind: s.faultKinds[s.rng.IntN(len(s.faultKinds))], retryAfter: s.retryAfter, hold: s.timeoutDelay}
	s.faultCounts[f.kind]++
	return f, true
}

// fail answers the request with the random fault f.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, f randomFault) {
	switch f.kind {
	case FaultRateLimit:
		w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(f.retryAfter.Seconds())), 10))
		writeError(w, http.StatusTooManyRequests, "Too Many Requests")
	case FaultServerError:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, "500 Internal Server Error")
	case FaultTimeout:
		if !s.wait(r, f.hold) {
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusGatewayTimeout)
		_, _ = io.WriteString(w, "504 Gateway Time-out")
	}
}

// domainExists reports whether CommCare would know the project space: the root domain or any domain the county
// list names.
func (s *Server) domainExists(domain string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if domain == s.rootDomain {
		return true
	}
	return slices.ContainsFunc(s.counties, func(c countylist.County) bool { return c.Domain == domain })
}

func (s *Server) serveFixture(w http.ResponseWriter, r *http.Request, domain string) {
	if domain != s.rootDomain {
		writeError(w, http.StatusNotFound, "no county list in domain "+domain)
		return
	}
	if fixtureType := r.URL.Query().Get("fixture_type"); fixtureType != "county_list" {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no lookup table of type %q", fixtureType))
		return
	}
	s.mu.Lock()
	data := CountyListJSON(s.counties)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(data)
}

// splitPath splits an escaped path into unescaped segments, so an escaped "/" inside a domain stays in its segment.
// The leading slash yields no segment; a trailing one yields a final "".
func splitPath(escaped string) ([]string, bool) {
	parts := strings.Split(strings.TrimPrefix(escaped, "/"), "/")
	for i, p := range parts {
		u, err := url.PathUnescape(p)
		if err != nil {
			return nil, false
		}
		parts[i] = u
	}
	return parts, true
}

// matchPath reports whether segments are pattern, where "*" matches any non-empty segment.
func matchPath(segments []string, pattern ...string) bool {
	if len(segments) != len(pattern) {
		return false
	}
	for i, p := range pattern {
		if (p == "*" && segments[i] == "") || (p != "*" && p != segments[i]) {
			return false
		}
	}
	return true
}

func writeError(w http.ResponseWriter, status int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": message})
}
