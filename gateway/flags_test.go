package gateway

import (
	"errors"
	"io"
	"log/slog"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// This file covers SPEC "Flags" at the ParseFlags level; cmd/shardgate's
// tests check the exit codes and stderr.

// env is a getenv over a map.
func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestParseFlagsDefaults(t *testing.T) {
	cfg, err := ParseFlags(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Listen:           ":8080",
		Path:             "/ws",
		Admin:            "127.0.0.1:9090",
		AdminToken:       "",
		Shards:           runtime.GOMAXPROCS(0),
		MaxConns:         0,
		MaxHandshakes:    10000,
		MaxMessageBytes:  65536,
		MaxSubscriptions: 128,
		PingInterval:     30 * time.Second,
		IdleTimeout:      90 * time.Second,
		HandshakeTimeout: 5 * time.Second,
		WriteTimeout:     10 * time.Second,
		SendQueueBytes:   1 << 20,
		TLSMinVersion:    "1.2",
		AuthSecret:       "",
		AllowedOrigins:   "",
		ClientRate:       50,
		Broker:           "memory",
		DrainTimeout:     30 * time.Second,
		LogLevel:         slog.LevelInfo,
		LogFormat:        "text",
		Pprof:            false,
		HistorySize:      0,
		HistoryTTL:       5 * time.Minute,
		HistoryMaxBytes:  256 << 20,
		RecoverMax:       1000,
		HistoryReplicas:  1,

		Compression:         true,
		CompressionMinBytes: 256,
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("defaults:\n got %+v\nwant %+v", cfg, want)
	}
	if !reflect.DeepEqual(Defaults(), want) {
		t.Fatalf("Defaults() differs from the documented defaults:\n got %+v\nwant %+v", Defaults(), want)
	}
}

// flagCases sets every flag of the SPEC to a value other than its default.
var flagCases = []struct {
	flag, value string
	get         func(Config) any
	want        any
}{
	{"listen", "127.0.0.1:8181", func(c Config) any { return c.Listen }, "127.0.0.1:8181"},
	{"path", "/socket", func(c Config) any { return c.Path }, "/socket"},
	{"admin", "127.0.0.1:9191", func(c Config) any { return c.Admin }, "127.0.0.1:9191"},
	{"admin-token", "tok", func(c Config) any { return c.AdminToken }, "tok"},
	{"shards", "7", func(c Config) any { return c.Shards }, 7},
	{"max-conns", "1000", func(c Config) any { return c.MaxConns }, 1000},
	{"max-message-bytes", "4096", func(c Config) any { return c.MaxMessageBytes }, 4096},
	{"max-subscriptions", "16", func(c Config) any { return c.MaxSubscriptions }, 16},
	{"ping-interval", "5s", func(c Config) any { return c.PingInterval }, 5 * time.Second},
	{"idle-timeout", "1m30s500ms", func(c Config) any { return c.IdleTimeout }, 90*time.Second + 500*time.Millisecond},
	{"handshake-timeout", "250ms", func(c Config) any { return c.HandshakeTimeout }, 250 * time.Millisecond},
	{"write-timeout", "3s", func(c Config) any { return c.WriteTimeout }, 3 * time.Second},
	{"send-queue-bytes", "2048", func(c Config) any { return c.SendQueueBytes }, 2048},
	{"auth-secret", "s3cret", func(c Config) any { return c.AuthSecret }, "s3cret"},
	{"allowed-origins", "https://a.example.com,*.example.org", func(c Config) any { return c.AllowedOrigins }, "https://a.example.com,*.example.org"},
	{"client-rate", "12.5", func(c Config) any { return c.ClientRate }, 12.5},
	{"broker", "nats://127.0.0.1:4222", func(c Config) any { return c.Broker }, "nats://127.0.0.1:4222"},
	{"drain-timeout", "2s", func(c Config) any { return c.DrainTimeout }, 2 * time.Second},
	{"log-level", "debug", func(c Config) any { return c.LogLevel }, slog.LevelDebug},
	{"log-format", "json", func(c Config) any { return c.LogFormat }, "json"},
	{"pprof", "true", func(c Config) any { return c.Pprof }, true},
	{"history-size", "100", func(c Config) any { return c.HistorySize }, 100},
	{"history-ttl", "90s", func(c Config) any { return c.HistoryTTL }, 90 * time.Second},
	{"history-max-bytes", "1073741824", func(c Config) any { return c.HistoryMaxBytes }, int64(1 << 30)},
	{"recover-max", "250", func(c Config) any { return c.RecoverMax }, 250},
	{"history-replicas", "3", func(c Config) any { return c.HistoryReplicas }, 3},
	{"compression", "off", func(c Config) any { return c.Compression }, false},
	{"compression-min-bytes", "0", func(c Config) any { return c.CompressionMinBytes }, 0},
}

// envName is the SPEC's SHARDGATE_<FLAG>.
func envName(flag string) string {
	return "SHARDGATE_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// TestParseFlagsEachFlag sets every flag on the command line, then through
// its environment variable, then both (the flag wins).
func TestParseFlagsEachFlag(t *testing.T) {
	for _, tc := range flagCases {
		t.Run(tc.flag, func(t *testing.T) {
			check := func(how string, args []string, vars map[string]string, want any) {
				t.Helper()
				cfg, err := ParseFlags(args, env(vars), io.Discard)
				if err != nil {
					t.Fatalf("%s: %v", how, err)
				}
				if got := tc.get(cfg); !reflect.DeepEqual(got, want) {
					t.Fatalf("%s: got %v, want %v", how, got, want)
				}
			}
			def := tc.get(Defaults())
			if tc.flag == "pprof" { // a boolean flag takes no separate value
				check("flag", []string{"-pprof"}, nil, tc.want)
			} else {
				check("flag", []string{"-" + tc.flag, tc.value}, nil, tc.want)
			}
			check("--flag=value", []string{"--" + tc.flag + "=" + tc.value}, nil, tc.want)
			check("env", nil, map[string]string{envName(tc.flag): tc.value}, tc.want)
			// The flag wins over the environment, even when the flag
			// spells the default.
			check("flag over env", []string{"-" + tc.flag + "=" + defaultSpelling(t, tc.flag)}, map[string]string{envName(tc.flag): tc.value}, def)
			// Variables of other flags, and unrelated ones, are ignored.
			check("other env", nil, map[string]string{"SHARDGATE_" + strings.ToUpper(tc.flag): "", "OTHER": tc.value}, def)
		})
	}
}

// defaultSpelling is the command-line spelling of a flag's default.
func defaultSpelling(t *testing.T, flag string) string {
	t.Helper()
	v, ok := map[string]string{
		"listen": ":8080", "path": "/ws", "admin": "127.0.0.1:9090", "admin-token": "",
		"shards": strconv.Itoa(runtime.GOMAXPROCS(0)), "max-conns": "0", "max-message-bytes": "65536",
		"max-subscriptions": "128", "ping-interval": "30s", "idle-timeout": "90s", "handshake-timeout": "5s",
		"write-timeout": "10s", "send-queue-bytes": "1048576", "auth-secret": "", "allowed-origins": "",
		"client-rate": "50", "broker": "memory", "drain-timeout": "30s", "log-level": "info",
		"log-format": "text", "pprof": "false",
		"history-size": "0", "history-ttl": "5m", "history-max-bytes": "268435456", "recover-max": "1000",
		"history-replicas": "1", "compression": "on", "compression-min-bytes": "256",
	}[flag]
	if !ok {
		t.Fatalf("no default spelling for -%s", flag)
	}
	return v
}

func TestParseFlagsHelp(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		t.Run(arg, func(t *testing.T) {
			var usage strings.Builder
			_, err := ParseFlags([]string{arg}, env(nil), &usage)
			if !errors.Is(err, ErrHelp) {
				t.Fatalf("err %v, want ErrHelp", err)
			}
			for _, tc := range flagCases {
				if !strings.Contains(usage.String(), "-"+tc.flag) {
					t.Errorf("usage does not mention -%s", tc.flag)
				}
			}
		})
	}
}

// badFlagCases are refused with a one-line error naming the flag.
var badFlagCases = []struct {
	name string
	args []string
	env  map[string]string
	flag string // the flag the error must name
}{
	{name: "shards 0", args: []string{"-shards", "0"}, flag: "shards"},
	{name: "shards abc", args: []string{"-shards", "abc"}, flag: "shards"},
	{name: "shards negative", args: []string{"-shards=-2"}, flag: "shards"},
	{name: "shards without a value", args: []string{"-shards"}, flag: "shards"},
	{name: "max-message-bytes -1", args: []string{"-max-message-bytes", "-1"}, flag: "max-message-bytes"},
	{name: "max-subscriptions 0", args: []string{"-max-subscriptions", "0"}, flag: "max-subscriptions"},
	{name: "max-conns -1", args: []string{"-max-conns", "-1"}, flag: "max-conns"},
	{name: "ping-interval without unit", args: []string{"-ping-interval", "5"}, flag: "ping-interval"},
	{name: "idle-timeout 0", args: []string{"-idle-timeout", "0s"}, flag: "idle-timeout"},
	{name: "handshake-timeout negative", args: []string{"-handshake-timeout", "-1s"}, flag: "handshake-timeout"},
	{name: "send-queue-bytes tiny", args: []string{"-send-queue-bytes", "10"}, flag: "send-queue-bytes"},
	{name: "client-rate words", args: []string{"-client-rate", "fast"}, flag: "client-rate"},
	{name: "log-format xml", args: []string{"-log-format", "xml"}, flag: "log-format"},
	{name: "log-level loud", args: []string{"-log-level", "loud"}, flag: "log-level"},
	{name: "broker redis", args: []string{"-broker", "redis://x"}, flag: "broker"},
	{name: "path without slash", args: []string{"-path", "ws"}, flag: "path"},
	{name: "pprof maybe", args: []string{"-pprof=maybe"}, flag: "pprof"},
	{name: "allowed-origins with a path", args: []string{"-allowed-origins", "https://ok.example.com,https://a.example.com/path"}, flag: "allowed-origins"},
	{name: "allowed-origins with a bad wildcard", args: []string{"-allowed-origins", "a.*.example.com"}, flag: "allowed-origins"},
	{name: "allowed-origins only commas", args: []string{"-allowed-origins", " , "}, flag: "allowed-origins"},
	{name: "history-size negative", args: []string{"-history-size=-1"}, flag: "history-size"},
	{name: "history-size huge", args: []string{"-history-size", "100000000"}, flag: "history-size"},
	{name: "history-ttl 0", args: []string{"-history-ttl", "0s"}, flag: "history-ttl"},
	{name: "history-ttl without unit", args: []string{"-history-ttl", "300"}, flag: "history-ttl"},
	{name: "history-max-bytes tiny", args: []string{"-history-max-bytes", "1000"}, flag: "history-max-bytes"},
	{name: "history-max-bytes words", args: []string{"-history-max-bytes", "lots"}, flag: "history-max-bytes"},
	{name: "recover-max 0", args: []string{"-recover-max", "0"}, flag: "recover-max"},
	{name: "recover-max huge", args: []string{"-recover-max", "1000000"}, flag: "recover-max"},
	{name: "history-replicas 0", args: []string{"-history-replicas", "0"}, flag: "history-replicas"},
	{name: "history-replicas 7", args: []string{"-history-replicas", "7"}, flag: "history-replicas"},
	{name: "env history-size abc", env: map[string]string{"SHARDGATE_HISTORY_SIZE": "abc"}, flag: "history-size"},
	{name: "env recover-max 0", env: map[string]string{"SHARDGATE_RECOVER_MAX": "0"}, flag: "recover-max"},
	{name: "unknown flag", args: []string{"-no-such-flag"}, flag: "no-such-flag"},
	{name: "unknown flag with value", args: []string{"-listen", ":1", "--colour=red"}, flag: "colour"},
	{name: "env shards abc", env: map[string]string{"SHARDGATE_SHARDS": "abc"}, flag: "shards"},
	{name: "env shards 0", env: map[string]string{"SHARDGATE_SHARDS": "0"}, flag: "shards"},
	{name: "env ping-interval without unit", env: map[string]string{"SHARDGATE_PING_INTERVAL": "5"}, flag: "ping-interval"},
	{name: "env log-format xml", env: map[string]string{"SHARDGATE_LOG_FORMAT": "xml"}, flag: "log-format"},
	{name: "env broker redis", env: map[string]string{"SHARDGATE_BROKER": "redis://x"}, flag: "broker"},
	{name: "env pprof maybe", env: map[string]string{"SHARDGATE_PPROF": "maybe"}, flag: "pprof"},
	{name: "compression maybe", args: []string{"-compression", "maybe"}, flag: "compression"},
	{name: "compression true", args: []string{"-compression=true"}, flag: "compression"},
	{name: "compression without a value", args: []string{"-compression"}, flag: "compression"},
	{name: "env compression yes", env: map[string]string{"SHARDGATE_COMPRESSION": "yes"}, flag: "compression"},
	{name: "compression-min-bytes negative", args: []string{"-compression-min-bytes=-1"}, flag: "compression-min-bytes"},
	{name: "compression-min-bytes words", args: []string{"-compression-min-bytes", "big"}, flag: "compression-min-bytes"},
	{name: "env compression-min-bytes -5", env: map[string]string{"SHARDGATE_COMPRESSION_MIN_BYTES": "-5"}, flag: "compression-min-bytes"},
}

func TestParseFlagsErrors(t *testing.T) {
	for _, tc := range badFlagCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseFlags(tc.args, env(tc.env), io.Discard)
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if strings.ContainsAny(msg, "\r\n") {
				t.Errorf("error spans lines: %q", msg)
			}
			if !strings.Contains(msg, "-"+tc.flag) {
				t.Errorf("error %q does not name -%s", msg, tc.flag)
			}
		})
	}
}

// TestParseFlagsBadEnvIgnoredWhenFlagSet: the flag wins, so a bad
// environment value under it does not matter.
func TestParseFlagsBadEnvIgnoredWhenFlagSet(t *testing.T) {
	cfg, err := ParseFlags([]string{"-shards", "3"}, env(map[string]string{"SHARDGATE_SHARDS": "abc"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Shards != 3 {
		t.Fatalf("shards %d, want 3", cfg.Shards)
	}
}
