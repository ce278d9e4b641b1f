package countylist

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/viaduct-nys/viaduct/pkg/poll"
)

// maxCountyListBytes bounds what ParseList reads. The real list is about 30 KB; anything near this size is not
// a county list, and reading without a bound would let a misbehaving server exhaust memory.
const maxCountyListBytes = 8 << 20

// ErrNoStatewide is wrapped by [List.Resolve] when a code is not in the list and the list has no
// statewide entry to fall back to. Engine 2 treats it as a mishandled result, as the original did.
var ErrNoStatewide = errors.New(`no county found with is_state_domain "yes"`)

// List is a validated county list: the entries of CommCare's county_list lookup table followed by the extra
// entries 905 and 907. It never changes once built, so engines may share one without locking; a newer list is a
// new List.
type List struct {
	counties   []County
	byDomain   map[string]int
	byFIPS     map[string]int
	byLocation map[string]int
	statewide  int // index into counties; -1 when there is no statewide entry
}

// ParseList reads a county list in any of the shapes it is found in: CommCare's fixture API response
// ({"meta": …, "objects": [{"fields": {…}, …}, …]}), the bare objects array of that response, or a bare array of
// fields objects (the shape of the original's static configuration). Only the fields Viaduct uses are read; they
// must be strings (or null, read as ""). Entry numbers in errors are indexes into the array, counted from 0.
func ParseList(r io.Reader) (*List, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxCountyListBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the county list: %w", err)
	}
	if len(data) > maxCountyListBytes {
		return nil, fmt.Errorf("the county list is larger than %d bytes", maxCountyListBytes)
	}
	counties, err := decodeCountyList(data)
	if err != nil {
		return nil, err
	}
	return NewList(counties)
}

// NewList validates counties, appends the extra entries 905 and 907 unless the list already has them, and
// returns the list. Every problem is reported at once, one line each, naming the entry's index and fips:
// a fips that is not a positive decimal integer, two entries with the same number (so "7" and "007" clash, since both
// would seed counties row 7), more than one statewide entry, a statewide entry that does not participate, and a
// participating entry without a domain or location_id. An empty list is an error too: a county list that lost all
// its entries is an outage, not a configuration.
func NewList(counties []County) (*List, error) {
	if len(counties) == 0 {
		return nil, errors.New("the county list has no entries")
	}
	var errs []error
	seen := make(map[int64]int, len(counties)+len(extraCounties))
	statewide := -1
	for i, c := range counties {
		fail := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("county list entry %d (fips %q): %s", i, c.FIPS, fmt.Sprintf(format, args...)))
		}
		if code, problem := parseFIPS(c.FIPS); problem != "" {
			fail("%s", problem)
		} else if j, dup := seen[code]; dup {
			fail("duplicate fips: entry %d (fips %q) has the same number", j, counties[j].FIPS)
		} else {
			seen[code] = i
		}
		if c.Statewide {
			if statewide >= 0 {
				fail(`more than one statewide entry (is_state_domain "yes"): entry %d (fips %q) is statewide too`,
					statewide, counties[statewide].FIPS)
			} else {
				statewide = i
			}
			// The statewide county receives every result whose county is unknown, so it needs a project.
			if !c.Participating {
				fail("the statewide entry is not participating")
			}
		}
		if c.Participating {
			if c.Domain == "" {
				fail("participating but has no domain")
			}
			if c.LocationID == "" {
				fail("participating but has no location_id")
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	list := &List{
		counties:   slices.Clip(slices.Clone(counties)),
		byDomain:   make(map[string]int),
		byFIPS:     make(map[string]int),
		byLocation: make(map[string]int),
		statewide:  statewide,
	}
	for _, extra := range extraCounties {
		code, _ := parseFIPS(extra.FIPS)
		if _, present := seen[code]; !present {
			list.counties = append(list.counties, extra)
		}
	}
	// The first entry wins, as the original's lookups took the first match.
	for i, c := range list.counties {
		addFirst(list.byFIPS, c.FIPS, i)
		addFirst(list.byDomain, c.Domain, i)
		addFirst(list.byLocation, c.LocationID, i)
	}
	return list, nil
}

// All returns every entry, extras included, in list order. The slice is the caller's to modify.
func (l *List) All() []County {
	return slices.Clone(l.counties)
}

// Len returns the number of entries, extras included.
func (l *List) Len() int {
	return len(l.counties)
}

// ByFIPS returns the entry whose fips is exactly fips: "7" does not find "007".
func (l *List) ByFIPS(fips string) (County, bool) {
	return l.lookup(l.byFIPS, fips)
}

// ByDomain returns the first entry whose CommCare project is domain. Non-participating entries without a domain are
// never found this way.
func (l *List) ByDomain(domain string) (County, bool) {
	return l.lookup(l.byDomain, domain)
}

// ByLocationID returns the first entry whose CommCare location is id.
func (l *List) ByLocationID(id string) (County, bool) {
	return l.lookup(l.byLocation, id)
}

// Statewide returns the entry with is_state_domain "yes", where results for unknown counties go.
func (l *List) Statewide() (County, bool) {
	if l.statewide < 0 {
		return County{}, false
	}
	return l.counties[l.statewide], true
}

// Participating returns the participating entries, the statewide one included, in list order. (The original
// returned them in reverse list order, which its Engine 5 then walked; callers wanting that order reverse this.)
func (l *List) Participating() []County {
	var out []County
	for _, c := range l.counties {
		if c.Participating {
			out = append(out, c)
		}
	}
	return out
}

// FIPSCodes returns every entry's fips as a number, in list order: the ids of the counties rows the list needs.
func (l *List) FIPSCodes() []int64 {
	codes := make([]int64, len(l.counties))
	for i, c := range l.counties {
		// Validated when the list was built.
		codes[i], _ = parseFIPS(c.FIPS)
	}
	return codes
}

// Resolve finds the county an ECLRS county code belongs to. The code is compared, as a decimal string, with each
// entry's fips. An entry that participates is Matched; one that does not is NonParticipating, and its results are to
// be ignored; a code not in the list falls back to the statewide county. Without a statewide entry that last case is
// an error wrapping ErrNoStatewide.
func (l *List) Resolve(code int64) (County, Resolution, error) {
	if c, ok := l.ByFIPS(strconv.FormatInt(code, 10)); ok {
		if c.Participating {
			return c, Matched, nil
		}
		return c, NonParticipating, nil
	}
	if c, ok := l.Statewide(); ok {
		return c, StatewideFallback, nil
	}
	return County{}, 0, fmt.Errorf("county code %d is not in the county list and %w", code, ErrNoStatewide)
}

// equal reports whether l and other hold the same entries in the same order.
func (l *List) equal(other *List) bool {
	return slices.Equal(l.counties, other.counties)
}

func (l *List) lookup(index map[string]int, key string) (County, bool) {
	if key == "" {
		return County{}, false
	}
	i, ok := index[key]
	if !ok {
		return County{}, false
	}
	return l.counties[i], true
}

// Seed inserts a counties row for every fips in list that has none, in one statement, and returns how many
// it inserted. Index cases reference counties by id, and Engine 1 creates rows only for codes it has seen, so without
// this the statewide fallback (or a county no ECLRS row has named yet) would fail the foreign key.
func Seed(ctx context.Context, db DBTX, list *List) (int64, error) {
	if list == nil {
		return 0, errors.New("seeding counties: no county list")
	}
	tag, err := db.Exec(ctx, `INSERT INTO counties (id) SELECT unnest($1::bigint[]) ON CONFLICT DO NOTHING`,
		list.FIPSCodes())
	if err != nil {
		return 0, fmt.Errorf("seeding counties: %w", err)
	}
	return tag.RowsAffected(), nil
}

// Source is where a [Cache] gets its list: CommCare's fixture API ([Client]) in production, a file
// ([FileSource]) in development and tests.
type Source interface {
	// FetchCounties returns the current list, or an error that leaves the cache serving its last good one.
	FetchCounties(ctx context.Context) (*List, error)
}

// FileSource reads the county list from a file in any shape ParseList accepts. The file is read again
// on every fetch, so editing it takes effect at the next refresh.
type FileSource struct {
	// Path is the file.
	Path string
}

// FetchCounties reads and parses the file. Errors name it.
func (s FileSource) FetchCounties(ctx context.Context) (*List, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(s.Path)
	if err != nil {
		return nil, fmt.Errorf("opening the county list: %w", err)
	}
	defer f.Close() //nolint:errcheck // read only: nothing a failed close could lose
	list, err := ParseList(f)
	if err != nil {
		return nil, fmt.Errorf("county list file %s: %w", s.Path, err)
	}
	return list, nil
}

// CacheConfig tunes a [Cache].
type CacheConfig struct {
	// Refresh is how long a fetched list is served before it is fetched again. Defaults to 30 minutes.
	Refresh time.Duration
	// RetryInterval is how soon a failed refresh is tried again. Defaults to 1 minute.
	RetryInterval time.Duration
	// Timeout bounds each fetch, seeding the counties table included. Defaults to 30 seconds.
	Timeout time.Duration
}

// CacheDeps are a [Cache]'s collaborators.
type CacheDeps struct {
	// DB, when not nil, gets a counties row for every fips of each list (Seed) before the list is served,
	// so nothing can resolve to a county the database lacks.
	DB DBTX
	// Logger is the cache's named logger. Nil discards logs.
	Logger *zap.Logger
	// Source provides the list. Required.
	Source Source
}

// Cache serves the county list to the engines and keeps it fresh. [Cache.Load] fetches it once, before
// anything needs it, and fails if it cannot; [Cache.Run] then refreshes it in the background. A failed refresh
// leaves the last good list in place, as the original's CountiesCache did, so a CommCare outage does not stop
// Engine 2.
type Cache struct {
	config  CacheConfig
	current atomic.Pointer[List]
	deps    CacheDeps
	logger  *zap.Logger
}

// NewCache validates config and deps and returns a cache with no list yet: call Load before serving.
func NewCache(config CacheConfig, deps CacheDeps) (*Cache, error) {
	var errs []error
	if deps.Source == nil {
		errs = append(errs, errors.New("county cache: a county source is required"))
	}
	for _, d := range []struct {
		name  string
		value time.Duration
	}{{"refresh interval", config.Refresh}, {"retry interval", config.RetryInterval}, {"timeout", config.Timeout}} {
		if d.value < 0 {
			errs = append(errs, fmt.Errorf("county cache: the %s %s is negative", d.name, d.value))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	config.Refresh = cmp.Or(config.Refresh, 30*time.Minute)
	config.RetryInterval = cmp.Or(config.RetryInterval, time.Minute)
	config.Timeout = cmp.Or(config.Timeout, 30*time.Second)
	logger := deps.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	return &Cache{config: config, deps: deps, logger: logger}, nil
}

// Provider gives the county list in force to the engines that route by county; a *Cache does, and tests
// may pass a fixed list.
type Provider interface {
	Current() *List
}

// Current returns the list being served: the last one fetched (and seeded) successfully. It is nil only before the
// first successful Load.
func (c *Cache) Current() *List {
	return c.current.Load()
}

// Load fetches the list now and serves it. The daemon calls it before starting the engines and refuses to start if
// it fails: without a list no result can be routed.
func (c *Cache) Load(ctx context.Context) error {
	list, err := c.fetch(ctx)
	if err != nil {
		return fmt.Errorf("loading the county list: %w", err)
	}
	c.current.Store(list)
	c.logger.Info("county list loaded", zap.Int("counties", list.Len()))
	return nil
}

// Run refreshes the list every Refresh (every RetryInterval after a failure) until ctx is done, then returns nil. If
// no list was loaded yet it fetches one at once.
func (c *Cache) Run(ctx context.Context) error {
	var first time.Duration
	if c.Current() != nil {
		first = c.config.Refresh
	}
	failures := 0 // refreshes failed in a row
	loop := poll.New(poll.Config{
		// Both bounds at RetryInterval: every retry comes RetryInterval after the failure, neither growing nor
		// jittered.
		BackoffInitial: c.config.RetryInterval,
		BackoffMax:     c.config.RetryInterval,
		ErrorFunc: func(err error, retryIn time.Duration) {
			// The last good list, if any, stays in place: routing on a 30-minute-old list beats not routing.
			c.logger.Warn("county list refresh failed",
				zap.Error(err), zap.Duration("retry_in", retryIn), zap.Int("failures", failures))
		},
		FirstDelay:   first,
		IdleInterval: c.config.Refresh,
	}, func(ctx context.Context) (poll.Result, error) {
		if err := c.refresh(ctx, failures); err != nil {
			failures++
			return poll.Idle, err
		}
		failures = 0
		return poll.Idle, nil
	})
	loop.Run(ctx)
	c.logger.Debug("stopping")
	return nil
}

// refresh fetches the list once and serves it. failuresBefore is the number of refreshes that failed in a row
// before this one, for the log line.
func (c *Cache) refresh(ctx context.Context, failuresBefore int) error {
	list, err := c.fetch(ctx)
	if err != nil {
		return err
	}
	old := c.current.Swap(list)
	changed := old == nil || !old.equal(list)
	if changed || failuresBefore > 0 {
		c.logger.Info("county list refreshed",
			zap.Int("counties", list.Len()), zap.Bool("changed", changed), zap.Int("failures_before", failuresBefore))
	} else {
		c.logger.Debug("county list unchanged", zap.Int("counties", list.Len()))
	}
	return nil
}

// fetch gets a list from the source and, when there is a database, seeds it. A list whose counties could not be
// seeded is not returned: serving it could route a result to a county the foreign key rejects.
func (c *Cache) fetch(ctx context.Context) (*List, error) {
	ctx, cancel := context.WithTimeout(ctx, c.config.Timeout)
	defer cancel()
	list, err := c.deps.Source.FetchCounties(ctx)
	if err != nil {
		return nil, err
	}
	if list == nil {
		return nil, errors.New("the county source returned no list")
	}
	if c.deps.DB != nil {
		inserted, err := Seed(ctx, c.deps.DB, list)
		if err != nil {
			return nil, err
		}
		if inserted > 0 {
			c.logger.Info("seeded counties", zap.Int64("inserted", inserted))
		}
	}
	return list, nil
}

// countyFieldNames are the fields of a county list entry that Viaduct reads; the others (analysis_date,
// county_sort, traveler_location_id) are ignored, as in the original.
var countyFieldNames = [...]string{
	"county_display", "county_name", "domain", "fips", "gaz", "is_state_domain", "location_id", "participating",
}

// decodeCountyList turns the JSON into entries, reporting every malformed entry at once.
func decodeCountyList(data []byte) ([]County, error) {
	var entries []json.RawMessage
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	switch {
	case len(trimmed) == 0:
		return nil, errors.New("the county list is empty")
	case trimmed[0] == '{':
		var response struct {
			Objects *[]json.RawMessage `json:"objects"`
		}
		if err := json.Unmarshal(data, &response); err != nil {
			return nil, fmt.Errorf("decoding the county list: %w", err)
		}
		if response.Objects == nil {
			return nil, errors.New(`the county list response has no "objects" array`)
		}
		entries = *response.Objects
	case trimmed[0] == '[':
		if err := json.Unmarshal(data, &entries); err != nil {
			return nil, fmt.Errorf("decoding the county list: %w", err)
		}
	default:
		return nil, errors.New("the county list is neither a JSON object nor a JSON array")
	}

	counties := make([]County, 0, len(entries))
	var errs []error
	for i, raw := range entries {
		c, entryErrs := decodeCountyEntry(raw)
		for _, err := range entryErrs {
			errs = append(errs, fmt.Errorf("county list entry %d: %w", i, err))
		}
		counties = append(counties, c)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return counties, nil
}

// decodeCountyEntry reads one entry: an object with a "fields" object, or the fields object itself. It returns
// every problem with the entry.
func decodeCountyEntry(raw json.RawMessage) (County, []error) {
	var object map[string]json.RawMessage
	if err := json.Unmarshal(raw, &object); err != nil || object == nil {
		return County{}, []error{errors.New("not a JSON object")}
	}
	if fields, ok := object["fields"]; ok {
		object = nil
		if err := json.Unmarshal(fields, &object); err != nil || object == nil {
			return County{}, []error{errors.New(`"fields" is not a JSON object`)}
		}
	}
	values := make(map[string]string, len(countyFieldNames))
	var errs []error
	for _, name := range countyFieldNames {
		v, ok := object[name]
		if !ok {
			continue
		}
		var s *string
		if err := json.Unmarshal(v, &s); err != nil {
			errs = append(errs, fmt.Errorf("%s is not a string", name))
			continue
		}
		if s != nil {
			values[name] = *s
		}
	}
	if len(errs) > 0 {
		return County{}, errs
	}
	return County{
		FIPS:       values["fips"],
		Name:       values["county_name"],
		Display:    values["county_display"],
		Domain:     values["domain"],
		Gaz:        values["gaz"],
		LocationID: values["location_id"],
		// Anything but exactly "no" participates, as in the original.
		Participating: values["participating"] != "no",
		Statewide:     values["is_state_domain"] == "yes",
	}, nil
}

// parseFIPS returns the number a fips spells, or why it spells none. Leading zeros are allowed ("007" is 7) because
// the list may carry them, but such an entry never matches an ECLRS code: codes are compared as decimal strings.
func parseFIPS(fips string) (int64, string) {
	if fips == "" {
		return 0, "fips is missing"
	}
	for i := 0; i < len(fips); i++ {
		if fips[i] < '0' || fips[i] > '9' {
			return 0, "fips is not a decimal integer"
		}
	}
	code, err := strconv.ParseInt(fips, 10, 64)
	if err != nil {
		return 0, "fips is out of range"
	}
	if code == 0 {
		return 0, "fips is not positive"
	}
	return code, ""
}

func addFirst(index map[string]int, key string, i int) {
	if key == "" {
		return
	}
	if _, ok := index[key]; !ok {
		index[key] = i
	}
}
