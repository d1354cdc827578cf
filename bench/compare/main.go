// Command compare turns one run of scripts/compare.sh into a results
// file: it reads the run directory the script filled (manifest.tsv naming
// each shardbench JSON report, the floor results, machine.json) and writes
// a markdown file with the tables, the ratios shardgate ÷ peer, the figures
// read against the floor, pass or miss against issue 3's targets, and SVG
// charts next to it.
//
//	compare machine FILE                  write this machine's description as JSON
//	compare check REPORT                  exit 0 if a fanout report is a sustained
//	                                      saturation point, 1 (and why) if not
//	compare report -dir DIR -md FILE      write FILE and DIR/*.svg from DIR
//
// scripts/compare.sh calls all three; `report` can be rerun on a kept run
// directory, for example after adding DIR/notes.md (included verbatim).
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/shardgate/shardgate/bench/report"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage:
  compare machine FILE              write this machine's description as JSON
  compare check REPORT              exit 0 if a fanout report is a sustained saturation point
  compare report -dir DIR -md FILE  write the results file FILE and the charts DIR/*.svg
`

// run is main with its effects passed in; it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "machine":
		if len(args) != 2 {
			fmt.Fprint(stderr, usage)
			return 2
		}
		err = saveMachine(args[1])
	case "check":
		if len(args) != 2 {
			fmt.Fprint(stderr, usage)
			return 2
		}
		var rep report.Report
		if err = readJSON(args[1], &rep); err == nil {
			ok, why := Sustained(&rep)
			if !ok {
				fmt.Fprintf(stdout, "not sustained: %s\n", why)
				return 1
			}
			fmt.Fprintln(stdout, "sustained")
			return 0
		}
	case "report":
		fs := flag.NewFlagSet("compare report", flag.ContinueOnError)
		fs.SetOutput(stderr)
		dir := fs.String("dir", "", "run directory written by scripts/compare.sh")
		md := fs.String("md", "", "results file to write (default: DIR.md)")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		if *dir == "" || fs.NArg() > 0 {
			fmt.Fprint(stderr, usage)
			return 2
		}
		if *md == "" {
			*md = filepath.Clean(*dir) + ".md"
		}
		err = writeResults(*dir, *md)
		if err == nil {
			fmt.Fprintf(stdout, "wrote %s\n", *md)
		}
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "compare: unknown command %q\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "compare: %v\n", err)
		return 1
	}
	return 0
}

// writeResults reads the run directory dir and writes the results file md
// and the charts into dir.
func writeResults(dir, md string) error {
	d, err := Load(dir)
	if err != nil {
		return err
	}
	charts := Charts(d)
	for _, c := range charts {
		if err := os.WriteFile(filepath.Join(dir, c.File), c.SVG, 0o644); err != nil {
			return err
		}
	}
	rel, err := filepath.Rel(filepath.Dir(md), dir)
	if err != nil {
		rel = dir
	}
	f, err := os.Create(md)
	if err != nil {
		return err
	}
	err = Markdown(f, d, filepath.ToSlash(rel), charts)
	return errors.Join(err, f.Close())
}

func saveMachine(path string) error {
	m, err := DescribeMachine()
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
