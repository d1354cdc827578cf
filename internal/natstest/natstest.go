// Package natstest runs a real NATS server inside a test process, on
// loopback, for the tests of the NATS broker and of gateway clusters.
package natstest

import (
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Start runs a NATS server on 127.0.0.1:port (-1: a port the kernel picks)
// until the test ends or Stop.
func Start(t testing.TB, port int) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatalf("nats server on port %d did not start", port)
	}
	t.Cleanup(func() { Stop(s) })
	return s
}

// Stop shuts s down and waits until it has. Stopping twice is harmless.
func Stop(s *server.Server) {
	s.Shutdown()
	s.WaitForShutdown()
}

// URL is the nats:// address of s.
func URL(s *server.Server) string { return "nats://" + s.Addr().String() }

// Port is the TCP port s listens on (to restart a server on the same port).
func Port(s *server.Server) int { return s.Addr().(*net.TCPAddr).Port }

// Config is what StartConfig runs. The zero value is Start(t, -1).
type Config struct {
	// Port is the TCP port on 127.0.0.1; 0 or -1 lets the kernel pick.
	Port int
	// JetStream enables JetStream, storing in StoreDir.
	JetStream bool
	// StoreDir is where JetStream keeps its streams (a t.TempDir() of the
	// test, so a server restarted on the same StoreDir finds them again).
	// Required with JetStream.
	StoreDir string
}

// StartConfig runs a NATS server as c says until the test ends or Stop.
func StartConfig(t testing.TB, c Config) *server.Server {
	t.Helper()
	port := c.Port
	if port == 0 {
		port = -1
	}
	if c.JetStream && c.StoreDir == "" {
		t.Fatal("natstest: JetStream needs a StoreDir")
	}
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true,
		JetStream: c.JetStream, StoreDir: c.StoreDir,
	})
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatalf("nats server on port %d did not start", port)
	}
	t.Cleanup(func() { Stop(s) })
	return s
}
