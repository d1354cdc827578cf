// Package report holds the outcome of one shardbench run and writes it as a
// human table and as JSON.
//
// The JSON form is read by scripts (scripts/compare.sh builds its results
// file from it), so its field names are stable and carry their unit:
// _ms (milliseconds), _s (seconds), _us (microseconds), _bytes. Counters
// are integers; a section of a scenario that did not run is absent.
package report

import (
	"encoding/json"
	"io"
	"time"

	"github.com/shardgate/shardgate/bench/hist"
)

// Report is one run of one scenario against one target.
type Report struct {
	Scenario string    `json:"scenario"`
	Target   string    `json:"target"`
	URL      string    `json:"url"`
	AdminURL string    `json:"admin_url"`
	Command  string    `json:"command"`
	Started  time.Time `json:"started"`
	ElapsedS float64   `json:"elapsed_s"`
	Machine  Machine   `json:"machine"`
	Params   Params    `json:"params"`
	TLS      *TLS      `json:"tls,omitempty"` // wss:// runs only

	// Compression: the permessage-deflate offer of a -compress run.
	Compression *Compression `json:"compression,omitempty"`

	Connect   Connect   `json:"connect"`
	Fanout    *Fanout   `json:"fanout,omitempty"`
	Echo      *Echo     `json:"echo,omitempty"`
	Soak      *Soak     `json:"soak,omitempty"`
	Chaos     *Chaos    `json:"chaos,omitempty"`
	Server    Server    `json:"server"`
	Generator Generator `json:"generator"`
	// HostCPU is the whole machine during the measured phase: what
	// neither process's own CPU time shows, such as the loopback network's
	// softirq work, or a machine with no idle time left.
	HostCPU  *HostCPU `json:"host_cpu,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	Hostname  string `json:"hostname"`
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
}

// Params are the settings the run used.
type Params struct {
	Conns       int      `json:"conns"`
	Procs       int      `json:"procs"`
	SourceIPs   []string `json:"source_ips,omitempty"`
	ConnectRate float64  `json:"connect_rate"` // connections per second; 0: as fast as Inflight allows
	Inflight    int      `json:"inflight"`     // connects in progress at once, per worker
	HoldS       float64  `json:"hold_s,omitempty"`
	Channels    int      `json:"channels,omitempty"`
	Rate        float64  `json:"rate,omitempty"` // fanout: messages per second
	Size        int      `json:"size,omitempty"` // bytes of each message's data
	// Payload is what fills each message's data: "pad" or "json".
	Payload   string  `json:"payload,omitempty"`
	DurationS float64 `json:"duration_s,omitempty"`
}

// Connect is the setup of the connections, part of every scenario.
type Connect struct {
	Attempted int64            `json:"attempted"`
	Opened    int64            `json:"opened"`
	Failed    int64            `json:"failed"`
	Failures  map[string]int64 `json:"failures,omitempty"` // by reason
	// Dropped counts connections the server closed after the upgrade,
	// before the end of the run.
	Dropped     int64            `json:"dropped"`
	DropReasons map[string]int64 `json:"drop_reasons,omitempty"`
	Seconds     float64          `json:"seconds"`    // first connect to last upgrade
	PerSecond   float64          `json:"per_second"` // upgrades per second over Seconds
	Handshake   Latency          `json:"handshake"`  // connect(2) to 101
	// ServerCPUPerConnUS is the server's CPU time spent while connecting,
	// per opened connection.
	ServerCPUPerConnUS float64 `json:"server_cpu_per_conn_us,omitempty"`
}

// TLS describes the TLS of a wss:// run: every connection's handshake
// is a full one (no session resumption), so Connect.PerSecond counts TLS
// handshakes plus upgrades per second.
type TLS struct {
	Verify      string `json:"verify"`       // how the server's certificate was checked
	Version     string `json:"version"`      // negotiated, e.g. "TLS 1.3"
	CipherSuite string `json:"cipher_suite"` // e.g. "TLS_AES_128_GCM_SHA256"
	Group       string `json:"group"`        // key exchange, e.g. "X25519MLKEM768"
	ALPN        string `json:"alpn"`
}

// Compression is what came of offering permessage-deflate (RFC 7692).
type Compression struct {
	Offer string `json:"offer"` // the Sec-WebSocket-Extensions value sent
	// Answer is the server's, from the first upgrade that accepted; ""
	// when every offer was declined.
	Answer string `json:"answer,omitempty"`
	// Negotiated and Declined count upgrades that accepted the offer and
	// upgrades that did not (101 without the extension).
	Negotiated int64 `json:"negotiated"`
	Declined   int64 `json:"declined"`
	// CompressedMessages and PlainMessages count the data messages of the
	// measured phase that arrived compressed (RSV1) and those that did not.
	CompressedMessages int64 `json:"compressed_messages"`
	PlainMessages      int64 `json:"plain_messages"`
	// Inflations is how many of the compressed messages the generator
	// really inflated: a broadcast's copies arrive as the same bytes, and
	// each worker inflates them once (bench/client, deflate.go).
	Inflations int64 `json:"inflations"`
}

// Wire is what the clients read from their sockets in the measured phase,
// from every connection set up to the end: whole frames, headers
// included, and everything else the server sent meanwhile (pings,
// replies). Over wss:// it counts the WebSocket bytes inside the TLS
// records, not the records.
type Wire struct {
	Bytes int64 `json:"bytes"`
	// BytesPerDelivery is Bytes per delivered message (fanout) or round
	// trip (echo): the network cost of one delivery.
	BytesPerDelivery float64 `json:"bytes_per_delivery"`
	// MessageBytesPerDelivery is what the messages held after inflation,
	// per delivery: the size the application sees.
	MessageBytesPerDelivery float64 `json:"message_bytes_per_delivery"`
}

// Fanout is the outcome of the fanout scenario.
type Fanout struct {
	Channels      int     `json:"channels"`
	Subscribed    int64   `json:"subscribed"`
	Published     int64   `json:"published"`
	PublishErrors int64   `json:"publish_errors"`
	PublishLate   int64   `json:"publish_late"` // sent more than one interval after their time
	PublishS      float64 `json:"publish_s"`    // first to last publish
	Expected      int64   `json:"expected"`     // published × subscribers of the channel
	Delivered     int64   `json:"delivered"`
	DeliveredPct  float64 `json:"delivered_pct"`
	// Reordered counts messages that arrived on a connection after a later
	// one of the same channel, or twice.
	Reordered           int64            `json:"reordered"`
	DeliveriesPerSecond float64          `json:"deliveries_per_second"`
	Latency             Latency          `json:"latency"` // publish request sent to message read
	Errors              map[string]int64 `json:"errors,omitempty"`
	// ServerCPUPerDeliveryUS is the server's CPU time from the first
	// publish until every message was in, per delivered message.
	ServerCPUPerDeliveryUS float64 `json:"server_cpu_per_delivery_us,omitempty"`
	// Wire is the bytes the clients read, per delivery.
	Wire Wire `json:"wire"`
}

// Echo is the outcome of the echo scenario.
type Echo struct {
	RoundTrips int64            `json:"round_trips"`
	Seconds    float64          `json:"seconds"`
	PerSecond  float64          `json:"per_second"`
	Latency    Latency          `json:"latency"` // publish frame sent to own message read
	Errors     map[string]int64 `json:"errors,omitempty"`
	// Wire is the bytes the clients read, per round trip (the reply to
	// the publish included).
	Wire Wire `json:"wire"`
}

// Latency summarises a histogram, in milliseconds.
type Latency struct {
	Count  uint64  `json:"count"`
	MeanMS float64 `json:"mean_ms"`
	P50MS  float64 `json:"p50_ms"`
	P90MS  float64 `json:"p90_ms"`
	P99MS  float64 `json:"p99_ms"`
	P999MS float64 `json:"p99_9_ms"`
	MaxMS  float64 `json:"max_ms"`
}

// LatencyOf summarises h, whose values are nanoseconds.
func LatencyOf(h *hist.Histogram) Latency {
	ms := func(ns int64) float64 { return round(float64(ns)/1e6, 4) }
	return Latency{
		Count:  h.Count(),
		MeanMS: round(h.Mean()/1e6, 4),
		P50MS:  ms(h.Percentile(50)),
		P90MS:  ms(h.Percentile(90)),
		P99MS:  ms(h.Percentile(99)),
		P999MS: ms(h.Percentile(99.9)),
		MaxMS:  ms(h.Max()),
	}
}

// Server is what the server's /metrics said during the run.
type Server struct {
	MetricsURL string `json:"metrics_url"`
	// Baseline: before the first connection. Loaded: every connection set
	// up, before the measured phase (hold, publishing, echo). End: after
	// it, connections still open.
	Baseline *ServerSample `json:"baseline,omitempty"`
	Loaded   *ServerSample `json:"loaded,omitempty"`
	End      *ServerSample `json:"end,omitempty"`
	// Per opened connection, End against Baseline.
	RSSPerConnBytes   float64 `json:"rss_per_conn_bytes,omitempty"`
	GoroutinesPerConn float64 `json:"goroutines_per_conn"`
	// CPUSeconds is the server's CPU time in the measured phase.
	CPUSeconds  float64 `json:"cpu_s"`
	ScrapeError string  `json:"scrape_error,omitempty"`
}

// ServerSample is one scrape.
type ServerSample struct {
	RSSBytes   float64 `json:"rss_bytes"`
	Goroutines float64 `json:"goroutines"`
	CPUSeconds float64 `json:"cpu_s"`
}

// Generator is the load generator's own cost, parent and workers together.
type Generator struct {
	Procs       int     `json:"procs"`
	UserS       float64 `json:"user_s"`
	SysS        float64 `json:"sys_s"`
	CPUPercent  float64 `json:"cpu_pct"` // of one core over the run
	MaxRSSBytes int64   `json:"max_rss_bytes"`
	// MeasuredCPUS is the generator's CPU time in the measured phase
	// (hold, publishing and draining, or echo), and MeasuredCPUPercent
	// that as a share of one core.
	MeasuredCPUS       float64 `json:"measured_cpu_s"`
	MeasuredCPUPercent float64 `json:"measured_cpu_pct,omitempty"`
	// PerDeliveryUS is MeasuredCPUS per delivered message or round trip.
	PerDeliveryUS float64 `json:"cpu_per_delivery_us,omitempty"`
}

// HostCPU splits the machine's CPU time (all cores) in percent.
type HostCPU struct {
	BusyPct  float64 `json:"busy_pct"`
	UserPct  float64 `json:"user_pct"`
	SysPct   float64 `json:"sys_pct"`
	IRQPct   float64 `json:"irq_pct"` // hard and soft interrupts: loopback packets
	StealPct float64 `json:"steal_pct"`
}

// WriteJSON writes r as indented JSON.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// round rounds v to digits decimal places, for stable JSON.
func round(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	if v < 0 {
		return -float64(int64(-v*p+0.5)) / p
	}
	return float64(int64(v*p+0.5)) / p
}
