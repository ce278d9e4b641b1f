package casedb

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/viaduct-nys/viaduct/pkg/advisory"
)

// LockPeople takes a transaction-scoped advisory lock on each person, in ascending id order. Every engine that
// changes a person's index cases or lab results (Engine 2 from test results, Engines 4 and 5 from CommCare) holds
// these locks from before it reads them until it commits, so that two writers never merge into stale data. Taking
// them in one sorted sweep keeps two lockers from waiting on each other in a cycle.
func LockPeople(ctx context.Context, tx DBTX, ids []int64) error {
	keys := make([]int64, len(ids))
	for i, id := range ids {
		keys[i] = advisory.Person(id)
	}
	if err := lockSorted(ctx, tx, keys); err != nil {
		return fmt.Errorf("locking people: %w", err)
	}
	return nil
}

// LockIndexCase locks index case id for a change: its person's lock and those of others (LockPeople), then its row
// lock, in the order every writer takes them. The caller reads the row after, as it now stands.
func LockIndexCase(ctx context.Context, tx DBTX, id int64, others ...int64) error {
	var personID int64
	if err := tx.QueryRow(ctx, `SELECT person_id FROM index_cases WHERE id = $1`, id).Scan(&personID); err != nil {
		return fmt.Errorf("reading index case %d: %w", id, err)
	}
	return lockPersonThenRow(ctx, tx, id, append(others, personID), "")
}

// FindAndLockIndexCase finds the index case with CommCare case id caseID and locks it as LockIndexCase does,
// reading its data and closed flag with the row lock (which waits for, and then reads, the row's newest committed
// version): three round trips where finding, locking and reading take five. It returns pgx.ErrNoRows when there is
// no such case.
func FindAndLockIndexCase(ctx context.Context, tx DBTX, caseID string) (id int64, data map[string]any, closed bool,
	err error) {
	var personID int64
	err = tx.QueryRow(ctx, `SELECT id, person_id FROM index_cases WHERE case_id = $1`, caseID).Scan(&id, &personID)
	if err != nil {
		return 0, nil, false, fmt.Errorf("finding index case %s: %w", caseID, err)
	}
	if err := lockPersonThenRow(ctx, tx, id, []int64{personID}, "data, closed", &data, &closed); err != nil {
		return 0, nil, false, err
	}
	return id, data, closed, nil
}

// lockPersonThenRow takes the locks of index case id in the order every writer takes them: the people's advisory
// locks (LockPeople), then the row's. It scans columns, as the row lock finds them, into dest.
func lockPersonThenRow(ctx context.Context, tx DBTX, id int64, people []int64, columns string, dest ...any) error {
	if err := LockPeople(ctx, tx, people); err != nil {
		return err
	}
	if err := tx.QueryRow(ctx, `SELECT `+columns+` FROM index_cases WHERE id = $1 FOR UPDATE`, id).Scan(dest...); err != nil {
		return fmt.Errorf("locking index case %d: %w", id, err)
	}
	return nil
}

// LockIdentities takes transaction-scoped advisory locks on person identities (advisory.PersonName,
// advisory.PersonKey), in one sorted sweep. Every engine that may create a person (Engine 2 from test results,
// Engine 5 from CommCare) takes them before it looks the person up, so two writers never both decide the person is
// new. Identities are locked before people (LockPeople), by everyone.
func LockIdentities(ctx context.Context, tx DBTX, keys []int64) error {
	if err := lockSorted(ctx, tx, keys); err != nil {
		return fmt.Errorf("locking patient identities: %w", err)
	}
	return nil
}

// lockSorted takes transaction-scoped advisory locks on keys in ascending order, once each: taking them in one
// sorted sweep keeps two lockers from waiting on each other in a cycle.
func lockSorted(ctx context.Context, tx DBTX, keys []int64) error {
	if len(keys) == 0 {
		return nil
	}
	keys = slices.Clone(keys)
	slices.Sort(keys)
	keys = slices.Compact(keys)
	// unnest yields the array in order and the aggregate consumes the rows in that order.
	_, err := tx.Exec(ctx, `SELECT count(pg_advisory_xact_lock(k)) FROM unnest($1::bigint[]) AS k`, keys)
	return err
}

// PersonFirstName is the first name stored on people and used to match a person by name and date of birth: the
// text before the first space ("Mary Ann" is MARY), upper-cased. "" stands for NULL, which is also what a leading
// space gives.
func PersonFirstName(raw string) string {
	first, _, _ := strings.Cut(raw, " ")
	return strings.ToUpper(first)
}

// PersonLastName is the last name stored on people: the whole value, upper-cased. "" stands for NULL.
func PersonLastName(raw string) string {
	return strings.ToUpper(raw)
}
