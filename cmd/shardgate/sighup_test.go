package main

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/shardgate/shardgate/internal/wstest"
)

// TestSIGHUPReloadsCertificate runs the binary with -tls-cert/-tls-key,
// rewrites the files, and sends it a real SIGHUP: new handshakes then
// present the new certificate, a connection opened before keeps working
// (broadcast, publish, ping). A second SIGHUP with a broken file keeps
// the pair that serves. The process keeps running through both, and a
// SIGTERM afterwards still drains and exits 0.
func TestSIGHUPReloadsCertificate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	ca := wstest.NewCA(t)
	first := ca.Issue(t, time.Now().Add(2*time.Hour))
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first.WritePair(t, certFile, keyFile)

	bin := buildBinary(t)
	cmd, wsURL, adminURL, exited := startBinary(t, bin, "-tls-cert", certFile, "-tls-key", keyFile, "-shards", "2", "-drain-timeout", "3s")
	wssURL := "wss://" + strings.TrimPrefix(wsURL, "ws://")
	cfg := ca.ClientConfig()

	serial := func() string {
		t.Helper()
		c := wstest.DialTLS(t, wssURL, cfg, nil)
		s := c.TLSState().PeerCertificates[0].SerialNumber.Text(16)
		c.Close()
		return s
	}
	if got, want := serial(), first.Cert.SerialNumber.Text(16); got != want {
		t.Fatalf("at start the gateway presents serial %s, want %s", got, want)
	}

	open := wstest.DialTLS(t, wssURL, cfg, nil)
	open.Subscribe("hup")

	second := ca.Issue(t, time.Now().Add(3*time.Hour))
	second.WritePair(t, certFile, keyFile)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// The reload is done when the counter says so; then new handshakes
	// must present the new pair.
	waitScrape(t, adminURL, 1, "shardgate_reloads_total", "result", "ok")
	if got, want := serial(), second.Cert.SerialNumber.Text(16); got != want {
		t.Fatalf("after SIGHUP the gateway presents serial %s, want the new %s", got, want)
	}
	if got, want := scrapeSum(t, adminURL, "shardgate_tls_cert_expiry_timestamp_seconds"), float64(second.Cert.NotAfter.Unix()); got != want {
		t.Errorf("shardgate_tls_cert_expiry_timestamp_seconds = %v after SIGHUP, want %v", got, want)
	}

	// The connection opened before the signal is untouched.
	if code := httpStatus(t, http.MethodPost, adminURL+"/api/publish", `{"channel":"hup","data":"after"}`); code != http.StatusOK {
		t.Fatalf("publish: status %d", code)
	}
	if m := open.Expect("message"); string(m.Data) != `"after"` {
		t.Fatalf("open connection got %+v after SIGHUP", m)
	}
	open.Send(`{"type":"publish","channel":"hup","data":"mine","id":1}`)
	for range 2 {
		if m := open.Read(); m.Type != "published" && (m.Type != "message" || string(m.Data) != `"mine"`) {
			t.Fatalf("open connection got %+v after publishing", m)
		}
	}
	pingPong(t, open, "after SIGHUP")

	// A pair that does not load: the signal is survived, counted as an
	// error, and the pair from before keeps serving.
	wstest.WriteFileAtomic(t, certFile, []byte("not PEM\n"))
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitScrape(t, adminURL, 1, "shardgate_reloads_total", "result", "error")
	if got, want := serial(), second.Cert.SerialNumber.Text(16); got != want {
		t.Fatalf("after a failed reload the gateway presents serial %s, want still %s", got, want)
	}
	pingPong(t, open, "after a failed reload")

	select {
	case err := <-exited:
		t.Fatalf("the gateway exited after SIGHUP: %v", err)
	default:
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	open.ExpectClose(ws.StatusGoingAway)
	open.WriteFrame(ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, ""))))
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v, want status 0", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the gateway did not exit after SIGTERM")
	}
}

// pingPong expects the pong to a ping with payload, answering the
// gateway's own pings on the way.
func pingPong(t *testing.T, c *wstest.Client, payload string) {
	t.Helper()
	c.WriteFrame(ws.MaskFrame(ws.NewPingFrame([]byte(payload))))
	for {
		h, p, err := c.ReadFrame(wstest.DefaultTimeout)
		if err != nil {
			t.Fatalf("waiting for the pong to %q: %v", payload, err)
		}
		switch h.OpCode {
		case ws.OpPing:
			c.WriteFrame(ws.MaskFrame(ws.NewPongFrame(p)))
		case ws.OpPong:
			if string(p) != payload {
				t.Fatalf("pong %q, want %q", p, payload)
			}
			return
		default:
			t.Fatalf("frame %v %q while waiting for the pong to %q", h.OpCode, p, payload)
		}
	}
}

// scrapeSum reads adminURL/metrics and adds the samples of name whose
// labels include every given pair.
func scrapeSum(t *testing.T, adminURL, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(adminURL + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	dec := expfmt.SampleDecoder{
		Dec:  expfmt.NewDecoder(bufio.NewReader(resp.Body), expfmt.NewFormat(expfmt.TypeTextPlain)),
		Opts: &expfmt.DecodeOptions{Timestamp: model.Now()},
	}
	total := 0.0
	for {
		var v model.Vector
		if err := dec.Decode(&v); err != nil {
			if errors.Is(err, io.EOF) {
				return total
			}
			t.Fatalf("decode metrics: %v", err)
		}
	samples:
		for _, s := range v {
			if string(s.Metric[model.MetricNameLabel]) != name {
				continue
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if string(s.Metric[model.LabelName(labels[i])]) != labels[i+1] {
					continue samples
				}
			}
			total += float64(s.Value)
		}
	}
}

// waitScrape polls /metrics (every 10 ms, up to 10 s) until name's
// matching samples add up to want.
func waitScrape(t *testing.T, adminURL string, want float64, name string, labels ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := scrapeSum(t, adminURL, name, labels...)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v = %v, want %v (waited 10s)", name, labels, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
