package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/eclrs"
)

func TestGenerate(t *testing.T) {
	t.Parallel()
	t.Run("ToFile", func(t *testing.T) {
		t.Parallel()
		out := filepath.Join(t.TempDir(), "export.txt")
		res := runCLI(t, nil, "generate", "--rows", "25", "--out", out)
		require.Equal(t, 0, res.code, res.stderr)
		data, err := os.ReadFile(out)
		require.NoError(t, err)
		lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		require.Len(t, lines, 26, "a header and 25 rows")
		require.Equal(t, eclrs.V3.Header(), lines[0])
		version, err := eclrs.DetectVersion([]byte(lines[0]))
		require.NoError(t, err, "viaduct reads what it writes")
		require.Equal(t, eclrs.V3, version)
	})
	t.Run("SameSeedSameRows", func(t *testing.T) {
		t.Parallel()
		a := runCLI(t, nil, "generate", "--rows", "10", "--first-row", "5")
		b := runCLI(t, nil, "generate", "--rows", "10")
		require.Equal(t, 0, a.code, a.stderr)
		aRows, bRows := strings.Split(a.stdout, "\n"), strings.Split(b.stdout, "\n")
		require.Equal(t, bRows[6:11], aRows[1:6], "consecutive exports share rows, as ECLRS's do")
	})
	t.Run("BadRows", func(t *testing.T) {
		t.Parallel()
		res := runCLI(t, nil, "generate", "--rows", "0")
		require.Equal(t, 2, res.code)
		require.Contains(t, res.stderr, "--rows 0: at least 1 row")
	})
}
