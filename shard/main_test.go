package shard

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that every shard a test creates stops its poller's wait
// goroutine.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
