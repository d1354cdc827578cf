package loadgen

// A soak's steady subscriber checks the numbered stream of its channel:
// the coordinator publishes 1, 2, 3, ... on each channel, and within one
// channel the gateway delivers in publish order. Per connection the worker
// keeps the highest number seen (connRec.lastSeq) and, only when numbers
// were skipped, the runs still missing. A healthy run keeps no run at all,
// so the check costs nothing per connection beyond the record it already
// has.
//
// What arrives is one of:
//
//	next        highest+1: the normal case
//	gap         beyond highest+1: the numbers between are missing, for now
//	late        at or below highest and missing: a gap filled, out of order
//	duplicate   at or below highest and not missing: seen before
//
// Which missing numbers are lost is known only at the end, against the
// last number published on the channel (missingSeqs).

// seqRange is a run of missing sequence numbers, lo..hi inclusive.
type seqRange struct{ lo, hi uint64 }

// seqKind is what one arriving sequence number turned out to be.
type seqKind uint8

const (
	seqNext seqKind = iota
	seqGap
	seqLate
	seqDuplicate
)

// trackSeq takes seq into highest and gaps (the runs missing below
// highest, in ascending order) and says what it was. gaps is updated in
// place where it can be; use the returned slice.
func trackSeq(highest *uint64, gaps []seqRange, seq uint64) ([]seqRange, seqKind) {
	h := *highest
	switch {
	case seq == h+1:
		*highest = seq
		return gaps, seqNext
	case seq > h+1:
		*highest = seq
		return append(gaps, seqRange{h + 1, seq - 1}), seqGap
	}
	for i, g := range gaps {
		if seq < g.lo || seq > g.hi {
			continue
		}
		switch {
		case g.lo == g.hi:
			gaps = append(gaps[:i], gaps[i+1:]...)
		case seq == g.lo:
			gaps[i].lo++
		case seq == g.hi:
			gaps[i].hi--
		default:
			gaps = append(gaps, seqRange{})
			copy(gaps[i+2:], gaps[i+1:])
			gaps[i] = seqRange{g.lo, seq - 1}
			gaps[i+1] = seqRange{seq + 1, g.hi}
		}
		return gaps, seqLate
	}
	return gaps, seqDuplicate
}

// missingSeqs counts the numbers 1..last that a connection never received,
// given its highest and gaps, leaving out unknown: numbers whose publish
// got no answer, which may or may not have been sent.
func missingSeqs(highest uint64, gaps []seqRange, last uint64, unknown []uint64) int64 {
	var n int64
	for _, g := range gaps {
		if g.lo > last {
			break
		}
		n += int64(min(g.hi, last) - g.lo + 1)
	}
	if last > highest {
		n += int64(last - highest)
	}
	for _, u := range unknown {
		if u > last {
			continue
		}
		if u > highest {
			n--
			continue
		}
		for _, g := range gaps {
			if g.lo <= u && u <= g.hi {
				n--
				break
			}
		}
	}
	return n
}
