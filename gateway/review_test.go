package gateway

import (
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// eventfds lists the process's open eventfd numbers.
func eventfds(t *testing.T) map[int]bool {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	m := map[int]bool{}
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && l == "anon_inode:[eventfd]" {
			m[n] = true
		}
	}
	return m
}

// TestAcceptorTickAfterStopWritesNothing: Shutdown stops the acceptor and
// then waits up to -drain-timeout while the clock keeps calling
// acceptor.Tick. The first Tick after Stop used to write 8 bytes to the
// stopped waker's eventfd number, closed by Stop and by then possibly
// reused (an admin HTTP connection from a load balancer polling /readyz
// during the drain, the NATS reconnection, a log file).
func TestAcceptorTickAfterStopWritesNothing(t *testing.T) {
	before := eventfds(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var open atomic.Int64
	upgrades := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "u"}, []string{"result"})
	hs := newHandshaker("/ws", nil, nil, 1<<20, &open, upgrades, false)
	a, err := newAcceptor(slog.New(slog.NewTextHandler(io.Discard, nil)), ln.(*net.TCPListener), hs, nil, acceptorLimits{maxHandshakes: 1})
	if err != nil {
		t.Fatal(err)
	}
	var mine []int
	for fd := range eventfds(t) {
		if !before[fd] {
			mine = append(mine, fd)
		}
	}
	if len(mine) == 0 {
		t.Fatal("acceptor created no eventfd")
	}
	var pfd [2]int
	if err := unix.Pipe2(pfd[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pfd[0])
	defer unix.Close(pfd[1])

	a.Stop()
	// Someone else now holds the numbers.
	for _, fd := range mine {
		if err := unix.Dup3(pfd[1], fd, unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
	}
	a.Tick()
	a.Stop()
	buf := make([]byte, 64)
	if n, _ := unix.Read(pfd[0], buf); n > 0 {
		t.Fatalf("Tick after Stop wrote %x into a reused fd", buf[:n])
	}
}
