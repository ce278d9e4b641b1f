package e2

import (
	"maps"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/eclrs"
)

func TestRepeatType(t *testing.T) {
	t.Parallel()

	// closedCase opened on 2021-01-01 and completed on 2021-02-01, as in the original's tests.
	closedCase := func(overrides map[string]any) map[string]any {
		data := map[string]any{
			"current_status":             "closed",
			"date_opened":                "2021-01-01T00:00:00Z",
			"all_activity_complete_date": "2021-02-01",
		}
		maps.Copy(data, overrides)
		for k, v := range data {
			if v == nil {
				delete(data, k)
			}
		}
		return data
	}

	tests := []struct {
		name       string
		data       map[string]any
		collection string
		created    string
		want       repeatKind
	}{
		{"Reinfection", closedCase(nil), "2021-04-01T00:00:00Z", "2021-05-01T00:00:00Z", repeatReinfection},
		{"CollectionOnDay89IsReactivation", closedCase(nil), "2021-03-31T12:00:00Z", "2021-04-30T12:00:00Z",
			repeatReactivation},
		{"CollectionOnDay90IsReinfection", closedCase(nil), "2021-04-01T00:00:00Z", "2021-04-30T12:00:00Z",
			repeatReinfection},
		{"NoCollectionCreatedOnDay90IsReinfection", closedCase(nil), "", "2021-04-01T00:00:00Z",
			repeatReinfection},
		{"NoCollectionCreatedOnDay89IsReactivation", closedCase(nil), "", "2021-03-31T00:00:00Z",
			repeatReactivation},
		{"CollectionAfterCreationIsIgnored", closedCase(nil), "2021-05-01T12:00:00Z", "2021-03-31T12:00:00Z",
			repeatReactivation},
		{"CollectionBefore2020IsExcluded", closedCase(nil), "2019-12-31T23:59:59Z", "2021-04-02T12:00:00Z",
			repeatReinfection},
		{"CreationBefore2020IsStillUsed", closedCase(map[string]any{"all_activity_complete_date": "2019-12-01"}),
			"2019-12-01T23:59:59Z", "2019-12-31T23:59:59Z", repeatReactivation},
		{"UTCDateOfTheResult", closedCase(nil), "2021-04-01T03:00:00Z", "2021-05-01T00:00:00Z",
			repeatReinfection}, // 31 March in New York, 1 April in UTC
		{"ReactivationOfTheOriginalScenario", closedCase(map[string]any{
			"date_opened": "2021-02-01T00:00:00Z", "all_activity_complete_date": "2021-03-01"}),
			"2021-04-01T00:00:00Z", "2021-05-01T00:00:00Z", repeatReactivation},
		{"NotAfterCompletion", closedCase(map[string]any{"all_activity_complete_date": "2021-06-01"}),
			"2021-06-01T12:00:00Z", "2021-06-02T00:00:00Z", repeatNone},
		{"DayAfterCompletion", closedCase(map[string]any{"all_activity_complete_date": "2021-06-01"}),
			"2021-06-02T00:00:00Z", "2021-06-02T00:00:00Z", repeatReinfection},
		{"WhitespacePaddedDates", closedCase(map[string]any{
			"date_opened": "   2021-01-01T00:00:00Z   ", "all_activity_complete_date": "   2021-02-01   "}),
			"2021-04-01T00:00:00Z", "2021-05-01T00:00:00Z", repeatReinfection},
		{"NoTimeZone", closedCase(map[string]any{"date_opened": "2021-01-01T00:00:00"}),
			"2021-04-01T00:00:00Z", "2021-05-01T00:00:00Z", repeatReinfection},
		{"Microseconds", closedCase(map[string]any{"date_opened": "2021-01-01T00:00:00.123Z"}),
			"2021-04-01T00:00:00Z", "2021-05-01T00:00:00Z", repeatReinfection},
		{"MicrosecondsNoTimeZone", closedCase(map[string]any{"date_opened": "2021-01-01T00:00:00.123456"}),
			"2021-04-01T00:00:00Z", "2021-05-01T00:00:00Z", repeatReinfection},
		{"OffsetIsIgnored", closedCase(map[string]any{"date_opened": "2021-01-02T01:00:00+05:00"}),
			"2021-04-01T00:00:00Z", "2021-05-01T00:00:00Z", repeatReactivation}, // 1 January in UTC
		{"SpaceSeparator", closedCase(map[string]any{"date_opened": "2021-01-01 10:00:00"}),
			"2021-04-01T00:00:00Z", "2021-05-01T00:00:00Z", repeatReinfection},
		{"ReinfectedCaseCreated", closedCase(map[string]any{"reinfected_case_created": "yes"}),
			"2021-04-01T00:00:00Z", "2021-05-01T00:00:00Z", repeatNone},
		{"NotClosed", closedCase(map[string]any{"current_status": "open"}),
			"2021-04-01T00:00:00Z", "2021-05-01T00:00:00Z", repeatNone},
		{"NoCurrentStatus", closedCase(map[string]any{"current_status": nil}),
			"2021-04-01T00:00:00Z", "2021-05-01T00:00:00Z", repeatNone},
		{"EmptyDateOpened", closedCase(map[string]any{"date_opened": ""}),
			"2021-04-01T00:00:00Z", "2021-05-01T00:00:00Z", repeatNone},
		{"NoDateOpened", closedCase(map[string]any{"date_opened": nil}),
			"2021-04-01T00:00:00Z", "2021-05-01T00:00:00Z", repeatNone},
		{"DateOnlyDateOpened", closedCase(map[string]any{"date_opened": "2021-01-01"}),
			"2021-04-01T00:00:00Z", "2021-05-01T00:00:00Z", repeatNone},
		{"NonStringDateOpened", closedCase(map[string]any{"date_opened": 20210101.0}),
			"2021-04-01T00:00:00Z", "2021-05-01T00:00:00Z", repeatNone},
		{"EmptyCompletionDate", closedCase(map[string]any{"all_activity_complete_date": ""}),
			"2021-04-01T00:00:00Z", "2021-05-01T00:00:00Z", repeatNone},
		{"NoCompletionDate", closedCase(map[string]any{"all_activity_complete_date": nil}),
			"2021-04-01T00:00:00Z", "2021-05-01T00:00:00Z", repeatNone},
		{"DateTimeCompletionDate", closedCase(map[string]any{"all_activity_complete_date": "2021-02-01T00:00:00Z"}),
			"2021-04-01T00:00:00Z", "2021-05-01T00:00:00Z", repeatNone},
		{"ImpossibleCompletionDate", closedCase(map[string]any{"all_activity_complete_date": "2021-02-30"}),
			"2021-04-01T00:00:00Z", "2021-05-01T00:00:00Z", repeatNone},
		{"ImpossibleDateOpened", closedCase(map[string]any{"date_opened": "2021-02-30T00:00:00Z"}),
			"2021-04-01T00:00:00Z", "2021-05-01T00:00:00Z", repeatNone},
		{"ImpossibleTimeOpened", closedCase(map[string]any{"date_opened": "2021-01-01T24:00:00Z"}),
			"2021-04-01T00:00:00Z", "2021-05-01T00:00:00Z", repeatNone},
		{"NoCreationDate", closedCase(nil), "2019-06-01T00:00:00Z", "", repeatNone},
		{"CollectionOnlyIsUsedWithoutCreation", closedCase(nil), "2021-04-01T00:00:00Z", "", repeatReinfection},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr := &eclrs.TestResult{}
			if tt.collection != "" {
				tr.RequestCollectionDate = ruleInstant(t, tt.collection)
			}
			if tt.created != "" {
				tr.EclrsCreateDate = ruleInstant(t, tt.created)
			}
			require.Equal(t, tt.want, repeatType(tt.data, tr))
		})
	}
}

func TestRepeatKindString(t *testing.T) {
	t.Parallel()

	require.Equal(t, "none", repeatNone.String())
	require.Equal(t, "reactivation", repeatReactivation.String())
	require.Equal(t, "reinfection", repeatReinfection.String())
	require.Equal(t, "repeatKind(7)", repeatKind(7).String())
}

func TestRepeatResultDate(t *testing.T) {
	t.Parallel()

	tr := &eclrs.TestResult{
		RequestCollectionDate: ruleInstant(t, "2021-03-31T23:30:00Z"),
		EclrsCreateDate:       ruleInstant(t, "2021-04-02T01:00:00Z"),
	}
	d, ok := repeatResultDate(tr)
	require.True(t, ok)
	require.Equal(t, time.Date(2021, 3, 31, 0, 0, 0, 0, time.UTC), d)
}

func TestIsOpen(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name   string
		closed bool
		data   map[string]any
		want   bool
	}{
		{"Empty", false, map[string]any{}, true},
		{"Nil", false, nil, true},
		{"ClosedColumn", true, map[string]any{}, false},
		{"RegisteredInError", false, map[string]any{"final_disposition": "registered_in_error"}, false},
		{"Duplicate", false, map[string]any{"final_disposition": "duplicate"}, false},
		{"NotACase", false, map[string]any{"final_disposition": "not_a_case"}, false},
		{"OtherDisposition", false, map[string]any{"final_disposition": "some_other_value"}, true},
		{"Stub", false, map[string]any{"stub": "yes"}, false},
		{"NotStub", false, map[string]any{"stub": "no"}, true},
		{"ClosedPUI", false, map[string]any{"current_status": "closed", "patient_type": "pui"}, false},
		{"ClosedConfirmed", false, map[string]any{"current_status": "closed", "patient_type": "confirmed"}, true},
		{"OpenPUI", false, map[string]any{"current_status": "open", "patient_type": "pui"}, true},
		{"TransferPending", false, map[string]any{"transfer_status": "pending"}, false},
		{"TransferSent", false, map[string]any{"transfer_status": "sent"}, false},
		{"OtherTransferStatus", false, map[string]any{"transfer_status": "accepted"}, true},
		{"DuplicateOfCaseIDIsStillOpen", false, map[string]any{"duplicate_of_case_id": "some-case-id"}, true},
		{"NonStringValues", false, map[string]any{"stub": true, "final_disposition": 1.0}, true},
		{"CaseSensitive", false, map[string]any{"stub": "YES", "transfer_status": "Sent"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, isOpen(tt.closed, tt.data))
		})
	}
}
