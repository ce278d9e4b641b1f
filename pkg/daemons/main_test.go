package daemons_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves goroutines behind: engines, pools and stand-ins must stop with the
// test that started them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
