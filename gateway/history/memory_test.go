package history

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newTestMemory(t testing.TB, size int, ttl time.Duration, maxBytes int64) (*Memory, *fakeClock) {
	t.Helper()
	clk := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	m, err := NewMemory(MemoryConfig{Size: size, TTL: ttl, MaxBytes: maxBytes, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return m, clk
}

// encodeFor returns an Append callback that builds a frame-like
// {"offset":N,"data":<data>} (no WebSocket header: the store does not
// care what precedes the data).
func encodeFor(data string) func(uint64) ([]byte, int) {
	return func(off uint64) ([]byte, int) {
		head := fmt.Sprintf(`{"offset":%d,"data":`, off)
		return []byte(head + data + "}"), len(head)
	}
}

func mustAppend(t testing.TB, m *Memory, channel, data string) Position {
	t.Helper()
	p, err := m.Append(channel, encodeFor(data))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// read runs a Source call and returns its page (the memory store answers
// during the call).
func read(t testing.TB, call func(Done)) Page {
	t.Helper()
	var got Page
	called := 0
	call(func(p Page, err error) {
		if err != nil {
			t.Errorf("read: %v", err)
		}
		got = p
		called++
	})
	if called != 1 {
		t.Fatalf("done called %d times, want 1", called)
	}
	return got
}

func offsets(p Page) []uint64 {
	var out []uint64
	for _, msg := range p.Messages {
		out = append(out, msg.Offset)
	}
	return out
}

func TestOffsetsGrowPerChannelAndStartAtZero(t *testing.T) {
	m, _ := newTestMemory(t, 10, time.Minute, 1<<20)
	if p := read(t, func(d Done) { m.Latest("news", d) }); p.Latest != 0 || p.Epoch != m.Epoch() {
		t.Fatalf("empty channel: %+v", p)
	}
	a1 := mustAppend(t, m, "a", `1`)
	b1 := mustAppend(t, m, "b", `1`)
	a2 := mustAppend(t, m, "a", `2`)
	if !(a1.Offset < a2.Offset) || a1.Offset == 0 || b1.Offset == 0 {
		t.Fatalf("offsets a1 %d a2 %d b1 %d", a1.Offset, a2.Offset, b1.Offset)
	}
	if a1.Epoch != m.Epoch() {
		t.Fatalf("epoch %q, want %q", a1.Epoch, m.Epoch())
	}
	if p := read(t, func(d Done) { m.Latest("a", d) }); p.Latest != a2.Offset {
		t.Fatalf("latest of a %d, want %d", p.Latest, a2.Offset)
	}
}

func TestEveryStoreHasANewEpoch(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		m, _ := newTestMemory(t, 1, time.Minute, 1<<20)
		if len(m.Epoch()) != 16 || seen[m.Epoch()] {
			t.Fatalf("epoch %q repeated or malformed", m.Epoch())
		}
		seen[m.Epoch()] = true
	}
}

func TestSinceReturnsTheMissedMessagesInOrderWithTheirData(t *testing.T) {
	m, _ := newTestMemory(t, 10, time.Minute, 1<<20)
	var pos []Position
	for i := range 5 {
		pos = append(pos, mustAppend(t, m, "news", fmt.Sprintf(`{"n":%d}`, i)))
	}
	p := read(t, func(d Done) { m.Since("news", pos[1], 100, d) })
	if !p.Complete || p.Latest != pos[4].Offset {
		t.Fatalf("page %+v", p)
	}
	if got := offsets(p); fmt.Sprint(got) != fmt.Sprint([]uint64{pos[2].Offset, pos[3].Offset, pos[4].Offset}) {
		t.Fatalf("offsets %v", got)
	}
	for i, msg := range p.Messages {
		want := fmt.Sprintf(`{"n":%d}`, i+2)
		if string(msg.Data) != want {
			t.Fatalf("data %q, want %q", msg.Data, want)
		}
		if !strings.HasSuffix(string(msg.Frame), want+"}") {
			t.Fatalf("frame %q does not end with the data", msg.Frame)
		}
	}
	// Nothing missed: complete and empty.
	if p := read(t, func(d Done) { m.Since("news", pos[4], 100, d) }); !p.Complete || len(p.Messages) != 0 {
		t.Fatalf("up to date: %+v", p)
	}
}

func TestSinceIsIncomplete(t *testing.T) {
	m, clk := newTestMemory(t, 3, time.Minute, 1<<20)
	var pos []Position
	for i := range 5 {
		pos = append(pos, mustAppend(t, m, "news", fmt.Sprint(i)))
	}
	cases := []struct {
		name  string
		from  Position
		limit int
	}{
		{"evicted by the ring", pos[0], 100},
		{"wrong epoch", Position{Epoch: "0000000000000000", Offset: pos[3].Offset}, 100},
		{"more than the limit", pos[1], 2},
		{"an offset never handed out", Position{Epoch: m.Epoch(), Offset: pos[4].Offset + 1}, 100},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if p := read(t, func(d Done) { m.Since("news", tc.from, tc.limit, d) }); p.Complete {
				t.Fatalf("complete: %+v", p)
			}
		})
	}
	t.Run("past the TTL", func(t *testing.T) {
		clk.Add(61 * time.Second)
		p := read(t, func(d Done) { m.Since("news", pos[3], 100, d) })
		if p.Complete || len(p.Messages) != 0 || p.Latest != pos[4].Offset {
			t.Fatalf("after the TTL: %+v", p)
		}
		if n, _ := m.Stats(); n != 0 {
			t.Fatalf("%d messages held after the TTL", n)
		}
		// The channel remembers its offset: a client that saw the last
		// message missed nothing.
		if p := read(t, func(d Done) { m.Since("news", pos[4], 100, d) }); !p.Complete {
			t.Fatalf("up to date after the TTL: %+v", p)
		}
	})
}

func TestMaxBytesEvictsOldestFirstAcrossChannels(t *testing.T) {
	data := `"` + strings.Repeat("x", 1000) + `"`
	one := EntryOverhead + int64(len(data)+20)
	m, clk := newTestMemory(t, 100, time.Hour, 10*one+3*(ChannelOverhead+1))
	var pos []Position
	for i := range 30 {
		clk.Add(time.Millisecond)
		pos = append(pos, mustAppend(t, m, []string{"a", "b", "c"}[i%3], data))
	}
	n, bytes := m.Stats()
	if bytes > m.maxBytes || n < 5 {
		t.Fatalf("%d messages in %d bytes (cap %d)", n, bytes, m.maxBytes)
	}
	// The survivors are exactly the newest n, whatever their channel.
	oldestKept := pos[len(pos)-n].Offset
	for _, ch := range []string{"a", "b", "c"} {
		p := read(t, func(d Done) { m.Last(ch, 100, d) })
		for _, msg := range p.Messages {
			if msg.Offset < oldestKept {
				t.Fatalf("channel %s kept %d, older than the oldest kept %d", ch, msg.Offset, oldestKept)
			}
		}
	}
	if p := read(t, func(d Done) { m.Since("a", pos[0], 100, d) }); p.Complete {
		t.Fatal("recovery across evicted messages is complete")
	}
	last := pos[len(pos)-1]
	ch := []string{"a", "b", "c"}[(len(pos)-1)%3]
	if p := read(t, func(d Done) { m.Since(ch, Position{m.Epoch(), pos[len(pos)-4].Offset}, 100, d) }); !p.Complete || len(p.Messages) != 1 || p.Messages[0].Offset != last.Offset {
		t.Fatalf("recent recovery: %+v", p)
	}
}

func TestForgottenChannelsNeverReuseOffsetsOrClaimCompleteness(t *testing.T) {
	// Room for one small message and two channels' overhead: every new
	// channel pushes the older ones out.
	m, clk := newTestMemory(t, 10, time.Hour, EntryOverhead+40+2*(ChannelOverhead+8))
	old := mustAppend(t, m, "old", `1`)
	before := mustAppend(t, m, "old", `2`)
	for i := range 10 {
		clk.Add(time.Millisecond)
		mustAppend(t, m, fmt.Sprintf("other%d", i), `1`)
	}
	if p := read(t, func(d Done) { m.Since("old", old, 100, d) }); p.Complete {
		t.Fatalf("forgotten channel recovered from before it was forgotten: %+v", p)
	}
	again := mustAppend(t, m, "old", `3`)
	if again.Offset <= before.Offset {
		t.Fatalf("offset %d reused (had %d)", again.Offset, before.Offset)
	}
	// A channel never published is complete from anything up to now.
	fresh, _ := newTestMemory(t, 10, time.Hour, 1<<20)
	mustAppend(t, fresh, "x", `1`)
	if p := read(t, func(d Done) { fresh.Since("never", Position{fresh.Epoch(), 0}, 100, d) }); !p.Complete || p.Latest != 0 {
		t.Fatalf("never published: %+v", p)
	}
}

func TestLastPages(t *testing.T) {
	m, _ := newTestMemory(t, 100, time.Hour, 1<<20)
	var pos []Position
	for i := range 10 {
		pos = append(pos, mustAppend(t, m, "news", fmt.Sprint(i)))
	}
	p := read(t, func(d Done) { m.Last("news", 3, d) })
	if got := offsets(p); fmt.Sprint(got) != fmt.Sprint([]uint64{pos[7].Offset, pos[8].Offset, pos[9].Offset}) || p.Latest != pos[9].Offset {
		t.Fatalf("last 3: %v (%+v)", got, p)
	}
	// Paging forward from 0 with since, 4 at a time, visits all 10 once.
	var all []uint64
	from := Position{}
	for {
		p := read(t, func(d Done) { m.Since("news", from, 4, d) })
		if len(p.Messages) == 0 {
			break
		}
		all = append(all, offsets(p)...)
		from.Offset = p.Messages[len(p.Messages)-1].Offset
	}
	if len(all) != 10 || all[0] != pos[0].Offset || all[9] != pos[9].Offset {
		t.Fatalf("paged %v", all)
	}
}

func TestRingStaysBoundedUnderAFlood(t *testing.T) {
	m, _ := newTestMemory(t, 8, time.Hour, 1<<30)
	for range 10000 {
		mustAppend(t, m, "news", `1`)
	}
	if n, _ := m.Stats(); n != 8 {
		t.Fatalf("%d held, want 8", n)
	}
	if log := m.channels["news"]; cap(log.msgs) > 64 {
		t.Fatalf("ring array grew to %d", cap(log.msgs))
	}
}

func TestAppendRefusesDataOutsideTheFrame(t *testing.T) {
	m, _ := newTestMemory(t, 8, time.Hour, 1<<20)
	if _, err := m.Append("x", func(uint64) ([]byte, int) { return []byte("{}"), 5 }); err != ErrEncode {
		t.Fatalf("err %v", err)
	}
	if p := read(t, func(d Done) { m.Latest("x", d) }); p.Latest != 0 {
		t.Fatalf("a refused append took offset %d", p.Latest)
	}
}

// BenchmarkMemoryPerStoredMessage reports the heap a held message costs
// beyond its frame: fill a store with 100,000 messages of 256-byte data
// over 1,000 channels and divide the heap growth by the count.
func BenchmarkMemoryPerStoredMessage(b *testing.B) {
	const channels, perChannel = 1000, 100
	data := `"` + strings.Repeat("x", 254) + `"`
	names := make([]string, channels)
	for i := range names {
		names[i] = fmt.Sprintf("channel-%d", i)
	}
	frameLen := 0
	enc := func(off uint64) ([]byte, int) {
		f, n := encodeFor(data)(off)
		frameLen = len(f)
		return f, n
	}
	b.ReportAllocs()
	var perMsg float64
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		m, err := NewMemory(MemoryConfig{Size: perChannel, TTL: time.Hour, MaxBytes: 1 << 40})
		if err != nil {
			b.Fatal(err)
		}
		for i := range channels * perChannel {
			if _, err := m.Append(names[i%channels], enc); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perMsg = float64(after.HeapAlloc-before.HeapAlloc) / (channels * perChannel)
		runtime.KeepAlive(m)
	}
	b.ReportMetric(perMsg, "heap-B/msg")
	b.ReportMetric(perMsg-float64(frameLen), "overhead-B/msg")
}
