package gateway

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/shardgate/shardgate/gateway/broker"
	"github.com/shardgate/shardgate/gateway/broker/natsbroker"
)

// newBroker builds the broker -broker names: the in-process one, or NATS
// for a cluster. Both hand messages to the dispatcher, which encodes each
// once per node.
//
// With NATS the node starts even when the server is down: it reports not
// ready (and shardgate_broker_connected 0) and connects when NATS appears,
// so nodes and NATS may start in any order.
func (g *Gateway) newBroker() (broker.Broker, error) {
	cfg := g.cfg
	switch {
	case cfg.Broker == "memory":
		g.m.brokerConnected.Set(1)
		return broker.NewMemoryReceipts(g.disp.deliverReceipt, g.disconnectLocal), nil
	case strings.HasPrefix(cfg.Broker, "nats://"):
		// shardgate_publishes_total{source="broker"} counts every message
		// the node takes from NATS for local delivery, its own publishes
		// included (they too reach local subscribers only through NATS).
		// Summed over nodes it is the cluster's delivery work; compared
		// with api+client of all nodes it shows how far messages spread.
		fromBroker := g.m.publishes.WithLabelValues(sourceBroker)
		deliver := func(channel string, data json.RawMessage) error {
			fromBroker.Inc()
			return g.disp.deliver(channel, data)
		}
		host, _ := os.Hostname()
		b, err := natsbroker.New(cfg.Broker, deliver, natsbroker.Options{
			Name:            "shardgate " + host + " " + cfg.Listen,
			MaxMessageBytes: cfg.MaxMessageBytes,
			Log:             g.log,
			OnDisconnect:    g.disconnectLocal,
			OnRejected:      g.m.brokerRejected.Inc,
			OnStateChange: func(connected bool) {
				if connected {
					g.m.brokerConnected.Set(1)
				} else {
					g.m.brokerConnected.Set(0)
				}
			},
		})
		if err != nil {
			return nil, fmt.Errorf("gateway: -broker: %w", err)
		}
		return b, nil
	default:
		return nil, fmt.Errorf("gateway: broker %q is not supported by this build", cfg.Broker)
	}
}
