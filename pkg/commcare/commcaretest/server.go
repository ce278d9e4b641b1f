package commcaretest

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/viaduct-nys/viaduct/pkg/commcare"
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
	Counties []commcare.County
	// Credentials is the "<username>:<api key>" the Authorization header must carry. Defaults to
	// DefaultCredentials.
	Credentials string
	// RootDomain is the project space that serves the county list. Defaults to DefaultRootDomain.
	RootDomain string
}

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
	// Delay is waited before answering (or before failing, when Status is set). A client that gives up first
	// ends the wait.
	Delay time.Duration
	// Status, when not zero, is answered instead of the normal response. Zero only delays.
	Status int
	// Times is how many matching requests the fault applies to; 0 applies it until ClearFaults.
	Times int
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
	counties []commcare.County
	faults   []*fault
	requests []Request
	url      string
}

// NewServer returns a server with opts; serve it with Handler, Serve or StartTest.
func NewServer(opts Options) *Server {
	counties := opts.Counties
	if counties == nil {
		counties = NewYorkCounties()
	}
	return &Server{
		counties:    slices.Clone(counties),
		credentials: cmp.Or(opts.Credentials, DefaultCredentials),
		rootDomain:  cmp.Or(opts.RootDomain, DefaultRootDomain),
		stopping:    make(chan struct{}),
	}
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
func (s *Server) SetCounties(counties []commcare.County) {
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
	f := s.record(Request{
		Body:     body,
		Header:   r.Header.Clone(),
		Method:   r.Method,
		Path:     path,
		RawQuery: r.URL.RawQuery,
	})
	if f != nil {
		if f.Delay > 0 {
			timer := time.NewTimer(f.Delay)
			select {
			case <-timer.C:
			case <-r.Context().Done():
				timer.Stop()
				return
			case <-s.stopping:
				timer.Stop()
				return
			}
		}
		if f.Status != 0 {
			contentType := "text/plain; charset=utf-8"
			if json.Valid([]byte(f.Body)) {
				contentType = "application/json"
			}
			w.Header().Set("Content-Type", contentType)
			w.WriteHeader(f.Status)
			_, _ = io.WriteString(w, f.Body)
			return
		}
	}

	if r.Header.Get("Authorization") != "ApiKey "+s.credentials {
		writeError(w, http.StatusUnauthorized, "missing or invalid Authorization header; expected ApiKey <username>:<api key>")
		return
	}

	segments, ok := splitPath(path)
	switch {
	case !ok:
		writeError(w, http.StatusBadRequest, "malformed path")
	case r.Method == http.MethodGet && matchPath(segments, "a", "*", "api", "v0.5", "fixture", ""):
		s.serveFixture(w, r, segments[1])
	default:
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+path)
	}
}

// record keeps req and returns the fault that applies to it, if any.
func (s *Server) record(req Request) *Fault {
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
		return &applied
	}
	return nil
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
