package gateway

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: every
// gateway a test starts must stop its shards, acceptor, clock and admin
// server. Idle keep-alive connections of http.DefaultClient (used by the
// tests to call the admin API) are the tests' own and are ignored.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
	)
}
