package poll

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves goroutines behind: every loop a test starts must stop with it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
