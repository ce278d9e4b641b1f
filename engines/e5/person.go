package e5

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/viaduct-nys/viaduct/pkg/advisory"
	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/commcare"
)

// identity is what a patient case CommCare created says about who the patient is (§6.3 of the reference).
type identity struct {
	// key is the patient key (ECLRS's patient identifier), "" when the case carries none.
	key string
	// dob is the date of birth when properties.dob is exactly YYYY-MM-DD, else the zero time.
	dob time.Time
	// first and last are the names as people stores them (casedb.PersonFirstName, casedb.PersonLastName); fullName
	// is properties.full_name as CommCare has it. "" when absent or blank.
	first, last, fullName string
}

// caseIdentity reads c's identity. The patient key is the first of: the part of properties.external_id after its
// first "#" (up to the next one: "9999#150000000" gives 150000000); the digits closing properties.name_and_id
// ("PAM PEASLEY (5465462#123456789456113)"); the same part of the first lab result's external_id
// ("P12#1234#ABC100001" gives 1234: Engine 2 writes a lab result's external_id that way).
func caseIdentity(c *commcare.Case, labs []labResult) identity {
	id := identity{
		key:      hashField(c.Property("external_id")),
		first:    casedb.PersonFirstName(c.Property("first_name")),
		last:     casedb.PersonLastName(c.Property("last_name")),
		fullName: c.Property("full_name"),
	}
	if id.key == "" {
		if m := nameAndID.FindStringSubmatch(c.Property("name_and_id")); m != nil {
			id.key = m[1]
		}
	}
	for i := 0; id.key == "" && i < len(labs); i++ {
		id.key = hashField(labs[i].externalID)
	}
	if dob, err := time.Parse(time.DateOnly, c.Property("dob")); err == nil {
		id.dob = dob
	}
	return id
}

// nameAndID matches a name_and_id ending in an id whose last "#" is followed by digits, capturing the digits.
var nameAndID = regexp.MustCompile(`\(.*#(\d+)\)`)

// hashField returns the part of an external id between its first "#" and the next one, trimmed; "" when there is
// no "#".
func hashField(externalID string) string {
	parts := strings.Split(externalID, "#")
	if len(parts) < 2 {
		return ""
	}
	return strings.TrimSpace(parts[1])
}

// named reports whether the identity has the first name, last name and date of birth a person without a patient key
// needs, and the name rule matches on.
func (id identity) named() bool {
	return id.first != "" && id.last != "" && !id.dob.IsZero()
}

// lockKeys are the identity locks (casedb.LockIdentities) to hold while the person is found or made: the patient
// key's and the name's, whichever the case has, so that Engine 2 and another merge of either identity wait.
func (id identity) lockKeys() []int64 {
	var keys []int64
	if id.key != "" {
		keys = append(keys, advisory.PersonKey(id.key))
	}
	if id.named() {
		keys = append(keys, advisory.PersonName(id.dob, id.last, id.first))
	}
	return keys
}

// How a person was found for a case (the original's "finder"), or that it was made.
const (
	finderPatientKey = "patient_key"
	finderDOB        = "dob"
	finderFullName   = "full_name"
	finderNew        = "new"
)

// errNoIdentity: the case names no person that can be found, and too little to make one.
var errNoIdentity = errors.New("no patient key, and no first name, last name and date of birth")

// findOrMakePerson returns the person of a case with identity id, and how it was found (§6.3, with the June 2021
// change): by patient key; else by date of birth, first and last name when the case has both names; else by date
// of birth and full name (every word of a person's first and last name is a word of the case's full name; people
// whose stored names hold a "(" after a letter are never matched this way, as in the original); else a new person,
// with the patient key when there is one, and otherwise only with a first name, last name and date of birth
// (errNoIdentity when the case has neither). The caller holds id's identity locks, so nobody else makes this person
// meanwhile; found or made in one statement, since each round trip is a good part of a merge's cost.
func findOrMakePerson(ctx context.Context, tx pgx.Tx, id identity) (int64, string, error) {
	var dob pgtype.Date
	if !id.dob.IsZero() {
		dob = pgtype.Date{Time: id.dob, Valid: true}
	}
	var personID int64
	var finder string
	err := tx.QueryRow(ctx, `WITH found AS (
			SELECT * FROM (
				SELECT person_id AS id, 1 AS rank, '`+finderPatientKey+`' AS finder FROM person_keys
				 WHERE $1::text <> '' AND patient_key = $1
				UNION ALL
				SELECT id, 2, '`+finderDOB+`' FROM people
				 WHERE $3::text <> '' AND $4::text <> '' AND dob = $2::date AND name_last = $4 AND name_first = $3
				UNION ALL
				(SELECT id, 3, '`+finderFullName+`' FROM people
				  WHERE NOT ($3 <> '' AND $4 <> '') AND $5::text <> '' AND dob = $2
				    AND name_first IS NOT NULL AND name_last IS NOT NULL
				    AND name_first !~ '\S\(' AND name_last !~ '\S\('
				    AND to_tsvector('simple', lower($5)) @@ plainto_tsquery('simple', lower(name_first || ' ' || name_last))
				  ORDER BY id LIMIT 1)
			) candidates ORDER BY rank LIMIT 1),
		made AS (INSERT INTO people (patient_keys, data, name_first, name_last, dob)
			SELECT CASE WHEN $1 = '' THEN '{}'::text[] ELSE ARRAY[$1] END, '{}', nullif($3, ''), nullif($4, ''), $2
			 WHERE NOT EXISTS (SELECT FROM found) AND ($1 <> '' OR ($3 <> '' AND $4 <> '' AND $2 IS NOT NULL))
			RETURNING id),
		keyed AS (INSERT INTO person_keys (patient_key, person_id) SELECT $1, id FROM made WHERE $1 <> '')
		SELECT id, finder FROM found UNION ALL SELECT id, '`+finderNew+`' FROM made`,
		id.key, dob, id.first, id.last, id.fullName).Scan(&personID, &finder)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, "", errNoIdentity
	}
	if err != nil {
		return 0, "", fmt.Errorf("finding the person: %w", err)
	}
	return personID, finder, nil
}

// labResult is a lab result child of a patient case, as Engine 5 stores it.
type labResult struct {
	caseID, accession, externalID string
	data                          map[string]any
}

// labResults returns c's lab result children that have an accession number, by case id (§6.3).
func labResults(c *commcare.Case) []labResult {
	var labs []labResult
	for _, childID := range slices.Sorted(maps.Keys(c.ChildCases)) {
		child := c.ChildCases[childID]
		if accession := child.Property("accession_number"); child.Type() == "lab_result" && accession != "" {
			labs = append(labs, labResult{caseID: childID, accession: accession,
				externalID: child.Property("external_id"), data: child.Properties})
		}
	}
	return labs
}
