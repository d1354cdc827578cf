package loadgen

import (
	"strconv"
	"time"

	"github.com/shardgate/shardgate/bench/client"
	"github.com/shardgate/shardgate/bench/hist"
	"github.com/shardgate/shardgate/bench/target"
)

// Scenario names.
const (
	ScenarioConnect = "connect"
	ScenarioFanout  = "fanout"
	ScenarioEcho    = "echo"
	ScenarioSoak    = "soak"
	ScenarioChaos   = "chaos"
)

// Plan is one worker's share of a run.
type Plan struct {
	Scenario      string         `json:"scenario"`
	Target        string         `json:"target"`
	TargetOptions target.Options `json:"target_options"`
	URL           string         `json:"url"`
	// Addr is the server's address, resolved once by the parent.
	Addr string `json:"addr"`
	// Conns is this worker's number of connections; First is the run-wide
	// index of its first one (it decides channels).
	Conns     int      `json:"conns"`
	First     int      `json:"first"`
	SourceIPs []string `json:"source_ips"`
	// ConnectRate is this worker's share of the connect rate; 0: no pacing.
	ConnectRate float64 `json:"connect_rate"`
	// Inflight bounds connections that are connecting or subscribing.
	Inflight         int           `json:"inflight"`
	Channels         int           `json:"channels"`
	ChannelPrefix    string        `json:"channel_prefix"`
	Size             int           `json:"size"`
	Payload          string        `json:"payload,omitempty"` // PayloadPad or PayloadJSON
	HandshakeTimeout time.Duration `json:"handshake_timeout"`
	CloseTimeout     time.Duration `json:"close_timeout"`
	ProgressEvery    time.Duration `json:"progress_every"`
	// TLS: how a wss:// URL's certificate is checked (nil: system roots).
	TLS *TLSOptions `json:"tls,omitempty"`
	// Compress: offer permessage-deflate on every upgrade.
	Compress bool `json:"compress,omitempty"`
	// Soak is the churn this worker runs beside its steady subscribers.
	Soak *SoakPlan `json:"soak,omitempty"`
	// Chaos: every node of the cluster (connection g starts on node
	// g mod len(Nodes) and moves round them when it loses its node), and
	// how it reconnects.
	Nodes []Node     `json:"nodes,omitempty"`
	Chaos *ChaosPlan `json:"chaos,omitempty"`
}

// Node is one gateway of a cluster, for chaos clients.
type Node struct {
	URL  string `json:"url"`
	Addr string `json:"addr"`
}

// fanoutChannel names fanout channel i.
func fanoutChannel(prefix string, i int) string { return prefix + "." + strconv.Itoa(i) }

// echoChannel names the own channel of connection g (run-wide index).
func echoChannel(prefix string, g int) string { return prefix + ".echo." + strconv.Itoa(g) }

// Commands, parent → worker.
const (
	cmdStart = "start"
	cmdGo    = "go"
	cmdStop  = "stop"
)

type command struct {
	Cmd  string `json:"cmd"`
	Plan *Plan  `json:"plan,omitempty"`
	// Stream, with a soak's stop, is what was published: the worker
	// counts what its subscribers lost against it.
	Stream *streamEnd `json:"stream,omitempty"`
}

// Events, worker → parent.
const (
	evProgress = "progress"
	evReady    = "ready"
	evResult   = "result"
	evError    = "error"
	// evChurnDone: a soak worker's churn period is over and every churn
	// connection it started has ended.
	evChurnDone = "churn_done"
)

type event struct {
	Ev    string `json:"ev"`
	Stats Stats  `json:"stats"`
	// PerChannel counts subscribed connections per fanout channel (ready).
	PerChannel []int64 `json:"per_channel,omitempty"`
	// Usage is the worker's own, with ready (every connection set up).
	Usage  *Usage  `json:"usage,omitempty"`
	Result *result `json:"result,omitempty"`
	Err    string  `json:"err,omitempty"`

	// TLS is what the worker's first TLS handshake negotiated (ready).
	TLS *tlsInfo `json:"tls,omitempty"`
	// Wire is the worker's client counters (ready): bytes read, messages,
	// upgrades with and without permessage-deflate.
	Wire *client.Counters `json:"wire,omitempty"`
	// Deflate is the server's answer to the first accepted
	// permessage-deflate offer (ready), "" when none was.
	Deflate string `json:"deflate,omitempty"`
}

// Stats are a worker's running counts.
type Stats struct {
	Opened     int64 `json:"opened"`
	Failed     int64 `json:"failed"`
	Subscribed int64 `json:"subscribed"`
	Dropped    int64 `json:"dropped"`
	Delivered  int64 `json:"delivered"`
	Reordered  int64 `json:"reordered"`
	// Duplicated counts soak messages that arrived twice on a connection.
	Duplicated int64 `json:"duplicated,omitempty"`
	RoundTrips int64 `json:"round_trips"`
	// Chaos: reconnections done (resubscribed), connections between a
	// drop and their resubscription now, the answers to their recovers,
	// messages missed behind a recovered:false, and messages whose offset
	// was not above the one before on their connection.
	Reconnects     int64 `json:"reconnects,omitempty"`
	Reconnecting   int64 `json:"reconnecting,omitempty"`
	RecoveredTrue  int64 `json:"recovered_true,omitempty"`
	RecoveredFalse int64 `json:"recovered_false,omitempty"`
	Unrecoverable  int64 `json:"unrecoverable,omitempty"`
	OffsetErrors   int64 `json:"offset_errors,omitempty"`
	// Churn operations of a soak: started, and ended as expected or not.
	ChurnStarted int64 `json:"churn_started,omitempty"`
	ChurnDone    int64 `json:"churn_done,omitempty"`
	ChurnFailed  int64 `json:"churn_failed,omitempty"`
	// Unix nanoseconds of the first Dial and of the last upgrade.
	FirstDial int64 `json:"first_dial"`
	LastOpen  int64 `json:"last_open"`
}

func (s *Stats) add(o Stats) {
	s.Opened += o.Opened
	s.Failed += o.Failed
	s.Subscribed += o.Subscribed
	s.Dropped += o.Dropped
	s.Delivered += o.Delivered
	s.Reordered += o.Reordered
	s.Duplicated += o.Duplicated
	s.RoundTrips += o.RoundTrips
	s.Reconnects += o.Reconnects
	s.Reconnecting += o.Reconnecting
	s.RecoveredTrue += o.RecoveredTrue
	s.RecoveredFalse += o.RecoveredFalse
	s.Unrecoverable += o.Unrecoverable
	s.OffsetErrors += o.OffsetErrors
	s.ChurnStarted += o.ChurnStarted
	s.ChurnDone += o.ChurnDone
	s.ChurnFailed += o.ChurnFailed
	if o.FirstDial != 0 && (s.FirstDial == 0 || o.FirstDial < s.FirstDial) {
		s.FirstDial = o.FirstDial
	}
	s.LastOpen = max(s.LastOpen, o.LastOpen)
}

// result is a worker's final report.
type result struct {
	Stats     Stats            `json:"stats"`
	Failures  map[string]int64 `json:"failures,omitempty"`
	Drops     map[string]int64 `json:"drops,omitempty"`
	Errors    map[string]int64 `json:"errors,omitempty"`
	Latency   hist.Snapshot    `json:"latency"`
	Handshake hist.Snapshot    `json:"handshake"`
	// EchoStart and EchoEnd bound the echo window, Unix nanoseconds.
	EchoStart int64 `json:"echo_start,omitempty"`
	EchoEnd   int64 `json:"echo_end,omitempty"`
	// AtStop is the worker's usage when the measured phase ended, before
	// closing its connections; Usage is at the very end.
	AtStop Usage `json:"at_stop"`
	Usage  Usage `json:"usage"`
	// Wire is what the worker's connections read from ready until they
	// were closed: the client counters then, less those at ready. Stats
	// count the deliveries of the same span.
	Wire client.Counters `json:"wire"`
	// Soak: what the steady subscribers lost and how the churn went.
	Soak *soakResult `json:"soak,omitempty"`
	// Chaos: per-client checks and reconnect times.
	Chaos *chaosResult `json:"chaos,omitempty"`
}
