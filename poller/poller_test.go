package poller

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func socketPair(t *testing.T) (int, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return fds[0], fds[1]
}

func newPoller(t *testing.T) *Poller {
	t.Helper()
	p, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// waitEvent waits for the next event on ch and fails unless it carries
// every bit of want.
func waitEvent(t *testing.T, ch <-chan Event, want Event) {
	t.Helper()
	select {
	case ev := <-ch:
		if ev&want != want {
			t.Fatalf("event %#x, want all bits of %#x", ev, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no event with bits %#x", want)
	}
}

// goroutineID returns the number in runtime.Stack's "goroutine N [...]"
// header: the identity of the calling goroutine. Safe to call from
// callbacks (it cannot fail the test).
func goroutineID() string {
	var buf [64]byte
	n := runtime.Stack(buf[:], false)
	f := strings.Fields(string(buf[:n]))
	if len(f) < 2 || f[0] != "goroutine" {
		return "?" + string(buf[:n])
	}
	return f[1]
}

// receive waits for one value on ch.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// barrier returns once p's wait goroutine has run every callback of every
// epoll_wait batch collected before barrier was called: it makes a fresh
// socket readable twice, one round-trip after the other, so the second
// callback belongs to a batch collected after the first one ran, which
// itself was collected no earlier than the call. Events pending at the
// call are in the first batch or an earlier one.
func barrier(t *testing.T, p *Poller) {
	t.Helper()
	a, b := socketPair(t)
	seen := make(chan struct{}, 1)
	if err := p.Add(a, EdgeRead, func(ev Event) {
		if ev&EventRead == 0 {
			return
		}
		var buf [8]byte
		unix.Read(a, buf[:]) // the next write is then a fresh edge
		seen <- struct{}{}
	}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := unix.Write(b, []byte{1}); err != nil {
			t.Fatal(err)
		}
		receive(t, seen, "the barrier's callback")
	}
	if err := p.Del(a); err != nil {
		t.Fatal(err)
	}
}

// eventfdCount reads an eventfd's counter from /proc/self/fdinfo without
// consuming it.
func eventfdCount(t *testing.T, fd int) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", fd))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "eventfd-count:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatalf("fdinfo of fd %d: %v", fd, err)
			}
			return n
		}
	}
	t.Fatalf("fd %d has no eventfd-count in its fdinfo:\n%s", fd, b)
	return 0
}

// TestReadReadinessAndPeerClose: an edge-triggered read registration
// reports data, then the peer's close as EventRdHup; a refused second Add
// leaves the first registration working; Del, Add and Close report
// ErrNotRegistered and ErrClosed where the registration or poller is gone.
func TestReadReadinessAndPeerClose(t *testing.T) {
	p := newPoller(t)
	a, b := socketPair(t)
	events := make(chan Event, 16)
	if err := p.Add(a, EdgeRead, func(ev Event) { events <- ev }); err != nil {
		t.Fatal(err)
	}
	// A refused second Add must leave the first registration in place:
	// the events below reach the first callback only if it does.
	if err := p.Add(a, EdgeRead, func(Event) {}); !errors.Is(err, ErrRegistered) {
		t.Fatalf("second Add of the same fd: %v, want ErrRegistered", err)
	}
	unix.Write(b, []byte("x"))
	waitEvent(t, events, EventRead)
	unix.Close(b)
	waitEvent(t, events, EventRdHup)
	if err := p.Del(a); err != nil {
		t.Fatal(err)
	}
	if err := p.Del(a); !errors.Is(err, ErrNotRegistered) {
		t.Fatalf("second Del: %v, want ErrNotRegistered", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Add(a, EdgeRead, func(Event) {}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Add after Close: %v, want ErrClosed", err)
	}
	if err := p.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v, want ErrClosed", err)
	}
}

// TestFailedAddLeavesFdNumberReusable: easygo records the callback before
// epoll_ctl(ADD) and keeps it when the call fails; a failed Add must not
// leave the number refused (ErrRegistered) for whatever is opened under it
// next, such as the next accepted connection.
func TestFailedAddLeavesFdNumberReusable(t *testing.T) {
	p := newPoller(t)
	t.Cleanup(func() { p.Close() })
	fd, err := unix.Open(filepath.Join(t.TempDir(), "regular"), unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	var staleRan atomic.Bool
	if err := p.Add(fd, EdgeRead, func(Event) { staleRan.Store(true) }); !errors.Is(err, unix.EPERM) {
		t.Fatalf("Add of a regular file: %v, want EPERM from epoll_ctl", err)
	}

	// Put something pollable under the same number, as the next accept4
	// would. dup3 closes the regular file and reuses its number in one
	// step, so nothing else in the process can take the number between.
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(efd) })
	if err := unix.Dup3(efd, fd, unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	events := make(chan Event, 16)
	if err := p.Add(fd, EdgeRead, func(ev Event) { events <- ev }); err != nil {
		t.Fatalf("Add of fd %d after a failed Add of the same number: %v", fd, err)
	}
	if _, err := unix.Write(efd, one[:]); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, events, EventRead)
	if staleRan.Load() {
		t.Fatal("the failed Add's callback ran")
	}
	if err := p.Del(fd); err != nil {
		t.Fatal(err)
	}
}

// TestCloseCallsRemainingCallbacks: Close calls each callback still
// registered with EventClosed, once, on the goroutine that calls Close;
// a callback removed with Del is not called.
func TestCloseCallsRemainingCallbacks(t *testing.T) {
	p := newPoller(t)
	kept, _ := socketPair(t)
	removed, _ := socketPair(t)
	var keptCalls []string // goroutine of each EventClosed call
	var mu sync.Mutex
	if err := p.Add(kept, EdgeRead, func(ev Event) {
		if ev&EventClosed != 0 {
			mu.Lock()
			keptCalls = append(keptCalls, goroutineID())
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	var removedRan atomic.Bool
	if err := p.Add(removed, EdgeRead, func(Event) { removedRan.Store(true) }); err != nil {
		t.Fatal(err)
	}
	if err := p.Del(removed); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	self := goroutineID()
	mu.Lock()
	defer mu.Unlock()
	if len(keptCalls) != 1 || keptCalls[0] != self {
		t.Fatalf("EventClosed calls on goroutines %v, want exactly one on the closing goroutine %s", keptCalls, self)
	}
	if removedRan.Load() {
		t.Fatal("Close called a callback removed with Del")
	}
}

// TestWakerRunsOnWaitGoroutine: run executes on the goroutine that runs
// fd callbacks (the poller's wait goroutine), not on the goroutine that
// called Wake nor on one of its own.
func TestWakerRunsOnWaitGoroutine(t *testing.T) {
	p := newPoller(t)
	t.Cleanup(func() { p.Close() })
	a, b := socketPair(t)
	callbackG := make(chan string, 1)
	if err := p.Add(a, EdgeRead, func(ev Event) {
		if ev&EventRead != 0 {
			callbackG <- goroutineID()
		}
	}); err != nil {
		t.Fatal(err)
	}
	runG := make(chan string, 4)
	w, err := NewWaker(p, func() { runG <- goroutineID() })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(p) })

	unix.Write(b, []byte("x"))
	waitG := receive(t, callbackG, "the fd callback")

	wakerG := make(chan string, 1)
	go func() {
		wakerG <- goroutineID()
		w.Wake()
	}()
	fromG := receive(t, wakerG, "the waking goroutine")
	got := receive(t, runG, "run")
	if got != waitG {
		t.Fatalf("run on goroutine %s, fd callbacks on %s (Wake called on %s, test on %s)", got, waitG, fromG, goroutineID())
	}
}

// TestWakesDuringRunCoalesceIntoOneRun: any number of Wake calls, from
// any number of goroutines, made while run is busy cost one eventfd write
// and cause exactly one more run; none is lost.
func TestWakesDuringRunCoalesceIntoOneRun(t *testing.T) {
	p := newPoller(t)
	t.Cleanup(func() { p.Close() })
	var runs atomic.Int32
	entered := make(chan int32, 16)
	release := make(chan struct{})
	w, err := NewWaker(p, func() {
		n := runs.Add(1)
		entered <- n
		if n == 1 {
			<-release // hold the first run while the test wakes
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(p) })
	var releaseOnce sync.Once
	releaseFirst := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(releaseFirst) // a failing test must not leave Close waiting on run

	w.Wake()
	receive(t, entered, "the first run")

	const wakers, wakesEach = 8, 50
	var wg sync.WaitGroup
	for range wakers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range wakesEach {
				w.Wake()
			}
		}()
	}
	wg.Wait()
	if n := eventfdCount(t, w.fd); n != 1 {
		t.Fatalf("%d Wake calls during a run left the eventfd counter at %d, want 1 (one write; 0 means the wakes were lost)", wakers*wakesEach, n)
	}

	releaseFirst()
	if n := receive(t, entered, "the run owed to the wakes (lost wake-up)"); n != 2 {
		t.Fatalf("run number %d, want 2", n)
	}
	// Run 2 took the counter; nothing woke since, so nothing more may run.
	barrier(t, p)
	if n := runs.Load(); n != 2 {
		t.Fatalf("%d runs, want 2: the wakes during the first run caused %d", n, n-1)
	}
	if n := eventfdCount(t, w.fd); n != 0 {
		t.Fatalf("eventfd counter %d after the last run, want 0", n)
	}
}
