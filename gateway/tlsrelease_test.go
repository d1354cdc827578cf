package gateway

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestHandshakeBurstReleasesMemoryOnceQuiet: after a burst of TLS
// handshakes ends, the releaser returns memory once; while handshakes are
// still running it does not, even when enough of them have finished.
func TestHandshakeBurstReleasesMemoryOnceQuiet(t *testing.T) {
	th := newTLSHandshakes(nil)
	th.burst, th.quiet = 3, 10*time.Millisecond
	released := make(chan int64, 10)
	var inFlightAtRelease atomic.Int64
	th.release = func() {
		inFlightAtRelease.Store(th.inFlight.Load())
		released <- th.done.Load()
	}
	th.start()
	defer func() { th.stop(); th.wait() }()

	// Four handshakes run; three finish (a burst's worth) while the
	// fourth still runs: no release may come until it ends.
	th.inFlight.Add(4)
	for range 3 {
		th.finished()
	}
	th.idle <- struct{}{} // as if the count had touched zero: must be ignored while one runs
	time.Sleep(5 * th.quiet)
	select {
	case n := <-released:
		t.Fatalf("released with a handshake still in flight (done %d)", n)
	default:
	}
	th.finished()
	select {
	case <-released:
	case <-time.After(10 * time.Second):
		t.Fatal("no release after a burst of 4 handshakes ended")
	}
	if n := inFlightAtRelease.Load(); n != 0 {
		t.Fatalf("released with %d handshakes in flight", n)
	}

	// A small burst (under th.burst) releases nothing; the next one that
	// brings the count past it does.
	th.inFlight.Add(2)
	th.finished()
	th.finished()
	th.inFlight.Add(1)
	th.finished()
	select {
	case <-released:
	case <-time.After(10 * time.Second):
		t.Fatal("no release once three more handshakes had finished")
	}
}
