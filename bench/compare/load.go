package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/shardgate/shardgate/bench/report"
)

// The files scripts/compare.sh leaves in a run directory.
const (
	manifestFile   = "manifest.tsv"
	machineFile    = "machine.json"
	floorStartFile = "raw/floor-start.json"
	floorEndFile   = "raw/floor-end.json"
	notesFile      = "notes.md"
)

// Groups of runs in the manifest.
const (
	groupMain   = "main"   // connect, fanout and echo at the sizes of issue 3
	groupSweep  = "sweep"  // saturation sweep points (fanout)
	groupShards = "shards" // shardgate's -shards sweep (fanout and connect)
)

// manifestColumns is the manifest's header line: the columns in order.
var manifestColumns = []string{
	"group", "system", "scenario", "shards", "conns", "rate", "status", "report", "server_command", "bench_command",
}

// Run is one line of the manifest: one fresh server process driven by one
// shardbench run.
type Run struct {
	Group    string
	System   string
	Scenario string
	Shards   int     // shardgate's -shards; 0: the server's default
	Conns    int     // connections (subscribers) asked for
	Rate     float64 // fanout: messages per second; 0 for other scenarios
	// Status is "ok", or "failed: <why>" when the server did not start or
	// shardbench did not finish; a failed run may still have a report.
	Status        string
	ReportPath    string // relative to the run directory
	ServerCommand string
	BenchCommand  string

	// Report is the shardbench JSON report, nil when there is none.
	Report *report.Report
	// LoadError says why a report named in the manifest could not be read.
	LoadError string
}

// OK reports whether the run finished and left a report.
func (r *Run) OK() bool { return r.Status == "ok" && r.Report != nil }

// Failure says why the run has no usable figures ("" when it has).
func (r *Run) Failure() string {
	switch {
	case r.Status != "ok":
		return strings.TrimPrefix(r.Status, "failed: ")
	case r.LoadError != "":
		return r.LoadError
	case r.Report == nil:
		return "no report"
	}
	return ""
}

// Info is a "# key: value" line from the manifest's head: facts about the
// whole run (the invocation, the commit, peer versions, wall time).
type Info struct {
	Key, Value string
}

// Floor is bench/floor's JSON result (the fields read here).
type Floor struct {
	Conns        int     `json:"conns"`
	FrameBytes   int     `json:"frame_bytes"`
	Writes       int64   `json:"writes"`
	WriterCPUus  float64 `json:"writer_cpu_us_per_write"`
	ProcessCPUus float64 `json:"process_cpu_us_per_write"`
	Cores        int     `json:"cores"`
}

// Machine describes the host, written by `compare machine`.
type Machine struct {
	Hostname      string `json:"hostname"`
	CPUs          int    `json:"cpus"`
	CPUModel      string `json:"cpu_model"`
	Kernel        string `json:"kernel"`
	GoVersion     string `json:"go_version"`
	MemTotalBytes int64  `json:"mem_total_bytes"`
	OpenFileLimit uint64 `json:"open_file_limit"`
}

// Data is everything one run directory holds.
type Data struct {
	Dir        string
	Info       []Info
	Machine    *Machine
	FloorStart *Floor
	FloorEnd   *Floor
	Runs       []*Run
	Notes      string // notes.md, written by hand after the run
}

// InfoValue returns the value of the manifest head's key, or "".
func (d *Data) InfoValue(key string) string {
	for _, kv := range d.Info {
		if kv.Key == key {
			return kv.Value
		}
	}
	return ""
}

// Load reads the run directory dir. A missing or unreadable report or
// floor does not fail the load (the results file says what is missing);
// a missing or malformed manifest does.
func Load(dir string) (*Data, error) {
	f, err := os.Open(filepath.Join(dir, manifestFile))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, runs, err := ParseManifest(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	d := &Data{Dir: dir, Info: info, Runs: runs}
	for _, r := range runs {
		if r.ReportPath == "" {
			continue
		}
		rep := new(report.Report)
		if err := readJSON(filepath.Join(dir, r.ReportPath), rep); err != nil {
			if r.Status == "ok" {
				r.LoadError = err.Error()
			}
			continue
		}
		r.Report = rep
	}
	d.FloorStart = loadOptional[Floor](filepath.Join(dir, floorStartFile))
	d.FloorEnd = loadOptional[Floor](filepath.Join(dir, floorEndFile))
	d.Machine = loadOptional[Machine](filepath.Join(dir, machineFile))
	if b, err := os.ReadFile(filepath.Join(dir, notesFile)); err == nil {
		d.Notes = strings.TrimSpace(string(b))
	}
	return d, nil
}

// loadOptional reads a JSON file into a new T, or returns nil.
func loadOptional[T any](path string) *T {
	v := new(T)
	if err := readJSON(path, v); err != nil {
		return nil
	}
	return v
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// ParseManifest reads a manifest: "# key: value" lines, a header line
// naming manifestColumns, then one tab-separated line per run.
func ParseManifest(r io.Reader) ([]Info, []*Run, error) {
	var (
		info   []Info
		runs   []*Run
		header bool
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		switch {
		case line == "":
			continue
		case strings.HasPrefix(line, "#"):
			k, v, _ := strings.Cut(strings.TrimSpace(line[1:]), ":")
			info = append(info, Info{Key: strings.TrimSpace(k), Value: strings.TrimSpace(v)})
			continue
		case !header:
			if got := strings.Split(line, "\t"); strings.Join(got, ",") != strings.Join(manifestColumns, ",") {
				return nil, nil, fmt.Errorf("line %d: header %q, want the columns %s", n, line, strings.Join(manifestColumns, " "))
			}
			header = true
			continue
		}
		run, err := parseRun(strings.Split(line, "\t"))
		if err != nil {
			return nil, nil, fmt.Errorf("line %d: %w", n, err)
		}
		runs = append(runs, run)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}
	if !header {
		return nil, nil, errors.New("no header line")
	}
	return info, runs, nil
}

func parseRun(f []string) (*Run, error) {
	if len(f) != len(manifestColumns) {
		return nil, fmt.Errorf("%d columns, want %d", len(f), len(manifestColumns))
	}
	r := &Run{
		Group: f[0], System: f[1], Scenario: f[2], Status: f[6], ReportPath: f[7],
		ServerCommand: f[8], BenchCommand: f[9],
	}
	var err error
	if r.Shards, err = atoiOrZero(f[3]); err != nil {
		return nil, fmt.Errorf("shards: %w", err)
	}
	if r.Conns, err = atoiOrZero(f[4]); err != nil {
		return nil, fmt.Errorf("conns: %w", err)
	}
	if f[5] != "" && f[5] != "-" {
		if r.Rate, err = strconv.ParseFloat(f[5], 64); err != nil {
			return nil, fmt.Errorf("rate: %w", err)
		}
	}
	if r.Group == "" || r.System == "" || r.Scenario == "" || r.Status == "" {
		return nil, errors.New("group, system, scenario and status must be set")
	}
	return r, nil
}

// atoiOrZero parses s, with "" and "-" meaning 0.
func atoiOrZero(s string) (int, error) {
	if s == "" || s == "-" {
		return 0, nil
	}
	return strconv.Atoi(s)
}
