package pgpool

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		url      string
		maxConns int32
		jit      string
	}{
		{"Defaults", "postgres://u@h/db", DefaultMaxConns, "off"},
		{"URLSetsThePool", "postgres://u@h/db?pool_max_conns=7", 7, "off"},
		{"KeywordForm", "host=h user=u dbname=db pool_max_conns=3 jit=on", 3, "on"},
		{"URLSetsJIT", "postgres://u@h/db?jit=on", DefaultMaxConns, "on"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := ParseConfig(tt.url)
			require.NoError(t, err)
			require.Equal(t, tt.maxConns, cfg.MaxConns)
			require.Equal(t, tt.jit, cfg.ConnConfig.RuntimeParams["jit"])
		})
	}

	_, err := ParseConfig("postgres://u@h/db?pool_max_conns=many")
	require.Error(t, err)
}
