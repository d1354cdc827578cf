package autobahn

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Verdicts of a case's behaviour, as Autobahn names them.
const (
	OK            = "OK"
	NonStrict     = "NON-STRICT"
	Informational = "INFORMATIONAL"
	Unimplemented = "UNIMPLEMENTED"
	Failed        = "FAILED"
)

// Verdicts lists the behaviour verdicts in the order summaries show them.
// Any other verdict the suite may give (ERROR, NO_CLOSE) is counted under
// FAILED.
var Verdicts = []string{OK, NonStrict, Informational, Unimplemented, Failed}

// Case is one case's outcome.
type Case struct {
	ID              string
	Behavior        string // the message exchange: OK, NON-STRICT, INFORMATIONAL, UNIMPLEMENTED, FAILED...
	BehaviorClose   string // the closing handshake: OK, INFORMATIONAL, FAILED, WRONG CODE, UNCLEAN...
	RemoteCloseCode int    // the close code the server sent; 0 for none
	Duration        time.Duration
	// Description is what the case sends; Result and ResultClose are
	// the suite's explanations of both verdicts. All three are read for
	// cases that are not plain OK only.
	Description, Result, ResultClose string
}

// Passed reports whether the case counts as passed: a behaviour of OK,
// NON-STRICT or INFORMATIONAL, and a closing behaviour of OK or
// INFORMATIONAL.
func (c *Case) Passed() bool {
	switch c.Behavior {
	case OK, NonStrict, Informational:
	default:
		return false
	}
	return c.BehaviorClose == OK || c.BehaviorClose == Informational
}

// verdict is the column c is counted in.
func (c *Case) verdict() string {
	if slices.Contains(Verdicts, c.Behavior) {
		return c.Behavior
	}
	return Failed
}

// Group is the outcome of one group of cases, one kosoku run.
type Group struct {
	Name    string
	Agent   string // the server's name, from its Server header
	Cases   []Case // in suite order
	Missing []string
	Elapsed time.Duration // the kosoku run's wall time
	// EchoArgs are the flags the echo server ran with (nil: the
	// gateway's default limits).
	EchoArgs []string
	byID     map[string]*Case
}

// Count returns how many cases got each behaviour verdict (see Verdicts).
func (g *Group) Count() map[string]int {
	n := make(map[string]int, len(Verdicts))
	for i := range g.Cases {
		n[g.Cases[i].verdict()]++
	}
	return n
}

// CloseNotOK returns how many cases closed with a verdict other than OK
// or INFORMATIONAL.
func (g *Group) CloseNotOK() int {
	n := 0
	for i := range g.Cases {
		if c := g.Cases[i].BehaviorClose; c != OK && c != Informational {
			n++
		}
	}
	return n
}

// Problems lists every reason the group does not pass: cases that failed
// or were not run. It is empty when every case passed.
func (g *Group) Problems() []string {
	var p []string
	for i := range g.Cases {
		c := &g.Cases[i]
		if !c.Passed() {
			p = append(p, fmt.Sprintf("case %s: %s (%s), close %s (%s), remote close code %d",
				c.ID, c.Behavior, c.Result, c.BehaviorClose, c.ResultClose, c.RemoteCloseCode))
		}
	}
	for _, id := range g.Missing {
		p = append(p, fmt.Sprintf("case %s: did not run (absent from the report)", id))
	}
	return p
}

// indexEntry is one case in kosoku's index.json, Autobahn's format:
// {agent: {case id: entry}}.
type indexEntry struct {
	Behavior        string `json:"behavior"`
	BehaviorClose   string `json:"behaviorClose"`
	RemoteCloseCode *int   `json:"remoteCloseCode"`
	Duration        int64  `json:"duration"` // milliseconds
	ReportFile      string `json:"reportfile"`
}

// caseReport is the part of a case's own report file read for cases that
// are not plain OK.
type caseReport struct {
	Description string `json:"description"`
	Result      string `json:"result"`
	ResultClose string `json:"resultClose"`
}

// readReport reads the index.json kosoku wrote in dir.
func readReport(dir string) (*Group, error) {
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return nil, err
	}
	var index map[string]map[string]indexEntry
	if err := json.Unmarshal(b, &index); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "index.json"), err)
	}
	if len(index) != 1 {
		return nil, fmt.Errorf("%s: want one agent, found %d", filepath.Join(dir, "index.json"), len(index))
	}
	g := &Group{byID: make(map[string]*Case)}
	for agent, cases := range index {
		g.Agent = agent
		for id, e := range cases {
			c := Case{ID: id, Behavior: e.Behavior, BehaviorClose: e.BehaviorClose, Duration: time.Duration(e.Duration) * time.Millisecond}
			if e.RemoteCloseCode != nil {
				c.RemoteCloseCode = *e.RemoteCloseCode
			}
			if c.Behavior != OK || c.BehaviorClose != OK {
				var r caseReport
				if b, err := os.ReadFile(filepath.Join(dir, e.ReportFile)); err == nil && json.Unmarshal(b, &r) == nil {
					c.Description, c.Result, c.ResultClose = r.Description, r.Result, r.ResultClose
				}
			}
			g.Cases = append(g.Cases, c)
		}
	}
	slices.SortFunc(g.Cases, func(a, b Case) int { return compareIDs(a.ID, b.ID) })
	for i := range g.Cases {
		g.byID[g.Cases[i].ID] = &g.Cases[i]
	}
	return g, nil
}

// compareIDs orders case ids numerically by component: 1.2.10 after 1.2.9.
func compareIDs(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		x, errx := strconv.Atoi(as[i])
		y, erry := strconv.Atoi(bs[i])
		if errx != nil || erry != nil {
			if c := strings.Compare(as[i], bs[i]); c != 0 {
				return c
			}
			continue
		}
		if x != y {
			return x - y
		}
	}
	return len(as) - len(bs)
}
