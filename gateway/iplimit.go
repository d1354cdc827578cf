package gateway

import (
	"net/netip"
	"sync"
)

// ipLimiter counts, per client address, the connections that are in their
// handshake or open, for -max-conns-per-ip. The acceptor adds on accept;
// whoever ends the connection (the acceptor for a handshake that fails, a
// shard goroutine on release) removes through the tag the acceptor got.
// Tags index a slab of entries so a connection carries 4 bytes, not an
// address; an address is forgotten when its count drops to zero.
type ipLimiter struct {
	max int

	mu      sync.Mutex // a leaf: nothing else is locked while it is held
	byAddr  map[netip.Addr]uint32
	entries []ipEntry // tag-1 → entry
	free    []uint32  // tags of unused entries
}

type ipEntry struct {
	addr netip.Addr
	n    int
}

func newIPLimiter(max int) *ipLimiter {
	return &ipLimiter{max: max, byAddr: make(map[netip.Addr]uint32)}
}

// add counts one more connection from addr and returns its tag (never 0).
func (l *ipLimiter) add(addr netip.Addr) uint32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	tag, ok := l.byAddr[addr]
	if !ok {
		if n := len(l.free); n > 0 {
			tag = l.free[n-1]
			l.free = l.free[:n-1]
		} else {
			l.entries = append(l.entries, ipEntry{})
			tag = uint32(len(l.entries))
		}
		l.entries[tag-1] = ipEntry{addr: addr}
		l.byAddr[addr] = tag
	}
	l.entries[tag-1].n++
	return tag
}

// over reports whether tag's address holds more than max connections
// (the caller's own included): the caller is the excess.
func (l *ipLimiter) over(tag uint32) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.entries[tag-1].n > l.max
}

// release forgets one connection of tag's address. Tag 0 (untracked) is
// ignored.
func (l *ipLimiter) release(tag uint32) {
	if tag == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e := &l.entries[tag-1]
	if e.n--; e.n > 0 {
		return
	}
	delete(l.byAddr, e.addr)
	*e = ipEntry{}
	l.free = append(l.free, tag)
}

// count returns addr's connections, for tests and logs.
func (l *ipLimiter) count(addr netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if tag, ok := l.byAddr[addr]; ok {
		return l.entries[tag-1].n
	}
	return 0
}
