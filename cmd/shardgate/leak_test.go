package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that run, started in-process by the tests, leaves no
// goroutine behind once it returns. http.DefaultClient's idle keep-alive
// connections belong to the tests and are ignored.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
	)
}
