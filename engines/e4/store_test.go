package e4

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
)

func TestCaseToPost(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, commcaretest.Options{})
	id := f.addCase(t, "case-1", 1111, map[string]any{"full_name": "Ada"},
		lab{"acc-2", map[string]any{"test_type": "PCR"}}, lab{"acc-1", nil}, lab{"acc-3", map[string]any{}})
	bare := f.addCase(t, "case-2", 1111, map[string]any{})

	c, err := findCaseToPost(ctx, f.db.Pool, "case-1", midsomer)
	require.NoError(t, err)
	require.Equal(t, id, c.id)
	require.Equal(t, "Ada", c.data["full_name"])
	require.Positive(t, c.seen, "the newest change event")
	require.Equal(t, []string{"acc-2", "acc-1", "acc-3"}, f.labAccessions(t, id), "in the order they arrived")
	require.Equal(t, map[string]any{"test_type": "PCR"}, c.labs[0].data)
	require.NotEmpty(t, c.labs[0].caseID)
	require.False(t, c.labs[0].insertedAt.IsZero())
	require.False(t, c.posted)

	_, err = findCaseToPost(ctx, f.db.Pool, "no-such-case", midsomer)
	require.ErrorIs(t, err, errCaseMissing)

	empty, err := loadCaseToPost(ctx, f.db.Pool, bare, midsomer)
	require.NoError(t, err)
	require.Empty(t, empty.labs)

	// recordSuccess records the event, saves the fingerprint for the domain only, and tells a change made after the
	// case was read.
	fp := sha256.Sum256([]byte("form"))
	at := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	record := func(source, target *indexCase, fp *[32]byte) bool {
		t.Helper()
		tx, err := f.db.Pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck
		changed, err := recordSuccess(ctx, tx, source, target, midsomer, map[string]any{"domain": midsomer}, "<data/>", fp, at)
		require.NoError(t, err)
		require.NoError(t, tx.Commit(ctx))
		return changed
	}
	require.False(t, record(c.indexCase, c.indexCase, &fp))
	evs := f.events(t, id, casedb.EventSendToCommCareSucceeded)
	require.Len(t, evs, 1)
	require.Equal(t, map[string]any{"domain": midsomer}, evs[0].data)
	require.Equal(t, "<data/>", evs[0].stash)
	c, err = loadCaseToPost(ctx, f.db.Pool, id, midsomer)
	require.NoError(t, err)
	require.True(t, c.posted)
	require.Equal(t, fp, c.lastSum)
	require.True(t, at.Equal(c.lastAt))
	other, err := loadCaseToPost(ctx, f.db.Pool, id, yggdrasil)
	require.NoError(t, err)
	require.False(t, other.posted, "another domain's post is another post")

	require.False(t, record(c.indexCase, c.indexCase, nil), "nothing to save: only the check")
	c, err = loadCaseToPost(ctx, f.db.Pool, id, midsomer)
	require.NoError(t, err)
	require.Equal(t, fp, c.lastSum, "kept")

	f.addLab(t, id, lab{"acc-4", nil})
	require.True(t, record(c.indexCase, c.indexCase, nil), "the case changed after it was read")
	dest, err := loadCaseToPost(ctx, f.db.Pool, bare, midsomer)
	require.NoError(t, err)
	require.True(t, record(c.indexCase, dest.indexCase, nil), "the transfer's source changed")
	c, err = loadCaseToPost(ctx, f.db.Pool, id, midsomer)
	require.NoError(t, err)
	require.False(t, record(c.indexCase, dest.indexCase, nil), "neither changed")
	_, err = casedb.RecordEvent(ctx, f.db.Pool, bare, casedb.EventIndexCaseUpdated, nil, "")
	require.NoError(t, err)
	require.True(t, record(dest.indexCase, dest.indexCase, nil), "the destination changed")
}
