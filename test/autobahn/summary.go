package autobahn

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// Run is a finished run of several groups against one echo server.
type Run struct {
	Command  string // how the run was made, for whoever repeats it
	Revision string // the commit the echo server was built from (git describe)
	Kosoku   string // kosoku's version
	Started  time.Time
	Elapsed  time.Duration // the whole run, echo server build and start included
	Groups   []*Group
}

// Problems lists every reason the run does not pass, group by group.
func (r *Run) Problems() []string {
	var p []string
	for _, g := range r.Groups {
		p = append(p, g.Problems()...)
	}
	return p
}

// Table returns the summary table as plain text: one row per group, a
// column per verdict, then cases whose closing handshake was not OK,
// cases that did not run, and the group's wall time.
func (r *Run) Table() string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "group\tcases\t%s\tclose not OK\tnot run\ttime\t\n", strings.Join(Verdicts, "\t"))
	r.rows(func(cells []string) { fmt.Fprintf(w, "%s\t\n", strings.Join(cells, "\t")) })
	w.Flush()
	return b.String()
}

// Markdown returns the report written under bench/results: what ran,
// where, how, the table, and every case that is not plain OK with the
// suite's explanation.
func (r *Run) Markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	verdict := "PASS: every case OK, NON-STRICT or INFORMATIONAL"
	if n := len(r.Problems()); n > 0 {
		verdict = fmt.Sprintf("FAIL: %d problems (listed below)", n)
	}
	p("# Autobahn TestSuite: shardgate's WebSocket layer\n\n")
	p("%s.\n\n", verdict)
	p("- Command: `%s`\n", r.Command)
	if r.Revision != "" {
		p("- Revision: %s\n", r.Revision)
	}
	p("- Date: %s\n", r.Started.UTC().Format("2006-01-02 15:04 MST"))
	p("- Machine: %s\n", machine())
	p("- Server under test: `test/autobahn/echoserver`, the shard's event loop, frame decoder, limits, reassembly, UTF-8 checks, control frames, close handshake and outbound queue, with the JSON protocol replaced by echo (`shard.Options.Echo`); built with %s, without -race. %s\n", runtime.Version(), r.serverFlags())
	p("- Client: kosoku %s (PyPI), Autobahn's own case files on Python 3, one case at a time, one kosoku run per group\n", r.Kosoku)
	p("- Whole run: %s\n\n", r.Elapsed.Round(100*time.Millisecond))
	p("A case passes with a behaviour of OK, NON-STRICT or INFORMATIONAL and a closing behaviour of OK or INFORMATIONAL. Time is each group's kosoku run, wall clock.\n\n")
	p("| group | cases | %s | close not OK | not run | time |\n", strings.Join(Verdicts, " | "))
	p("|%s\n", strings.Repeat("---:|", len(Verdicts)+5))
	r.rows(func(cells []string) { p("| %s |\n", strings.Join(cells, " | ")) })

	var notOK []string
	for _, g := range r.Groups {
		for i := range g.Cases {
			c := &g.Cases[i]
			if c.Behavior != OK || c.BehaviorClose != OK {
				notOK = append(notOK, fmt.Sprintf("| %s | %s | %s | %s | %d | %s | %s |", c.ID, cell(summaryOf(c.Description)), c.Behavior, c.BehaviorClose, c.RemoteCloseCode, explain(c), notes[c.ID]))
			}
		}
	}
	if len(notOK) > 0 {
		p("\n## Cases not plain OK\n\n")
		p("| case | the case | behaviour | close | close code | the suite says | why |\n|---|---|---|---|---:|---|---|\n")
		p("%s\n", strings.Join(notOK, "\n"))
	}
	if problems := r.Problems(); len(problems) > 0 {
		p("\n## Problems\n\n")
		for _, pr := range problems {
			p("- %s\n", pr)
		}
	}
	return b.String()
}

// serverFlags says which groups ran with which echo server flags.
func (r *Run) serverFlags() string {
	var parts []string
	seen := make(map[string][]string)
	var order []string
	for _, g := range r.Groups {
		k := strings.Join(g.EchoArgs, " ")
		if _, ok := seen[k]; !ok {
			order = append(order, k)
		}
		seen[k] = append(seen[k], g.Name)
	}
	for _, k := range order {
		flags := "no flags: the gateway's default limits (64 KiB messages, 1 MiB send queue)"
		if k != "" {
			flags = "`" + k + "`"
		}
		groups := "Group"
		if len(seen[k]) > 1 {
			groups = "Groups"
		}
		parts = append(parts, fmt.Sprintf("%s %s: %s.", groups, strings.Join(seen[k], ", "), flags))
	}
	return strings.Join(parts, " ")
}

// notes explains verdicts other than OK that are known and by design.
var notes = map[string]string{
	"6.4.3":  "One text frame sent in three chops. The decoder reads a frame only once it is whole (wsframe.Decode), so the bad UTF-8 fails the frame at its end, not at the chop that carries it. Fragmented messages fail at the bad fragment (6.4.1, 6.4.2 are OK).",
	"6.4.4":  "As 6.4.3.",
	"7.1.6":  "INFORMATIONAL for every server: a 256 KiB message, a short one, a close and a ping sent back to back; what comes back depends on the implementation. Ours echoes both messages whole, then answers the close and ignores the ping behind it.",
	"7.13.1": "Close code 5000: RFC 6455 defines no range above 4999; the shard answers 1002 (wsframe.validCloseCode). INFORMATIONAL for every server.",
	"7.13.2": "Close code 65535: as 7.13.1.",
}

// rows calls row with the cells of each group's row, then the total's.
func (r *Run) rows(row func(cells []string)) {
	total := &Group{Name: "all"}
	totalCount := make(map[string]int)
	var closeNotOK int
	for _, g := range r.Groups {
		row(groupCells(g.Name, len(g.Cases), g.Count(), g.CloseNotOK(), len(g.Missing), g.Elapsed))
		for k, v := range g.Count() {
			totalCount[k] += v
		}
		closeNotOK += g.CloseNotOK()
		total.Cases = append(total.Cases, g.Cases...)
		total.Missing = append(total.Missing, g.Missing...)
		total.Elapsed += g.Elapsed
	}
	if len(r.Groups) > 1 {
		row(groupCells(total.Name, len(total.Cases), totalCount, closeNotOK, len(total.Missing), total.Elapsed))
	}
}

func groupCells(name string, cases int, count map[string]int, closeNotOK, missing int, elapsed time.Duration) []string {
	cells := []string{name, fmt.Sprint(cases)}
	for _, v := range Verdicts {
		cells = append(cells, fmt.Sprint(count[v]))
	}
	return append(cells, fmt.Sprint(closeNotOK), fmt.Sprint(missing), fmt.Sprintf("%.1f s", elapsed.Seconds()))
}

// explain is the suite's reason for c's verdicts, on one table line.
func explain(c *Case) string {
	s := c.Result
	if c.BehaviorClose != OK && c.ResultClose != "" {
		s += " Close: " + c.ResultClose
	}
	return cell(s)
}

// summaryOf is a case description up to its first HTML line break (some
// go on with the message's bytes).
func summaryOf(description string) string {
	s, _, _ := strings.Cut(description, "<br>")
	return s
}

// cell makes s fit one Markdown table cell.
func cell(s string) string {
	return strings.NewReplacer("|", "\\|", "\n", " ").Replace(strings.TrimSpace(s))
}

// machine describes the host: CPU model, cores and kernel.
func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = ", Linux " + strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%s, %d cores%s", cpu, runtime.NumCPU(), kernel)
}
