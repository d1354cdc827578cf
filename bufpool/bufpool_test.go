package bufpool

import "testing"

func TestGetSizes(t *testing.T) {
	p := New()
	cases := []struct{ n, wantCap int }{
		{0, MinSize}, {1, MinSize}, {MinSize, MinSize}, {MinSize + 1, 2 * MinSize},
		{4096, 4096}, {4097, 8192}, {MaxSize, MaxSize}, {MaxSize + 1, MaxSize + 1},
	}
	for _, c := range cases {
		b := p.Get(c.n)
		if len(*b) != c.n || cap(*b) != c.wantCap {
			t.Errorf("Get(%d): len %d cap %d, want len %d cap %d", c.n, len(*b), cap(*b), c.n, c.wantCap)
		}
		p.Put(b)
	}
}

func TestPutRejectsForeignCapacity(t *testing.T) {
	p := New()
	odd := make([]byte, 0, 300)
	p.Put(&odd) // must not land in the 512 class
	for i := 0; i < 100; i++ {
		b := p.Get(400)
		if cap(*b) != 512 {
			t.Fatalf("Get(400) returned cap %d, want 512", cap(*b))
		}
	}
}

func BenchmarkGetPut(b *testing.B) {
	p := New()
	b.ReportAllocs()
	for b.Loop() {
		buf := p.Get(1500)
		p.Put(buf)
	}
}
