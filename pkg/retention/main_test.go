package retention_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves goroutines behind: pools and scheduled purges must stop with the test
// that started them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
