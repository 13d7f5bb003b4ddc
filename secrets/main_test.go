package secrets_test

import (
	"testing"

	"github.com/kailash-gateway/kgw/internal/testenv"
)

// TestMain starts no servers itself: testenv starts PostgreSQL on first use,
// stops it after the tests, and checks that no goroutine leaked.
func TestMain(m *testing.M) { testenv.Main(m) }
