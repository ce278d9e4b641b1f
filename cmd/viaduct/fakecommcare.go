package main

import (
	"context"
	"fmt"
	"io"
	"net"

	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
)

// runFakeCommCare serves the in-memory CommCare stand-in until SIGINT/SIGTERM, for trying the daemon by hand
// against something that answers like CommCare HQ.
func runFakeCommCare(ctx context.Context, args []string, getenv func(string) string, stdout, _ io.Writer) error {
	var addr, credentials, rootDomain string
	s := newOptionSet("fake-commcare", "[flags]",
		"Serve a fake CommCare HQ (New York's county list; later engines' case APIs) until interrupted.", getenv)
	s.String(&addr, "addr", "VIADUCT_FAKE_COMMCARE_ADDR", "127.0.0.1:8090", "Address to listen on.")
	s.String(&credentials, "credentials", "", commcaretest.DefaultCredentials, "The <username>:<api key> it accepts.")
	s.String(&rootDomain, "root-domain", "", commcaretest.DefaultRootDomain, "Project space serving the county list.")
	if err := s.parse(args, stdout); err != nil {
		return usageError(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	fake := commcaretest.NewServer(commcaretest.Options{Credentials: credentials, RootDomain: rootDomain})
	fmt.Fprintf(stdout, "fake CommCare at http://%s\n  COMMCARE_BASE_URL=http://%s COMMCARE_API_KEY_CREDENTIALS=%s COMMCARE_ROOT_DOMAIN=%s\n",
		ln.Addr(), ln.Addr(), credentials, rootDomain)
	return fake.Serve(ctx, ln)
}
