package commcare

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
)

// LockPeople takes a transaction-scoped advisory lock on each person, in ascending id order. Every engine that
// changes a person's index cases or lab results (Engine 2 from test results, Engines 4 and 5 from CommCare) holds
// these locks from before it reads them until it commits, so that two writers never merge into stale data. Taking
// them in one sorted sweep keeps two lockers from waiting on each other in a cycle.
func LockPeople(ctx context.Context, tx DBTX, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	keys := make([]int64, len(ids))
	for i, id := range ids {
		keys[i] = personLockKey(id)
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	// unnest yields the array in order and the aggregate consumes the rows in that order.
	if _, err := tx.Exec(ctx, `SELECT count(pg_advisory_xact_lock(k)) FROM unnest($1::bigint[]) AS k`, keys); err != nil {
		return fmt.Errorf("locking people: %w", err)
	}
	return nil
}

func personLockKey(id int64) int64 {
	h := fnv.New64a()
	h.Write([]byte("viaduct:person:" + strconv.FormatInt(id, 10)))
	return int64(h.Sum64())
}
