package main

import "fmt"

// chaosUsage is what "shardbench chaos -h" prints before the flags.
const chaosUsage = `Proves that clients lose nothing when a cluster's nodes fail. -conns
clients (over -procs workers and -source-ips) are spread over the -url nodes
(client g on node g mod N) and subscribe to -channels channels on a gateway
with history (-history-size). For -duration the coordinator publishes a
numbered stream at -rate per second through the -admin-url nodes (a comma
list; a node that refuses the connection or answers 503 is skipped and the
next one takes the same number). With -kill-pid, that process (a node) gets
SIGKILL -kill-after into the stream.

Each client keeps the epoch and the offset of the last message it took. On
any end of its connection (close 1001 or 4010, a reset, an EOF) it dials
the next node at once (round-robin over -url, skipping nodes that refused a
connection in the last second; failed attempts back off with full jitter
from -backoff-min doubling to -backoff-max) and subscribes with
"recover":{"epoch","offset"}. It checks its stream by the number in each
message and by its offset: every message once, in order. recovered:true and
recovered:false are counted; after recovered:false the messages it missed
are counted unrecoverable (the client was told), not lost.

Up to -wait after the last publish, clients reconnect and catch up. Verdict:
FAIL (exit status 3, one "FAIL: ..." line each) when a client did not
subscribe or was not back at the end, a message was lost, duplicated,
reordered or came with an offset not above the one before, or (with
-require-recovered) a resubscribe got recovered:false. Otherwise PASS,
exit status 0: delivered exactly once per client. The report gives
disconnect reasons, reconnect time percentiles (drop to subscribed on the
next node) and publish failovers.

`

// checkChaos checks the chaos flags.
func checkChaos(o *options, targetName string, bad func(string, any, string) error) error {
	c := &o.cfg
	k := &c.Chaos
	switch {
	case targetName != "shardgate":
		return bad("target", targetName, "chaos needs shardgate's history and recovery")
	case c.Channels < 1:
		return bad("channels", c.Channels, "must be at least 1")
	case c.Rate <= 0:
		return bad("rate", c.Rate, "must be positive")
	case c.Duration > 0 && c.Duration.Seconds()*c.Rate < float64(c.Channels):
		return bad("duration", c.Duration, fmt.Sprintf("publishes less than one message per channel at -rate %g", c.Rate))
	case c.Wait <= 0:
		return bad("wait", c.Wait, "must be positive")
	case k.KillPID < 0:
		return bad("kill-pid", k.KillPID, "must not be negative")
	case k.KillPID > 0 && (k.KillAfter <= 0 || k.KillAfter >= c.Duration):
		return bad("kill-after", k.KillAfter, "must be within -duration")
	case k.BackoffMin <= 0:
		return bad("backoff-min", k.BackoffMin, "must be positive")
	case k.BackoffMax < k.BackoffMin:
		return bad("backoff-max", k.BackoffMax, "must be at least -backoff-min")
	}
	return nil
}
