package e4

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/countylist"
)

// errNoCaseMatches and errMoreThanOne end a transfer chain whose destination case cannot be told (§5.5). They are
// retried: CommCare may not have finished the transfer yet.
var (
	errNoCaseMatches = errors.New("no destination case matches source case id")
	errMoreThanOne   = errors.New("more than one case matches source case id")
)

// identifier names the case to fetch next (§5.3): by id in a domain, or, after a transfer, by the external id and
// source case id it carries in the destination domain.
type identifier struct {
	caseID               string
	domain               string
	externalID           string
	transferSourceCaseID string
}

// String renders the non-empty fields like <case_id:… county_domain:…>, as the original's logs did. It carries
// ids only, never patient data.
func (id identifier) String() string {
	var parts []string
	for _, f := range [][2]string{{"case_id", id.caseID}, {"county_domain", id.domain},
		{"external_id", id.externalID}, {"transfer_source_case_id", id.transferSourceCaseID}} {
		if f[1] != "" {
			parts = append(parts, f[0]+":"+f[1])
		}
	}
	return "<" + strings.Join(parts, " ") + ">"
}

// linkKind is what one step of a transfer chain found.
type linkKind int

const (
	linkFound    linkKind = iota // a case
	linkNotFound                 // CommCare has no such case
	linkCycle                    // the chain came back to a domain it had visited
	linkError                    // anything else; err says what
)

// link is one step of a transfer chain: a case found in a domain, or why the chain ended there.
type link struct {
	kind   linkKind
	c      *commcare.Case // when found
	domain string         // where it was looked for
	err    error          // when not found
}

// chain is a transfer chain, oldest first: the job's case, then each transfer destination in turn.
type chain []link

// end returns the link the chain resolves to (§5.6): its final case when every step found one, else the oldest
// step that did not, which is where following it went wrong.
func (ch chain) end() link {
	for _, l := range ch {
		if l.kind != linkFound {
			return l
		}
	}
	return ch[len(ch)-1]
}

// transferred reports whether the chain left the job's case, i.e. CommCare transferred it at least once.
func (ch chain) transferred() bool {
	return len(ch) > 1
}

// String renders the found cases as case@domain -> case@domain for logs and events.
func (ch chain) String() string {
	var parts []string
	for _, l := range ch {
		if l.kind == linkFound {
			parts = append(parts, l.c.CaseID+"@"+l.domain)
		}
	}
	return strings.Join(parts, " -> ")
}

// followTransfers fetches the case start names and, while it says it was transferred to a county with another
// domain, the case it was transferred to (§5.4). A transfer to a non-participating county leads to the statewide
// domain. A chain that comes back to a domain it visited ends in a cycle, so a chain is never longer than the
// number of domains.
func (w *Worker) followTransfers(ctx context.Context, counties *countylist.List, start identifier) chain {
	var ch chain
	id := start
	for {
		c, err := w.fetchCase(ctx, id)
		switch {
		case errors.Is(err, commcare.ErrNotFound):
			return append(ch, link{kind: linkNotFound, domain: id.domain})
		case err != nil:
			return append(ch, link{kind: linkError, domain: id.domain, err: fmt.Errorf("getting %s: %w", id, err)})
		}
		this := link{kind: linkFound, c: c, domain: id.domain}
		fips := c.Property("transfer_destination_county_id")
		if fips == "" {
			return append(ch, this)
		}
		dest, err := destination(counties, fips)
		if err != nil {
			return append(ch, link{kind: linkError, domain: id.domain, err: err})
		}
		if dest.Domain == id.domain {
			return append(ch, this)
		}
		for _, l := range ch {
			if l.domain == dest.Domain {
				visited := append(slices.Clone(ch), this)
				return append(ch, link{kind: linkCycle, domain: dest.Domain,
					err: fmt.Errorf("case transfer cycle detected: %s -> %s", visited, dest.Domain)})
			}
		}
		ch = append(ch, this)
		id = identifier{domain: dest.Domain, externalID: c.Property("external_id"), transferSourceCaseID: c.CaseID}
	}
}

// destination is the county a case was transferred to: the county with that FIPS code, or the statewide county
// when it does not participate.
func destination(counties *countylist.List, fips string) (countylist.County, error) {
	c, ok := counties.ByFIPS(fips)
	if !ok {
		return countylist.County{}, fmt.Errorf("no county found with FIPS code %q", fips)
	}
	if c.Participating {
		return c, nil
	}
	statewide, ok := counties.Statewide()
	if !ok {
		return countylist.County{}, fmt.Errorf("the case was transferred to non-participating county %s and %w",
			fips, countylist.ErrNoStatewide)
	}
	return statewide, nil
}

// fetchCase finds the case id names (§5.5): by its case id; or, after a transfer, by the external id in the
// destination domain, telling several apart by their transfer_source_case_id; or, when CommCare's search finds
// none, by a local index case that records the source case id.
func (w *Worker) fetchCase(ctx context.Context, id identifier) (*commcare.Case, error) {
	switch {
	case id.caseID != "":
		return w.commcare.GetCase(ctx, id.domain, id.caseID)
	case id.externalID != "" && id.transferSourceCaseID != "":
		found, err := w.commcare.FindCasesByExternalID(ctx, id.domain, id.externalID)
		if err != nil {
			return nil, err
		}
		if len(found) == 1 {
			return &found[0], nil
		}
		var matches []*commcare.Case
		for i := range found {
			if found[i].Property("transfer_source_case_id") == id.transferSourceCaseID {
				matches = append(matches, &found[i])
			}
		}
		switch len(matches) {
		case 0:
			// The real destination may lack the external id.
			return w.fetchByLocalSource(ctx, id, true)
		case 1:
			return matches[0], nil
		default:
			return nil, errMoreThanOne
		}
	case id.transferSourceCaseID != "":
		return w.fetchByLocalSource(ctx, id, false)
	default:
		return nil, fmt.Errorf("%s names no case", id)
	}
}

// fetchByLocalSource finds the destination through the one local index case whose data records the source case
// id, in any county, and fetches it from the destination domain; with duplicates, it then follows the
// destination's duplicate_of_case_id links.
func (w *Worker) fetchByLocalSource(ctx context.Context, id identifier, duplicates bool) (*commcare.Case, error) {
	caseIDs, err := casesTransferredFrom(ctx, w.db, id.transferSourceCaseID)
	if err != nil {
		return nil, err
	}
	switch len(caseIDs) {
	case 0:
		return nil, errNoCaseMatches
	case 1:
	default:
		return nil, errMoreThanOne
	}
	c, err := w.commcare.GetCase(ctx, id.domain, caseIDs[0])
	if errors.Is(err, commcare.ErrNotFound) {
		return nil, errNoCaseMatches
	}
	if err != nil || !duplicates {
		return c, err
	}
	return w.followDuplicates(ctx, id.domain, c)
}

// followDuplicates follows duplicate_of_case_id from c to the case that survived the de-duplication. A link to a
// case CommCare does not have, or back to one already visited, ends the walk at the case that holds it.
func (w *Worker) followDuplicates(ctx context.Context, domain string, c *commcare.Case) (*commcare.Case, error) {
	visited := map[string]bool{}
	for {
		next := c.Property("duplicate_of_case_id")
		if next == "" || visited[next] || next == c.CaseID {
			return c, nil
		}
		d, err := w.commcare.GetCase(ctx, domain, next)
		if errors.Is(err, commcare.ErrNotFound) {
			return c, nil
		}
		if err != nil {
			return nil, err
		}
		visited[c.CaseID] = true
		c = d
	}
}
