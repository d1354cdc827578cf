package hub

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	connections   prometheus.Gauge
	subscriptions prometheus.Gauge
	received      prometheus.Counter
	sent          prometheus.Counter
	published     prometheus.Counter
	slowConsumers prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connections:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "gorillahub_connections", Help: "Open WebSocket connections."}),
		subscriptions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "gorillahub_subscriptions", Help: "Channel subscriptions."}),
		received:      prometheus.NewCounter(prometheus.CounterOpts{Name: "gorillahub_messages_received_total", Help: "Client messages read."}),
		sent:          prometheus.NewCounter(prometheus.CounterOpts{Name: "gorillahub_messages_sent_total", Help: "Messages written to clients."}),
		published:     prometheus.NewCounter(prometheus.CounterOpts{Name: "gorillahub_publishes_total", Help: "Messages handed to the hub."}),
		slowConsumers: prometheus.NewCounter(prometheus.CounterOpts{Name: "gorillahub_slow_consumers_total", Help: "Clients dropped for a full send queue."}),
	}
	for _, c := range []prometheus.Collector{m.connections, m.subscriptions, m.received, m.sent, m.published, m.slowConsumers} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
