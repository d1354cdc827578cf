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

// TestPutClass checks Put's decision directly: only a capacity that is
// exactly a class size goes back, to that class.
func TestPutClass(t *testing.T) {
	cases := []struct {
		cap, want int
	}{
		{0, -1}, {1, -1}, {MinSize - 1, -1},
		{MinSize, 0}, {MinSize + 1, -1},
		{300, -1}, {2 * MinSize, 1}, {2*MinSize + 1, -1},
		{4096, 4}, {4095, -1}, {6000, -1},
		{MaxSize / 2, classes - 2}, {MaxSize - 1, -1},
		{MaxSize, classes - 1}, {MaxSize + 1, -1}, {2 * MaxSize, -1},
	}
	for _, c := range cases {
		if got := putClass(c.cap); got != c.want {
			t.Errorf("putClass(%d) = %d, want %d", c.cap, got, c.want)
		}
	}
	// Whatever Put accepts, Get of that class hands out with that capacity.
	for c := range classes {
		size := MinSize << c
		if got := putClass(size); got != c || class(size) != c {
			t.Errorf("size %d: putClass %d, class %d, want %d", size, got, class(size), c)
		}
	}
}

// TestPutRejectsForeignCapacity checks the same through the pool: a buffer
// of foreign capacity put into an empty pool never comes back from Get.
// Under the race detector sync.Pool drops a quarter of Puts at random, so
// one try proves little; the control half shows that the same probe,
// repeated as often, does see a buffer Put accepts (a miss in every one
// of the tries has a chance of 4^-attempts).
func TestPutRejectsForeignCapacity(t *testing.T) {
	const attempts = 100
	accepted := 0
	for range attempts {
		p := New()
		odd := make([]byte, 0, 300) // between the 256 and 512 classes
		p.Put(&odd)
		if b := p.Get(MinSize + 1); b == &odd {
			t.Fatalf("Get(%d) returned the cap-%d buffer Put should have dropped", MinSize+1, cap(odd))
		}

		p = New()
		exact := make([]byte, 0, 2*MinSize)
		p.Put(&exact)
		if b := p.Get(MinSize + 1); b == &exact {
			accepted++
		}
	}
	if accepted == 0 {
		t.Fatalf("a class-size buffer never came back in %d tries: the probe cannot see an accepted Put", attempts)
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
