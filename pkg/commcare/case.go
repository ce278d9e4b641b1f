package commcare

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Case is a CommCare case as the case API v0.5 returns it: the patient cases Engine 4 reads before it posts and
// Engine 5 pulls back, and their lab_result children. Field names follow the API's JSON.
type Case struct {
	// CaseID is the case's id, unique across CommCare. ID repeats it.
	CaseID string `json:"case_id"`
	ID     string `json:"id,omitempty"`
	// Domain is the project space the case lives in.
	Domain string `json:"domain,omitempty"`
	// Closed and DateClosed say whether and when the case was closed.
	Closed     bool    `json:"closed"`
	DateClosed *string `json:"date_closed"`
	// DateModified is when the last form touching the case was filled in; ServerDateModified when CommCare
	// received it. Both are timestamps in CommCare's formats (see ParseTime).
	DateModified       string `json:"date_modified,omitempty"`
	ServerDateModified string `json:"server_date_modified,omitempty"`
	ServerDateOpened   string `json:"server_date_opened,omitempty"`
	IndexedOn          string `json:"indexed_on,omitempty"`
	// OpenedBy is the user who created the case; UserID the user who last changed it. Engine 5 compares UserID with
	// Viaduct's own user to recognise its own posts.
	OpenedBy    string `json:"opened_by,omitempty"`
	UserID      string `json:"user_id,omitempty"`
	ResourceURI string `json:"resource_uri"`
	// XFormIDs are the forms that touched the case, oldest first.
	XFormIDs []string `json:"xform_ids"`
	// Indices are the case's links to other cases by name; "parent" links a lab result to its patient.
	Indices map[string]CaseIndex `json:"indices"`
	// Properties are the case's properties: case_type, case_name, owner_id, external_id and everything forms set.
	Properties map[string]any `json:"properties"`
	// ChildCases are the cases indexed to this one, by case id, when the request asked for them.
	ChildCases map[string]Case `json:"child_cases,omitempty"`
	// CaseType is set on some child case objects instead of properties.case_type; Type reads either.
	CaseType string `json:"case_type,omitempty"`
}

// CaseIndex links a case to another: a lab result's "parent" index names its patient case.
type CaseIndex struct {
	CaseID       string `json:"case_id"`
	CaseType     string `json:"case_type"`
	Relationship string `json:"relationship,omitempty"`
}

// Property returns the property's value as text, trimmed; "" when it is absent, null or blank.
func (c *Case) Property(name string) string {
	return strings.TrimSpace(PropertyText(c.Properties[name]))
}

// Type returns the case's type from properties.case_type, or from a top-level case_type where CommCare puts it
// there on child cases.
func (c *Case) Type() string {
	if t := c.Property("case_type"); t != "" {
		return t
	}
	return c.CaseType
}

// PropertyText renders a property or data value as CommCare stores it: strings as they are, numbers in their
// shortest form, booleans as true/false, null as "". Values are expected to be scalars; anything else is rendered
// with fmt.
func PropertyText(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case bool:
		return strconv.FormatBool(v)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case int:
		return strconv.Itoa(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case fmt.Stringer:
		return v.String()
	default:
		return fmt.Sprint(v)
	}
}

// Blank reports whether v counts as no value, as the original's "present" test did: nil, a string that is empty
// after trimming, false, an empty list or map. Blank values are never posted and never overwrite a present one.
func Blank(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return strings.TrimSpace(v) == ""
	case bool:
		return !v
	case []any:
		return len(v) == 0
	case map[string]any:
		return len(v) == 0
	default:
		return false
	}
}

// CasePage is one page of a case list.
type CasePage struct {
	Meta    CasePageMeta `json:"meta"`
	Objects []Case       `json:"objects"`
}

// CasePageMeta describes a case list page. Next is null on the last page; it is all a client needs to read.
type CasePageMeta struct {
	Limit      int     `json:"limit"`
	Offset     int     `json:"offset"`
	TotalCount int     `json:"total_count"`
	Next       *string `json:"next"`
	Previous   *string `json:"previous"`
}

// CaseQuery filters a case list (GET /a/<domain>/api/v0.5/case/). Zero fields are left out of the query.
type CaseQuery struct {
	// ExternalID matches properties.external_id exactly.
	ExternalID string
	// Type matches the case type, e.g. "patient".
	Type string
	// OwnerID matches properties.owner_id.
	OwnerID string
	// ServerModifiedSince keeps cases whose server_date_modified is at or after it.
	ServerModifiedSince time.Time
	// IndexedOnSince keeps cases whose indexed_on is at or after it.
	IndexedOnSince time.Time
	// ChildCases asks for each case's child cases in full.
	ChildCases bool
	// Limit is the page size (CommCare's default is 20, its maximum 5000); Offset the first case's position.
	Limit  int
	Offset int
}

// Values renders the query as CommCare reads it; timestamps in UTC with microseconds.
func (q CaseQuery) Values() url.Values {
	v := url.Values{}
	set := func(key, value string) {
		if value != "" {
			v.Set(key, value)
		}
	}
	set("external_id", q.ExternalID)
	set("type", q.Type)
	set("owner_id", q.OwnerID)
	if !q.ServerModifiedSince.IsZero() {
		v.Set("server_date_modified_start", q.ServerModifiedSince.UTC().Format(queryTimeLayout))
	}
	if !q.IndexedOnSince.IsZero() {
		v.Set("indexed_on_start", q.IndexedOnSince.UTC().Format(queryTimeLayout))
	}
	if q.ChildCases {
		v.Set("child_cases__full", "true")
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Offset > 0 {
		v.Set("offset", strconv.Itoa(q.Offset))
	}
	return v
}

const queryTimeLayout = "2006-01-02T15:04:05.000000"

// timeLayouts are the forms CommCare writes timestamps and dates in: with or without a zone, with or without
// fractional seconds. A time without a zone is UTC.
var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02"}

// ParseTime reads a CommCare timestamp such as 2020-06-05T00:56:45.753000Z, 2020-06-03T18:54:40.800511 (UTC) or a
// date.
func ParseTime(s string) (time.Time, error) {
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("commcare: %q is not a CommCare timestamp", s)
}

// managedProperties are the properties CommCare keeps itself: the case's type, name and owner, which forms set in
// their create block, and when it was opened. They are not case data.
var managedProperties = []string{"case_type", "case_name", "owner_id", "date_opened"}

// Data returns the case's properties without those CommCare manages itself (type, name, owner, opening date):
// what Viaduct merges into its own copy of the case. Merging those too would only echo CommCare's bookkeeping
// back to it and make every case look changed after its first post.
func (c *Case) Data() map[string]any {
	data := make(map[string]any, len(c.Properties))
	for k, v := range c.Properties {
		if !slices.Contains(managedProperties, k) {
			data[k] = v
		}
	}
	return data
}

// MergeEmptyFields merges CommCare's properties into local data the way the original did (merge_empty_fields):
// CommCare's value wins wherever it is not Blank, local data fills CommCare's blanks, and keys only one side has
// are kept, even blank ones from CommCare. So a contact tracer's edit is never overwritten by Viaduct, and a value
// Viaduct holds is never erased by a blank in CommCare. Neither map is modified.
func MergeEmptyFields(commcare, local map[string]any) map[string]any {
	out := make(map[string]any, len(commcare)+len(local))
	for k, v := range local {
		out[k] = v
	}
	for k, v := range commcare {
		if _, ok := local[k]; ok && Blank(v) {
			continue
		}
		out[k] = v
	}
	return out
}
