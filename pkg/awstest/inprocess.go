package awstest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/Admiral-Piett/goaws/app/gosqs"
	"github.com/Admiral-Piett/goaws/app/models"
	"github.com/Admiral-Piett/goaws/app/router"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/sirupsen/logrus"
)

// visibilityTick is how often goaws makes messages whose visibility timeout passed visible again. goaws's own
// server loop does this; its embeddable router does not, so without it a received message never comes back.
const visibilityTick = 200 * time.Millisecond

// longPollTick is how often a long-polling ReceiveMessage looks at the queue again.
const longPollTick = 50 * time.Millisecond

// sharedInProcess is the one in-process emulator of this process. goaws keeps queues and topics in package globals,
// so two servers could not be independent anyway; sharing one also keeps a test binary at one listener.
var sharedInProcess inProcess

// quietGoaws turns goaws's logrus output down to errors: at info level it logs every queue created and, at warning
// level, every empty receive, which would bury a failing test's output.
var quietGoaws sync.Once

// inProcess serves gofakes3 and goaws on one loopback port, like LocalStack and fauxqs do. It starts with the first
// acquire and stops with the last release.
type inProcess struct {
	mu       sync.Mutex
	refs     int
	url      string
	server   *http.Server
	quit     chan bool     // closed to stop goaws's visibility ticker
	tickDone chan struct{} // closed when the ticker has returned
	gate     goawsGate
}

// acquire starts the server if it is not running and returns its URL.
func (p *inProcess) acquire() (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()

	if p.refs > 0 {
		p.refs++
		return p.url, nil
	}

	quietGoaws.Do(func() { logrus.SetLevel(logrus.ErrorLevel) })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("listening for the in-process AWS emulator: %w", err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	p.gate.locked(func() {
		// goaws builds queue URLs and ARNs from this global. With an empty region the URL is
		// http://127.0.0.1:port/account/name, which resolves; ARNs then read arn:aws:sqs::account:name, which
		// nothing here parses beyond the last segment.
		models.CurrentEnvironment.Host = "127.0.0.1"
		models.CurrentEnvironment.Port = port
		models.CurrentEnvironment.Region = ""
		models.CurrentEnvironment.AccountID = AccountID
		if p.gate.next == nil {
			p.gate.next = router.New()
		}
	})

	s3 := gofakes3.New(s3mem.New()).Server()
	p.server = &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { p.route(w, r, s3) }),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = p.server.Serve(ln) }() // returns http.ErrServerClosed after Close

	p.quit = make(chan bool)
	p.tickDone = make(chan struct{})
	go func(quit chan bool, done chan struct{}) {
		defer close(done)
		gosqs.PeriodicTasks(visibilityTick, quit)
	}(p.quit, p.tickDone)

	p.url = "http://" + ln.Addr().String()
	p.refs = 1
	return p.url, nil
}

// release stops the server when the last user is gone. S3 objects go with it; goaws queues stay in its globals and
// are found again by the next acquire.
func (p *inProcess) release() {
	p.mu.Lock()
	defer p.mu.Unlock()

	p.refs--
	if p.refs > 0 {
		return
	}
	_ = p.server.Close() // also cancels the contexts of long polls in flight
	close(p.quit)
	<-p.tickDone
	p.server, p.url = nil, ""
}

// route sends a request to goaws or gofakes3 by the service it was signed for.
func (p *inProcess) route(w http.ResponseWriter, r *http.Request, s3 http.Handler) {
	switch signingService(r) {
	case "sqs", "sns":
		p.gate.ServeHTTP(w, r)
	default:
		s3.ServeHTTP(w, r)
	}
}

// signingService returns the service of a SigV4 credential scope (AKID/date/region/service/aws4_request), from the
// Authorization header or a presigned URL's X-Amz-Credential. An unsigned SQS JSON request is recognised by its
// target header. Anything else is taken for S3.
func signingService(r *http.Request) string {
	credential := r.URL.Query().Get("X-Amz-Credential")
	if auth := r.Header.Get("Authorization"); auth != "" {
		if _, rest, ok := strings.Cut(auth, "Credential="); ok {
			credential, _, _ = strings.Cut(rest, ",")
		}
	}
	if parts := strings.Split(credential, "/"); len(parts) == 5 {
		return parts[3]
	}
	if strings.HasPrefix(r.Header.Get("X-Amz-Target"), "AmazonSQS.") {
		return "sqs"
	}
	return "s3"
}

// goawsGate runs goaws handlers one at a time. goaws reads its global queue and topic maps without holding their
// lock in several handlers (CreateQueue, ReceiveMessage, SNS publish), which the race detector reports as soon as
// parallel tests create queues while others poll. Serialising is cheap at test volumes; the one handler that can
// block, a long-polling ReceiveMessage, is turned into short polls repeated outside the lock.
type goawsGate struct {
	mu   sync.Mutex
	next http.Handler
}

// locked runs f while no goaws handler runs.
func (g *goawsGate) locked(f func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f()
}

// ServeHTTP implements http.Handler.
func (g *goawsGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Amz-Target") == "AmazonSQS.ReceiveMessage" {
		g.receive(w, r)
		return
	}
	g.locked(func() { g.next.ServeHTTP(w, r) })
}

// receive answers a JSON ReceiveMessage by asking goaws with WaitTimeSeconds 0 every longPollTick until a message
// is there or the requested wait is over. goaws then falls back to the queue's ReceiveMessageWaitTimeSeconds, which
// CreateResources leaves at 0; a queue created with a receive wait would long-poll inside the lock.
func (g *goawsGate) receive(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "reading request: "+err.Error(), http.StatusBadRequest)
		return
	}
	var input map[string]json.RawMessage
	var wait int
	if err := json.Unmarshal(body, &input); err == nil && input != nil {
		if raw, ok := input["WaitTimeSeconds"]; ok {
			_ = json.Unmarshal(raw, &wait) // an invalid value means no wait, as goaws would read it
		}
		input["WaitTimeSeconds"] = json.RawMessage("0")
		if short, err := json.Marshal(input); err == nil {
			body = short
		}
	}

	deadline := time.Now().Add(time.Duration(wait) * time.Second)
	for {
		rec := httptest.NewRecorder()
		req := r.Clone(r.Context())
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
		g.locked(func() { g.next.ServeHTTP(rec, req) })

		if rec.Code != http.StatusOK || hasMessages(rec.Body.Bytes()) || !time.Now().Before(deadline) {
			copyResponse(w, rec)
			return
		}
		timer := time.NewTimer(longPollTick)
		select {
		case <-r.Context().Done():
			timer.Stop()
			copyResponse(w, rec)
			return
		case <-timer.C:
		}
	}
}

// hasMessages reports whether a JSON ReceiveMessage response carries at least one message.
func hasMessages(body []byte) bool {
	var out struct{ Messages []json.RawMessage }
	return json.Unmarshal(body, &out) == nil && len(out.Messages) > 0
}

// copyResponse writes a recorded response to w.
func copyResponse(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes()) // a failed write means the client went away; there is no one to tell
}
