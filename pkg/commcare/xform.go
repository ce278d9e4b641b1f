package commcare

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// The form's fixed parts, as the original's XmlBuilder wrote them. CommCare files submissions by the root's xmlns,
// so it stays the original's, and the device id makes them look like Formplayer's (web app) submissions.
const (
	xmlDeclaration = `<?xml version="1.0" encoding="UTF-8"?>`
	formOpenTag    = `<data name="Register a New Case" uiVersion="1" version="3" ` +
		`xmlns="http://geometer.io/viaduct-nys" xmlns:jrm="http://dev.commcarehq.org/jr/xforms">`
	caseXMLNS      = "http://commcarehq.org/case/transaction/v2"
	metaXMLNS      = "http://openrosa.org/jr/xforms"
	deviceID       = "Formplayer"
	formTimeLayout = "2006-01-02T15:04:05Z"
)

// CaseBlock is one <n0:case> of a form: it creates the case, or updates it when CommCare already has it (CommCare
// treats create as an upsert of type, name and owner, which is why the original always sent it).
type CaseBlock struct {
	// CaseID is the case_id attribute. Required.
	CaseID string
	// DateModified is the date_modified attribute (UTC, whole seconds) when not zero. The patient block has it;
	// lab results, as in the original, do not.
	DateModified time.Time
	// UserID is the user_id attribute when not "". The patient block has it, so CommCare shows Viaduct's user as
	// the one who changed the case.
	UserID string
	// CaseType is create/case_type, e.g. patient or lab_result. Required: CommCare cannot create a case without it.
	CaseType string
	// CaseName is create/case_name. Nil leaves the element out, as the original did for lab results; "" renders
	// an empty <n0:case_name/>, as the original did for a patient without a full name.
	CaseName *string
	// OwnerID is create/owner_id: the county's location for a patient, "-" for a lab result (an extension case
	// belongs to its host's owner).
	OwnerID string
	// Update becomes update/<key> for every value that is not Blank, in key order, rendered with PropertyText.
	// Blank values are left out, so Viaduct never clears a property in CommCare (as in the original). The update
	// element is always there, empty (<n0:update/>) when nothing is left.
	Update map[string]any
	// Parent, when not nil, becomes index/parent: the lab result's link to its patient case.
	Parent *CaseIndex
}

// Form is an XForm that creates or updates cases, the only way Viaduct writes to CommCare.
type Form struct {
	// Cases are the form's case blocks in order: the patient, then its lab results.
	Cases []CaseBlock
	// Now is when the form was filled in: meta/timeStart and meta/timeEnd (UTC, whole seconds). Required.
	Now time.Time
	// Username and UserID are meta/username and meta/userID: Viaduct's CommCare user, who then shows as the
	// form's submitter and the cases' last submitter.
	Username, UserID string
	// InstanceID is meta/instanceID, which CommCare uses to recognise a form it already has: Engine 4 derives it
	// from what it posts (InstanceIDFor), a person's form gets a fresh one (NewInstanceID). Required.
	InstanceID string
}

// NewInstanceID returns a random (version 4) UUID for Form.InstanceID, for a form filled in once (a tracer's).
func NewInstanceID() string {
	return uuid.NewString()
}

// instanceSpace is the namespace of the name-based UUIDs InstanceIDFor makes.
var instanceSpace = uuid.MustParse("3f1d3a52-8f0e-4c55-9b3e-6c1a0f7e2d41")

// InstanceIDFor derives Form.InstanceID from what a post sends: the domain, the form's Fingerprint (its content
// without the times) and the id of the newest change of the case it hands off. A post whose answer was lost (a
// timeout, a dropped connection, a crash before the outcome was recorded) is retried with the same id, and CommCare
// takes the retry for the form it already has instead of applying it again; newer data, or the same data after a
// newer change, gets a new id. CommCare keeps no id of a form it rejected, so a rejected post can be retried.
func InstanceIDFor(domain string, fingerprint [32]byte, change int64) string {
	name := make([]byte, 0, len(domain)+2*len(fingerprint)+22)
	name = append(append(name, domain...), 0)
	name = append(hex.AppendEncode(name, fingerprint[:]), 0)
	return uuid.NewSHA1(instanceSpace, strconv.AppendInt(name, change, 10)).String()
}

// XML renders the form as CommCare's receiver takes it: indented with two spaces, attributes in the original's order,
// text and attributes XML-escaped (characters XML cannot carry become U+FFFD). It fails when a case has no id or
// type, an index names no case, an update key is not a valid element name, or Now or InstanceID is missing.
func (f Form) XML() ([]byte, error) {
	var errs []error
	if f.Now.IsZero() {
		errs = append(errs, errNoTime)
	}
	if f.InstanceID == "" {
		errs = append(errs, errors.New("commcare: the form has no instance id"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	data, _, err := f.render(nil)
	return data, err
}

var errNoTime = errors.New("commcare: the form has no time")

// Fingerprint is a SHA-256 of what the form would change in CommCare: its XML with the times and the instance id,
// which differ on every post, blanked (no date_modified attributes, the zero time, an empty instanceID). Engine 4
// compares it with the last successful post's to skip one that changes nothing, so it must stay the same for the
// same content from one version to the next: commcare_posts keeps it.
func (f Form) Fingerprint() ([32]byte, error) {
	_, fp, err := f.render(nil)
	return fp, err
}

// XMLFor renders the form Engine 4 posts to domain for a case whose newest change is change: its InstanceID is
// InstanceIDFor(domain, its Fingerprint, change), whatever f.InstanceID holds. It returns the XML and the
// fingerprint from one rendering, and fails as XML does.
func (f Form) XMLFor(domain string, change int64) (data []byte, fingerprint [32]byte, err error) {
	if f.Now.IsZero() {
		return nil, [32]byte{}, errNoTime
	}
	return f.render(func(fp [32]byte) string { return InstanceIDFor(domain, fp, change) })
}

// render writes the form by hand rather than with encoding/xml's marshalling, which cannot put the namespace
// declarations and attributes in the order the original used (and the tests compare), and hashes its Fingerprint
// as it goes. The instance id is instanceID(fingerprint), or f.InstanceID when instanceID is nil.
func (f Form) render(instanceID func(fingerprint [32]byte) string) ([]byte, [32]byte, error) {
	w := formWriter{hash: sha256.New()}
	w.buf.Grow(f.sizeHint())
	w.buf.WriteString(xmlDeclaration + "\n" + formOpenTag + "\n")
	for i, c := range f.Cases {
		if err := w.caseBlock(i, c); err != nil {
			return nil, [32]byte{}, err
		}
	}
	w.buf.WriteString("  <n1:meta xmlns:n1=\"" + metaXMLNS + "\">\n")
	w.element(2, "n1:deviceID", deviceID)
	timeElement := func(name string) func(string) { return func(t string) { w.element(2, name, t) } }
	w.varying(timeElement("n1:timeStart"), formTime(f.Now), blankTime)
	w.varying(timeElement("n1:timeEnd"), formTime(f.Now), blankTime)
	w.element(2, "n1:username", f.Username)
	w.element(2, "n1:userID", f.UserID)
	end := func(id string) {
		w.element(2, "n1:instanceID", id)
		w.buf.WriteString("  </n1:meta>\n</data>\n")
	}
	// The fingerprint ends with an empty instance id; the form's may be derived from it.
	start := w.buf.Len()
	end("")
	w.hashRest()
	var fp [32]byte
	w.hash.Sum(fp[:0])
	w.buf.Truncate(start)
	id := f.InstanceID
	if instanceID != nil {
		id = instanceID(fp)
	}
	end(id)
	return w.buf.Bytes(), fp, nil
}

// sizeHint is about the length of the form's XML, so that it is written without growing its buffer.
func (f Form) sizeHint() int {
	n := 1024
	for _, c := range f.Cases {
		n += 512 + 80*len(c.Update)
	}
	return n
}

func formTime(t time.Time) string {
	return t.UTC().Format(formTimeLayout)
}

// blankTime is how the fingerprint has every time: the zero time, as the form had before it was filled in.
var blankTime = formTime(time.Time{})

// formWriter builds the indented document and its fingerprint: hash has read buf up to hashed, and what varies
// between posts went into it blanked (varying).
type formWriter struct {
	buf    bytes.Buffer
	hash   hash.Hash
	hashed int
}

// varying writes what differs from one post of the same content to the next: write(text) into the form and, in
// its place, write(blank) into the fingerprint.
func (w *formWriter) varying(write func(string), text, blank string) {
	if text == blank {
		write(text)
		return
	}
	w.hashRest()
	start := w.buf.Len()
	write(blank)
	w.hash.Write(w.buf.Bytes()[start:])
	w.buf.Truncate(start)
	write(text)
	w.hashed = w.buf.Len()
}

// hashRest adds what was written since the last hashing to the fingerprint.
func (w *formWriter) hashRest() {
	w.hash.Write(w.buf.Bytes()[w.hashed:])
	w.hashed = w.buf.Len()
}

// spaces indents up to depth 4, the deepest the form goes.
const spaces = "        "

func (w *formWriter) indent(depth int) {
	w.buf.WriteString(spaces[:2*depth])
}

// line writes s, which is already markup, on a line of its own.
func (w *formWriter) line(depth int, s string) {
	w.indent(depth)
	w.buf.WriteString(s)
	w.buf.WriteByte('\n')
}

// element writes <name>text</name>, or <name/> when text is "".
func (w *formWriter) element(depth int, name, text string) {
	w.property(depth, name, "", text)
}

// property writes <prefix+name>text</prefix+name>, or <prefix+name/> when text is "".
func (w *formWriter) property(depth int, prefix, name, text string) {
	w.indent(depth)
	w.buf.WriteByte('<')
	w.buf.WriteString(prefix)
	w.buf.WriteString(name)
	if text == "" {
		w.buf.WriteString("/>\n")
		return
	}
	w.buf.WriteByte('>')
	w.text(text)
	w.buf.WriteString("</")
	w.buf.WriteString(prefix)
	w.buf.WriteString(name)
	w.buf.WriteString(">\n")
}

// attr writes ` name="value"`.
func (w *formWriter) attr(name, value string) {
	w.buf.WriteByte(' ')
	w.buf.WriteString(name)
	w.buf.WriteString(`="`)
	w.text(value)
	w.buf.WriteByte('"')
}

// text writes s escaped as xml.EscapeText escapes it (quotes and line ends too, so it serves attributes as well).
// Most values are printable ASCII with nothing to escape, and are copied as they are.
func (w *formWriter) text(s string) {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < ' ' || b >= utf8.RuneSelf || b == '"' || b == '\'' || b == '&' || b == '<' || b == '>' {
			_ = xml.EscapeText(&w.buf, []byte(s)) // a bytes.Buffer does not fail
			return
		}
	}
	w.buf.WriteString(s)
}

func (w *formWriter) caseBlock(i int, c CaseBlock) error {
	if c.CaseID == "" {
		return fmt.Errorf("commcare: case %d of the form has no case id", i)
	}
	if c.CaseType == "" {
		return fmt.Errorf("commcare: case %q of the form has no case type", c.CaseID)
	}
	if c.Parent != nil && c.Parent.CaseID == "" {
		return fmt.Errorf("commcare: the parent index of case %q names no case", c.CaseID)
	}
	keys := slices.AppendSeq(make([]string, 0, len(c.Update)), maps.Keys(c.Update))
	slices.Sort(keys) // first, so that of two bad names the same one is named every time
	keys = slices.DeleteFunc(keys, func(key string) bool { return Blank(c.Update[key]) })
	for _, key := range keys {
		if !validPropertyName(key) {
			return fmt.Errorf("commcare: case %q: the property name %q is not a valid XML element name", c.CaseID, key)
		}
	}

	w.indent(1)
	w.buf.WriteString("<n0:case")
	w.attr("case_id", c.CaseID)
	modified := ""
	if !c.DateModified.IsZero() {
		modified = formTime(c.DateModified)
	}
	w.varying(func(t string) {
		if t != "" {
			w.attr("date_modified", t)
		}
	}, modified, "")
	if c.UserID != "" {
		w.attr("user_id", c.UserID)
	}
	w.attr("xmlns:n0", caseXMLNS)
	w.buf.WriteString(">\n")

	w.line(2, "<n0:create>")
	if c.CaseName != nil {
		w.element(3, "n0:case_name", *c.CaseName)
	}
	w.element(3, "n0:case_type", c.CaseType)
	w.element(3, "n0:owner_id", c.OwnerID)
	w.line(2, "</n0:create>")

	if len(keys) == 0 {
		w.line(2, "<n0:update/>")
	} else {
		w.line(2, "<n0:update>")
		for _, key := range keys {
			w.property(3, "n0:", key, PropertyText(c.Update[key]))
		}
		w.line(2, "</n0:update>")
	}

	if p := c.Parent; p != nil {
		w.line(2, "<n0:index>")
		w.indent(3)
		w.buf.WriteString("<n0:parent")
		w.attr("case_type", p.CaseType)
		if p.Relationship != "" {
			w.attr("relationship", p.Relationship)
		}
		w.buf.WriteByte('>')
		w.text(p.CaseID)
		w.buf.WriteString("</n0:parent>\n")
		w.line(2, "</n0:index>")
	}
	w.line(1, "</n0:case>")
	return nil
}

// validPropertyName reports whether name can be a case property's element name. It is stricter than XML: ASCII
// letters, digits, '_', '-' and '.', starting with a letter or '_', no namespace prefix (':') and not starting with
// the reserved "xml". CommCare's own property names are ASCII identifiers, so nothing real is refused, and a name
// that would break the document or smuggle in markup is.
func validPropertyName(name string) bool {
	if name == "" || len(name) >= 3 && strings.EqualFold(name[:3], "xml") {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch b := name[i]; {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', b == '_':
		case '0' <= b && b <= '9', b == '-', b == '.':
			if i == 0 {
				return false
			}
		default:
			return false
		}
	}
	return true
}
