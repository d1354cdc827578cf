package report

import (
	"fmt"
	"math"
	"strings"
)

// Chaos is the outcome of the chaos scenario: clients spread over a
// cluster's nodes check a numbered stream while nodes fail; a client that
// loses its node reconnects to another and recovers what it missed.
type Chaos struct {
	Nodes    []string `json:"nodes"`  // WebSocket URLs
	Admins   []string `json:"admins"` // admin APIs the stream was published through
	Channels int      `json:"channels"`
	// Clients is the number that subscribed (and were checked);
	// CleanClients got every message of their channel once and in order.
	Subscribed   int64 `json:"subscribed"`
	Clients      int64 `json:"clients"`
	CleanClients int64 `json:"clean_clients"`
	ExactlyOnce  bool  `json:"exactly_once"` // every client clean

	Published         int64   `json:"published"`
	PublishedPerAdmin []int64 `json:"published_per_admin"`
	PublishFailovers  int64   `json:"publish_failovers"` // not taken by one node, tried on the next
	PublishErrors     int64   `json:"publish_errors"`    // refused by every node or with a 4xx (number sent again later)
	PublishUnknown    int64   `json:"publish_unknown"`   // no answer: outcome unknown, not counted lost
	PublishLate       int64   `json:"publish_late"`
	Expected          int64   `json:"expected"` // published × subscribers of the channel
	Delivered         int64   `json:"delivered"`
	DeliveredPct      float64 `json:"delivered_pct"`
	Lost              int64   `json:"lost"`
	Duplicated        int64   `json:"duplicated"`
	Reordered         int64   `json:"reordered"`
	OffsetErrors      int64   `json:"offset_errors"` // offset not above the previous message's
	// Unrecoverable counts messages behind a recovered:false: not lost,
	// the client was told.
	Unrecoverable int64 `json:"unrecoverable"`

	Disconnects       int64            `json:"disconnects"`
	DisconnectReasons map[string]int64 `json:"disconnect_reasons,omitempty"`
	Reconnects        int64            `json:"reconnects"`
	NotReconnected    int64            `json:"not_reconnected"`
	AttemptFailures   map[string]int64 `json:"attempt_failures,omitempty"` // failed reconnection attempts, by reason
	RecoveredTrue     int64            `json:"recovered_true"`
	RecoveredFalse    int64            `json:"recovered_false"`
	// Reconnect is the time from losing a node to the subscribed reply
	// on another.
	Reconnect Latency    `json:"reconnect"`
	Latency   Latency    `json:"latency"` // publish request sent to message read (replays included)
	Kill      *ChaosKill `json:"kill,omitempty"`
	CaughtUp  bool       `json:"caught_up"` // everything arrived within WaitS of the last publish
	WaitS     float64    `json:"wait_s"`

	// Examples describe a few clients that lost messages (at most 5 per
	// worker): which numbers, and their last resubscribe.
	Examples []string `json:"examples,omitempty"`

	RequireRecovered bool     `json:"require_recovered"`
	Pass             bool     `json:"pass"`
	Failures         []string `json:"failures,omitempty"`
}

// ChaosKill is the SIGKILL the run sent to a node.
type ChaosKill struct {
	PID    int     `json:"pid"`
	AfterS float64 `json:"after_s"` // asked: seconds after the stream started
	AtS    float64 `json:"at_s"`    // sent
	Error  string  `json:"error,omitempty"`
}

// writeChaos writes the chaos section.
func writeChaos(t *table, c *Chaos) {
	t.printf("nodes", "%s; published through %s", strings.Join(c.Nodes, ", "), strings.Join(c.Admins, ", "))
	if k := c.Kill; k != nil {
		if k.Error != "" {
			t.printf("kill", "SIGKILL to pid %d at %.2f s failed: %s", k.PID, k.AtS, k.Error)
		} else if k.AtS > 0 {
			t.printf("kill", "SIGKILL to pid %d at %.2f s into the stream", k.PID, k.AtS)
		} else {
			t.printf("kill", "pid %d not killed (the stream ended before -kill-after %gs)", k.PID, k.AfterS)
		}
	}
	t.printf("subscribed", "%s on %d channel(s)", num(c.Subscribed), c.Channels)
	t.printf("published", "%s (per node %s; %s failovers, %s errors, %s unanswered, %s late)",
		num(c.Published), ints(c.PublishedPerAdmin), num(c.PublishFailovers), num(c.PublishErrors), num(c.PublishUnknown), num(c.PublishLate))
	pct := math.Floor(c.DeliveredPct*100) / 100
	t.printf("delivered", "%s / %s (%.2f %%): %s lost, %s duplicated, %s reordered, %s offset errors; %s unrecoverable",
		num(c.Delivered), num(c.Expected), pct, num(c.Lost), num(c.Duplicated), num(c.Reordered), num(c.OffsetErrors), num(c.Unrecoverable))
	t.printf("disconnects", "%s%s", num(c.Disconnects), reasons(c.DisconnectReasons))
	t.printf("reconnects", "%s resubscribed (%s recovered:true, %s recovered:false), %s not back at the end; %s failed attempts%s",
		num(c.Reconnects), num(c.RecoveredTrue), num(c.RecoveredFalse), num(c.NotReconnected), num(sum(c.AttemptFailures)), reasons(c.AttemptFailures))
	t.printf("reconnect time", "%s", latency(c.Reconnect))
	t.printf("latency", "%s", latency(c.Latency))
	caught := "yes"
	if !c.CaughtUp {
		caught = fmt.Sprintf("no, not within %gs", c.WaitS)
	}
	t.printf("caught up", "%s", caught)
	once := "no"
	if c.ExactlyOnce {
		once = "yes"
	}
	t.printf("exactly once", "%s: %s of %s clients got every message once, in order", once, num(c.CleanClients), num(c.Clients))
	for _, e := range c.Examples {
		t.printf("lost by", "%s", e)
	}
	t.blank()
}

// writeChaosVerdict writes PASS, or one FAIL line per failure.
func writeChaosVerdict(t *table, c *Chaos) {
	if c.Pass {
		t.printf("", "PASS: delivered exactly once per client; %s recovered:false (%s messages unrecoverable)",
			num(c.RecoveredFalse), num(c.Unrecoverable))
		return
	}
	for _, f := range c.Failures {
		t.printf("", "FAIL: %s", f)
	}
}

// ChaosFailLines are the FAIL lines of a chaos verdict.
func ChaosFailLines(c *Chaos) string {
	var b strings.Builder
	for _, f := range c.Failures {
		fmt.Fprintf(&b, "FAIL: %s\n", f)
	}
	return b.String()
}

func ints(v []int64) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = num(n)
	}
	return strings.Join(s, "/")
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}
