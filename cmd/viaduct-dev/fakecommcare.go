package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/viaduct-nys/viaduct/engines/e5"
	"github.com/viaduct-nys/viaduct/internal/cli"
	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
)

// runFakeCommCare serves the in-memory CommCare stand-in until SIGINT/SIGTERM, for trying the cli.Daemon by hand
// against something that answers like CommCare HQ, slow and unreliable if asked to be.
func runFakeCommCare(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var (
		addr, credentials, rootDomain, faultRateText string
		forwardTo, forwardPassword                   string
		latency, faultTimeout                        time.Duration
		faultSeed                                    int
		faultRate                                    float64
	)
	s := cli.NewOptionSet("fake-commcare", "[flags]",
		"Serve a fake CommCare HQ (New York's county list, the case API and the form receiver, in memory) until "+
			"interrupted.", getenv)
	s.String(&addr, "addr", "VIADUCT_FAKE_COMMCARE_ADDR", "127.0.0.1:8090", "Address to listen on.")
	s.String(&credentials, "credentials", "", commcaretest.DefaultCredentials, "The <username>:<api key> it accepts.")
	s.String(&rootDomain, "root-domain", "", commcaretest.DefaultRootDomain, "Project space serving the county list.")
	s.Duration(&latency, "latency", "VIADUCT_FAKE_COMMCARE_LATENCY", 0, "Wait before every answer.")
	s.String(&faultRateText, "fault-rate", "VIADUCT_FAKE_COMMCARE_FAULT_RATE", "0",
		"Probability (0 to 1) that a case API or receiver request fails at random: 429, 500 or a hung response.")
	s.Int(&faultSeed, "fault-seed", "VIADUCT_FAKE_COMMCARE_FAULT_SEED", 1, "Seed of the random faults, to repeat a run.")
	s.Duration(&faultTimeout, "fault-timeout", "VIADUCT_FAKE_COMMCARE_FAULT_TIMEOUT", 2*time.Minute,
		"How long a random hung response is held before it answers 504.")
	s.String(&forwardTo, "forward-to", "VIADUCT_FAKE_COMMCARE_FORWARD_TO", "",
		"Forward each changed patient case, as CommCare's data forwarding does, to this URL (Viaduct's webhook, "+
			"http://HOST:PORT"+e5.WebhookPath+"); empty forwards nothing.")
	s.String(&forwardPassword, "forward-password", "VIADUCT_WEBHOOK_PASSWORD", "",
		"Password sent when forwarding (HTTP basic auth, user "+e5.WebhookUser+"); required with --forward-to.")
	s.Check(func() error {
		if forwardTo != "" && forwardPassword == "" {
			return errors.New("--forward-to needs --forward-password (VIADUCT_WEBHOOK_PASSWORD)")
		}
		return nil
	})
	s.Check(func() error {
		var err error
		faultRate, err = strconv.ParseFloat(faultRateText, 64)
		if err != nil || math.IsNaN(faultRate) || faultRate < 0 || faultRate > 1 {
			return fmt.Errorf("--fault-rate %q: must be a number from 0 to 1", faultRateText)
		}
		return nil
	})
	s.Check(func() error {
		if latency < 0 {
			return fmt.Errorf("--latency %s: must not be negative", latency)
		}
		if faultTimeout <= 0 {
			return fmt.Errorf("--fault-timeout %s: must be positive", faultTimeout)
		}
		return nil
	})
	if err := s.Parse(args, stdout); err != nil {
		return cli.UsageError(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	fake := commcaretest.NewServer(commcaretest.Options{
		Credentials:  credentials,
		RootDomain:   rootDomain,
		Latency:      latency,
		FaultRate:    faultRate,
		FaultSeed:    int64(faultSeed),
		TimeoutDelay: faultTimeout,
	})
	fmt.Fprintf(stdout, "fake CommCare at http://%s\n  COMMCARE_BASE_URL=http://%s COMMCARE_API_KEY_CREDENTIALS=%s COMMCARE_ROOT_DOMAIN=%s\n",
		ln.Addr(), ln.Addr(), credentials, rootDomain)
	if latency > 0 || faultRate > 0 {
		fmt.Fprintf(stdout, "  latency %s, fault rate %g (seed %d, hung responses held %s)\n",
			latency, faultRate, faultSeed, faultTimeout)
	}
	if forwardTo != "" {
		var mu sync.Mutex // deliveries end on several workers
		forwarder, err := fake.ForwardTo(commcaretest.ForwardOptions{URL: forwardTo, Password: forwardPassword,
			OnDelivery: func(d commcaretest.Delivery) {
				mu.Lock()
				defer mu.Unlock()
				if d.Err != nil {
					fmt.Fprintf(stderr, "forwarding case %s of %s failed after %d attempts: %v\n", d.CaseID, d.Domain,
						d.Attempts, d.Err)
				}
			}})
		if err != nil {
			return err
		}
		defer forwarder.Close()
		fmt.Fprintf(stdout, "  forwarding changed patient cases to %s\n", forwardTo)
	}
	return fake.Serve(ctx, ln)
}
