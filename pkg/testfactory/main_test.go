package testfactory_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves goroutines behind: pools must close with the test that opened them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
