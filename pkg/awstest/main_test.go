package awstest

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves goroutines behind: the in-process emulator must stop with its last
// user, ticker included.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
