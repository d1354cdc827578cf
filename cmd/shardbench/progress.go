package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/shardgate/shardgate/bench/loadgen"
	"golang.org/x/sys/unix"
)

// progress draws one self-overwriting status line, only when stdout is a
// terminal: piped output and files get the report alone.
type progress struct {
	w     io.Writer
	on    bool
	drawn bool
	last  time.Time
}

// redrawEvery limits redraws: workers report several times a second each.
const redrawEvery = 200 * time.Millisecond

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		p.on = err == nil
	}
	return p
}

func (p *progress) update(s loadgen.Progress) {
	if !p.on || time.Since(p.last) < redrawEvery {
		return
	}
	p.last = time.Now()
	p.drawn = true
	fmt.Fprintf(p.w, "\r\033[K%s", progressLine(s))
}

// clear erases the line before the report is printed.
func (p *progress) clear() {
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
	}
}

func progressLine(s loadgen.Progress) string {
	st := s.Stats
	line := fmt.Sprintf("[%5.1fs] %-10s conns %d/%d opened, %d failed", s.Elapsed.Seconds(), s.Phase, st.Opened, s.Conns, st.Failed)
	if st.Dropped > 0 {
		line += fmt.Sprintf(", %d dropped", st.Dropped)
	}
	switch {
	case s.Expected > 0 || s.Published > 0:
		line += fmt.Sprintf(" | published %d, delivered %d/%d", s.Published, st.Delivered, s.Expected)
	case st.RoundTrips > 0:
		line += fmt.Sprintf(" | round trips %d", st.RoundTrips)
	}
	if st.Duplicated > 0 || st.Reordered > 0 {
		line += fmt.Sprintf(", %d duplicated, %d reordered", st.Duplicated, st.Reordered)
	}
	if st.ChurnStarted > 0 {
		line += fmt.Sprintf(" | churn %d: %d done, %d failed", st.ChurnStarted, st.ChurnDone, st.ChurnFailed)
	}
	return line
}
