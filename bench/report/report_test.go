package report

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shardgate/shardgate/bench/hist"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// sample is a fanout report with every section filled in.
func sample() *Report {
	h := hist.New()
	for i := int64(1); i <= 1000; i++ {
		h.Record(i * 10_000) // 0.01 .. 10 ms
	}
	return &Report{
		Scenario: "fanout",
		Target:   "shardgate",
		URL:      "ws://127.0.0.1:8080/ws",
		AdminURL: "http://127.0.0.1:9090",
		Command:  "shardbench fanout -conns 15000 -procs 2",
		Started:  time.Date(2025, 11, 25, 13, 0, 0, 0, time.UTC),
		ElapsedS: 42.5,
		Machine:  Machine{Hostname: "bench1", CPUs: 2, CPUModel: "AMD EPYC", Kernel: "Linux 6.1.0", GoVersion: "go1.26.8"},
		Params: Params{Conns: 15000, Procs: 2, SourceIPs: []string{"127.0.0.2-127.0.0.9"}, Inflight: 1000,
			Channels: 1, Rate: 10, Size: 1024, Payload: "json", DurationS: 30},
		Connect: Connect{Attempted: 15000, Opened: 14998, Failed: 2, Failures: map[string]int64{"refused": 1, "http_503": 1},
			Seconds: 1.25, PerSecond: 11998.4, Handshake: LatencyOf(h), ServerCPUPerConnUS: 41.5},
		Fanout: &Fanout{Channels: 1, Subscribed: 14998, Published: 300, PublishS: 29.9, Expected: 4499400, Delivered: 4499400,
			DeliveredPct: 100, DeliveriesPerSecond: 150480, Latency: LatencyOf(h), ServerCPUPerDeliveryUS: 2.75,
			Wire: Wire{Bytes: 1_602_658_000, BytesPerDelivery: 356.2, MessageBytesPerDelivery: 1071.4}},
		Compression: &Compression{Offer: "permessage-deflate; client_no_context_takeover; client_max_window_bits",
			Answer:     "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
			Negotiated: 14998, CompressedMessages: 4499400, PlainMessages: 12},
		Server: Server{MetricsURL: "http://127.0.0.1:9090/metrics",
			Baseline:        &ServerSample{RSSBytes: 10 << 20, Goroutines: 12, CPUSeconds: 0.5},
			Loaded:          &ServerSample{RSSBytes: 24 << 20, Goroutines: 12, CPUSeconds: 1.1},
			End:             &ServerSample{RSSBytes: 25 << 20, Goroutines: 12, CPUSeconds: 13.5},
			RSSPerConnBytes: 1048.7, CPUSeconds: 12.4},
		Generator: Generator{Procs: 2, UserS: 5.25, SysS: 15.5, CPUPercent: 48.8, MaxRSSBytes: 31 << 20,
			MeasuredCPUS: 19.5, MeasuredCPUPercent: 63.2, PerDeliveryUS: 4.33},
		HostCPU:  &HostCPU{BusyPct: 97.3, UserPct: 10.5, SysPct: 55.2, IRQPct: 31.4, StealPct: 0.2},
		Warnings: []string{"2 connections failed"},
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestTableGolden(t *testing.T) {
	var b bytes.Buffer
	if err := WriteTable(&b, sample()); err != nil {
		t.Fatal(err)
	}
	golden(t, "fanout.txt", b.Bytes())
}

func TestJSONGolden(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, sample()); err != nil {
		t.Fatal(err)
	}
	golden(t, "fanout.json", b.Bytes())

	// Scripts read these keys: they must stay where they are.
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, path := range [][]string{
		{"connect", "per_second"}, {"fanout", "delivered"}, {"fanout", "expected"},
		{"fanout", "latency", "p99_ms"}, {"server", "rss_per_conn_bytes"}, {"generator", "cpu_pct"},
		{"fanout", "wire", "bytes_per_delivery"}, {"compression", "negotiated"},
	} {
		var v any = m
		for _, k := range path {
			v = v.(map[string]any)[k]
		}
		if v == nil {
			t.Errorf("JSON has no %v", path)
		}
	}
	if _, ok := m["echo"]; ok {
		t.Errorf("a fanout report has an echo section")
	}
}

func TestTableOtherScenarios(t *testing.T) {
	r := sample()
	r.Scenario, r.Fanout = "echo", nil
	r.Echo = &Echo{RoundTrips: 1000, Seconds: 2, PerSecond: 500, Errors: map[string]int64{"rate_limited": 3}}
	r.Server = Server{ScrapeError: "connection refused"}
	var b bytes.Buffer
	if err := WriteTable(&b, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"round trips    1,000 in 2.00 s (500/s), errors (rate_limited 3)", "latency        no samples", "server         no metrics: connection refused"} {
		if !bytes.Contains(b.Bytes(), []byte(want)) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

func TestTableTLS(t *testing.T) {
	r := sample()
	r.Scenario, r.Fanout = "connect", nil
	r.TLS = &TLS{Verify: "CA ca.pem", Version: "TLS 1.3", CipherSuite: "TLS_AES_128_GCM_SHA256", Group: "X25519MLKEM768", ALPN: "http/1.1"}
	var b bytes.Buffer
	if err := WriteTable(&b, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`tls            TLS 1.3, TLS_AES_128_GCM_SHA256, X25519MLKEM768, ALPN "http/1.1"; certificate: CA ca.pem; full handshakes (no resumption)`,
		" TLS upgrades/s)",
	} {
		if !bytes.Contains(b.Bytes(), []byte(want)) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	var j bytes.Buffer
	if err := WriteJSON(&j, r); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(j.Bytes(), []byte(`"group": "X25519MLKEM768"`)) {
		t.Errorf("JSON lacks the TLS section:\n%s", j.String())
	}
}

func TestFormatting(t *testing.T) {
	cases := []struct{ got, want string }{
		{num(0), "0"}, {num(999), "999"}, {num(1000), "1,000"}, {num(-1234567), "-1,234,567"},
		{bytesOf(512), "512 B"}, {bytesOf(1536), "1.5 KiB"}, {bytesOf(25 << 20), "25.0 MiB"}, {bytesOf(-2048), "-2.0 KiB"},
		{ms(0.0123), "0.012 ms"}, {ms(1.5), "1.50 ms"}, {ms(12.34), "12.3 ms"}, {ms(250), "250 ms"},
	}
	for _, tc := range cases {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
