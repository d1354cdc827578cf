package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// This file covers -admin-tls-cert / -admin-tls-key (SPEC "Admin API
// safety"): the admin listener serves HTTPS only, from TLS 1.2 up, and a
// pair that does not load stops the node from starting.

// selfSigned writes a fresh self-signed ECDSA certificate for 127.0.0.1
// and localhost, and its key, as PEM files in dir; it returns their paths
// and the certificate.
func selfSigned(t testing.TB, dir, name string) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "shardgate admin test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = filepath.Join(dir, name+".crt")
	keyFile = filepath.Join(dir, name+".key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", keyDER)
	return certFile, keyFile, cert
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// trustingClient is an HTTPS client that trusts cert only, capped at
// maxVersion (0: the library's default).
func trustingClient(cert *x509.Certificate, maxVersion uint16) *http.Client {
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: trusting(cert, maxVersion)},
	}
}

// trusting is a client TLS configuration that trusts cert only.
func trusting(cert *x509.Certificate, maxVersion uint16) *tls.Config {
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	return &tls.Config{RootCAs: roots, MaxVersion: maxVersion}
}

// TestAdminServesHTTPS: with -admin-tls-cert and -admin-tls-key, a client
// trusting the certificate gets /healthz, /metrics and the publish API
// over HTTPS (TLS 1.2 and 1.3); plain HTTP and TLS 1.1 get nothing, and
// the Host and Origin rules still apply.
func TestAdminServesHTTPS(t *testing.T) {
	certFile, keyFile, cert := selfSigned(t, t.TempDir(), "admin")
	g := startGateway(t, func(c *Config) {
		c.AdminTLSCert = certFile
		c.AdminTLSKey = keyFile
	})
	base := "https://" + g.AdminAddr().String()
	client := trustingClient(cert, 0)
	defer client.CloseIdleConnections()

	do := func(t *testing.T, c *http.Client, req *http.Request) (*http.Response, string) {
		t.Helper()
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", req.Method, req.URL, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	get := func(path string) *http.Request {
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		return req
	}

	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		t.Run("GET "+path, func(t *testing.T) {
			resp, body := do(t, client, get(path))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d %q, want 200", resp.StatusCode, body)
			}
			if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
				t.Fatalf("answer not over TLS 1.2+: %+v", resp.TLS)
			}
		})
	}
	t.Run("TLS 1.2", func(t *testing.T) {
		c := trustingClient(cert, tls.VersionTLS12)
		defer c.CloseIdleConnections()
		if resp, body := do(t, c, get("/healthz")); resp.StatusCode != http.StatusOK || resp.TLS.Version != tls.VersionTLS12 {
			t.Fatalf("status %d %q over %x, want 200 over TLS 1.2", resp.StatusCode, body, resp.TLS.Version)
		}
	})
	t.Run("TLS 1.1 refused", func(t *testing.T) {
		conn, err := tls.Dial("tcp", g.AdminAddr().String(), trusting(cert, tls.VersionTLS11))
		if err == nil {
			conn.Close()
			t.Fatal("TLS 1.1 handshake succeeded")
		}
	})
	t.Run("publish", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodPost, base+"/api/publish", strings.NewReader(`{"channel":"news","data":1}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if resp, body := do(t, client, req); resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d %q, want 200", resp.StatusCode, body)
		}
	})
	t.Run("foreign Host", func(t *testing.T) {
		req := get("/metrics")
		req.Host = "evil.example"
		if resp, body := do(t, client, req); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("status %d %q, want 403", resp.StatusCode, body)
		}
	})
	t.Run("plain HTTP", func(t *testing.T) {
		resp, err := http.Get("http://" + g.AdminAddr().String() + "/healthz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Fatalf("plain HTTP to the HTTPS admin listener served: %q", body)
			}
		}
	})
	t.Run("untrusted client", func(t *testing.T) {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			t.Fatal("a client that does not trust the certificate connected")
		}
	})
}

// TestAdminTLSBadPairFailsStart: a certificate or key that does not load
// makes New fail with an error naming the flag, instead of serving the
// admin API in plain HTTP.
func TestAdminTLSBadPairFailsStart(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := selfSigned(t, dir, "good")
	otherCert, otherKey, _ := selfSigned(t, dir, "other")
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not PEM\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")

	cases := []struct {
		name, cert, key string
		flags           []string // each must appear in the error
	}{
		{"missing certificate file", missing, keyFile, []string{"-admin-tls-cert"}},
		{"missing key file", certFile, missing, []string{"-admin-tls-key"}},
		{"certificate not PEM", garbage, keyFile, []string{"-admin-tls-cert", "-admin-tls-key"}},
		{"key not PEM", certFile, garbage, []string{"-admin-tls-cert", "-admin-tls-key"}},
		{"key of another certificate", certFile, otherKey, []string{"-admin-tls-cert", "-admin-tls-key"}},
		{"certificate of another key", otherCert, keyFile, []string{"-admin-tls-cert", "-admin-tls-key"}},
		{"key and certificate swapped", keyFile, certFile, []string{"-admin-tls-cert", "-admin-tls-key"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Defaults()
			cfg.Listen = "127.0.0.1:0"
			cfg.Admin = "127.0.0.1:0"
			cfg.Shards = 1
			cfg.AdminTLSCert = tc.cert
			cfg.AdminTLSKey = tc.key
			// New must fail promptly: a failure after the node started
			// parts of itself would have to undo them.
			type result struct {
				g   *Gateway
				err error
			}
			started := make(chan result, 1)
			go func() {
				g, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
				started <- result{g, err}
			}()
			var g *Gateway
			var err error
			select {
			case r := <-started:
				g, err = r.g, r.err
			case <-time.After(10 * time.Second):
				t.Fatal("New did not return within 10s")
			}
			if err == nil {
				g.Shutdown()
				t.Fatal("New succeeded with a bad admin certificate pair")
			}
			for _, flag := range tc.flags {
				if !strings.Contains(err.Error(), flag) {
					t.Errorf("error %q does not name %s", err, flag)
				}
			}
		})
	}
}
