package loadgen

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
)

func TestDataRoundTrip(t *testing.T) {
	for _, size := range []int{0, 10, MinDataSize, MinDataSize + 8, 256, 4096} {
		d := AppendData([]byte("x"), 1732540000123456789, 42, size)[1:]
		if size >= MinDataSize+len(`,"p":""`) && len(d) != size {
			t.Errorf("size %d: got %d bytes: %s", size, len(d), d)
		}
		sent, seq, ok := ParseData(d)
		if !ok || sent != 1732540000123456789 || seq != 42 {
			t.Errorf("size %d: parsed %d %d %v from %s", size, sent, seq, ok, d)
		}
	}
}

func TestParseDataOtherLayouts(t *testing.T) {
	cases := []struct {
		in   string
		ok   bool
		t, s int64
	}{
		{`{"s":3,"t":5,"p":"x"}`, true, 5, 3},
		{`{ "t" : 7 , "s" : 8 }`, true, 7, 8},
		{`{"t":1,"p":"x"}`, false, 0, 0},
		{`{"t":1,"s":-2}`, false, 0, 0},
		{`"just a string"`, false, 0, 0},
		{`{"t":"1","s":2}`, false, 0, 0},
	}
	for _, tc := range cases {
		sent, seq, ok := ParseData([]byte(tc.in))
		if ok != tc.ok || ok && (sent != tc.t || int64(seq) != tc.s) {
			t.Errorf("%s: got %d %d %v", tc.in, sent, seq, ok)
		}
	}
}

func TestPlansSplitEverything(t *testing.T) {
	var ips []netip.Addr
	for i := 2; i <= 9; i++ {
		ips = append(ips, netip.MustParseAddr(fmt.Sprintf("127.0.0.%d", i)))
	}
	cases := []struct {
		conns, procs int
		ips          []netip.Addr
	}{
		{19000, 2, ips}, {1001, 3, ips}, {5, 5, ips}, {100, 10, ips}, {7, 2, nil},
	}
	for _, tc := range cases {
		c := Config{Scenario: ScenarioFanout, Conns: tc.conns, Procs: tc.procs, SourceIPs: tc.ips, ConnectRate: 1000}
		c.setDefaults()
		plans := c.plans()
		if len(plans) != tc.procs {
			t.Fatalf("%d procs: %d plans", tc.procs, len(plans))
		}
		next, rate := 0, 0.0
		var used []string
		for i, p := range plans {
			if p.First != next || p.Conns < tc.conns/tc.procs || p.Conns > tc.conns/tc.procs+1 {
				t.Errorf("%+v: plan %d has first %d conns %d", tc, i, p.First, p.Conns)
			}
			if len(tc.ips) > 0 && len(p.SourceIPs) == 0 {
				t.Errorf("%+v: plan %d has no source address", tc, i)
			}
			next += p.Conns
			rate += p.ConnectRate
			used = append(used, p.SourceIPs...)
		}
		if next != tc.conns || rate < 999.999 || rate > 1000.001 {
			t.Errorf("%+v: plans cover %d conns at %g/s", tc, next, rate)
		}
		slices.Sort(used)
		if len(tc.ips) >= tc.procs && len(slices.Compact(used)) != len(tc.ips) {
			t.Errorf("%+v: %d of %d source addresses used", tc, len(slices.Compact(used)), len(tc.ips))
		}
	}
}

func TestAddrStrings(t *testing.T) {
	var as []netip.Addr
	for _, s := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.9", "10.0.0.1", "10.0.0.2"} {
		as = append(as, netip.MustParseAddr(s))
	}
	got := addrStrings(as)
	want := []string{"127.0.0.2-127.0.0.4", "127.0.0.9", "10.0.0.1-10.0.0.2"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func BenchmarkParseData(b *testing.B) {
	d := AppendData(nil, 1732540000123456789, 42, 256)
	b.ReportAllocs()
	for b.Loop() {
		ParseData(d)
	}
}
