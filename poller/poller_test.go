package poller

import (
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

func waitEvent(t *testing.T, ch <-chan Event, want Event) {
	t.Helper()
	select {
	case ev := <-ch:
		if ev&want == 0 {
			t.Fatalf("event %#x, want bits %#x", ev, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no event with bits %#x", want)
	}
}

func TestReadReadinessAndClose(t *testing.T) {
	p := newPoller(t)
	a, b := socketPair(t)
	events := make(chan Event, 16)
	if err := p.Add(a, EdgeRead, func(ev Event) { events <- ev }); err != nil {
		t.Fatal(err)
	}
	if err := p.Add(a, EdgeRead, func(Event) {}); err == nil {
		t.Fatal("second Add of the same fd succeeded")
	}
	unix.Write(b, []byte("x"))
	waitEvent(t, events, EventRead)
	unix.Close(b)
	waitEvent(t, events, EventRdHup|EventRead)
	if err := p.Del(a); err != nil {
		t.Fatal(err)
	}
	if err := p.Del(a); err == nil {
		t.Fatal("second Del succeeded")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Add(a, EdgeRead, func(Event) {}); err == nil {
		t.Fatal("Add after Close succeeded")
	}
}

func TestCloseCallsRemainingCallbacks(t *testing.T) {
	p := newPoller(t)
	a, _ := socketPair(t)
	var closed atomic.Bool
	if err := p.Add(a, EdgeRead, func(ev Event) {
		if ev&EventClosed != 0 {
			closed.Store(true)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if !closed.Load() {
		t.Fatal("callback did not get EventClosed")
	}
}

func TestWakerCoalescesAndRunsOnWaitGoroutine(t *testing.T) {
	p := newPoller(t)
	ran := make(chan struct{}, 100)
	w, err := NewWaker(p, func() { ran <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		w.Wake()
	}
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("waker did not run")
	}
	// A wake after the run must run again (nothing lost).
	w.Wake()
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("second wake lost")
	}
	if err := w.Close(p); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}
