// Command floor measures the physical floor of a broadcast on this
// machine: the CPU cost of one write(2) of a small WebSocket frame to a
// loopback TCP socket. On loopback the receive path (TCP, socket buffer,
// wake-up of the reader) runs in the sender's context, so this cost is
// paid per subscriber by any gateway, whatever its design.
//
// It opens -conns loopback connections, drains their receiving ends on
// another thread, and writes -size bytes to each in turn from one locked
// OS thread for -duration, reading that thread's CPU time from
// getrusage(RUSAGE_THREAD). Run it in the same session as the servers it
// is compared with: the cost moves with the host's load.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// Result is the JSON report.
type Result struct {
	Conns          int     `json:"conns"`
	FrameBytes     int     `json:"frame_bytes"`
	Writes         int64   `json:"writes"`
	WallSeconds    float64 `json:"wall_seconds"`
	WriterCPUus    float64 `json:"writer_cpu_us_per_write"`
	ProcessCPUus   float64 `json:"process_cpu_us_per_write"`
	Cores          int     `json:"cores"`
	FanoutFloorMS  float64 `json:"fanout_floor_ms_per_15000"`
	FanoutFloorFor int     `json:"fanout_floor_subscribers"`
}

func main() {
	conns := flag.Int("conns", 1000, "loopback connections written round-robin")
	size := flag.Int("size", 260, "frame size in bytes (256-byte message + header)")
	duration := flag.Duration("duration", 3*time.Second, "how long to write")
	jsonOut := flag.String("json", "", "write the result as JSON to this file")
	flag.Parse()
	if *conns < 1 || *size < 1 || *duration <= 0 {
		fmt.Fprintln(os.Stderr, "floor: -conns, -size and -duration must be positive")
		os.Exit(2)
	}
	r, err := measure(*conns, *size, *duration)
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
	fmt.Printf("write(2) of %d bytes to a loopback TCP socket: %.2f µs CPU (writer thread), %.2f µs CPU (whole process, reader included)\n",
		r.FrameBytes, r.WriterCPUus, r.ProcessCPUus)
	fmt.Printf("floor for one frame to %d subscribers on %d cores: %.1f ms\n", r.FanoutFloorFor, r.Cores, r.FanoutFloorMS)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(r, "", "  ")
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "floor:", err)
			os.Exit(1)
		}
	}
}

func measure(n, size int, d time.Duration) (Result, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Result{}, fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	var senders []net.Conn
	var receivers []net.Conn
	defer func() {
		for _, c := range append(senders, receivers...) {
			c.Close()
		}
	}()
	for range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return Result{}, fmt.Errorf("dial: %w", err)
		}
		s, err := ln.Accept()
		if err != nil {
			return Result{}, fmt.Errorf("accept: %w", err)
		}
		senders = append(senders, s)
		receivers = append(receivers, c)
	}
	fds := make([]int, n)
	for i, s := range senders {
		raw, err := s.(*net.TCPConn).SyscallConn()
		if err != nil {
			return Result{}, err
		}
		raw.Control(func(fd uintptr) { fds[i] = int(fd) })
	}

	// Drain the receiving ends so send buffers never fill.
	stop := make(chan struct{})
	drained := make(chan struct{})
	for _, c := range receivers {
		go func() {
			buf := make([]byte, 64<<10)
			for {
				if _, err := c.Read(buf); err != nil {
					return
				}
			}
		}()
	}
	go func() { <-stop; close(drained) }()

	frame := make([]byte, size)
	frame[0] = 0x81
	var before, after unix.Rusage
	var pBefore, pAfter unix.Rusage
	var writes int64
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		unix.Getrusage(unix.RUSAGE_THREAD, &before)
		unix.Getrusage(unix.RUSAGE_SELF, &pBefore)
		deadline := time.Now().Add(d)
		for i := 0; ; i++ {
			if i%256 == 0 && time.Now().After(deadline) {
				break
			}
			if _, err := unix.Write(fds[i%n], frame); err != nil && err != unix.EAGAIN {
				done <- fmt.Errorf("write: %w", err)
				return
			}
			writes++
		}
		unix.Getrusage(unix.RUSAGE_THREAD, &after)
		unix.Getrusage(unix.RUSAGE_SELF, &pAfter)
		done <- nil
	}()
	if err := <-done; err != nil {
		return Result{}, err
	}
	wall := time.Since(start)
	close(stop)
	<-drained
	cpu := func(a, b unix.Rusage) time.Duration {
		return time.Duration(b.Utime.Nano()+b.Stime.Nano()) - time.Duration(a.Utime.Nano()+a.Stime.Nano())
	}
	per := float64(cpu(before, after).Microseconds()) / float64(writes)
	perProc := float64(cpu(pBefore, pAfter).Microseconds()) / float64(writes)
	cores := runtime.NumCPU()
	const subs = 15000
	return Result{
		Conns: n, FrameBytes: size, Writes: writes, WallSeconds: wall.Seconds(),
		WriterCPUus: per, ProcessCPUus: perProc, Cores: cores,
		FanoutFloorFor: subs, FanoutFloorMS: per * subs / float64(cores) / 1000,
	}, nil
}
