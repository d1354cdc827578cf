// Command shardbench is shardgate's load generator: it opens many
// WebSocket connections from several worker processes and measures
// connection setup, fan-out delivery and round trips against shardgate or a
// peer server, and reports the server's memory, goroutines and CPU time
// together with its own cost.
//
//	shardbench connect -conns 19000 -procs 2
//	shardbench fanout -conns 15000 -channels 1 -rate 10 -size 256 -duration 30s -procs 2
//	shardbench echo -conns 1000 -duration 10s
//	shardbench soak -conns 15000 -duration 30m -churn 20 -procs 2
//	shardbench chaos -url ws://127.0.0.1:8081/ws,ws://127.0.0.1:8082/ws,ws://127.0.0.1:8083/ws \
//		-admin-url http://127.0.0.1:9091,http://127.0.0.1:9092 -kill-pid 1234 -kill-after 20s
//	shardbench <scenario> -h   (flags of a scenario)
//
// Exit status: 0 after a run (its report may carry warnings), 1 when the
// run could not be carried out, 2 for bad arguments, 3 for a soak or a
// chaos run whose verdict is FAIL.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/shardgate/shardgate/bench/loadgen"
	"github.com/shardgate/shardgate/bench/report"
)

// workerCommand is the hidden command the parent runs its workers with.
const workerCommand = "worker"

// exitSoakFailed is the exit status of a soak that ran and failed its
// verdict.
const exitSoakFailed = 3

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main with its effects passed in; it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == workerCommand {
		return runWorker()
	}
	opts, err := parseArgs(args, stdout)
	if errors.Is(err, errHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "shardbench: %v\n", err)
		return 2
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "shardbench: cannot find own executable to start workers: %v\n", err)
		return 1
	}
	opts.cfg.Spawn = loadgen.ExecSpawner(exe, workerCommand)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	prog := newProgress(stdout)
	opts.cfg.OnProgress = prog.update
	rep, err := loadgen.Run(ctx, opts.cfg)
	prog.clear()
	if err != nil {
		fmt.Fprintf(stderr, "shardbench: %v\n", err)
		return 1
	}
	if code := writeReport(rep, opts.jsonPath, stdout, stderr); code != 0 {
		return code
	}
	return verdict(rep, opts.jsonPath, stderr)
}

// verdict is the exit status of a run that was reported: a soak that
// failed its verdict says why on stderr too when its report went to stdout
// as JSON (the table already carries the FAIL lines).
func verdict(rep *report.Report, jsonPath string, stderr io.Writer) int {
	if rep.Chaos != nil && !rep.Chaos.Pass {
		if jsonPath == "-" {
			fmt.Fprint(stderr, report.ChaosFailLines(rep.Chaos))
		}
		return exitSoakFailed
	}
	if rep.Soak == nil || rep.Soak.Pass {
		return 0
	}
	if jsonPath == "-" {
		fmt.Fprint(stderr, report.FailLines(rep.Soak))
	}
	return exitSoakFailed
}

func writeReport(rep *report.Report, jsonPath string, stdout, stderr io.Writer) int {
	if jsonPath == "-" {
		if err := report.WriteJSON(stdout, rep); err != nil {
			fmt.Fprintf(stderr, "shardbench: write report: %v\n", err)
			return 1
		}
		return 0
	}
	if err := report.WriteTable(stdout, rep); err != nil {
		fmt.Fprintf(stderr, "shardbench: write report: %v\n", err)
		return 1
	}
	if jsonPath == "" {
		return 0
	}
	f, err := os.Create(jsonPath)
	if err == nil {
		err = report.WriteJSON(f, rep)
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		fmt.Fprintf(stderr, "shardbench: -json: %v\n", err)
		return 1
	}
	return 0
}

// runWorker is a worker process: commands on stdin, events on stdout.
// The parent stops it through stdin, so terminal signals are left to the
// parent (the worker runs in its own process group anyway).
func runWorker() int {
	signal.Ignore(syscall.SIGINT)
	if err := loadgen.RunWorker(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "shardbench worker: %v\n", err)
		return 1
	}
	return 0
}
