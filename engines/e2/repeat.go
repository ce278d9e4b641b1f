package e2

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/viaduct-nys/viaduct/pkg/eclrs"
)

// repeatKind says how a new positive result relates to a closed index case (§4.7).
type repeatKind int

const (
	// repeatNone: the case is updated with the result as usual.
	repeatNone repeatKind = iota
	// repeatReactivation: the result came after the case was closed but within 90 days of its opening, so the
	// same illness is back: the case is reopened (reactivated_case) and handed back to the county's owner.
	repeatReactivation
	// repeatReinfection: the result came 90 days or more after the case opened, so it is a new infection: the
	// case is only marked (reinfected_case_created) and a new case takes the result.
	repeatReinfection
)

// String names the kind for logs and test failures.
func (k repeatKind) String() string {
	switch k {
	case repeatNone:
		return "none"
	case repeatReactivation:
		return "reactivation"
	case repeatReinfection:
		return "reinfection"
	default:
		return "repeatKind(" + strconv.Itoa(int(k)) + ")"
	}
}

// reinfectionDays is the number of days after a case opened from which a new result is a reinfection (inclusive).
const reinfectionDays = 90

// earliestTestDate is the first instant a specimen collection date is believed: earlier ones are typing mistakes
// (COVID-19 testing began in 2020).
var earliestTestDate = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// repeatType classifies test result tr against the existing index case whose properties are data (§4.7). Only a
// case closed in CommCare (current_status "closed") with an opening date-time and an all-activity-complete date
// can repeat, and only once: a case already marked reinfected_case_created is updated normally. The result's date
// is the earlier of its collection and creation dates, ignoring dates before 2020 (the creation date is used as is
// when neither qualifies), taken as a UTC calendar date. A result after the completion date is a reinfection when
// it is 90 or more days after the opening date, else a reactivation.
//
// Dates that cannot be read give repeatNone. That includes impossible dates such as 2021-02-30, which made the
// original raise and retry forever (a conscious fix), and a test result without a creation date.
func repeatType(data map[string]any, tr *eclrs.TestResult) repeatKind {
	if data["reinfected_case_created"] == "yes" || data["current_status"] != "closed" {
		return repeatNone
	}
	openedText, ok1 := data["date_opened"].(string)
	completeText, ok2 := data["all_activity_complete_date"].(string)
	if !ok1 || !ok2 {
		return repeatNone
	}
	complete, ok := parseISODate(strings.TrimSpace(completeText))
	if !ok {
		return repeatNone
	}
	opened, ok := parseISODateTimeDate(strings.TrimSpace(openedText))
	if !ok {
		return repeatNone
	}
	resultDate, ok := repeatResultDate(tr)
	if !ok || !resultDate.After(complete) {
		return repeatNone
	}
	if resultDate.Sub(opened) >= reinfectionDays*24*time.Hour {
		return repeatReinfection
	}
	return repeatReactivation
}

// repeatResultDate is the UTC calendar date (as UTC midnight) repeatType compares: the earliest of tr's collection
// and creation instants from 2020 on, else the creation instant whatever its year. ok is false when tr has no
// creation date to fall back on.
func repeatResultDate(tr *eclrs.TestResult) (time.Time, bool) {
	var candidates []time.Time
	for _, t := range []time.Time{tr.RequestCollectionDate, tr.EclrsCreateDate} {
		if !t.IsZero() && !t.Before(earliestTestDate) {
			candidates = append(candidates, t)
		}
	}
	d := tr.EclrsCreateDate
	if len(candidates) > 0 {
		d = slices.MinFunc(candidates, func(a, b time.Time) int { return a.Compare(b) })
	}
	if d.IsZero() {
		return time.Time{}, false
	}
	return d.UTC().Truncate(24 * time.Hour), true
}

// isoDateText is an extended ISO 8601 calendar date; the original's parser accepted no other form for
// all_activity_complete_date.
var isoDateText = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

// parseISODate reads YYYY-MM-DD as UTC midnight; ok is false for any other form and for dates that do not exist.
func parseISODate(s string) (time.Time, bool) {
	if !isoDateText.MatchString(s) {
		return time.Time{}, false
	}
	d, err := time.Parse(isoDate, s)
	return d, err == nil
}

// isoDateTimeText is an extended ISO 8601 date-time as CommCare writes date_opened: "T" or a space between date
// and time, seconds required, an optional fraction, and an optional "Z" or offset. A date alone does not match.
var isoDateTimeText = regexp.MustCompile(
	`^(\d{4}-\d{2}-\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,]\d+)?(?:Z|[+-]\d{2}(?::?\d{2})?)?$`)

// parseISODateTimeDate returns the date part of an ISO date-time, as UTC midnight. The zone is ignored on
// purpose: CommCare sometimes appends Z and sometimes not, and the original read the value as a naive local
// date-time. ok is false when the text is not a date-time or names a date or time that does not exist.
func parseISODateTimeDate(s string) (time.Time, bool) {
	m := isoDateTimeText.FindStringSubmatch(s)
	if m == nil {
		return time.Time{}, false
	}
	hour, _ := strconv.Atoi(m[2])
	minute, _ := strconv.Atoi(m[3])
	second, _ := strconv.Atoi(m[4])
	if hour > 23 || minute > 59 || second > 59 {
		return time.Time{}, false
	}
	return parseISODate(m[1])
}

// closingDispositions are the final_disposition values that end a case for good: it was never a real case.
var closingDispositions = []string{"registered_in_error", "duplicate", "not_a_case"}

// isOpen reports whether an index case may still receive lab results (HEAD, §4.6). A case is not open when the
// closed column is set, when CommCare marks it registered in error, a duplicate or not a case, when it is a
// stub, when it is a closed "person under investigation" (never confirmed), or while it is being transferred to
// another county (transfer_status pending or sent).
func isOpen(closed bool, data map[string]any) bool {
	text := func(key string) string {
		s, _ := data[key].(string)
		return s
	}
	switch {
	case closed,
		slices.Contains(closingDispositions, text("final_disposition")),
		text("stub") == "yes",
		text("current_status") == "closed" && text("patient_type") == "pui",
		text("transfer_status") == "pending" || text("transfer_status") == "sent":
		return false
	}
	return true
}
