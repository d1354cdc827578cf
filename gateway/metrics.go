package gateway

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/shardgate/shardgate/shard"
)

// Upgrade results, the "result" label of shardgate_upgrades_total.
const (
	upgradeOK              = "ok"
	upgradeBadRequest      = "bad_request"
	upgradeUnauthorized    = "unauthorized"
	upgradeForbiddenOrigin = "forbidden_origin"
	upgradeOverCapacity    = "over_capacity"
	upgradeTimeout         = "timeout"
	upgradeTooManyPerIP    = "too_many_per_ip"
	upgradeTLSError        = "tls_error"
)

// upgradeResults lists every result label, so each exists from the start.
var upgradeResults = []string{upgradeOK, upgradeBadRequest, upgradeUnauthorized, upgradeForbiddenOrigin,
	upgradeOverCapacity, upgradeTimeout, upgradeTooManyPerIP, upgradeTLSError}

// Publish sources, the "source" label of shardgate_publishes_total.
const (
	sourceAPI    = "api"
	sourceClient = "client"
	sourceBroker = "broker"
)

// metrics holds the gateway's registry and instruments. Each gateway has
// its own registry: nothing is registered globally.
type metrics struct {
	reg             *prometheus.Registry
	connections     *prometheus.GaugeVec
	subscriptions   *prometheus.GaugeVec
	msgsReceived    *prometheus.CounterVec
	msgsSent        *prometheus.CounterVec
	bytesReceived   *prometheus.CounterVec
	bytesSent       *prometheus.CounterVec
	disconnects     *prometheus.CounterVec
	broadcast       *prometheus.HistogramVec
	upgrades        *prometheus.CounterVec
	publishes       *prometheus.CounterVec
	brokerConnected prometheus.Gauge
	brokerRejected  prometheus.Counter
	reloads         *prometheus.CounterVec
	tlsCertExpiry   prometheus.Gauge // registered only on a TLS listener (enableTLS)

	// permessage-deflate (RFC 7692)
	compressions prometheus.Counter
	deflatedSent *prometheus.CounterVec
	deflateSaved *prometheus.CounterVec
}

func newMetrics() *metrics {
	const ns = "shardgate"
	shardL := []string{"shard"}
	m := &metrics{
		reg: prometheus.NewRegistry(),
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "connections",
			Help: "Open WebSocket connections."}, shardL),
		subscriptions: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "subscriptions",
			Help: "Channel subscriptions held by open connections."}, shardL),
		msgsReceived: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "messages_received_total",
			Help: "Text messages received from clients."}, shardL),
		msgsSent: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "messages_sent_total",
			Help: "Text messages (broadcasts and replies) handed to client sockets."}, shardL),
		bytesReceived: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "bytes_received_total",
			Help: "Bytes read from client sockets after the handshake."}, shardL),
		bytesSent: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "bytes_sent_total",
			Help: "Bytes written to client sockets after the handshake."}, shardL),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "disconnects_total",
			Help: "Connections closed, by reason."}, []string{"shard", "reason"}),
		broadcast: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "broadcast_duration_seconds",
			Help:    "Time to hand one message to all of a shard's subscribers.",
			Buckets: prometheus.ExponentialBuckets(10e-6, 4, 10)}, shardL),
		upgrades: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "upgrades_total",
			Help: "WebSocket upgrade attempts, by result."}, []string{"result"}),
		publishes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "publishes_total",
			Help: "Messages published, by source."}, []string{"source"}),
		brokerConnected: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "broker_connected",
			Help: "1 while the broker is reachable."}),
		brokerRejected: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "broker_rejected_total",
			Help: "Messages from the broker dropped because they were not valid UTF-8 JSON (or were otherwise malformed)."}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "reloads_total",
			Help: "SIGHUP reloads of the TLS certificate and the JWKS, by result (error: the old ones stay)."}, []string{"result"}),
		tlsCertExpiry: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "tls_cert_expiry_timestamp_seconds",
			Help: "When the public listener's serving certificate expires (Unix time)."}),
		compressions: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "compressions_total",
			Help: "Broadcast messages compressed with permessage-deflate: once per message, shared by every shard and subscriber."}),
		deflatedSent: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "deflated_messages_sent_total",
			Help: "Broadcasts handed to client sockets compressed (permessage-deflate)."}, shardL),
		deflateSaved: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "deflate_saved_bytes_total",
			Help: "Bytes permessage-deflate kept off the wire: plain frames' size less the compressed frames' sent instead."}, shardL),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.connections, m.subscriptions, m.msgsReceived, m.msgsSent, m.bytesReceived, m.bytesSent,
		m.disconnects, m.broadcast, m.upgrades, m.publishes, m.brokerConnected, m.brokerRejected,
		m.reloads, m.compressions, m.deflatedSent, m.deflateSaved,
	)
	m.reloads.WithLabelValues(reloadOK)
	m.reloads.WithLabelValues(reloadError)
	// Every label value exists from the start, so dashboards and alerts
	// see zeros rather than missing series.
	for _, r := range upgradeResults {
		m.upgrades.WithLabelValues(r)
	}
	for _, s := range []string{sourceAPI, sourceClient, sourceBroker} {
		m.publishes.WithLabelValues(s)
	}
	return m
}

// Reload results, the "result" label of shardgate_reloads_total.
const (
	reloadOK    = "ok"
	reloadError = "error"
)

// enableTLS registers the metrics that exist only on a TLS listener.
func (m *metrics) enableTLS() { m.reg.MustRegister(m.tlsCertExpiry) }

// watchDeflate registers shardgate_compressed_connections: per shard, the
// connections that negotiated permessage-deflate, read from the shards
// when scraped.
func (m *metrics) watchDeflate(shards []*shard.Shard) {
	for _, s := range shards {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "shardgate", Name: "compressed_connections",
			Help:        "Open connections that negotiated permessage-deflate (RFC 7692).",
			ConstLabels: prometheus.Labels{"shard": strconv.Itoa(s.ID())},
		}, func() float64 { return float64(s.DeflateConns()) }))
	}
}

// forShard returns shard id's instruments, curried with its label.
func (m *metrics) forShard(id int) shard.Metrics {
	l := strconv.Itoa(id)
	sm := shard.Metrics{
		Connections:       m.connections.WithLabelValues(l),
		Subscriptions:     m.subscriptions.WithLabelValues(l),
		MessagesReceived:  m.msgsReceived.WithLabelValues(l),
		MessagesSent:      m.msgsSent.WithLabelValues(l),
		BytesReceived:     m.bytesReceived.WithLabelValues(l),
		BytesSent:         m.bytesSent.WithLabelValues(l),
		BroadcastDuration: m.broadcast.WithLabelValues(l),
		DeflatedSent:      m.deflatedSent.WithLabelValues(l),
		DeflateSavedBytes: m.deflateSaved.WithLabelValues(l),
	}
	for _, r := range shard.Reasons() {
		sm.Disconnects[r] = m.disconnects.WithLabelValues(l, r.String())
	}
	return sm
}
