package commcaretest

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"
)

// DefaultForwardUser is the HTTP Basic auth user a Forwarder sends, as Viaduct's webhook expects.
const DefaultForwardUser = "commcare"

// ForwardOptions configure a [Forwarder]: the fake's data forwarding, a case repeater posting each changed case as
// JSON.
type ForwardOptions struct {
	// URL is where each changed case is posted. Required.
	URL string
	// User and Password are sent with HTTP Basic auth; User defaults to DefaultForwardUser.
	User, Password string
	// CaseTypes are the types of cases forwarded, as a repeater's case type filter. Defaults to patient.
	CaseTypes []string
	// ChildCases forwards each case with its child_cases, as the case API serves it with child_cases__full. By
	// default they are left out, as CommCare's case repeater leaves them out.
	ChildCases bool
	// MaxAttempts is how often one change is posted before it is given up on; a 5xx, a 408, a 429 and a transport
	// error are tried again, any other answer is final. Defaults to 5.
	MaxAttempts int
	// RetryWait is the wait before the second attempt, doubling for each after. Defaults to 100 ms.
	RetryWait time.Duration
	// Workers is how many posts are in flight at once. A case's changes always go through one worker, in the order
	// they were made. Defaults to 4.
	Workers int
	// HTTPClient sends the posts. Defaults to a client with a 10-second timeout.
	HTTPClient *http.Client
	// OnDelivery, when set, is called after each change is delivered or given up on, from the worker that posted it.
	OnDelivery func(Delivery)
}

// Delivery is what became of one forwarded change.
type Delivery struct {
	// Domain and CaseID name the case; DateModified is the change's date_modified.
	Domain, CaseID, DateModified string
	// Status is the last answer's HTTP status, 0 when the last attempt got none.
	Status int
	// Attempts is how many posts were made.
	Attempts int
	// Err is nil when the change was delivered (a 2xx), else why it was given up on.
	Err error
	// Queued and Done are when the change was queued (made) and when it was delivered or given up on.
	Queued, Done time.Time
}

// ForwardStats count a Forwarder's deliveries.
type ForwardStats struct {
	// Delivered and Failed count changes delivered and given up on; Retries the posts after a change's first.
	Delivered, Failed, Retries int
}

// Forwarder posts the changes a [Server]'s forms and edits make to its cases to a URL, as CommCare's data
// forwarding does, asynchronously, in order for each case, trying each a few times. [Server.ForwardTo] starts one;
// Close stops it.
type Forwarder struct {
	opts   ForwardOptions
	client *http.Client
	ctx    context.Context
	cancel context.CancelFunc
	queues []*forwardQueue
	wg     sync.WaitGroup

	mu      sync.Mutex
	pending int           // changes queued or in flight
	idle    chan struct{} // closed when pending drops to 0; nil while nobody waits
	stats   ForwardStats
	closed  bool
}

// forwardQueue is one worker's changes, oldest first.
type forwardQueue struct {
	mu    sync.Mutex
	items []forwardItem
	wake  chan struct{}
}

// forwardItem is one change to post: the case as it stood right after the change.
type forwardItem struct {
	domain, caseID, dateModified string
	body                         []byte
	queued                       time.Time
}

// ForwardTo makes the server forward every change to a case of opts.CaseTypes, made by a form to its receiver or by
// UpdateCase and CloseCase, to opts.URL, until the returned Forwarder is closed. A server forwards to one place at
// a time.
func (s *Server) ForwardTo(opts ForwardOptions) (*Forwarder, error) {
	if u, err := url.Parse(opts.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("commcaretest: forwarding needs an absolute http(s) URL, not %q", opts.URL)
	}
	opts.User = cmp.Or(opts.User, DefaultForwardUser)
	if len(opts.CaseTypes) == 0 {
		opts.CaseTypes = []string{"patient"}
	}
	opts.MaxAttempts = cmp.Or(opts.MaxAttempts, 5)
	opts.RetryWait = cmp.Or(opts.RetryWait, 100*time.Millisecond)
	opts.Workers = cmp.Or(opts.Workers, 4)
	client := opts.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &Forwarder{opts: opts, client: client, ctx: ctx, cancel: cancel}
	for range opts.Workers {
		q := &forwardQueue{wake: make(chan struct{}, 1)}
		f.queues = append(f.queues, q)
		f.wg.Add(1)
		go f.work(q)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.forwarder != nil && !s.forwarder.isClosed() {
		cancel()
		f.wg.Wait()
		return nil, errors.New("commcaretest: the server already forwards")
	}
	s.forwarder = f
	return f, nil
}

// Forward queues the case as it stands now for forwarding, as if it had just changed: a test's way to forward a
// case it seeded with PutCase, or to deliver a change twice. It fails when the server does not forward or has no such
// case.
func (s *Server) Forward(domain, caseID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.forwarder == nil {
		return errors.New("commcaretest: the server does not forward")
	}
	if _, ok := s.cases[domain][caseID]; !ok {
		return fmt.Errorf("commcaretest: no case %s in %s", caseID, domain)
	}
	s.forwardLocked(domain, caseID)
	return nil
}

// forwardLocked queues the changed cases of domain for forwarding, each as it stands now, when the server forwards.
// The caller holds s.mu, so changes to one case are queued in the order they were made.
func (s *Server) forwardLocked(domain string, caseIDs ...string) {
	f := s.forwarder
	if f == nil {
		return
	}
	for _, id := range caseIDs {
		stored, ok := s.cases[domain][id]
		if !ok || !slices.Contains(f.opts.CaseTypes, stored.Type()) {
			continue
		}
		c := copyCase(*stored)
		if f.opts.ChildCases {
			c = s.withChildren(domain, c)
		}
		body, err := json.Marshal(c)
		if err != nil {
			continue // a case the server could store always encodes
		}
		f.enqueue(forwardItem{domain: domain, caseID: id, dateModified: c.DateModified, body: body, queued: time.Now()})
	}
}

// enqueue hands item to the worker that posts its case's changes.
func (f *Forwarder) enqueue(item forwardItem) {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.pending++
	f.mu.Unlock()
	h := fnv.New32a()
	_, _ = io.WriteString(h, item.domain+"/"+item.caseID)
	q := f.queues[int(h.Sum32()%uint32(len(f.queues)))]
	q.mu.Lock()
	q.items = append(q.items, item)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// work posts q's changes, one at a time, until the forwarder is closed.
func (f *Forwarder) work(q *forwardQueue) {
	defer f.wg.Done()
	for {
		q.mu.Lock()
		var item forwardItem
		ok := len(q.items) > 0
		if ok {
			item = q.items[0]
			q.items = q.items[1:]
		}
		q.mu.Unlock()
		if !ok {
			select {
			case <-f.ctx.Done():
				return
			case <-q.wake:
				continue
			}
		}
		d := f.deliver(item)
		if f.ctx.Err() != nil {
			return
		}
		if f.opts.OnDelivery != nil {
			f.opts.OnDelivery(d)
		}
		f.mu.Lock()
		if d.Err == nil {
			f.stats.Delivered++
		} else {
			f.stats.Failed++
		}
		f.stats.Retries += d.Attempts - 1
		f.pending--
		if f.pending == 0 && f.idle != nil {
			close(f.idle)
			f.idle = nil
		}
		f.mu.Unlock()
	}
}

// deliver posts item until it is accepted, refused for good, or MaxAttempts have failed.
func (f *Forwarder) deliver(item forwardItem) Delivery {
	d := Delivery{Domain: item.domain, CaseID: item.caseID, DateModified: item.dateModified, Queued: item.queued}
	wait := f.opts.RetryWait
	for {
		d.Attempts++
		var retry bool
		d.Status, retry, d.Err = f.post(item)
		if d.Err == nil || !retry || d.Attempts >= f.opts.MaxAttempts {
			d.Done = time.Now()
			return d
		}
		timer := time.NewTimer(wait)
		select {
		case <-f.ctx.Done():
			timer.Stop()
			d.Done = time.Now()
			return d
		case <-timer.C:
		}
		wait *= 2
	}
}

// post sends item once, and says whether a failure may pass.
func (f *Forwarder) post(item forwardItem) (status int, retry bool, err error) {
	req, err := http.NewRequestWithContext(f.ctx, http.MethodPost, f.opts.URL, bytes.NewReader(item.body))
	if err != nil {
		return 0, false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "viaduct-commcaretest-forwarder")
	req.SetBasicAuth(f.opts.User, f.opts.Password)
	resp, err := f.client.Do(req)
	if err != nil {
		return 0, true, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		return resp.StatusCode, false, nil
	}
	retry = resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout ||
		resp.StatusCode == http.StatusTooManyRequests
	return resp.StatusCode, retry, errors.New("commcaretest: forwarding answered " + strconv.Itoa(resp.StatusCode))
}

// Wait returns once every change queued so far has been delivered or given up on, or with ctx's error.
func (f *Forwarder) Wait(ctx context.Context) error {
	f.mu.Lock()
	if f.pending == 0 {
		f.mu.Unlock()
		return nil
	}
	if f.idle == nil {
		f.idle = make(chan struct{})
	}
	idle := f.idle
	f.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats returns what the forwarder has done so far.
func (f *Forwarder) Stats() ForwardStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// Close stops forwarding: posts in flight are cancelled and changes not yet posted are dropped. It returns once every
// worker has stopped.
func (f *Forwarder) Close() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.cancel()
	f.wg.Wait()
}

func (f *Forwarder) isClosed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}
