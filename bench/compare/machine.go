package main

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// DescribeMachine reads this machine's description: cores this process may
// use, CPU model, kernel, the Go toolchain that built this program (the one
// compare.sh builds every binary with), memory and the open-file limit.
func DescribeMachine() (*Machine, error) {
	m := &Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	var err error
	if m.Hostname, err = os.Hostname(); err != nil {
		return nil, err
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return nil, os.NewSyscallError("uname", err)
	}
	m.Kernel = unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:])
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return nil, os.NewSyscallError("getrlimit", err)
	}
	m.OpenFileLimit = lim.Cur
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPUModel = procField(b, "model name")
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		// "MemTotal:       24683616 kB"
		if f := strings.Fields(procField(b, "MemTotal")); len(f) > 0 {
			if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				m.MemTotalBytes = kb << 10
			}
		}
	}
	return m, nil
}

// procField returns the value of the first "key : value" line of a /proc
// file, or "".
func procField(b []byte, key string) string {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
