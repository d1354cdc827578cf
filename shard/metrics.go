package shard

import "github.com/prometheus/client_golang/prometheus"

// Reason says why a connection was closed; it is the "reason" label of
// shardgate_disconnects_total.
type Reason uint8

// Disconnect reasons, as named by the spec.
const (
	ReasonClientClose Reason = iota
	ReasonIdleTimeout
	ReasonSlowConsumer
	ReasonProtocolError
	ReasonShutdown
	ReasonIOError
	ReasonRateLimit
	ReasonTokenExpired
	ReasonKicked
	ReasonInsufficientState
	numReasons
)

var reasonNames = [numReasons]string{
	ReasonClientClose:       "client_close",
	ReasonIdleTimeout:       "idle_timeout",
	ReasonSlowConsumer:      "slow_consumer",
	ReasonProtocolError:     "protocol_error",
	ReasonShutdown:          "shutdown",
	ReasonIOError:           "io_error",
	ReasonRateLimit:         "rate_limit",
	ReasonTokenExpired:      "token_expired",
	ReasonKicked:            "kicked",
	ReasonInsufficientState: "insufficient_state",
}

// String returns the metric label of r.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Reasons lists every Reason, in label order.
func Reasons() []Reason {
	rs := make([]Reason, numReasons)
	for i := range rs {
		rs[i] = Reason(i)
	}
	return rs
}

// Metrics are one shard's instruments, already curried with its shard
// label by the gateway. Counters are bumped once per batch where possible,
// not once per delivery.
type Metrics struct {
	Connections       prometheus.Gauge
	Subscriptions     prometheus.Gauge
	MessagesReceived  prometheus.Counter
	MessagesSent      prometheus.Counter
	BytesReceived     prometheus.Counter
	BytesSent         prometheus.Counter
	Disconnects       [numReasons]prometheus.Counter
	BroadcastDuration prometheus.Observer
	// DeflatedSent counts broadcasts handed to sockets compressed
	// (permessage-deflate), and DeflateSavedBytes what that kept off the
	// wire: the plain frames' size less the compressed ones'.
	DeflatedSent      prometheus.Counter
	DeflateSavedBytes prometheus.Counter
}

// NopMetrics returns instruments that record nothing, for tests and
// benchmarks that do not look at them.
func NopMetrics() Metrics {
	g := func() prometheus.Gauge { return prometheus.NewGauge(prometheus.GaugeOpts{Name: "nop"}) }
	c := func() prometheus.Counter { return prometheus.NewCounter(prometheus.CounterOpts{Name: "nop"}) }
	m := Metrics{
		Connections: g(), Subscriptions: g(),
		MessagesReceived: c(), MessagesSent: c(), BytesReceived: c(), BytesSent: c(),
		DeflatedSent: c(), DeflateSavedBytes: c(),
		BroadcastDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "nop"}),
	}
	for i := range m.Disconnects {
		m.Disconnects[i] = c()
	}
	return m
}
