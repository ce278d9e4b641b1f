package cli

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRedactDSN: every form of password pgx reads is masked, in the start-up line and in connection errors alike.
func TestRedactDSN(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-pw"
	// Port 1 on loopback refuses at once, so each connection fails fast.
	for _, tc := range []struct{ name, dsn, want string }{
		{"URLUserInfo", "postgres://viaduct:" + secret + "@127.0.0.1:1/viaduct",
			"postgres://viaduct:xxxxx@127.0.0.1:1/viaduct"},
		{"URLQuery", "postgresql://viaduct@127.0.0.1:1/viaduct?sslmode=disable&password=" + secret,
			"postgresql://viaduct@127.0.0.1:1/viaduct?password=xxxxx&sslmode=disable"},
		{"URLQueryEncodedKey", "postgres://127.0.0.1:1/viaduct?pass%77ord=" + secret,
			"postgres://127.0.0.1:1/viaduct?password=xxxxx"},
		{"URLSSLPassword", "postgres://127.0.0.1:1/viaduct?sslmode=disable&sslpassword=" + secret,
			"postgres://127.0.0.1:1/viaduct?sslmode=disable&sslpassword=xxxxx"},
		{"KeyValue", "host=127.0.0.1 port=1 user=viaduct password=" + secret + " dbname=viaduct",
			"host=127.0.0.1 port=1 user=viaduct password=xxxxx dbname=viaduct"},
		{"KeyValueQuoted", "host=127.0.0.1 port=1 password='" + secret + " with spaces' dbname=viaduct",
			"host=127.0.0.1 port=1 password=xxxxx dbname=viaduct"},
		{"KeyValueSpaced", "host=127.0.0.1 port=1 password = " + secret, "host=127.0.0.1 port=1 password=xxxxx"},
		{"NoPassword", "postgres://postgres@127.0.0.1:1/viaduct?sslmode=disable",
			"postgres://postgres@127.0.0.1:1/viaduct?sslmode=disable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, RedactDSN(tc.dsn))

			_, err := OpenPool(t.Context(), tc.dsn)
			require.Error(t, err)
			require.Contains(t, err.Error(), "connecting to ")
			require.NotContains(t, err.Error(), secret)

			c := Config{DatabaseURL: tc.dsn}
			for _, f := range c.logFields() {
				require.NotContains(t, f.String, secret, "start-up line, field %s", f.Key)
			}
		})
	}

	t.Run("UnparseableIsReportedWithoutThePassword", func(t *testing.T) {
		t.Parallel()
		res := runCLI(t, map[string]string{"DATABASE_URL": "postgres://viaduct:" + secret + "@127.0.0.1:notaport/x"}, "status")
		require.Equal(t, 2, res.code, res.stderr)
		require.Contains(t, res.stderr, "--database-url (DATABASE_URL) is not a PostgreSQL connection string")
		require.NotContains(t, res.stderr+res.stdout, secret)
	})
}
