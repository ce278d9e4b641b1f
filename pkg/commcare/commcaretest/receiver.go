package commcaretest

import (
	"bytes"
	"cmp"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/viaduct-nys/viaduct/pkg/commcare"
)

const (
	// CaseNamespace is the namespace of case blocks (CaseXML 2.0); case elements in any other are not case blocks.
	CaseNamespace = "http://commcarehq.org/case/transaction/v2"
	// MetaNamespace is the namespace of a form's meta block (OpenRosa's jr:xforms).
	MetaNamespace = "http://openrosa.org/jr/xforms"
	// responseNamespace is the namespace of the receiver's OpenRosaResponse.
	responseNamespace = "http://openrosa.org/http/response"

	// maxCaseNameLength is CommCare's limit; a longer case_name fails the form (CaseValueError).
	maxCaseNameLength = 255
)

// Form is an XForm submission as the receiver read it, kept so a test can check what Viaduct posted without
// re-parsing XML.
type Form struct {
	// Domain is the project space the form was posted to; ReceivedOn the server's time of applying it, the
	// server_date_modified of every case it touched.
	Domain     string
	ReceivedOn time.Time
	// XMLNS is the root element's namespace and Name its name attribute ("Register a New Case").
	XMLNS string
	Name  string
	// InstanceID, UserID, Username, DeviceID, TimeStart and TimeEnd come from the meta block.
	InstanceID string
	UserID     string
	Username   string
	DeviceID   string
	TimeStart  string
	TimeEnd    string
	// Cases are the form's case blocks, in document order.
	Cases []CaseBlock
	// Body is the XML as posted.
	Body []byte
}

// CaseBlock is one case element of a form: what it asks CommCare to do to one case.
type CaseBlock struct {
	// CaseID, DateModified and UserID are the case element's attributes, as written.
	CaseID       string
	DateModified string
	UserID       string
	// Create is the create block, nil when there is none.
	Create *CaseCreate
	// Update maps each element of the update block to its text.
	Update map[string]string
	// Index maps each element of the index block (its name is the index's, e.g. "parent") to the index it sets;
	// an empty CaseID removes the index. Relationship defaults to "child", as in CommCare.
	Index map[string]commcare.CaseIndex
	// Close is true when the block has a close element.
	Close bool
}

// CaseCreate is a create block. An empty field is left as the case has it (for a new case: empty, except OwnerID,
// which CommCare then takes from the submitting user).
type CaseCreate struct {
	CaseType string
	CaseName string
	OwnerID  string
}

// node is one element of a parsed document.
type node struct {
	name     xml.Name
	attrs    []xml.Attr
	text     strings.Builder
	children []*node
}

func (n *node) attr(local string) string {
	for _, a := range n.attrs {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// ParseForm reads an XForm the way CommCare's receiver does: case blocks are case elements in CaseNamespace
// anywhere below the root (not nested in another case block), found with their children by local name whatever
// their prefix; the meta block is the first meta element in MetaNamespace. It fails only on XML that does not parse
// or has no single root; a form CommCare would reject while processing it (a case block without case_id, say)
// parses, and the receiver rejects it.
func ParseForm(data []byte) (Form, error) {
	root, err := parseXML(data)
	if err != nil {
		return Form{}, err
	}
	form := Form{XMLNS: root.name.Space, Name: root.attr("name"), Body: slices.Clone(data)}
	// Walked with an explicit stack, so a deeply nested document cannot exhaust the goroutine's stack.
	haveMeta := false
	stack := []*node{root}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		switch {
		case n.name.Space == CaseNamespace && n.name.Local == "case":
			form.Cases = append(form.Cases, parseCaseBlock(n))
			continue
		case n.name.Space == MetaNamespace && n.name.Local == "meta" && !haveMeta:
			haveMeta = true
			for _, c := range n.children {
				value := strings.TrimSpace(c.text.String())
				switch c.name.Local {
				case "instanceID":
					form.InstanceID = value
				case "userID":
					form.UserID = value
				case "username":
					form.Username = value
				case "deviceID":
					form.DeviceID = value
				case "timeStart":
					form.TimeStart = value
				case "timeEnd":
					form.TimeEnd = value
				}
			}
			continue
		}
		for i := len(n.children) - 1; i >= 0; i-- {
			stack = append(stack, n.children[i])
		}
	}
	return form, nil
}

// parseXML parses data into a tree of elements, strictly: one root, well-formed, UTF-8.
func parseXML(data []byte) (*node, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	var root *node
	var open []*node
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("parsing the form: %w", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			n := &node{name: tok.Name, attrs: slices.Clone(tok.Attr)}
			switch {
			case len(open) > 0:
				parent := open[len(open)-1]
				parent.children = append(parent.children, n)
			case root != nil:
				return nil, errors.New("parsing the form: more than one root element")
			default:
				root = n
			}
			open = append(open, n)
		case xml.EndElement:
			open = open[:len(open)-1]
		case xml.CharData:
			if len(open) > 0 {
				open[len(open)-1].text.Write(tok)
			} else if len(bytes.TrimSpace(tok)) > 0 {
				return nil, errors.New("parsing the form: text outside the root element")
			}
		}
	}
	if root == nil {
		return nil, errors.New("parsing the form: no root element")
	}
	return root, nil
}

func parseCaseBlock(n *node) CaseBlock {
	b := CaseBlock{CaseID: n.attr("case_id"), DateModified: n.attr("date_modified"), UserID: n.attr("user_id")}
	for _, c := range n.children {
		switch c.name.Local {
		case "create":
			if b.Create == nil {
				b.Create = &CaseCreate{}
			}
			for _, f := range c.children {
				switch f.name.Local {
				case "case_type":
					b.Create.CaseType = f.text.String()
				case "case_name":
					b.Create.CaseName = f.text.String()
				case "owner_id":
					b.Create.OwnerID = f.text.String()
				}
			}
		case "update":
			if b.Update == nil {
				b.Update = make(map[string]string)
			}
			for _, f := range c.children {
				b.Update[f.name.Local] = f.text.String()
			}
		case "index":
			if b.Index == nil {
				b.Index = make(map[string]commcare.CaseIndex)
			}
			for _, f := range c.children {
				b.Index[f.name.Local] = commcare.CaseIndex{
					CaseID:       strings.TrimSpace(f.text.String()),
					CaseType:     f.attr("case_type"),
					Relationship: cmp.Or(f.attr("relationship"), "child"),
				}
			}
		case "close":
			b.Close = true
		}
	}
	return b
}

// Forms returns the forms domain applied, oldest first; duplicates and rejected forms are not among them.
func (s *Server) Forms(domain string) []Form {
	s.mu.Lock()
	defer s.mu.Unlock()
	forms := make([]Form, 0, len(s.forms[domain]))
	for _, f := range s.forms[domain] {
		forms = append(forms, copyForm(f))
	}
	return forms
}

// copyForm returns a copy of f that shares nothing changeable with it.
func copyForm(f Form) Form {
	out := f
	out.Body = slices.Clone(f.Body)
	out.Cases = make([]CaseBlock, len(f.Cases))
	for i, b := range f.Cases {
		if b.Create != nil {
			create := *b.Create
			b.Create = &create
		}
		b.Update = maps.Clone(b.Update)
		b.Index = maps.Clone(b.Index)
		out.Cases[i] = b
	}
	return out
}

// Submissions returns how many forms domain applied: a retried post that CommCare recognised as a duplicate does
// not count.
func (s *Server) Submissions(domain string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.forms[domain])
}

// DuplicateSubmissions returns how many posts, in every domain, repeated the instanceID of a form already applied
// and were acknowledged without being applied again: a sender retrying after a lost response.
func (s *Server) DuplicateSubmissions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.duplicates
}

func (s *Server) serveReceiver(w http.ResponseWriter, domain string, body []byte) {
	// The body is the form whatever the Content-Type says: CommCare reads a non-multipart post's body as the form.
	form, err := ParseForm(body)
	if err != nil {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, "Invalid XML: "+err.Error())
		return
	}
	if err := s.applyForm(domain, form); err != nil {
		s.mu.Lock()
		status := s.submitErrorStatus
		s.mu.Unlock()
		writeOpenRosa(w, status, "submit_error", err.Error())
		return
	}
	writeOpenRosa(w, http.StatusCreated, "submit_success", "   √   ")
}

func writeOpenRosa(w http.ResponseWriter, status int, nature, message string) {
	var escaped strings.Builder
	_ = xml.EscapeText(&escaped, []byte(message))
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `<OpenRosaResponse xmlns=%q><message nature=%q>%s</message></OpenRosaResponse>`,
		responseNamespace, nature, escaped.String())
}

// applyForm applies form's case blocks to domain all or nothing, as CommCare processes a form in one transaction:
// the first block it cannot apply rejects the whole form. A form whose instanceID domain already applied is
// acknowledged and counted, not applied again.
func (s *Server) applyForm(domain string, form Form) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if form.InstanceID == "" {
		// CommCare gives a form without one an id of its own.
		form.InstanceID = newUUID()
	}
	if s.instances[domain][form.InstanceID] {
		s.duplicates++
		return nil
	}
	stamp := s.stamp()
	received := stamp.Format(serverTimeLayout)

	// Changed cases are copies until the whole form has been applied.
	work := make(map[string]*commcare.Case)
	lookup := func(id string) (*commcare.Case, error) {
		if c, ok := work[id]; ok {
			return c, nil
		}
		if other, ok := s.caseDomain[id]; ok && other != domain {
			return nil, fmt.Errorf("IllegalCaseId: case %s belongs to another project space", id)
		}
		if stored, ok := s.cases[domain][id]; ok {
			c := copyCase(*stored)
			work[id] = &c
			return &c, nil
		}
		return nil, nil
	}
	type setIndex struct{ from, name, to string }
	var indices []setIndex

	for i, b := range form.Cases {
		if b.CaseID == "" {
			return fmt.Errorf("IllegalCaseId: case block %d has no case_id", i+1)
		}
		modified, err := blockModified(b, form, stamp)
		if err != nil {
			return err
		}
		userID := cmp.Or(b.UserID, form.UserID)
		c, err := lookup(b.CaseID)
		if err != nil {
			return err
		}
		if c == nil {
			if b.Create == nil {
				return fmt.Errorf("CaseNotFound: case %s does not exist and the block does not create it", b.CaseID)
			}
			c = &commcare.Case{
				CaseID:           b.CaseID,
				ID:               b.CaseID,
				Domain:           domain,
				ServerDateOpened: received,
				OpenedBy:         userID,
				XFormIDs:         []string{},
				Indices:          make(map[string]commcare.CaseIndex),
				Properties: map[string]any{
					"case_type":   b.Create.CaseType,
					"case_name":   b.Create.CaseName,
					"owner_id":    cmp.Or(b.Create.OwnerID, userID),
					"date_opened": modified,
				},
			}
			work[b.CaseID] = c
		} else if b.Create != nil {
			for key, value := range map[string]string{
				"case_type": b.Create.CaseType, "case_name": b.Create.CaseName, "owner_id": b.Create.OwnerID,
			} {
				if value != "" {
					c.Properties[key] = value
				}
			}
		}
		for key, value := range b.Update {
			c.Properties[key] = value
		}
		if name := commcare.PropertyText(c.Properties["case_name"]); len(name) > maxCaseNameLength {
			return fmt.Errorf("CaseValueError: case %s: case_name is longer than %d characters", b.CaseID, maxCaseNameLength)
		}
		for name, ix := range b.Index {
			if ix.CaseID == "" {
				delete(c.Indices, name)
				continue
			}
			c.Indices[name] = ix
			indices = append(indices, setIndex{from: b.CaseID, name: name, to: ix.CaseID})
		}
		if b.Close {
			c.Closed = true
			closed := modified
			c.DateClosed = &closed
		}
		c.DateModified = modified
		c.UserID = userID
		c.ServerDateModified = received
		c.IndexedOn = stamp.Format(indexedOnLayout)
		if !slices.Contains(c.XFormIDs, form.InstanceID) {
			c.XFormIDs = append(c.XFormIDs, form.InstanceID)
		}
	}
	// Checked once every block is in, so a form may index a case it creates further down.
	for _, ix := range indices {
		if target, err := lookup(ix.to); err != nil || target == nil {
			return fmt.Errorf("InvalidCaseIndex: case %s: index %s references case %s, which does not exist in %s",
				ix.from, ix.name, ix.to, domain)
		}
	}

	for _, c := range work {
		s.storeCase(domain, c)
	}
	s.forwardLocked(domain, slices.Sorted(maps.Keys(work))...)
	if s.instances[domain] == nil {
		s.instances[domain] = make(map[string]bool)
	}
	s.instances[domain][form.InstanceID] = true
	form.Domain = domain
	form.ReceivedOn = stamp
	s.forms[domain] = append(s.forms[domain], form)
	return nil
}

// blockModified returns the case block's date_modified in CommCare's format: its attribute, or else the form's
// timeEnd, or else the time the form was received.
func blockModified(b CaseBlock, form Form, received time.Time) (string, error) {
	if b.DateModified != "" {
		t, err := commcare.ParseTime(b.DateModified)
		if err != nil {
			return "", fmt.Errorf("PhoneDateValueError: case %s: date_modified %q is not a date", b.CaseID, b.DateModified)
		}
		return t.Format(serverTimeLayout), nil
	}
	if t, err := commcare.ParseTime(form.TimeEnd); err == nil {
		return t.Format(serverTimeLayout), nil
	}
	return received.Format(serverTimeLayout), nil
}
