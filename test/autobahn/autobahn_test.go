package autobahn

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind (the runner
// starts processes and waits for them).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// ciGroups are the groups `make test` runs: every group, RFC 6455's (1-7,
// 9, 10: about 20 s on a 2-core VM, case 6.4 waits on purpose, case 9
// moves 16 MiB messages) and permessage-deflate's (12, 13: about a minute
// without SlowDeflateCases, see ciExclude), within CI's five minutes.
// -short leaves out 6, 9, 12 and 13. AUTOBAHN_GROUPS (space-separated)
// overrides both.
func ciGroups() []string {
	if g := strings.Fields(os.Getenv("AUTOBAHN_GROUPS")); len(g) > 0 {
		return g
	}
	if testing.Short() {
		return []string{"1", "2", "3", "4", "5", "7", "10"}
	}
	return Groups
}

// ciExclude are the cases `make test` leaves out: groups 12 and 13's
// messages over 16 KiB (six minutes; scripts/autobahn.sh runs them).
// AUTOBAHN_ALL=1 runs them too.
func ciExclude() []string {
	if os.Getenv("AUTOBAHN_ALL") != "" {
		return nil
	}
	return SlowDeflateCases
}

// TestAutobahnSuitePassesAgainstShardEcho runs the Autobahn fuzzing client
// against the shard in echo mode (the echo server, built without -race:
// it is a separate process), with the gateway's default limits except for
// group 9's 16 MiB messages and 12 and 13's 128 KiB ones, and wants every
// case of every group OK, NON-STRICT or INFORMATIONAL, cleanly closed, and
// none missing.
func TestAutobahnSuitePassesAgainstShardEcho(t *testing.T) {
	kosoku := findKosoku(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	run, err := RunGroups(ctx, Config{
		Kosoku:    kosoku,
		Groups:    ciGroups(),
		Exclude:   ciExclude(),
		ReportDir: t.TempDir(),
		BuildDir:  t.TempDir(),
		Progress: func(g *Group) {
			t.Logf("group %s: %d cases in %.1f s", g.Name, len(g.Cases), g.Elapsed.Seconds())
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kosoku %s\n%s", run.Kosoku, run.Table())
	for _, g := range run.Groups {
		t.Run("group-"+g.Name, func(t *testing.T) {
			for _, p := range g.Problems() {
				t.Error(p)
			}
		})
	}
}

// findKosoku returns the kosoku executable: $AUTOBAHN_KOSOKU, else the
// one scripts/autobahn.sh installs in bin/autobahn-venv. Without it the
// test skips, or fails when CI is set (CI installs it first).
func findKosoku(t *testing.T) string {
	t.Helper()
	path := os.Getenv("AUTOBAHN_KOSOKU")
	if path == "" {
		root, err := filepath.Abs(filepath.Join("..", ".."))
		if err != nil {
			t.Fatal(err)
		}
		path = filepath.Join(root, "bin", "autobahn-venv", "bin", "kosoku")
	}
	if isExecutable(path) {
		return path
	}
	msg := "no kosoku at " + path + ": `scripts/autobahn.sh install` (or `make autobahn`) installs it; AUTOBAHN_KOSOKU names another"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}
