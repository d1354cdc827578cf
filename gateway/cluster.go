package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/shardgate/shardgate/gateway/broker"
	"github.com/shardgate/shardgate/gateway/broker/jshistory"
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
		if g.js != nil {
			deliverAt := func(channel string, offset uint64, data json.RawMessage) error {
				fromBroker.Inc()
				return g.disp.deliverAt(channel, offset, data)
			}
			rejected := func(string) { g.m.brokerRejected.Inc() }
			return newHistoryBroker(b, g.js, cfg, g.log, deliverAt, g.channelLost, rejected), nil
		}
		return b, nil
	default:
		return nil, fmt.Errorf("gateway: broker %q is not supported by this build", cfg.Broker)
	}
}

// historyOpenTimeout bounds connecting to NATS and creating or checking
// the history stream at start.
const historyOpenTimeout = 10 * time.Second

// historyReadTimeout bounds one read of the history stream for a
// subscribe or GET /api/history.
const historyReadTimeout = 5 * time.Second

// openClusterHistory opens the cluster's history stream in JetStream
// (SPEC "History and recovery", cluster). Unlike the broker it needs NATS
// at start: the stream's epoch is in every answer, and a node must not
// hand out offsets before it has checked the stream.
func (g *Gateway) openClusterHistory() error {
	cfg := g.cfg
	host, _ := os.Hostname()
	ctx, cancel := context.WithTimeout(context.Background(), historyOpenTimeout)
	defer cancel()
	js, err := jshistory.Open(ctx, cfg.Broker, jshistory.Config{
		Size:        int64(cfg.HistorySize),
		TTL:         cfg.HistoryTTL,
		Replicas:    cfg.HistoryReplicas,
		MaxBytes:    cfg.HistoryMaxBytes,
		Name:        "shardgate history " + host + " " + cfg.Listen,
		ReadTimeout: historyReadTimeout,
		Log:         g.log,
	})
	if err != nil {
		return fmt.Errorf("gateway: -history-size with -broker %s (JetStream): %w", cfg.Broker, err)
	}
	g.js = js
	g.histSrc = js.Source(historyReadTimeout)
	g.log.Info("history in JetStream", "epoch", js.Epoch(), "size", cfg.HistorySize, "ttl", cfg.HistoryTTL,
		"max_bytes", cfg.HistoryMaxBytes, "replicas", cfg.HistoryReplicas, "recover_max", cfg.RecoverMax)
	return nil
}

// channelLost runs when this node's follower of channel lost its place
// (or the node could not take one of its messages): the node can no
// longer vouch for the channel's sequence, so its subscribers are closed
// with 4010 and recover on reconnect (SPEC). Under interestMu, the close
// tasks are queued before the interest is registered anew, so every
// shard runs them before any message of the new follower; and a shard's
// next first subscriber waits for the new follower (ready turns false).
func (g *Gateway) channelLost(channel string) {
	g.interestMu.Lock()
	for _, s := range g.shards {
		s.CloseChannel(channel)
	}
	var notify []func(error)
	var outcome error
	if e := g.interest[channel]; e != nil {
		e.ready = false
		if !e.pending {
			notify, outcome = g.registerLocked(channel, e)
		}
	}
	g.interestMu.Unlock()
	for _, w := range notify {
		w(outcome)
	}
}
