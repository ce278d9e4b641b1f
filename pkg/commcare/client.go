package commcare

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
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
)

// ErrRateLimited matches (with errors.Is) an error for a response CommCare rejected with 429 Too Many Requests, which
// callers retry later instead of counting as a failure.
var ErrRateLimited = errors.New("commcare: rate limited")

// ClientConfig configures a [Client].
type ClientConfig struct {
	// BaseURL is where CommCare HQ is, e.g. https://www.commcarehq.org; request paths (/a/<domain>/…) are appended to
	// it, after any path it has. Required; it must be absolute and must not carry user info.
	BaseURL string
	// Credentials is "<username>:<api key>", sent as "Authorization: ApiKey <credentials>". Required. It never
	// appears in logs or errors.
	Credentials string
	// HTTPClient sends the requests. Defaults to a client with a 60 second timeout, as the original's GETs had.
	HTTPClient *http.Client
	// RootDomain is the project space that holds the county_list lookup table, e.g. ny-statewide-cdcms. Needed only
	// by CountyList.
	RootDomain string
	// UserAgent is sent with every request. Defaults to DefaultUserAgent.
	UserAgent string
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
	baseURL       string   // without a trailing slash
	secrets       []string // cut out of error bodies: the credentials and the API key alone
	httpClient    *http.Client
	rootDomain    string
	userAgent     string
}

// NewClient validates config and returns a client.
func NewClient(config ClientConfig) (*Client, error) {
	if err := config.validate(); err != nil {
		return nil, err
	}
	httpClient := config.HTTPClient
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 60 * time.Second}
	}
	_, key, _ := strings.Cut(config.Credentials, ":")
	return &Client{
		authorization: "ApiKey " + config.Credentials,
		baseURL:       strings.TrimSuffix(config.BaseURL, "/"),
		secrets:       []string{config.Credentials, key},
		httpClient:    httpClient,
		rootDomain:    config.RootDomain,
		userAgent:     cmp.Or(config.UserAgent, DefaultUserAgent),
	}, nil
}

// Format writes the client as commcare.Client{<base URL>} whatever the verb, keeping the credentials out of logs.
func (c *Client) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "commcare.Client{%s}", c.baseURL)
}

// CountyList fetches the county list from the root domain's county_list lookup table.
func (c *Client) CountyList(ctx context.Context) (*CountyList, error) {
	if c.rootDomain == "" {
		return nil, errors.New("commcare: fetching the county list: no root domain configured")
	}
	resp, err := c.do(ctx, http.MethodGet, apiPath("a", c.rootDomain, "api", "v0.5", "fixture"),
		url.Values{"fixture_type": {"county_list"}}, nil, "")
	if err != nil {
		return nil, err
	}
	if resp.statusCode != http.StatusOK {
		return nil, resp.httpError()
	}
	list, err := ParseCountyList(bytes.NewReader(resp.body))
	if err != nil {
		return nil, fmt.Errorf("commcare: the county list from %s: %w", resp.url, err)
	}
	return list, nil
}

// FetchCounties is CountyList, making the client a [CountySource].
func (c *Client) FetchCounties(ctx context.Context) (*CountyList, error) {
	return c.CountyList(ctx)
}

// response is a finished HTTP exchange with its body read.
type response struct {
	body       []byte
	method     string
	secrets    []string
	statusCode int
	url        string
}

// do sends one request to path (already escaped; see apiPath) with query and returns the response with its body
// read. Only a transport failure is an error: what a status means differs between calls, so callers judge it.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body io.Reader, contentType string) (*response, error) {
	target := c.baseURL + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, fmt.Errorf("commcare: building %s %s: %w", method, target, err)
	}
	req.Header.Set("Authorization", c.authorization)
	req.Header.Set("User-Agent", c.userAgent)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.httpClient.Do(req)
	if err != nil {
		// The *url.Error names the method and URL, which carry no credentials (the base URL may not have user info).
		return nil, fmt.Errorf("commcare: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("commcare: %s %s: reading the response: %w", method, target, err)
	}
	if len(data) > maxResponseBytes {
		return nil, fmt.Errorf("commcare: %s %s: the response is larger than %d bytes", method, target, maxResponseBytes)
	}
	return &response{
		body:       data,
		method:     method,
		secrets:    c.secrets,
		statusCode: resp.StatusCode,
		url:        target,
	}, nil
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
	// StatusCode is the response's status.
	StatusCode int
	// URL is the request's URL. Credentials travel in a header, never in URLs.
	URL string
}

// Error reads like "commcare: GET https://…/fixture/?fixture_type=county_list: 429 Too Many Requests: "body"".
func (e *HTTPError) Error() string {
	status := fmt.Sprintf("%d %s", e.StatusCode, http.StatusText(e.StatusCode))
	msg := fmt.Sprintf("commcare: %s %s: %s", e.Method, e.URL, strings.TrimSpace(status))
	if body := strings.TrimSpace(e.Body); body != "" {
		msg += fmt.Sprintf(": %q", body)
	}
	return msg
}

// Is makes errors.Is(err, ErrRateLimited) true for a 429.
func (e *HTTPError) Is(target error) bool {
	return target == ErrRateLimited && e.RateLimited()
}

// RateLimited reports whether CommCare answered 429 Too Many Requests.
func (e *HTTPError) RateLimited() bool {
	return e.StatusCode == http.StatusTooManyRequests
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
