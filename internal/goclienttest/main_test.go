package goclienttest_test

import (
	"testing"

	"github.com/kailash-gateway/kgw/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
