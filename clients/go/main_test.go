package shardgate

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/shardgate/shardgate/internal/gwproc"
	"go.uber.org/goleak"
)

// gateway is the shardgate binary, built once for this test binary; the
// tests run it as child processes on real sockets.
var gateway *gwproc.Binary

// TestMain builds the gateway and fails the package if any test leaves a
// goroutine behind: every client a test makes is closed, and Close must
// leave nothing running.
func TestMain(m *testing.M) {
	b, err := gwproc.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gateway = b
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		b.Remove()
		os.Exit(code)
	}))
}

// waitTimeout bounds every wait for an event; generous, for -race on a
// busy 2-core machine.
const waitTimeout = 20 * time.Second

// recorder keeps everything a client reported, for a test to wait on and
// check afterwards.
type recorder struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every event

	states       []stateAt
	messages     []Message
	subscribed   []Subscribed
	subscribedAt []int // len(messages) when each subscribed came
	subErrors    []*Error
	unsubscribed []string
	broadcasts   []json.RawMessage
	errors       []error
}

type stateAt struct {
	StateChange
	at time.Time
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

// record runs f under the lock and wakes the waiters.
func (r *recorder) record(f func()) {
	r.mu.Lock()
	f()
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// options are opts with the client-wide handlers pointed at r.
func (r *recorder) options(opts Options) Options {
	opts.OnState = func(s StateChange) {
		at := time.Now()
		r.record(func() { r.states = append(r.states, stateAt{s, at}) })
	}
	opts.OnMessage = func(d json.RawMessage) { r.record(func() { r.broadcasts = append(r.broadcasts, d) }) }
	opts.OnError = func(err error) { r.record(func() { r.errors = append(r.errors, err) }) }
	return opts
}

// handlers are a subscription's handlers pointed at r.
func (r *recorder) handlers() Handlers {
	return Handlers{
		OnMessage: func(m Message) { r.record(func() { r.messages = append(r.messages, m) }) },
		OnSubscribed: func(s Subscribed) {
			r.record(func() {
				r.subscribed = append(r.subscribed, s)
				r.subscribedAt = append(r.subscribedAt, len(r.messages))
			})
		},
		OnUnsubscribed: func(reason string) { r.record(func() { r.unsubscribed = append(r.unsubscribed, reason) }) },
		OnError:        func(e *Error) { r.record(func() { r.subErrors = append(r.subErrors, e) }) },
	}
}

// waitFor waits until cond, called under the lock, holds.
func (r *recorder) waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		ok, changed := cond(), r.changed
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("no %s within %v; states: %v", what, waitTimeout, r.stateLog())
		}
	}
}

// count returns the number of state changes to s so far.
func (r *recorder) count(s State) int {
	n := 0
	for _, st := range r.states {
		if st.State == s {
			n++
		}
	}
	return n
}

// last returns the latest state change (zero when none).
func (r *recorder) last() StateChange {
	if len(r.states) == 0 {
		return StateChange{}
	}
	return r.states[len(r.states)-1].StateChange
}

func (r *recorder) stateLog() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := ""
	for _, st := range r.states {
		s += fmt.Sprintf("\n  %s url=%s code=%d reason=%q delay=%v err=%v", st.State, st.URL, st.Code, st.Reason, st.Delay, st.Err)
	}
	return s
}

// snapshot returns copies of what r holds, for checks after the waits.
func (r *recorder) snapshot() recorder {
	r.mu.Lock()
	defer r.mu.Unlock()
	return recorder{
		states: append([]stateAt(nil), r.states...), messages: append([]Message(nil), r.messages...),
		subscribed: append([]Subscribed(nil), r.subscribed...), subscribedAt: append([]int(nil), r.subscribedAt...),
		subErrors:    append([]*Error(nil), r.subErrors...),
		unsubscribed: append([]string(nil), r.unsubscribed...), broadcasts: append([]json.RawMessage(nil), r.broadcasts...),
		errors: append([]error(nil), r.errors...),
	}
}

// newClient makes a client that the test closes when it ends.
func newClient(t testing.TB, opts Options) *Client {
	t.Helper()
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// connect connects c and fails the test if Connect does.
func connect(t testing.TB, c *Client) {
	t.Helper()
	if err := c.Connect(); err != nil {
		t.Fatal(err)
	}
}

// subscribe subscribes c to channel with r's handlers.
func subscribe(t testing.TB, c *Client, channel string, r *recorder) *Subscription {
	t.Helper()
	s, err := c.Subscribe(channel, r.handlers())
	if err != nil {
		t.Fatalf("subscribe %q: %v", channel, err)
	}
	return s
}

// testSecret is the -auth-secret of the tests' gateways.
const testSecret = "client-test-secret"

// claims are a test token's grants.
type claims struct {
	sub      string
	ttl      time.Duration // 0: no exp
	channels []string
	publish  []string
}

// mint signs an HS256 token with testSecret.
func mint(t testing.TB, c claims) string {
	mc := jwt.MapClaims{"sub": c.sub}
	if c.ttl != 0 {
		mc["exp"] = jwt.NewNumericDate(time.Now().Add(c.ttl))
	}
	if c.channels != nil {
		mc["channels"] = c.channels
	}
	if c.publish != nil {
		mc["publish"] = c.publish
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, mc).SignedString([]byte(testSecret))
	if err != nil {
		t.Errorf("mint: %v", err)
	}
	return s
}

// seq is the test messages' payload.
type seq struct {
	N int `json:"n"`
}

func seqData(n int) json.RawMessage { return json.RawMessage(fmt.Sprintf(`{"n":%d}`, n)) }

// seqOf decodes a test message's number.
func seqOf(t testing.TB, m Message) int {
	t.Helper()
	var s seq
	if err := json.Unmarshal(m.Data, &s); err != nil {
		t.Fatalf("message %s: %v", m.Data, err)
	}
	return s.N
}

// replayed counts the messages the i-th subscribe recovered: those
// handed over after its reply with offsets up to the reply's (the
// channel's latest when it took effect).
func (r *recorder) replayed(i int) int {
	n := 0
	for _, m := range r.messages[r.subscribedAt[i]:] {
		if m.Offset > r.subscribed[i].Offset {
			break
		}
		n++
	}
	return n
}

// checkWhole checks that msgs are exactly the numbers 1..n, once each and
// in order, with growing offsets.
func checkWhole(t testing.TB, msgs []Message, n int) {
	t.Helper()
	if len(msgs) != n {
		t.Errorf("%d messages, want %d", len(msgs), n)
	}
	var lastOffset uint64
	for i, m := range msgs {
		if got := seqOf(t, m); got != i+1 {
			t.Fatalf("message %d is number %d (offset %d), want %d: a gap or a duplicate", i, got, m.Offset, i+1)
		}
		if m.HasOffset {
			if m.Offset <= lastOffset {
				t.Fatalf("message %d: offset %d after %d", i, m.Offset, lastOffset)
			}
			lastOffset = m.Offset
		}
	}
}
