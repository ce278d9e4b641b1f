package e5

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
	"github.com/viaduct-nys/viaduct/pkg/testfactory"
)

func TestCaseIdentity(t *testing.T) {
	t.Parallel()
	lab := func(externalID string) commcare.Case {
		return commcare.Case{Properties: map[string]any{"case_type": "lab_result", "accession_number": "A",
			"external_id": externalID}}
	}
	tests := []struct {
		name     string
		props    map[string]any
		children map[string]commcare.Case
		want     identity
	}{
		{name: "ExternalID", props: map[string]any{"external_id": "9999#150000000"}, want: identity{key: "150000000"}},
		{name: "ExternalIDWithAccession", props: map[string]any{"external_id": "9999#1234#ABC100001"},
			want: identity{key: "1234"}},
		{name: "ExternalIDWithoutHash", props: map[string]any{"external_id": "P12"}, want: identity{}},
		{name: "NameAndID", props: map[string]any{"name_and_id": "PAM PEASLEY (5465462#123456789456113)"},
			want: identity{key: "123456789456113"}},
		{name: "NameAndIDWithoutDigits", props: map[string]any{"name_and_id": "PAM PEASLEY (P12)"}, want: identity{}},
		{name: "FirstLabResult", props: map[string]any{"external_id": "P12"},
			children: map[string]commcare.Case{"b": lab("P12#K2#ACC2"), "a": lab("P12#K1#ACC1")}, want: identity{key: "K1"}},
		{name: "ExternalIDFirst", props: map[string]any{"external_id": "1#K0", "name_and_id": "X (1#99)"},
			children: map[string]commcare.Case{"a": lab("P12#K1#ACC1")}, want: identity{key: "K0"}},
		{name: "Names", props: map[string]any{"first_name": "Mary Ann", "last_name": "de la Cruz", "dob": "1990-01-02",
			"full_name": "Mary Ann de la Cruz"},
			want: identity{first: "MARY", last: "DE LA CRUZ", dob: time.Date(1990, 1, 2, 0, 0, 0, 0, time.UTC),
				fullName: "Mary Ann de la Cruz"}},
		{name: "DOBNotExactlyADate", props: map[string]any{"dob": "1990-1-2"}, want: identity{}},
		{name: "DOBATimestamp", props: map[string]any{"dob": "1990-01-02T00:00:00"}, want: identity{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := &commcare.Case{Properties: tt.props, ChildCases: tt.children}
			require.Equal(t, tt.want, caseIdentity(c, labResults(c)))
		})
	}
}

// TestFindOrMakePerson checks the rules in their order, against the same people.
func TestFindOrMakePerson(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, commcaretest.Options{})
	dob := time.Date(1815, 12, 10, 0, 0, 0, 0, time.UTC)
	ada := testfactory.Person(t, ctx, f.db.Pool, &testfactory.PersonOpts{PatientKeys: []string{"K-ADA"},
		NameFirst: "ADA", NameLast: "LOVELACE", DOB: dob})
	other := testfactory.Person(t, ctx, f.db.Pool, &testfactory.PersonOpts{PatientKeys: []string{"K-OTHER"},
		NameFirst: "AUGUSTA", NameLast: "BYRON", DOB: dob})
	testfactory.Person(t, ctx, f.db.Pool, &testfactory.PersonOpts{PatientKeys: []string{"K-P"},
		NameFirst: "ALAN(", NameLast: "TURING", DOB: time.Date(1912, 6, 23, 0, 0, 0, 0, time.UTC)})

	tests := []struct {
		name       string
		id         identity
		want       int64 // 0: a new person
		wantFinder string
		wantErr    error
	}{
		{name: "PatientKeyWins", id: identity{key: "K-OTHER", first: "ADA", last: "LOVELACE", dob: dob},
			want: other, wantFinder: finderPatientKey},
		{name: "DOBAndNames", id: identity{key: "K-NEW", first: "ADA", last: "LOVELACE", dob: dob},
			want: ada, wantFinder: finderDOB},
		{name: "FullName", id: identity{dob: dob, fullName: "Lady Ada King Lovelace"}, want: ada,
			wantFinder: finderFullName},
		{name: "FullNameNeedsEveryWord", id: identity{dob: dob, fullName: "Ada King"}, wantErr: errNoIdentity},
		{name: "FullNameNotTriedWithBothNames", id: identity{first: "LADY", last: "KING", dob: dob,
			fullName: "Lady Ada King Lovelace"}, wantFinder: finderNew},
		{name: "FullNameNeedsADOB", id: identity{fullName: "Ada Lovelace"}, wantErr: errNoIdentity},
		{name: "FullNameSkipsParentheses", id: identity{dob: time.Date(1912, 6, 23, 0, 0, 0, 0, time.UTC),
			fullName: "Alan( Turing"}, wantErr: errNoIdentity},
		{name: "NewWithAKeyOnly", id: identity{key: "K-ONLY"}, wantFinder: finderNew},
		{name: "NewWithoutAKeyNeedsNames", id: identity{first: "GRACE", dob: dob}, wantErr: errNoIdentity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tx, err := f.db.Pool.Begin(ctx)
			require.NoError(t, err)
			defer tx.Rollback(ctx) //nolint:errcheck
			got, finder, err := findOrMakePerson(ctx, tx, tt.id)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantFinder, finder)
			if tt.want != 0 {
				require.Equal(t, tt.want, got)
				return
			}
			// A new person, with the key in both places when there is one.
			var keys []string
			require.NoError(t, tx.QueryRow(ctx, `SELECT patient_keys FROM people WHERE id = $1`, got).Scan(&keys))
			var indexed int
			require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM person_keys WHERE person_id = $1`, got).Scan(&indexed))
			require.Len(t, keys, indexed)
			if tt.id.key != "" {
				require.Equal(t, []string{tt.id.key}, keys)
			}
		})
	}
}

// TestPollingMatchesByPatientKey: polling finds the person of a case CommCare created by its patient key, even
// without a date of birth (it used to skip such a case), and makes one from the key alone.
func TestPollingMatchesByPatientKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, commcaretest.Options{})
	person := testfactory.Person(t, ctx, f.db.Pool, &testfactory.PersonOpts{PatientKeys: []string{"150000000"}})
	f.cc.PutCase(midsomer, patient("by-key", "Grace", "Hopper", "", map[string]any{"external_id": "9999#150000000"}, "acc-1"))
	f.cc.PutCase(midsomer, patient("by-lab-key", "", "", "", nil, "acc-2"))
	f.cc.PutCase(midsomer, patient("key-only", "", "", "", map[string]any{"name_and_id": "X (1#777)"}))
	require.NoError(t, f.engine(t, nil).Round(ctx))
	require.Equal(t, int(person), f.count(t, `SELECT person_id FROM index_cases WHERE case_id = 'by-key'`))
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM people p JOIN index_cases ic ON ic.person_id = p.id
		WHERE ic.case_id = 'key-only' AND p.patient_keys = '{777}'`), "a new person with the key")
	require.Zero(t, f.count(t, `SELECT count(*) FROM index_cases WHERE case_id = 'by-lab-key'`),
		"a lab result without a key in its external_id names nobody")
}
