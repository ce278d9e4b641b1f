package casedb

import (
	"context"
	"fmt"
	"reflect"
	"slices"

	"github.com/viaduct-nys/viaduct/pkg/commcare"
)

// MergeIntoIndexCase merges the CommCare case c into the index case id, whose data and closed flag as stored are
// data and closed, the way Engines 4 and 5 both do (§5.8 of the reference): properties by MergeEmptyFields, the
// closed flag and date_modified as CommCare has them. The caller holds the person's lock and the row's. When
// anything changes it writes the row and records updated_from_commcare naming the properties that changed (names
// only, never values), and returns the merged data; otherwise it writes nothing and returns data.
func MergeIntoIndexCase(ctx context.Context, db DBTX, id int64, data map[string]any, closed bool, c *commcare.Case) (map[string]any, []string, error) {
	merged := commcare.MergeEmptyFields(c.Data(), data)
	var changed []string
	for k, v := range merged {
		if old, ok := data[k]; !ok || !reflect.DeepEqual(old, v) {
			changed = append(changed, k)
		}
	}
	if len(changed) == 0 && closed == c.Closed {
		return data, nil, nil
	}
	var modified any // NULL keeps the stored value when CommCare sent none
	if t, err := commcare.ParseTime(c.DateModified); err == nil {
		modified = t
	}
	if _, err := db.Exec(ctx, `UPDATE index_cases SET data = $2, closed = $3,
		commcare_date_modified = coalesce($4, commcare_date_modified), updated_at = now() WHERE id = $1`,
		id, merged, c.Closed, modified); err != nil {
		return nil, nil, fmt.Errorf("updating index case %d from CommCare: %w", id, err)
	}
	slices.Sort(changed)
	if _, err := RecordEvent(ctx, db, id, EventUpdatedFromCommCare,
		map[string]any{"properties": changed, "closed": c.Closed, "domain": c.Domain}, ""); err != nil {
		return nil, nil, err
	}
	return merged, changed, nil
}
