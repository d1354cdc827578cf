package loadgen

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/shardgate/shardgate/bench/report"
	"golang.org/x/sys/unix"
)

// Usage is CPU time and peak memory of a process (or of its waited-for
// children).
type Usage struct {
	UserS       float64 `json:"user_s"`
	SysS        float64 `json:"sys_s"`
	MaxRSSBytes int64   `json:"max_rss_bytes"`
}

func (u Usage) sub(o Usage) Usage {
	return Usage{UserS: u.UserS - o.UserS, SysS: u.SysS - o.SysS, MaxRSSBytes: u.MaxRSSBytes}
}

// getUsage wraps getrusage(2); who is unix.RUSAGE_SELF or RUSAGE_CHILDREN.
// For RUSAGE_CHILDREN, MaxRSSBytes is that of the largest child, not a sum.
func getUsage(who int) Usage {
	var ru unix.Rusage
	if err := unix.Getrusage(who, &ru); err != nil {
		return Usage{}
	}
	sec := func(tv unix.Timeval) float64 { return float64(tv.Sec) + float64(tv.Usec)/1e6 }
	return Usage{UserS: sec(ru.Utime), SysS: sec(ru.Stime), MaxRSSBytes: ru.Maxrss * 1024}
}

// machineInfo describes this machine for the report.
func machineInfo() report.Machine {
	m := report.Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), CPUModel: cpuModel()}
	m.Hostname, _ = os.Hostname()
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:])
	}
	return m
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// OpenFileLimit is the soft limit on open files of this process.
func OpenFileLimit() int {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Cur > 1<<30 {
		return 1 << 30
	}
	return int(lim.Cur)
}

// cpuTimes is the machine-wide "cpu" line of /proc/stat, in clock ticks.
type cpuTimes struct {
	user, nice, system, idle, iowait, irq, softirq, steal uint64
}

// readCPUTimes reads /proc/stat; ok is false where there is none.
func readCPUTimes() (t cpuTimes, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return t, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return t, false
	}
	var v [8]uint64
	for i := range v {
		n, err := strconv.ParseUint(f[i+1], 10, 64)
		if err != nil {
			return t, false
		}
		v[i] = n
	}
	return cpuTimes{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]}, true
}

// hostCPU turns two readings into shares of the machine's CPU time.
func hostCPU(a, b cpuTimes) *report.HostCPU {
	d := func(x, y uint64) float64 { return float64(y - x) }
	user, sys := d(a.user, b.user)+d(a.nice, b.nice), d(a.system, b.system)
	idle := d(a.idle, b.idle) + d(a.iowait, b.iowait)
	irq, steal := d(a.irq, b.irq)+d(a.softirq, b.softirq), d(a.steal, b.steal)
	total := user + sys + idle + irq + steal
	if total <= 0 {
		return nil
	}
	pct := func(x float64) float64 { return round3(100 * x / total) }
	return &report.HostCPU{BusyPct: pct(total - idle), UserPct: pct(user), SysPct: pct(sys), IRQPct: pct(irq), StealPct: pct(steal)}
}
