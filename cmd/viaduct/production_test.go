package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoStandInLinksIntoProduction lists every package the production binary links and fails on any test stand-in
// or development-only dependency: those belong to cmd/viaduct-dev. depguard checks each import; this checks what
// the imports add up to, including through third-party packages.
func TestNoStandInLinksIntoProduction(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest",
		"github.com/viaduct-nys/viaduct/pkg/awstest",
		"github.com/viaduct-nys/viaduct/pkg/pgtest",
		"github.com/viaduct-nys/viaduct/pkg/eclrs/eclrsgen",
		"github.com/viaduct-nys/viaduct/pkg/testfactory",
		"github.com/Admiral-Piett/goaws",
		"github.com/johannesboyne/gofakes3",
		"github.com/gorilla/mux",
		"github.com/sirupsen/logrus",
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 {
		t.Fatalf("go list -deps printed %d packages; expected the binary's whole dependency list:\n%s", len(deps), out)
	}
	for _, dep := range deps {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("the production binary links %s (from %s); stand-ins belong in cmd/viaduct-dev", dep, f)
			}
		}
	}
}
