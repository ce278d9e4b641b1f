package commcare

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/viaduct-nys/viaduct/pkg/countylist"
)

// DefaultUserAgent is the User-Agent the client sends unless configured otherwise. It names the project so CommCare's
// operators can tell whose traffic they see.
const DefaultUserAgent = "viaduct-nys (+https://github.com/viaduct-nys/viaduct)"

const (
	// maxResponseBytes bounds a response body read into memory. The largest responses, case list pages of 100
	// cases with their children, stay well below it.
	maxResponseBytes = 64 << 20
	// maxErrorBodyBytes is how much of a failed response's body an HTTPError keeps: enough to recognise CommCare's
	// error pages, not so much that a log line becomes an HTML document.
	maxErrorBodyBytes = 512

	// defaultTimeout bounds one request unless ClientConfig.Timeout says otherwise. The original allowed GETs 60 s,
	// but its Engine 4 jobs timed out after 30 s, so a request never usefully took longer.
	defaultTimeout = 30 * time.Second
	// maxIdleConnsPerHost is how many connections to one host the default transport keeps open between requests:
	// more than Engine 4's concurrency (40 by default), so that none is re-dialled while the queue is busy.
	maxIdleConnsPerHost = 128
	// defaultGetRetryFor is how long a GET is retried unless ClientConfig.GetRetryFor says otherwise: long enough to
	// ride out a CommCare deploy's brief 502s, short enough to stay well inside a job's time.
	defaultGetRetryFor = 10 * time.Second
	// maxRetryAfter caps HTTPError.RetryAfter, so a wrong or hostile header cannot park a job for days.
	maxRetryAfter = time.Hour
	// maxCasePages bounds FindCasesByExternalID: at 100 cases a page no real external id comes near it, so reaching
	// it means a server that never says "last page".
	maxCasePages = 100
	// findPageSize is the page size FindCasesByExternalID asks for; one page nearly always holds every match.
	findPageSize = 100
)

// ErrRateLimited matches (with errors.Is) an error for a response CommCare rejected with 429 Too Many Requests, which
// callers retry later instead of counting as a failure.
var ErrRateLimited = errors.New("commcare: rate limited")

// ErrNotFound matches (with errors.Is) an error for a response CommCare answered with 404 Not Found: for GetCase, the
// case does not exist (Engine 4 then creates it).
var ErrNotFound = errors.New("commcare: not found")

// ClientConfig configures a [Client].
type ClientConfig struct {
	// BaseURL is where CommCare HQ is, e.g. https://www.commcarehq.org; request paths (/a/<domain>/…) are appended to
	// it, after any path it has. Required; it must be absolute and must not carry user info.
	BaseURL string
	// Credentials is "<username>:<api key>", sent as "Authorization: ApiKey <credentials>". Required. It never
	// appears in logs or errors.
	Credentials string
	// HTTPClient sends the requests. Defaults to an http.Client whose transport keeps up to 128 idle connections
	// per host, without a timeout of its own: Timeout bounds each request. A form POST never follows redirects,
	// whatever the client's CheckRedirect says, so a moved receiver shows as its 3xx instead of a silently re-sent
	// or dropped form.
	HTTPClient *http.Client
	// RootDomain is the project space that holds the county_list lookup table, e.g. ny-statewide-cdcms. Needed only
	// by countylist.List.
	RootDomain string
	// UserAgent is sent with every request. Defaults to DefaultUserAgent.
	UserAgent string
	// Timeout bounds each request, response body included, through the request's context; a GET that is retried
	// gets it afresh for every attempt. Zero means 30 s; negative means no bound beyond the caller's context and
	// HTTPClient.
	Timeout time.Duration
	// GetRetryFor is how long a GET keeps being retried within one call when it fails in a way that may pass:
	// a transport error (a timeout included), 408 or 5xx. Retries back off exponentially from 250 ms, doubling, at
	// most 5 s apart, with jitter; none starts after GetRetryFor has passed or once the caller's context is done.
	// A 429 is never retried here: the caller learns of it at once and waits as CommCare asks (HTTPError.RetryAfter)
	// instead of hammering a server that is shedding load. POSTs are never retried, because a form whose response
	// was lost may have been processed. Zero means 10 s; negative disables retrying.
	GetRetryFor time.Duration
}

func (c ClientConfig) validate() error {
	var errs []error
	if c.BaseURL == "" {
		errs = append(errs, errors.New("commcare: the base URL is required"))
	} else if u, err := url.Parse(c.BaseURL); err != nil {
		errs = append(errs, errors.New("commcare: the base URL is not a URL"))
	} else {
		switch {
		// Checked first, and the URL left out of the message: user info is most likely the credentials.
		case u.User != nil:
			errs = append(errs, errors.New("commcare: the base URL must not carry user info; put it in Credentials"))
		case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			errs = append(errs, fmt.Errorf("commcare: the base URL %q is not an absolute http(s) URL", c.BaseURL))
		case u.RawQuery != "" || u.Fragment != "":
			errs = append(errs, fmt.Errorf("commcare: the base URL %q must not have a query or fragment", c.BaseURL))
		}
	}
	if c.Credentials == "" {
		errs = append(errs, errors.New("commcare: the API key credentials are required"))
	} else {
		user, key, ok := strings.Cut(c.Credentials, ":")
		if !ok || user == "" || key == "" {
			errs = append(errs, errors.New("commcare: the API key credentials must have the form <username>:<api key>"))
		}
		if strings.ContainsFunc(c.Credentials, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			errs = append(errs, errors.New("commcare: the API key credentials contain control characters"))
		}
	}
	return errors.Join(errs...)
}

// Client calls CommCare HQ's HTTP API. It is safe for concurrent use. Formatting it with fmt shows only its base URL,
// so it can be logged without leaking the API key.
type Client struct {
	authorization string
	baseURL       string        // without a trailing slash
	secrets       []string      // cut out of error bodies: the credentials and the API key alone
	getRetryFor   time.Duration // <= 0: no retries
	httpClient    *http.Client
	postClient    *http.Client // httpClient without redirects
	rootDomain    string
	timeout       time.Duration // <= 0: none
	userAgent     string
}

// NewClient validates config and returns a client.
func NewClient(config ClientConfig) (*Client, error) {
	if err := config.validate(); err != nil {
		return nil, err
	}
	httpClient := config.HTTPClient
	if httpClient == nil {
		transport := http.DefaultTransport.(*http.Transport).Clone()
		// Engine 4 works dozens of jobs at once against one CommCare host. Go keeps two idle connections per host
		// by default, so the others would be closed after every request and dialled again, TLS handshake included.
		transport.MaxIdleConnsPerHost = maxIdleConnsPerHost
		httpClient = &http.Client{Transport: transport}
	}
	// A shallow copy shares the transport (and so its connections) and changes only the redirect policy.
	postClient := *httpClient
	postClient.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	_, key, _ := strings.Cut(config.Credentials, ":")
	return &Client{
		authorization: "ApiKey " + config.Credentials,
		baseURL:       strings.TrimSuffix(config.BaseURL, "/"),
		secrets:       []string{config.Credentials, key},
		getRetryFor:   cmp.Or(config.GetRetryFor, defaultGetRetryFor),
		httpClient:    httpClient,
		postClient:    &postClient,
		rootDomain:    config.RootDomain,
		timeout:       cmp.Or(config.Timeout, defaultTimeout),
		userAgent:     cmp.Or(config.UserAgent, DefaultUserAgent),
	}, nil
}

// Format writes the client as commcare.Client{<base URL>} whatever the verb, keeping the credentials out of logs.
func (c *Client) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "commcare.Client{%s}", c.baseURL)
}

// CountyList fetches the county list from the root domain's county_list lookup table.
func (c *Client) CountyList(ctx context.Context) (*countylist.List, error) {
	if c.rootDomain == "" {
		return nil, errors.New("commcare: fetching the county list: no root domain configured")
	}
	resp, err := c.get(ctx, apiPath("a", c.rootDomain, "api", "v0.5", "fixture"),
		url.Values{"fixture_type": {"county_list"}})
	if err != nil {
		return nil, err
	}
	if resp.statusCode != http.StatusOK {
		return nil, resp.httpError()
	}
	list, err := countylist.ParseList(bytes.NewReader(resp.body))
	if err != nil {
		return nil, fmt.Errorf("commcare: the county list from %s: %w", resp.url, err)
	}
	return list, nil
}

// FetchCounties is CountyList, making the client a [countylist.Source].
func (c *Client) FetchCounties(ctx context.Context) (*countylist.List, error) {
	return c.CountyList(ctx)
}

// GetCase fetches one case with its child cases (a patient's lab results) in full. A case that does not exist is an
// *HTTPError matching ErrNotFound; a 429 one matching ErrRateLimited, with the wait CommCare asked for.
func (c *Client) GetCase(ctx context.Context, domain, caseID string) (*Case, error) {
	if err := needDomain("getting a case", domain); err != nil {
		return nil, err
	}
	if caseID == "" {
		// The path would name the case list instead.
		return nil, errors.New("commcare: getting a case: no case id")
	}
	resp, err := c.get(ctx, apiPath("a", domain, "api", "v0.5", "case", caseID),
		url.Values{"format": {"json"}, "child_cases__full": {"true"}})
	if err != nil {
		return nil, err
	}
	if resp.statusCode != http.StatusOK {
		return nil, resp.httpError()
	}
	cs, err := decodeCase(resp.body)
	if err != nil {
		return nil, fmt.Errorf("commcare: the case from %s: %w", resp.url, err)
	}
	return cs, nil
}

// ListCases fetches one page of the domain's cases that match q. Errors are as GetCase's.
func (c *Client) ListCases(ctx context.Context, domain string, q CaseQuery) (*CasePage, error) {
	if err := needDomain("listing cases", domain); err != nil {
		return nil, err
	}
	resp, err := c.get(ctx, apiPath("a", domain, "api", "v0.5", "case"), q.Values())
	if err != nil {
		return nil, err
	}
	if resp.statusCode != http.StatusOK {
		return nil, resp.httpError()
	}
	page, err := decodeCasePage(resp.body)
	if err != nil {
		return nil, fmt.Errorf("commcare: the case list from %s: %w", resp.url, err)
	}
	return page, nil
}

// FindCasesByExternalID returns every patient case in the domain whose external_id is externalID, with child cases
// in full; none is an empty result, not an error. Engine 4 uses it to find where a transferred case went.
//
// Unlike the original, which read the first page of 20 cases without child cases and put the id into the URL
// unescaped, it escapes the id, asks for child cases (so transferred lab results can be matched) and follows the
// pages to the end. Offset paging over cases that change meanwhile can repeat a case, so repeats are dropped.
func (c *Client) FindCasesByExternalID(ctx context.Context, domain, externalID string) ([]Case, error) {
	if externalID == "" {
		// CaseQuery leaves a zero filter out, which would list every patient in the domain.
		return nil, errors.New("commcare: finding cases by external id: no external id")
	}
	q := CaseQuery{ExternalID: externalID, Type: "patient", ChildCases: true, Limit: findPageSize}
	cases := []Case{}
	seen := map[string]bool{}
	for range maxCasePages {
		page, err := c.ListCases(ctx, domain, q)
		if err != nil {
			return nil, err
		}
		for _, cs := range page.Objects {
			if !seen[cs.CaseID] {
				seen[cs.CaseID] = true
				cases = append(cases, cs)
			}
		}
		if page.Meta.Next == nil || len(page.Objects) == 0 {
			return cases, nil
		}
		q.Offset += len(page.Objects)
	}
	return nil, fmt.Errorf("commcare: finding cases with external id %q in %q: still more after %d pages",
		externalID, domain, maxCasePages)
}

// SubmitResult is CommCare's answer to a form it accepted.
type SubmitResult struct {
	// StatusCode is the response's status, always 201 Created: CommCare answers anything else when it did not
	// take the form.
	StatusCode int
	// Body is the OpenRosa response, kept because Engine 4 records it with the send_to_commcare_succeeded event.
	Body string
}

// SubmitForm posts an XForm (see Form.XML) to the domain's receiver. It succeeds only when CommCare answers 201 and
// the body says submit_success; a 201 without it (a submit_error: CommCare processed the form and rejected it) and
// every other status are an *HTTPError, a 429 one matching ErrRateLimited. A POST is never retried here: a form
// whose response was lost may have been processed, so the caller, which knows whether re-sending is harmless, decides.
func (c *Client) SubmitForm(ctx context.Context, domain string, form []byte) (*SubmitResult, error) {
	if err := needDomain("submitting a form", domain); err != nil {
		return nil, err
	}
	if len(form) == 0 {
		return nil, errors.New("commcare: submitting a form: the form is empty")
	}
	resp, err := c.do(ctx, c.postClient, http.MethodPost, apiPath("a", domain, "receiver"), nil, form, "text/xml")
	if err != nil {
		return nil, err
	}
	if resp.statusCode != http.StatusCreated || !bytes.Contains(resp.body, []byte("submit_success")) {
		return nil, resp.httpError()
	}
	return &SubmitResult{StatusCode: resp.statusCode, Body: string(resp.body)}, nil
}

// IsPermanent reports whether err is an *HTTPError that retrying the same request cannot cure (see
// HTTPError.Permanent), so the caller can give up instead of retrying.
func IsPermanent(err error) bool {
	var httpErr *HTTPError
	return errors.As(err, &httpErr) && httpErr.Permanent()
}

// RetryAfter returns how long CommCare asked the caller to wait when err is an *HTTPError for a 429 or 503 with a
// Retry-After header; 0 otherwise, leaving the wait to the caller.
func RetryAfter(err error) time.Duration {
	var httpErr *HTTPError
	if errors.As(err, &httpErr) {
		return httpErr.RetryAfter
	}
	return 0
}

func needDomain(doing, domain string) error {
	if domain == "" {
		return fmt.Errorf("commcare: %s: no domain", doing)
	}
	return nil
}

// decodeCase reads a single case, as GetCase receives it.
func decodeCase(data []byte) (*Case, error) {
	var cs *Case
	if err := json.Unmarshal(data, &cs); err != nil {
		return nil, fmt.Errorf("decoding the case: %w", err)
	}
	if cs == nil || cs.CaseID == "" {
		return nil, errors.New("the response is not a case: it has no case_id")
	}
	return cs, nil
}

// decodeCasePage reads a page of a case list, as ListCases receives it.
func decodeCasePage(data []byte) (*CasePage, error) {
	var page *CasePage
	if err := json.Unmarshal(data, &page); err != nil {
		return nil, fmt.Errorf("decoding the case list: %w", err)
	}
	if page == nil {
		return nil, errors.New("the response is not a case list: it is null")
	}
	return page, nil
}

// response is a finished HTTP exchange with its body read.
type response struct {
	body       []byte
	method     string
	retryAfter time.Duration
	secrets    []string
	statusCode int
	url        string
}

// errRetryableStatus tells the backoff loop in get that an attempt got a status worth another try.
var errRetryableStatus = errors.New("commcare: retryable status")

// get sends a GET to path with query, retrying (see ClientConfig.GetRetryFor) transport errors and statuses that may
// pass. Once it gives up on a status it returns that last response, so callers judge every status in one place.
func (c *Client) get(ctx context.Context, path string, query url.Values) (*response, error) {
	if c.getRetryFor <= 0 {
		return c.do(ctx, c.httpClient, http.MethodGet, path, query, nil, "")
	}
	var last *response
	var lastErr error
	attempt := func() (*response, error) {
		last, lastErr = c.do(ctx, c.httpClient, http.MethodGet, path, query, nil, "")
		switch {
		case lastErr != nil && (ctx.Err() != nil || errors.As(lastErr, new(doomedError))):
			// The caller gave up, or the request cannot work; waiting to try again would only delay saying so.
			return nil, backoff.Permanent(lastErr)
		case lastErr != nil:
			return nil, lastErr
		case retryableStatus(last.statusCode):
			return nil, errRetryableStatus
		}
		return last, nil
	}
	policy := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(250*time.Millisecond),
		backoff.WithMultiplier(2),
		backoff.WithMaxInterval(5*time.Second),
		backoff.WithMaxElapsedTime(c.getRetryFor),
	)
	resp, err := backoff.RetryWithData(attempt, backoff.WithContext(policy, ctx))
	if err == nil {
		return resp, nil
	}
	// The loop reports the context's error when the caller gave up while it waited; the last attempt's outcome says
	// more, so it goes along.
	ctxErr := ctx.Err()
	switch {
	case lastErr != nil && (ctxErr == nil || errors.Is(lastErr, ctxErr)):
		return nil, lastErr
	case lastErr != nil:
		return nil, fmt.Errorf("%w (giving up: %w)", lastErr, ctxErr)
	case ctxErr != nil:
		return nil, fmt.Errorf("%w (giving up: %w)", last.httpError(), ctxErr)
	}
	return last, nil
}

// doomedError is a failure of do's that sending the request again would repeat: the request cannot be built, or the
// response is too large to take.
type doomedError struct{ error }

func (e doomedError) Unwrap() error { return e.error }

// retryableStatus reports whether a GET answered with status may succeed when sent again soon: a timeout or a server
// error, typically a deploy or an overloaded worker. 429 is not among them (see ClientConfig.GetRetryFor).
func retryableStatus(status int) bool {
	return status == http.StatusRequestTimeout || status >= 500
}

// do sends one request to path (already escaped; see apiPath) with query and body through hc and returns the
// response with its body read. Only a transport failure is an error: what a status means differs between calls, so
// callers judge it.
func (c *Client) do(ctx context.Context, hc *http.Client, method, path string, query url.Values, body []byte, contentType string) (*response, error) {
	target := c.baseURL + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	reqCtx := ctx
	if c.timeout > 0 {
		var cancel context.CancelFunc
		reqCtx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	var reqBody io.Reader
	if body != nil {
		reqBody = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(reqCtx, method, target, reqBody)
	if err != nil {
		return nil, doomedError{fmt.Errorf("commcare: building %s %s: %w", method, target, err)}
	}
	req.Header.Set("Authorization", c.authorization)
	req.Header.Set("User-Agent", c.userAgent)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := hc.Do(req)
	if err != nil {
		// The *url.Error names the method and URL, which carry no credentials (the base URL may not have user info).
		return nil, c.transportError(ctx, reqCtx, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, c.transportError(ctx, reqCtx, fmt.Errorf("%s %s: reading the response: %w", method, target, err))
	}
	if len(data) > maxResponseBytes {
		return nil, doomedError{fmt.Errorf("commcare: %s %s: the response is larger than %d bytes", method, target,
			maxResponseBytes)}
	}
	r := &response{
		body:       data,
		method:     method,
		secrets:    c.secrets,
		statusCode: resp.StatusCode,
		url:        target,
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		r.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return r, nil
}

// transportError wraps err from a request made with reqCtx, derived from the caller's ctx, saying when it was the
// client's own Timeout that cut the request off: both read "context deadline exceeded".
func (c *Client) transportError(ctx, reqCtx context.Context, err error) error {
	if ctx.Err() == nil && reqCtx.Err() != nil {
		return fmt.Errorf("commcare: %w (the client's timeout is %s)", err, c.timeout)
	}
	return fmt.Errorf("commcare: %w", err)
}

// parseRetryAfter reads a Retry-After header: delta-seconds or an HTTP-date, taken relative to now. Anything else,
// and a date already past, is 0; a longer wait than maxRetryAfter is cut to it.
func parseRetryAfter(header string, now time.Time) time.Duration {
	header = strings.TrimSpace(header)
	if header == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseUint(header, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		d = maxRetryAfter
		if err == nil && n < uint64(maxRetryAfter/time.Second) {
			d = time.Duration(n) * time.Second
		}
	} else if t, err := http.ParseTime(header); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}

// httpError describes a response the caller did not expect. The credentials are cut out of the body in case a
// server echoes the request back.
func (r *response) httpError() *HTTPError {
	body := string(r.body)
	for _, s := range r.secrets {
		body = strings.ReplaceAll(body, s, "[REDACTED]")
	}
	return &HTTPError{
		Body:       body[:min(len(body), maxErrorBodyBytes)],
		Method:     r.method,
		RetryAfter: r.retryAfter,
		StatusCode: r.statusCode,
		URL:        r.url,
	}
}

// HTTPError is a response with a status the call does not accept.
type HTTPError struct {
	// Body is the start of the response body (at most 512 bytes).
	Body string
	// Method is the request's method.
	Method string
	// RetryAfter is how long a 429 or 503 response's Retry-After header asked the client to wait (at most an hour);
	// 0 when the header was absent or unreadable, or for any other status.
	RetryAfter time.Duration
	// StatusCode is the response's status.
	StatusCode int
	// URL is the request's URL. Credentials travel in a header, never in URLs.
	URL string
}

// Error reads like "commcare: GET https://…/fixture/?fixture_type=county_list: 429 Too Many Requests: "body"".
func (e *HTTPError) Error() string {
	status := fmt.Sprintf("%d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.StatusCode == http.StatusCreated {
		status += " without submit_success"
	}
	msg := fmt.Sprintf("commcare: %s %s: %s", e.Method, e.URL, strings.TrimSpace(status))
	// Only server errors' bodies, CommCare's generic error pages, go into the message, which ends up in logs and
	// River's job errors. A 4xx or a rejected form may quote the case it was sent, patient data included; its body
	// stays in the Body field, which Engine 4 records in the case's event.
	if body := strings.TrimSpace(e.Body); body != "" && (e.StatusCode >= 500 || e.StatusCode == http.StatusTooManyRequests) {
		msg += fmt.Sprintf(": %q", body)
	}
	return msg
}

// Is makes errors.Is(err, ErrRateLimited) true for a 429 and errors.Is(err, ErrNotFound) for a 404.
func (e *HTTPError) Is(target error) bool {
	switch target {
	case ErrRateLimited:
		return e.RateLimited()
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	}
	return false
}

// RateLimited reports whether CommCare answered 429 Too Many Requests.
func (e *HTTPError) RateLimited() bool {
	return e.StatusCode == http.StatusTooManyRequests
}

// Permanent reports whether sending the same request again can never succeed, so a job should give up rather than
// spend its attempts.
//
// A 4xx says the request itself is wrong (bad syntax, unknown domain or case, a method or payload CommCare refuses),
// and the same bytes will be refused again. The exceptions are 4xx statuses that describe the moment rather than the
// request: 401 and 403 mean the API key or the project's subscription is wrong, which an operator fixes while the job
// waits (CommCare answers 403 "Your current subscription does not have access to this feature"); 408 is a timeout;
// 409 a conflicting concurrent change, 425 a replay CommCare is not ready for; 429 is rate limiting. A 201 without
// submit_success is permanent too: CommCare processed the form and rejected its content, which posting it again does
// not change. 3xx and 5xx are not permanent: a redirect or a server error may be gone on the next try.
func (e *HTTPError) Permanent() bool {
	switch e.StatusCode {
	case http.StatusCreated:
		return true
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusRequestTimeout, http.StatusConflict,
		http.StatusTooEarly, http.StatusTooManyRequests:
		return false
	}
	return e.StatusCode >= 400 && e.StatusCode < 500
}

// apiPath joins segments into a path with a leading and a trailing slash (CommCare's API URLs end in one, and it
// redirects those that do not), escaping each segment so a domain or case id can never change the path's shape.
func apiPath(segments ...string) string {
	var b strings.Builder
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	b.WriteByte('/')
	return b.String()
}
