package autobahn

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReportCountsVerdictsAndFindsMissingCases reads an index.json in
// kosoku's (Autobahn's) format: verdicts are counted per column, a bad
// closing handshake fails a case whose behaviour passed, unknown verdicts
// count as FAILED, and a selected case absent from the report is a
// problem.
func TestReportCountsVerdictsAndFindsMissingCases(t *testing.T) {
	dir := t.TempDir()
	index := `{"shardgate-echo": {
		"6.4.3": {"behavior": "NON-STRICT", "behaviorClose": "OK", "remoteCloseCode": 1007, "duration": 2003, "reportfile": "x.json"},
		"6.1.1": {"behavior": "OK", "behaviorClose": "OK", "remoteCloseCode": 1000, "duration": 1, "reportfile": "y.json"},
		"6.10.1": {"behavior": "OK", "behaviorClose": "UNCLEAN", "remoteCloseCode": null, "duration": 1, "reportfile": "z.json"},
		"6.2.1": {"behavior": "ERROR", "behaviorClose": "OK", "remoteCloseCode": 1000, "duration": 1, "reportfile": "w.json"},
		"6.3.1": {"behavior": "INFORMATIONAL", "behaviorClose": "INFORMATIONAL", "remoteCloseCode": 1000, "duration": 1, "reportfile": "v.json"}
	}}`
	if err := os.WriteFile(filepath.Join(dir, "index.json"), []byte(index), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "z.json"), []byte(`{"result": "fine", "resultClose": "The connection was not closed cleanly"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	g, err := readReport(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range g.Cases {
		ids = append(ids, c.ID)
	}
	if got := strings.Join(ids, " "); got != "6.1.1 6.2.1 6.3.1 6.4.3 6.10.1" {
		t.Errorf("cases in order %q, want numeric order", got)
	}
	count := g.Count()
	want := map[string]int{OK: 2, NonStrict: 1, Informational: 1, Failed: 1}
	for _, v := range Verdicts {
		if count[v] != want[v] {
			t.Errorf("%s: %d cases, want %d", v, count[v], want[v])
		}
	}
	if n := g.CloseNotOK(); n != 1 {
		t.Errorf("close not OK: %d, want 1", n)
	}

	g.Missing = []string{"6.4.4"}
	problems := strings.Join(g.Problems(), "\n")
	for _, want := range []string{"case 6.2.1: ERROR", "case 6.10.1: OK (fine), close UNCLEAN (The connection was not closed cleanly)", "case 6.4.4: did not run"} {
		if !strings.Contains(problems, want) {
			t.Errorf("problems lack %q:\n%s", want, problems)
		}
	}
	if n := len(g.Problems()); n != 3 {
		t.Errorf("%d problems, want 3:\n%s", n, problems)
	}
}
