package main

import (
	"crypto/tls"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shardgate/shardgate/bench/report"
	"github.com/shardgate/shardgate/gateway"
	"github.com/shardgate/shardgate/internal/wstest"
)

// tlsServer is a target behind TLS, and the CA file its certificate
// chains to.
type tlsServer struct {
	server
	caFile string
}

// startShardgateTLS runs a real gateway with -tls-cert and -tls-key.
func startShardgateTLS(t *testing.T) tlsServer {
	t.Helper()
	dir := t.TempDir()
	ca := wstest.NewCA(t)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.Issue(t, time.Now().Add(24*time.Hour)).WritePair(t, certFile, keyFile)
	s := startShardgateWith(t, func(c *gateway.Config) { c.TLSCert, c.TLSKey = certFile, keyFile })
	s.url = "wss://" + strings.TrimPrefix(s.url, "ws://")
	return tlsServer{s, ca.WriteCA(t, dir)}
}

// startGorillahubTLS puts gorillahub behind a TLS terminator written with
// crypto/tls in this test: a second, independent wss:// server.
func startGorillahubTLS(t *testing.T) tlsServer {
	t.Helper()
	s := startGorillahub(t)
	dir := t.TempDir()
	ca := wstest.NewCA(t)
	leaf := ca.Issue(t, time.Now().Add(24*time.Hour))
	pair, err := tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	backend := strings.TrimSuffix(strings.TrimPrefix(s.url, "ws://"), "/ws")
	addr := terminateTLS(t, &tls.Config{Certificates: []tls.Certificate{pair}, NextProtos: []string{"http/1.1"}}, backend)
	s.url = "wss://" + addr + "/ws"
	return tlsServer{s, ca.WriteCA(t, dir)}
}

// terminateTLS accepts TLS on 127.0.0.1:0 and relays each connection's
// plaintext to backend; it returns its address.
func terminateTLS(t *testing.T, cfg *tls.Config, backend string) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	track := func(c net.Conn) bool {
		mu.Lock()
		defer mu.Unlock()
		if open == nil {
			return false // closing
		}
		open = append(open, c)
		return true
	}
	open = []net.Conn{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			front, err := ln.Accept()
			if err != nil {
				return
			}
			back, err := net.Dial("tcp", backend)
			if err != nil || !track(front) || !track(back) {
				front.Close()
				if back != nil {
					back.Close()
				}
				continue
			}
			wg.Add(2)
			relay := func(dst, src net.Conn) {
				defer wg.Done()
				_, _ = io.Copy(dst, src)
				dst.Close()
				src.Close()
			}
			go relay(back, front)
			go relay(front, back)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		open = nil
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

var tlsServers = []struct {
	name  string
	start func(*testing.T) tlsServer
}{
	{"shardgate", startShardgateTLS},
	{"gorillahub-behind-tls", startGorillahubTLS},
}

func TestWSSScenarios(t *testing.T) {
	for _, sv := range tlsServers {
		t.Run(sv.name, func(t *testing.T) {
			s := sv.start(t)
			checkTLS := func(t *testing.T, rep *report.Report) {
				t.Helper()
				if rep.TLS == nil || rep.TLS.Version != "TLS 1.3" || rep.TLS.ALPN != "http/1.1" || rep.TLS.Verify != "CA "+s.caFile ||
					rep.TLS.CipherSuite == "" || rep.TLS.Group == "" {
					t.Fatalf("TLS section %+v", rep.TLS)
				}
			}
			t.Run("connect", func(t *testing.T) {
				rep := bench(t, s.server, "connect", "-conns", "100", "-hold", "200ms", "-procs", "2", "-ca", s.caFile)
				if c := rep.Connect; c.Opened != 100 || c.Failed != 0 || c.PerSecond <= 0 {
					t.Fatalf("connect: %+v", c)
				}
				checkTLS(t, rep)
			})
			t.Run("fanout", func(t *testing.T) {
				rep := bench(t, s.server, "fanout", "-conns", "100", "-channels", "2", "-rate", "10", "-size", "256",
					"-duration", "1s", "-procs", "2", "-ca", s.caFile)
				if f := rep.Fanout; f == nil || f.Expected != 10*100/2 || f.Delivered != f.Expected || f.Reordered != 0 {
					t.Fatalf("fanout: %+v", f)
				}
				checkTLS(t, rep)
			})
			t.Run("echo", func(t *testing.T) {
				// Larger than a TLS record: messages span records both ways.
				rep := bench(t, s.server, "echo", "-conns", "10", "-size", "40000", "-duration", "500ms", "-procs", "1", "-ca", s.caFile)
				if e := rep.Echo; rep.Connect.Opened != 10 || e == nil || e.RoundTrips < 10 || len(e.Errors) != 0 {
					t.Fatalf("echo: %+v, connect %+v", e, rep.Connect)
				}
				checkTLS(t, rep)
			})
		})
	}
}

func TestWSSCertificateChecks(t *testing.T) {
	s := startShardgateTLS(t)
	// -insecure connects to a server whose CA it was not given.
	rep := bench(t, s.server, "connect", "-conns", "20", "-hold", "100ms", "-procs", "1", "-insecure")
	if rep.Connect.Opened != 20 || rep.TLS == nil || rep.TLS.Verify != "not verified (-insecure)" {
		t.Fatalf("-insecure: connect %+v, TLS %+v", rep.Connect, rep.TLS)
	}
	// Another CA's certificate: every handshake fails, and says why.
	other := wstest.NewCA(t).WriteCA(t, t.TempDir())
	rep = bench(t, s.server, "connect", "-conns", "20", "-hold", "100ms", "-procs", "1", "-ca", other)
	if c := rep.Connect; c.Opened != 0 || c.Failures["tls_bad_certificate"] != 20 {
		t.Fatalf("untrusted CA: connect %+v", c)
	}
	// A wss:// URL at a plain listener.
	plain := startShardgate(t)
	plain.url = "wss://" + strings.TrimPrefix(plain.url, "ws://")
	rep = bench(t, plain, "connect", "-conns", "5", "-hold", "100ms", "-procs", "1", "-ca", s.caFile)
	if c := rep.Connect; c.Opened != 0 || c.Failed != 5 {
		t.Fatalf("plain listener: connect %+v", c)
	}
	for reason := range rep.Connect.Failures {
		if !strings.HasPrefix(reason, "tls_") {
			t.Fatalf("plain listener: failures %v, want tls_ reasons", rep.Connect.Failures)
		}
	}
}
