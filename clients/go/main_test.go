package kgw_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves a goroutine behind (a stream or
// connection the client did not close). The end-to-end tests do the same in
// internal/goclienttest.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
