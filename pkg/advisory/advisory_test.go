package advisory_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/advisory"
)

// TestKeysAreStable pins the keys: a daemon of one version and a daemon of the next must take the same lock for the
// same name, or they would not exclude each other during an upgrade.
func TestKeysAreStable(t *testing.T) {
	t.Parallel()
	dob := time.Date(1970, 1, 2, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		key  int64
		want int64
	}{
		{"Migrate", advisory.Key(advisory.Migrate), advisory.Key("viaduct:migrate")},
		{"Person", advisory.Person(42), advisory.Key("viaduct:person:42")},
		{"PersonName", advisory.PersonName(dob, "DOE", "JANE"), advisory.Key("viaduct:person-name:1970-01-02|DOE|JANE")},
		{"PersonKey", advisory.PersonKey("K1"), advisory.Key("viaduct:person-key:K1")},
		{"FNV64a", advisory.Key(""), -3750763034362895579}, // the FNV-1a offset basis: no bytes hashed
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, tt.key)
		})
	}
	names := []string{advisory.Migrate, advisory.E1Import, advisory.E3Pass, advisory.E5Round, advisory.Purge, advisory.TestTemplate}
	keys := map[int64]string{}
	for _, n := range names {
		require.NotContains(t, keys, advisory.Key(n), "%s collides with %s", n, keys[advisory.Key(n)])
		keys[advisory.Key(n)] = n
	}
}
