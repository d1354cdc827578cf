// Command runsuite runs the Autobahn TestSuite against the gateway's
// WebSocket layer (see package autobahn) and prints a summary table; with
// -out it also writes the Markdown report kept under bench/results. It
// exits 1 when a case failed or did not run, 2 when the run itself failed.
// scripts/autobahn.sh installs kosoku and calls it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"github.com/shardgate/shardgate/test/autobahn"
)

func main() {
	kosoku := flag.String("kosoku", "bin/autobahn-venv/bin/kosoku", "the kosoku executable, in its virtual environment")
	groups := flag.String("groups", strings.Join(autobahn.Groups, ","), "case groups to run, comma-separated")
	echoArgs := flag.String("echo-args", "", "the echo server's flags for every group, space-separated (default: the gateway's limits, raised for groups 9, 12 and 13)")
	reports := flag.String("reports", "bin/autobahn-reports", "directory for kosoku's reports (HTML and JSON), one per group")
	out := flag.String("out", "", "write the Markdown report to this file")
	command := flag.String("command", "", "the command to record in the report (default: this one)")
	flag.Parse()
	if *command == "" {
		*command = strings.Join(os.Args, " ")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	build, err := os.MkdirTemp("", "autobahn-echo-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(build)

	var argsFor func(string) []string // nil: autobahn.EchoArgs
	if *echoArgs != "" {
		argsFor = func(string) []string { return strings.Fields(*echoArgs) }
	}
	run, err := autobahn.RunGroups(ctx, autobahn.Config{
		Kosoku:    *kosoku,
		Groups:    strings.Split(*groups, ","),
		EchoArgs:  argsFor,
		ReportDir: *reports,
		BuildDir:  build,
		Progress: func(g *autobahn.Group) {
			fmt.Fprintf(os.Stderr, "group %s: %d cases in %.1f s, %d problems\n", g.Name, len(g.Cases), g.Elapsed.Seconds(), len(g.Problems()))
		},
	})
	if err != nil {
		os.RemoveAll(build)
		fail(err)
	}
	run.Command = *command
	run.Revision = revision()
	fmt.Print(run.Table())
	if *out != "" {
		if err := os.WriteFile(*out, []byte(run.Markdown()), 0o644); err != nil {
			os.RemoveAll(build)
			fail(err)
		}
		fmt.Printf("report: %s; kosoku's own: %s/<group>/index.html\n", *out, *reports)
	}
	if problems := run.Problems(); len(problems) > 0 {
		fmt.Printf("FAIL: %d problems\n", len(problems))
		for _, p := range problems {
			fmt.Println("  " + p)
		}
		os.RemoveAll(build)
		os.Exit(1)
	}
	fmt.Printf("PASS: %d groups, every case OK, NON-STRICT or INFORMATIONAL\n", len(run.Groups))
}

// revision is the commit the echo server was built from, marked when
// what it is built from (shard/, test/autobahn/) has uncommitted changes;
// "" outside a git checkout.
func revision() string {
	head, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	rev := strings.TrimSpace(string(head))
	if dirty, err := exec.Command("git", "status", "--porcelain", "--", "shard", "test/autobahn", "poller", "bufpool").Output(); err == nil && len(dirty) > 0 {
		rev += " with uncommitted changes"
	}
	return rev
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "runsuite:", err)
	os.Exit(2)
}
