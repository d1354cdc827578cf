package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/shardgate/shardgate/bench/loadgen"
	"github.com/shardgate/shardgate/bench/target"
)

// errHelp: -h was asked for and usage was printed.
var errHelp = errors.New("help requested")

// defaultSourceIPs spread client sockets over eight loopback addresses, so
// that 4-tuples, not one address's ephemeral ports, bound a run.
const defaultSourceIPs = "127.0.0.2-127.0.0.9"

// fdReserve is what a worker keeps free of connections under its
// open-file limit: stdio, epoll, eventfd and the Go runtime's own.
const fdReserve = 64

type options struct {
	cfg      loadgen.Config
	jsonPath string
}

const usageHead = `usage: shardbench <scenario> [flags]

scenarios:
  connect  open -conns connections at -rate per second, hold them -hold;
           report upgrades/s, failures, server RSS and goroutines per connection
  fanout   -conns connections on -channels channels; publish -rate messages/s
           of -size bytes through the admin API for -duration; report
           delivered/expected, latency percentiles, deliveries/s
  echo     each connection publishes to its own channel and waits for its
           message; report round trips/s and latency percentiles
  soak     -conns steady subscribers check a numbered stream for -duration
           while connections churn and misbehave beside them; sample the
           server's fds, goroutines, RSS and connections; PASS or FAIL
           (exit 3) on loss, duplicates, reordering, churn the server got
           wrong, or a leak
  chaos    -conns clients spread over a cluster's -url nodes check a numbered
           stream published through one or more -admin-url nodes while nodes
           fail (-kill-pid/-kill-after: SIGKILL one mid-flood); clients that
           lose their node reconnect to another and recover; PASS or FAIL
           (exit 3) on loss, duplicates or reordering per client

Targets are loopback unless -url and -admin-url both name another host.
Run "shardbench <scenario> -h" for the flags of a scenario.
`

// parseArgs turns the command line into a run. Errors are one line naming
// the flag at fault; -h prints usage to out and returns errHelp.
func parseArgs(args []string, out io.Writer) (options, error) {
	if len(args) == 0 {
		return options{}, errors.New("missing scenario (connect, fanout, echo, soak or chaos); see shardbench -h")
	}
	scenario := args[0]
	switch scenario {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(out, usageHead)
		return options{}, errHelp
	case loadgen.ScenarioConnect, loadgen.ScenarioFanout, loadgen.ScenarioEcho, loadgen.ScenarioSoak, loadgen.ScenarioChaos:
	default:
		return options{}, fmt.Errorf("unknown scenario %q (want connect, fanout, echo, soak or chaos)", scenario)
	}

	var (
		o                         options
		c                         = &o.cfg
		targetName, urlS, adminS  string
		sourceS, token, apiKey    string
		caFile                    string
		insecure                  bool
		connRate                  float64
		defaultConns, defaultSize int
		defaultDuration           time.Duration
		behaviours                string
		rssSlackMiB               float64
		payload                   string
	)
	c.Scenario = scenario
	switch scenario {
	case loadgen.ScenarioConnect:
		defaultConns = 1000
	case loadgen.ScenarioFanout:
		defaultConns, defaultSize, defaultDuration = 1000, 256, 10*time.Second
	case loadgen.ScenarioEcho:
		defaultConns, defaultSize, defaultDuration = 100, 64, 10*time.Second
	case loadgen.ScenarioSoak:
		defaultConns, defaultSize, defaultDuration = 1000, 64, 60*time.Second
	case loadgen.ScenarioChaos:
		defaultConns, defaultSize, defaultDuration = 3000, 64, 60*time.Second
	}

	fs := flag.NewFlagSet("shardbench "+scenario, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&targetName, "target", "shardgate", "server kind: "+strings.Join(target.Names(), ", "))
	fs.StringVar(&urlS, "url", "", "WebSocket URL (ws:// or wss://), or a comma list of a cluster's nodes (default: the target's, on 127.0.0.1;\nwss:// with -ca or -insecure)")
	fs.StringVar(&caFile, "ca", "", "wss://: trust the CA certificates in this PEM file (default: the system's roots)")
	fs.BoolVar(&insecure, "insecure", false, "wss://: do not verify the server's certificate (for a test setup only)")
	fs.StringVar(&adminS, "admin-url", "", "base URL of the server's HTTP API: metrics, publish (default: the target's)")
	fs.StringVar(&sourceS, "source-ips", defaultSourceIPs, `client source addresses: list or ranges, "none" for the kernel's choice`)
	fs.IntVar(&c.Procs, "procs", 0, "worker processes (0: as few as the open-file limit allows)")
	fs.StringVar(&o.jsonPath, "json", "", `also write the report as JSON to this file ("-": JSON on stdout instead of the table)`)
	fs.IntVar(&c.Conns, "conns", defaultConns, "connections")
	fs.IntVar(&c.Inflight, "inflight", 1000, "connections being set up at once, per worker")
	fs.DurationVar(&c.HandshakeTimeout, "timeout", 10*time.Second, "connect plus upgrade (plus subscribe) time limit per connection")
	fs.StringVar(&token, "token", "", "client token (shardgate: JWT sent as Authorization: Bearer)")
	fs.StringVar(&apiKey, "api-key", "", "publish API credential (shardgate: -admin-token)")
	fs.StringVar(&c.ChannelPrefix, "channel-prefix", "bench", "prefix of the channels the run uses")
	fs.BoolVar(&c.Compress, "compress", false, "offer permessage-deflate (RFC 7692) on every upgrade, as browsers do; inflate what the server\ncompresses; report how many upgrades accepted (the server may decline) and the bytes read per delivery")
	switch scenario {
	case loadgen.ScenarioConnect:
		fs.Float64Var(&connRate, "rate", 0, "connections per second (0: as fast as -inflight allows)")
		fs.DurationVar(&c.Hold, "hold", 5*time.Second, "how long to hold the connections open")
	case loadgen.ScenarioFanout:
		fs.Float64Var(&connRate, "connect-rate", 0, "connections per second (0: as fast as -inflight allows)")
		fs.IntVar(&c.Channels, "channels", 1, "channels; connection i subscribes to channel i mod -channels")
		fs.Float64Var(&c.Rate, "rate", 10, "messages per second, over all channels")
		fs.IntVar(&c.Size, "size", defaultSize, "bytes of each message's data")
		fs.StringVar(&payload, "payload", loadgen.PayloadPad, payloadUsage)
		fs.DurationVar(&c.Duration, "duration", defaultDuration, "how long to publish")
		fs.DurationVar(&c.Wait, "wait", 10*time.Second, "how long to wait after the last publish for undelivered messages")
	case loadgen.ScenarioEcho:
		fs.Float64Var(&connRate, "connect-rate", 0, "connections per second (0: as fast as -inflight allows)")
		fs.IntVar(&c.Size, "size", defaultSize, "bytes of each message's data")
		fs.StringVar(&payload, "payload", loadgen.PayloadPad, payloadUsage)
		fs.DurationVar(&c.Duration, "duration", defaultDuration, "how long to run round trips")
	case loadgen.ScenarioSoak:
		s := &c.Soak
		fs.Float64Var(&connRate, "connect-rate", 0, "steady connections per second (0: as fast as -inflight allows)")
		fs.IntVar(&c.Channels, "channels", 4, "stream channels; steady connection i subscribes to channel i mod -channels")
		fs.Float64Var(&c.Rate, "rate", 10, "stream messages per second, over all channels")
		fs.IntVar(&c.Size, "size", defaultSize, "bytes of each stream message's data")
		fs.DurationVar(&c.Duration, "duration", defaultDuration, "how long to publish the stream and churn")
		fs.Float64Var(&s.Churn, "churn", 10, "churn connections started per second, going round -behaviours (0: none)")
		fs.StringVar(&behaviours, "behaviours", strings.Join(loadgen.Behaviours(), ","), "churn behaviours, comma list")
		fs.DurationVar(&s.Hold, "churn-hold", 2*time.Second, "how long a clean, abrupt, silent or ping-flood connection lives")
		fs.DurationVar(&s.Stall, "stall", 10*time.Second, "how long a stop-reading connection does not read (the server must close it meanwhile)")
		fs.DurationVar(&s.ServerTimeout, "server-timeout", 20*time.Second, "how long churn waits for the server's part: dropping a stalled handshake (longer than its\n-handshake-timeout), closing after a malformed frame or a stopped reader")
		fs.IntVar(&s.PingFlood, "ping-flood", 1000, "pings a ping-flood connection sends without reading")
		fs.Float64Var(&s.BallastRate, "ballast-rate", 50, "ballast messages per second to the channel of stop-reading connections")
		fs.IntVar(&s.BallastSize, "ballast-size", 32<<10, "bytes of each ballast message's data (under the server's -max-message-bytes)")
		fs.DurationVar(&s.SampleInterval, "sample-interval", 10*time.Second, "period of the server /metrics samples")
		fs.DurationVar(&s.Settle, "settle", 15*time.Second, "how long, after the churn, the server may take to deliver the rest and release resources")
		fs.Float64Var(&s.Limits.OpenFDs, "fd-slack", 20, "open fds the server may hold above the start sample at the end")
		fs.Float64Var(&s.Limits.Goroutines, "goroutine-slack", 10, "goroutines the server may run above the start sample at the end")
		fs.Float64Var(&s.Limits.RSSPct, "rss-slack-pct", 25, "RSS growth allowed at the end, percent of the RSS baseline")
		fs.Float64Var(&rssSlackMiB, "rss-slack-mib", 20, "RSS growth allowed at the end on top of -rss-slack-pct, MiB")
	case loadgen.ScenarioChaos:
		k := &c.Chaos
		fs.Float64Var(&connRate, "connect-rate", 0, "client connections per second at the start (0: as fast as -inflight allows)")
		fs.IntVar(&c.Channels, "channels", 1, "stream channels; client i subscribes to channel i mod -channels")
		fs.Float64Var(&c.Rate, "rate", 100, "stream messages per second, over all channels")
		fs.IntVar(&c.Size, "size", defaultSize, "bytes of each stream message's data")
		fs.DurationVar(&c.Duration, "duration", defaultDuration, "how long to publish the stream")
		fs.DurationVar(&c.Wait, "wait", 30*time.Second, "how long, after the last publish, clients may take to reconnect and catch up")
		fs.IntVar(&k.KillPID, "kill-pid", 0, "send SIGKILL to this process (a node) -kill-after into the stream (0: kill nothing)")
		fs.DurationVar(&k.KillAfter, "kill-after", 20*time.Second, "when to send SIGKILL to -kill-pid, after the stream started")
		fs.DurationVar(&k.BackoffMin, "backoff-min", 50*time.Millisecond, "first bound of the jittered wait between failed reconnection attempts")
		fs.DurationVar(&k.BackoffMax, "backoff-max", 2*time.Second, "largest bound of that wait (it doubles per failed attempt)")
		fs.BoolVar(&k.RequireRecovered, "require-recovered", false, "FAIL on any recovered:false (history is sized to cover the outage)")
	}

	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(out, "usage: shardbench %s [flags]\n\n", scenario)
			if scenario == loadgen.ScenarioSoak {
				fmt.Fprint(out, soakUsage)
			}
			if scenario == loadgen.ScenarioChaos {
				fmt.Fprint(out, chaosUsage)
			}
			fmt.Fprint(out, "flags:\n")
			fs.SetOutput(out)
			fs.PrintDefaults()
			return options{}, errHelp
		}
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected argument %q after the flags", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	c.ConnectRate = connRate

	bad := func(name string, v any, why string) error {
		return fmt.Errorf("invalid value %v for flag -%s: %s", v, name, why)
	}
	if !slices.Contains(target.Names(), targetName) {
		return options{}, bad("target", fmt.Sprintf("%q", targetName), "want one of "+strings.Join(target.Names(), ", "))
	}
	tgt, err := target.New(targetName, target.Options{Token: token, APIKey: apiKey})
	if err != nil {
		return options{}, bad("target", targetName, err.Error())
	}
	c.Target, c.TargetOptions = targetName, target.Options{Token: token, APIKey: apiKey}

	switch {
	case c.Conns < 1:
		return options{}, bad("conns", c.Conns, "must be at least 1")
	case c.Procs < 0:
		return options{}, bad("procs", c.Procs, "must not be negative")
	case c.Inflight < 1:
		return options{}, bad("inflight", c.Inflight, "must be at least 1")
	case c.HandshakeTimeout <= 0:
		return options{}, bad("timeout", c.HandshakeTimeout, "must be positive")
	case connRate < 0 && scenario == loadgen.ScenarioConnect:
		return options{}, bad("rate", connRate, "must not be negative")
	case connRate < 0:
		return options{}, bad("connect-rate", connRate, "must not be negative")
	case c.Hold < 0:
		return options{}, bad("hold", c.Hold, "must not be negative")
	case len(c.ChannelPrefix) > 100 || !validChannel(c.ChannelPrefix):
		return options{}, bad("channel-prefix", fmt.Sprintf("%q", c.ChannelPrefix), "must be 1-100 bytes of A-Z a-z 0-9 . _ : @ -")
	}
	if scenario == loadgen.ScenarioFanout {
		switch {
		case c.Channels < 1:
			return options{}, bad("channels", c.Channels, "must be at least 1")
		case c.Rate <= 0:
			return options{}, bad("rate", c.Rate, "must be positive")
		case c.Duration.Seconds()*c.Rate < 1:
			return options{}, bad("duration", c.Duration, fmt.Sprintf("publishes nothing at -rate %g", c.Rate))
		case c.Wait < 0:
			return options{}, bad("wait", c.Wait, "must not be negative")
		}
	}
	if scenario == loadgen.ScenarioSoak {
		if err := checkSoak(&o, behaviours, rssSlackMiB, bad); err != nil {
			return options{}, err
		}
	}
	if scenario == loadgen.ScenarioChaos {
		if err := checkChaos(&o, targetName, bad); err != nil {
			return options{}, err
		}
	}
	if set["payload"] {
		if !slices.Contains(loadgen.Payloads(), payload) {
			return options{}, bad("payload", fmt.Sprintf("%q", payload), "want "+strings.Join(loadgen.Payloads(), " or "))
		}
		c.Payload = payload
	}
	if scenario != loadgen.ScenarioConnect {
		switch {
		case c.Size < 0 || c.Size > 16<<20:
			return options{}, bad("size", c.Size, "must be between 0 and 16777216")
		case c.Duration <= 0:
			return options{}, bad("duration", c.Duration, "must be positive")
		}
	}

	// Where to: loopback by default; another host only when the user names
	// both the WebSocket and the admin URL.
	tlsAsked := set["ca"] || set["insecure"]
	if urlS == "" {
		urlS = tgt.DefaultURL()
		if tlsAsked {
			urlS = "wss://" + strings.TrimPrefix(urlS, "ws://")
		}
	}
	if adminS == "" {
		adminS = tgt.DefaultAdminURL()
	}
	// -url may list several nodes of one cluster (comma-separated): the
	// workers are dealt over them round-robin, and publishes go to the
	// single -admin-url, so fan-out crosses nodes through the broker.
	const why = "not a loopback address: to target another host, give both -url and -admin-url"
	var addr netip.AddrPort
	for i, one := range strings.Split(urlS, ",") {
		wsURL, a, err := checkURL("url", strings.TrimSpace(one), "ws", "wss")
		if err != nil {
			return options{}, err
		}
		if i > 0 && !strings.HasPrefix(c.URL, wsURL.Scheme+"://") {
			return options{}, bad("url", fmt.Sprintf("%q", urlS), "mixes ws:// and wss://")
		}
		if !(set["url"] && set["admin-url"]) && !a.Addr().IsLoopback() {
			return options{}, bad("url", fmt.Sprintf("%q", urlS), why)
		}
		if i == 0 {
			addr = a
			c.URL, c.Addr = wsURL.String(), a
		}
		c.URLs = append(c.URLs, wsURL.String())
		c.Addrs = append(c.Addrs, a)
	}
	if err := checkTLS(&o, caFile, insecure, tlsAsked, bad); err != nil {
		return options{}, err
	}
	// chaos: -admin-url may list several nodes too (the stream fails over
	// between them); metrics come from the first.
	adminList := []string{adminS}
	if scenario == loadgen.ScenarioChaos {
		adminList = strings.Split(adminS, ",")
	}
	for i, one := range adminList {
		adminURL, adminAddr, err := checkURL("admin-url", strings.TrimSpace(one), "http", "https")
		if err != nil {
			return options{}, err
		}
		if !(set["url"] && set["admin-url"]) && !adminAddr.Addr().IsLoopback() {
			return options{}, bad("admin-url", fmt.Sprintf("%q", adminS), why)
		}
		u := strings.TrimSuffix(adminURL.String(), "/")
		if i == 0 {
			c.AdminURL = u
		}
		if scenario == loadgen.ScenarioChaos {
			c.AdminURLs = append(c.AdminURLs, u)
		}
	}

	if !set["source-ips"] && !(addr.Addr().Is4() && addr.Addr().IsLoopback()) {
		sourceS = "none"
	}
	if c.SourceIPs, err = parseSourceIPs(sourceS); err != nil {
		return options{}, bad("source-ips", fmt.Sprintf("%q", sourceS), err.Error())
	}
	for _, s := range c.SourceIPs {
		if s.Is4() != addr.Addr().Is4() {
			return options{}, bad("source-ips", s, fmt.Sprintf("not of the address family of %s", addr.Addr()))
		}
		if s.IsLoopback() != addr.Addr().IsLoopback() {
			return options{}, bad("source-ips", s, fmt.Sprintf("cannot reach %s", addr.Addr()))
		}
	}

	perProc := loadgen.OpenFileLimit() - fdReserve
	if perProc < 1 {
		return options{}, bad("procs", c.Procs, "the open-file limit leaves no room for connections")
	}
	need := (c.Conns + churnFDs(c) + perProc - 1) / perProc
	if c.Procs == 0 {
		c.Procs = need
	} else if c.Procs < need {
		return options{}, bad("procs", c.Procs, fmt.Sprintf("%d connections need at least %d workers under the open-file limit of %d", c.Conns, need, perProc+fdReserve))
	}
	if c.Procs < len(c.URLs) && scenario != loadgen.ScenarioChaos {
		if set["procs"] {
			return options{}, bad("procs", c.Procs, fmt.Sprintf("%d URLs need at least one worker each", len(c.URLs)))
		}
		c.Procs = len(c.URLs)
	}
	c.Procs = min(c.Procs, c.Conns)
	c.Command = "shardbench " + quoteArgs(args)
	return o, nil
}

const payloadUsage = `what fills each message's data up to -size: "pad" ("p":"xxx…", which compresses to almost
nothing) or "json" (an order book update, prices and sizes drawn per message: deflate takes 1 KiB
of it to about a third, like real JSON)`

// checkURL parses a URL flag, checks its scheme, and resolves its host.
func checkURL(name, s string, schemes ...string) (*url.URL, netip.AddrPort, error) {
	fail := func(why string) (*url.URL, netip.AddrPort, error) {
		return nil, netip.AddrPort{}, fmt.Errorf("invalid value %q for flag -%s: %s", s, name, why)
	}
	u, err := url.Parse(s)
	if err != nil {
		return fail(err.Error())
	}
	if !slices.Contains(schemes, u.Scheme) {
		return fail("scheme must be " + strings.Join(schemes, " or "))
	}
	if u.Hostname() == "" {
		return fail("no host")
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"ws": "80", "wss": "443", "http": "80", "https": "443"}[u.Scheme]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ap, err := net.DefaultResolver.LookupNetIP(ctx, "ip", u.Hostname())
	if err != nil || len(ap) == 0 {
		return fail("cannot resolve host")
	}
	addr := ap[0]
	for _, a := range ap { // prefer IPv4: that is what the source addresses are
		if a.Unmap().Is4() {
			addr = a
			break
		}
	}
	var p uint16
	if _, err := fmt.Sscan(port, &p); err != nil || p == 0 {
		return fail("bad port")
	}
	return u, netip.AddrPortFrom(addr.Unmap(), p), nil
}

// checkTLS checks -ca and -insecure against the URL's scheme and reads the
// CA file into the run's TLS options.
func checkTLS(o *options, caFile string, insecure, asked bool, bad func(string, any, string) error) error {
	c := &o.cfg
	wss := strings.HasPrefix(c.URL, "wss://")
	switch {
	case caFile != "" && insecure:
		return bad("insecure", true, "-ca and -insecure exclude each other")
	case asked && !wss:
		name, v := "ca", any(fmt.Sprintf("%q", caFile))
		if insecure {
			name, v = "insecure", true
		}
		return bad(name, v, "needs a wss:// -url")
	case !wss:
		return nil
	}
	c.TLS = &loadgen.TLSOptions{Insecure: insecure, CAFile: caFile}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return bad("ca", fmt.Sprintf("%q", caFile), err.Error())
		}
		c.TLS.CAPEM = pem
		if err := c.TLS.Check(); err != nil {
			return bad("ca", fmt.Sprintf("%q", caFile), "no PEM certificate in it")
		}
	}
	return nil
}

// parseSourceIPs reads "127.0.0.2-127.0.0.9,127.0.1.1" (ranges and single
// addresses); "" and "none" mean none.
func parseSourceIPs(s string) ([]netip.Addr, error) {
	if s == "" || s == "none" {
		return nil, nil
	}
	var out []netip.Addr
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		lo, hi, isRange := strings.Cut(item, "-")
		first, err := netip.ParseAddr(lo)
		if err != nil {
			return nil, fmt.Errorf("%q is not an address", lo)
		}
		if !isRange {
			out = append(out, first)
			continue
		}
		last, err := netip.ParseAddr(hi)
		if err != nil {
			return nil, fmt.Errorf("%q is not an address", hi)
		}
		if first.Is4() != last.Is4() || last.Less(first) {
			return nil, fmt.Errorf("range %s is empty or mixes families", item)
		}
		for a, n := first, 0; a.Compare(last) <= 0; a, n = a.Next(), n+1 {
			if n == 1024 {
				return nil, fmt.Errorf("range %s holds more than 1024 addresses", item)
			}
			out = append(out, a)
		}
	}
	return out, nil
}

// validChannel mirrors the gateway's channel names: 1-128 bytes of
// A-Z a-z 0-9 . _ : @ -.
func validChannel(s string) bool {
	if len(s) < 1 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._:@-", c) >= 0) {
			return false
		}
	}
	return true
}

func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'$\\") {
			a = fmt.Sprintf("%q", a)
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}
