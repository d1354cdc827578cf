package loadgen

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/shardgate/shardgate/bench/report"
)

// TLSOptions say how workers check a wss:// server's certificate. The
// server name they check, and send as SNI, is the URL's host.
type TLSOptions struct {
	// CAPEM holds the CA certificates to trust (shardbench -ca); empty:
	// the system's roots.
	CAPEM []byte `json:"ca_pem,omitempty"`
	// CAFile is where CAPEM came from, for the report.
	CAFile string `json:"ca_file,omitempty"`
	// Insecure skips the certificate check (shardbench -insecure).
	Insecure bool `json:"insecure,omitempty"`
}

// clientConfig is a worker's TLS configuration for a server called
// serverName. Every connection runs a full handshake: no session cache,
// as with as many distinct clients. ALPN offers http/1.1 only, the
// protocol of a WebSocket upgrade.
func (o *TLSOptions) clientConfig(serverName string) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: serverName, NextProtos: []string{"http/1.1"}}
	if o == nil {
		return cfg, nil
	}
	cfg.InsecureSkipVerify = o.Insecure
	if len(o.CAPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(o.CAPEM) {
			return nil, errors.New("loadgen: no PEM certificate in the CA file")
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// verify says how the certificate was checked, for the report.
func (o *TLSOptions) verify() string {
	switch {
	case o == nil || !o.Insecure && len(o.CAPEM) == 0:
		return "system roots"
	case o.Insecure:
		return "not verified (-insecure)"
	case o.CAFile != "":
		return "CA " + o.CAFile
	}
	return "CA given"
}

// tlsInfo is what a worker saw of TLS: its first handshake's parameters.
type tlsInfo struct {
	Version     string `json:"version"`
	CipherSuite string `json:"cipher_suite"`
	Group       string `json:"group"`
	ALPN        string `json:"alpn"`
}

func tlsInfoOf(st *tls.ConnectionState) *tlsInfo {
	if st == nil {
		return nil
	}
	return &tlsInfo{
		Version:     tls.VersionName(st.Version),
		CipherSuite: tls.CipherSuiteName(st.CipherSuite),
		Group:       st.CurveID.String(),
		ALPN:        st.NegotiatedProtocol,
	}
}

// reportTLS is the report's TLS section: the settings of the run and what
// the handshakes negotiated.
func (c *Config) reportTLS(seen *tlsInfo) *report.TLS {
	r := &report.TLS{Verify: c.TLS.verify()}
	if seen != nil {
		r.Version, r.CipherSuite, r.Group, r.ALPN = seen.Version, seen.CipherSuite, seen.Group, seen.ALPN
	}
	return r
}

// Check reports a CA file that holds no certificate.
func (o *TLSOptions) Check() error {
	if o == nil {
		return nil
	}
	if _, err := o.clientConfig("check"); err != nil {
		return fmt.Errorf("CA file %s: %w", o.CAFile, err)
	}
	return nil
}
