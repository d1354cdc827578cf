// Package bufpool hands out byte buffers from size-classed sync.Pools.
//
// A Pool is owned by one shard (or the acceptor); there is no package-level
// pool. Buffers come in power-of-two classes from MinSize to MaxSize; a
// request above MaxSize is served by a plain allocation and dropped on Put.
//
// Get returns a *[]byte so that Put does not allocate a slice header; the
// caller owns the buffer until it hands it back with Put and must not keep
// any slice of it afterwards.
package bufpool

import (
	"math/bits"
	"sync"
)

const (
	// MinSize is the smallest class: requests below it get MinSize bytes.
	MinSize = 256
	// MaxSize is the largest pooled class (256 KiB).
	MaxSize = 256 << 10

	minShift = 8  // log2(MinSize)
	maxShift = 18 // log2(MaxSize)
	classes  = maxShift - minShift + 1
)

// Pool is a set of sync.Pools, one per size class. The zero value is ready
// to use. A Pool must not be copied after first use.
type Pool struct {
	classes [classes]sync.Pool
}

// New returns an empty Pool.
func New() *Pool { return &Pool{} }

// class returns the index of the smallest class holding n bytes, or -1 when
// n is above MaxSize.
func class(n int) int {
	if n <= MinSize {
		return 0
	}
	if n > MaxSize {
		return -1
	}
	return bits.Len(uint(n-1)) - minShift
}

// Get returns a buffer of length n. Its capacity is the class size, so
// appends up to that size do not reallocate. The contents are not zeroed.
func (p *Pool) Get(n int) *[]byte {
	c := class(n)
	if c < 0 {
		b := make([]byte, n)
		return &b
	}
	if v := p.classes[c].Get(); v != nil {
		b := v.(*[]byte)
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<(c+minShift))
	return &b
}

// Put returns b to the pool. Buffers whose capacity is not exactly a class
// size (including oversize ones) are dropped, so a slice that was grown by
// append never pollutes a class with the wrong capacity.
func (p *Pool) Put(b *[]byte) {
	if b == nil {
		return
	}
	c := putClass(cap(*b))
	if c < 0 {
		return
	}
	*b = (*b)[:0]
	p.classes[c].Put(b)
}

// putClass returns the class a buffer of capacity n goes back to, or -1
// when n is not exactly a class size and the buffer must be dropped. It is
// Put's whole decision, kept apart so that tests can check it without
// going through sync.Pool, which drops items at random under the race
// detector.
func putClass(n int) int {
	c := class(n)
	if c < 0 || 1<<(c+minShift) != n {
		return -1
	}
	return c
}
