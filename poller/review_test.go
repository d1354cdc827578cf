package poller

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// TestWakeAfterCloseWritesNothing: a Wake that comes after Close (the
// gateway's clock ticks the acceptor for the whole drain after Stop closed
// its waker; a Broadcast or Attach can race Shard.Close) must not write to
// the closed eventfd's number, which the process may have reused for a
// client socket, an admin HTTP connection or the NATS connection.
func TestWakeAfterCloseWritesNothing(t *testing.T) {
	p := newPoller(t)
	defer p.Close()
	w, err := NewWaker(p, func() {})
	if err != nil {
		t.Fatal(err)
	}
	var pfd [2]int
	if err := unix.Pipe2(pfd[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pfd[0])
	defer unix.Close(pfd[1])
	num := w.fd
	if err := w.Close(p); err != nil {
		t.Fatal(err)
	}
	// Reuse the number, as the next socket(2)/accept(2) would.
	if err := unix.Dup3(pfd[1], num, unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(num)

	w.Wake()

	buf := make([]byte, 16)
	if n, _ := unix.Read(pfd[0], buf); n > 0 {
		t.Fatalf("Wake after Close wrote %d bytes %x into fd %d, now someone else's", n, buf[:n], num)
	}
	// A second Close must not close the number again (it is the pipe's now).
	if err := w.Close(p); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v, want ErrClosed", err)
	}
	if _, err := unix.FcntlInt(uintptr(num), unix.F_GETFD, 0); err != nil {
		t.Fatalf("second Close closed fd %d, which it no longer owned: %v", num, err)
	}
}
