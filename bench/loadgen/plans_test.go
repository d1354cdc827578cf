package loadgen

import (
	"net/netip"
	"testing"
)

// TestPlansDealWorkersOverNodes: a cluster run deals workers over the
// nodes round-robin and splits connections evenly.
func TestPlansDealWorkersOverNodes(t *testing.T) {
	a := netip.MustParseAddrPort("127.0.0.1:8081")
	b := netip.MustParseAddrPort("127.0.0.1:8082")
	c := Config{
		Scenario: ScenarioFanout, URL: "ws://127.0.0.1:8081/ws", Addr: a,
		URLs:  []string{"ws://127.0.0.1:8081/ws", "ws://127.0.0.1:8082/ws"},
		Addrs: []netip.AddrPort{a, b},
		Conns: 10, Procs: 4,
	}
	c.setDefaults()
	plans := c.plans()
	wantURL := []string{"ws://127.0.0.1:8081/ws", "ws://127.0.0.1:8082/ws", "ws://127.0.0.1:8081/ws", "ws://127.0.0.1:8082/ws"}
	total := 0
	for i, p := range plans {
		if p.URL != wantURL[i] {
			t.Errorf("worker %d: URL %s, want %s", i, p.URL, wantURL[i])
		}
		if want := map[bool]string{true: a.String(), false: b.String()}[i%2 == 0]; p.Addr != want {
			t.Errorf("worker %d: addr %s, want %s", i, p.Addr, want)
		}
		total += p.Conns
	}
	if total != 10 {
		t.Errorf("plans hold %d connections, want 10", total)
	}
}
