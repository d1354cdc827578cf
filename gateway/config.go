package gateway

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"time"

	"github.com/shardgate/shardgate/gateway/auth"
)

// Config is everything a gateway needs to start. ParseFlags fills it from
// the command line and SHARDGATE_* environment variables; tests build it
// from Defaults.
type Config struct {
	Listen           string
	Path             string
	Admin            string
	AdminToken       string
	AdminTLSCert     string // PEM certificate (chain) of the admin listener; with AdminTLSKey it serves HTTPS
	AdminTLSKey      string
	Shards           int
	MaxConns         int // 0: the open-file limit less a reserve
	MaxConnsPerIP    int // open connections and handshakes per client address; 0: no limit
	MaxHandshakes    int // handshakes in progress; past it new TCP connections are closed at once
	MaxMessageBytes  int
	MaxSubscriptions int
	PingInterval     time.Duration
	IdleTimeout      time.Duration
	HandshakeTimeout time.Duration
	WriteTimeout     time.Duration
	SendQueueBytes   int
	TLSCert          string // PEM certificate (chain) of the public listener; with TLSKey it speaks wss:// only
	TLSKey           string
	TLSMinVersion    string // "1.2" or "1.3"
	ProxyProtocol    bool   // expect a PROXY protocol v1/v2 header on every public connection
	AuthSecret       string
	AuthJWKS         string // JSON Web Key Set file (RS256, ES256, EdDSA keys by kid)
	AuthIssuer       string // when set, tokens' "iss" must equal it
	AuthAudience     string // when set, tokens' "aud" must name it
	AllowedOrigins   string
	ClientRate       float64
	Broker           string
	DrainTimeout     time.Duration
	LogLevel         slog.Level
	LogFormat        string
	Pprof            bool

	// History (SPEC "History and recovery"). HistorySize 0 turns it off.
	HistorySize     int           // messages kept per channel
	HistoryTTL      time.Duration // how long a message is kept
	HistoryMaxBytes int64         // all history of the node, oldest first past it
	RecoverMax      int           // most messages one recovery replays
	HistoryReplicas int           // JetStream replicas of the history stream (cluster)

	// Compression (SPEC "Compression (RFC 7692)"): accept clients'
	// permessage-deflate offers, and compress broadcasts whose payload is
	// at least CompressionMinBytes for those that negotiated it.
	Compression         bool
	CompressionMinBytes int

	// stallAfter overrides defaultStallAfter (tests only).
	stallAfter time.Duration
}

// Defaults returns the documented defaults.
func Defaults() Config {
	return Config{
		Listen:           ":8080",
		Path:             "/ws",
		Admin:            "127.0.0.1:9090",
		Shards:           runtime.GOMAXPROCS(0),
		MaxHandshakes:    10000,
		MaxMessageBytes:  65536,
		MaxSubscriptions: 128,
		PingInterval:     30 * time.Second,
		IdleTimeout:      90 * time.Second,
		HandshakeTimeout: 5 * time.Second,
		WriteTimeout:     10 * time.Second,
		SendQueueBytes:   1 << 20,
		ClientRate:       50,
		TLSMinVersion:    "1.2",
		Broker:           "memory",
		DrainTimeout:     30 * time.Second,
		LogLevel:         slog.LevelInfo,
		LogFormat:        "text",
		HistoryTTL:       5 * time.Minute,
		HistoryMaxBytes:  256 << 20,
		RecoverMax:       1000,
		HistoryReplicas:  1,
		// On: a broadcast is compressed once (about 10 µs for 1 KiB of
		// JSON), so a deflate subscriber costs about what a plain one does
		// per delivery, for frames half the size or less (shard
		// BenchmarkBroadcastDeflate, README "Compression").
		Compression:         true,
		CompressionMinBytes: 256,
	}
}

// Upper bounds of the history flags. A channel's ring and one recovery's
// replay are held in memory at once, so a typo (an extra zero or three)
// should be refused at start rather than discovered under load.
const (
	maxHistorySize = 1 << 20
	maxRecoverMax  = 100000
)

// ErrHelp is returned by ParseFlags for -h and -help.
var ErrHelp = flag.ErrHelp

// ParseFlags parses args (without the program name). A flag that is not on
// the command line is taken from getenv("SHARDGATE_<FLAG>") when set; the
// command line wins. Errors are one line naming the flag. Usage text goes
// to usage only for -h.
func ParseFlags(args []string, getenv func(string) string, usage io.Writer) (Config, error) {
	cfg := Defaults()
	fs := flag.NewFlagSet("shardgate", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "public WebSocket listen address")
	fs.StringVar(&cfg.Path, "path", cfg.Path, "URL path of WebSocket upgrades")
	fs.StringVar(&cfg.Admin, "admin", cfg.Admin, "admin listen address (metrics, health, publish API)")
	fs.StringVar(&cfg.AdminToken, "admin-token", "", "bearer token required on /api/ (empty: none)")
	fs.StringVar(&cfg.AdminTLSCert, "admin-tls-cert", "", "PEM certificate file of the admin listener (with -admin-tls-key: HTTPS)")
	fs.StringVar(&cfg.AdminTLSKey, "admin-tls-key", "", "PEM key file of the admin listener")
	fs.IntVar(&cfg.Shards, "shards", cfg.Shards, "number of shards (default GOMAXPROCS)")
	fs.IntVar(&cfg.MaxConns, "max-conns", 0, "open connection limit (0: open-file limit less a reserve)")
	fs.IntVar(&cfg.MaxConnsPerIP, "max-conns-per-ip", 0, "open connections and handshakes per client address (0: no limit)")
	fs.IntVar(&cfg.MaxHandshakes, "max-handshakes", cfg.MaxHandshakes, "handshakes in progress; past it new connections are closed at once")
	fs.IntVar(&cfg.MaxMessageBytes, "max-message-bytes", cfg.MaxMessageBytes, "largest message, across fragments")
	fs.IntVar(&cfg.MaxSubscriptions, "max-subscriptions", cfg.MaxSubscriptions, "channels one connection may subscribe to")
	fs.DurationVar(&cfg.PingInterval, "ping-interval", cfg.PingInterval, "heartbeat ping period")
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", cfg.IdleTimeout, "close connections silent this long")
	fs.DurationVar(&cfg.HandshakeTimeout, "handshake-timeout", cfg.HandshakeTimeout, "drop clients that do not finish the handshake in time")
	fs.DurationVar(&cfg.WriteTimeout, "write-timeout", cfg.WriteTimeout, "close connections whose send queue makes no progress this long")
	fs.IntVar(&cfg.SendQueueBytes, "send-queue-bytes", cfg.SendQueueBytes, "per-connection outbound queue cap (slow consumer above)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate (chain) file of the public listener (with -tls-key: wss:// only; SIGHUP reloads)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "PEM key file of the public listener")
	fs.StringVar(&cfg.TLSMinVersion, "tls-min-version", cfg.TLSMinVersion, "oldest TLS version accepted: 1.2 or 1.3")
	fs.BoolVar(&cfg.ProxyProtocol, "proxy-protocol", false, "expect a PROXY protocol v1 or v2 header on every public connection")
	fs.StringVar(&cfg.AuthSecret, "auth-secret", "", "HS256 JWT secret; empty: no auth")
	fs.StringVar(&cfg.AuthJWKS, "auth-jwks", "", "JSON Web Key Set file of token keys (RS256, ES256, EdDSA by kid; SIGHUP reloads)")
	fs.StringVar(&cfg.AuthIssuer, "auth-issuer", "", "required token issuer (iss); empty: not checked")
	fs.StringVar(&cfg.AuthAudience, "auth-audience", "", "required token audience (aud); empty: not checked")
	fs.StringVar(&cfg.AllowedOrigins, "allowed-origins", "", "comma list of allowed Origins (empty: any)")
	fs.Float64Var(&cfg.ClientRate, "client-rate", cfg.ClientRate, "requests per second per connection (bursts of twice that)")
	fs.StringVar(&cfg.Broker, "broker", cfg.Broker, "memory or nats://host:port")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", cfg.DrainTimeout, "how long shutdown waits for clients")
	fs.TextVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "text or json")
	fs.BoolVar(&cfg.Pprof, "pprof", false, "serve /debug/pprof/ on the admin listener")
	fs.IntVar(&cfg.HistorySize, "history-size", 0, "messages kept per channel for recovery (0: history off)")
	fs.DurationVar(&cfg.HistoryTTL, "history-ttl", cfg.HistoryTTL, "how long a message stays in history")
	fs.Int64Var(&cfg.HistoryMaxBytes, "history-max-bytes", cfg.HistoryMaxBytes, "memory cap of all history of the node, oldest messages evicted first")
	fs.IntVar(&cfg.RecoverMax, "recover-max", cfg.RecoverMax, "most messages replayed to one recovering subscriber (more: recovered:false)")
	fs.IntVar(&cfg.HistoryReplicas, "history-replicas", cfg.HistoryReplicas, "replicas of the JetStream history stream (cluster with history)")
	fs.Var((*onOff)(&cfg.Compression), "compression", "accept permessage-deflate (RFC 7692) offers: on or off")
	fs.IntVar(&cfg.CompressionMinBytes, "compression-min-bytes", cfg.CompressionMinBytes, "broadcasts with a shorter payload go uncompressed")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(usage)
			fmt.Fprintln(usage, "usage: shardgate [flags]  (every flag can also be set as SHARDGATE_<FLAG>)")
			fs.PrintDefaults()
			return cfg, ErrHelp
		}
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || envErr != nil {
			return
		}
		name := "SHARDGATE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v := getenv(name)
		if v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			envErr = fmt.Errorf("invalid value %q for flag -%s (from %s): %v", v, f.Name, name, err)
		}
	})
	if envErr != nil {
		return cfg, envErr
	}
	return cfg, cfg.Validate()
}

// onOff is a boolean flag spelled on or off, as SPEC spells -compression.
type onOff bool

func (v *onOff) String() string {
	if v != nil && *v {
		return "on"
	}
	return "off"
}

func (v *onOff) Set(s string) error {
	switch s {
	case "on":
		*v = true
	case "off":
		*v = false
	default:
		return errors.New("must be on or off")
	}
	return nil
}

// Validate checks values that parse but make no sense.
func (c Config) Validate() error {
	bad := func(flag string, v any, why string) error {
		return fmt.Errorf("invalid value %v for flag -%s: %s", v, flag, why)
	}
	switch {
	case c.Listen == "":
		return bad("listen", `""`, "must not be empty")
	case !strings.HasPrefix(c.Path, "/"):
		return bad("path", fmt.Sprintf("%q", c.Path), "must start with /")
	case c.Admin == "":
		return bad("admin", `""`, "must not be empty")
	case c.Shards < 1 || c.Shards > 1024:
		return bad("shards", c.Shards, "must be between 1 and 1024")
	case c.MaxConns < 0:
		return bad("max-conns", c.MaxConns, "must not be negative")
	case c.MaxConnsPerIP < 0:
		return bad("max-conns-per-ip", c.MaxConnsPerIP, "must not be negative")
	case c.MaxHandshakes < 1:
		return bad("max-handshakes", c.MaxHandshakes, "must be at least 1")
	case (c.AdminTLSCert == "") != (c.AdminTLSKey == ""):
		if c.AdminTLSCert == "" {
			return bad("admin-tls-cert", `""`, "must be set with -admin-tls-key")
		}
		return bad("admin-tls-key", `""`, "must be set with -admin-tls-cert")
	case (c.TLSCert == "") != (c.TLSKey == ""):
		if c.TLSCert == "" {
			return bad("tls-cert", `""`, "must be set with -tls-key")
		}
		return bad("tls-key", `""`, "must be set with -tls-cert")
	case c.TLSMinVersion != "1.2" && c.TLSMinVersion != "1.3":
		return bad("tls-min-version", fmt.Sprintf("%q", c.TLSMinVersion), "must be 1.2 or 1.3")
	case c.MaxMessageBytes < 1 || c.MaxMessageBytes > 64<<20:
		return bad("max-message-bytes", c.MaxMessageBytes, "must be between 1 and 67108864")
	case c.MaxSubscriptions < 1:
		return bad("max-subscriptions", c.MaxSubscriptions, "must be at least 1")
	case c.PingInterval <= 0:
		return bad("ping-interval", c.PingInterval, "must be positive")
	case c.IdleTimeout <= 0:
		return bad("idle-timeout", c.IdleTimeout, "must be positive")
	case c.HandshakeTimeout <= 0:
		return bad("handshake-timeout", c.HandshakeTimeout, "must be positive")
	case c.WriteTimeout <= 0:
		return bad("write-timeout", c.WriteTimeout, "must be positive")
	case c.SendQueueBytes < 1024:
		return bad("send-queue-bytes", c.SendQueueBytes, "must be at least 1024")
	case c.ClientRate < 0:
		return bad("client-rate", c.ClientRate, "must not be negative")
	case c.DrainTimeout < 0:
		return bad("drain-timeout", c.DrainTimeout, "must not be negative")
	case c.LogFormat != "text" && c.LogFormat != "json":
		return bad("log-format", fmt.Sprintf("%q", c.LogFormat), "must be text or json")
	case c.HistorySize < 0 || c.HistorySize > maxHistorySize:
		return bad("history-size", c.HistorySize, fmt.Sprintf("must be between 0 and %d", maxHistorySize))
	case c.HistoryTTL <= 0:
		return bad("history-ttl", c.HistoryTTL, "must be positive")
	case c.HistoryMaxBytes < 1<<20:
		return bad("history-max-bytes", c.HistoryMaxBytes, "must be at least 1048576")
	case c.RecoverMax < 1 || c.RecoverMax > maxRecoverMax:
		return bad("recover-max", c.RecoverMax, fmt.Sprintf("must be between 1 and %d", maxRecoverMax))
	case c.HistoryReplicas < 1 || c.HistoryReplicas > 5:
		return bad("history-replicas", c.HistoryReplicas, "must be between 1 and 5 (JetStream's limit)")
	case c.CompressionMinBytes < 0:
		return bad("compression-min-bytes", c.CompressionMinBytes, "must not be negative")
	case c.Broker != "memory" && !strings.HasPrefix(c.Broker, "nats://"):
		return bad("broker", fmt.Sprintf("%q", c.Broker), "must be memory or nats://host:port")
	}
	if c.AllowedOrigins != "" {
		if _, err := auth.ParseOriginPolicy(c.AllowedOrigins); err != nil {
			return fmt.Errorf("invalid value for flag -allowed-origins: %v", err)
		}
	}
	return nil
}
