package loadgen

// The worker's side of a soak: its steady connections are fanout's (set up
// by the same code, one channel each), and check the numbered stream; its
// churn runs beside them (soak_churn.go).

// streamEnd is what the coordinator published on each channel, sent with
// a soak's stop.
type streamEnd struct {
	// Last is the highest number published, per channel.
	Last []uint64 `json:"last"`
	// Unknown lists, per channel, numbers whose publish got no answer:
	// the message may or may not have gone out, so its absence is not a
	// loss.
	Unknown [][]uint64 `json:"unknown,omitempty"`
	// LastOffset and LastEpoch (chaos) are the history position the
	// server answered for Last, per channel.
	LastOffset []uint64 `json:"last_offset,omitempty"`
	LastEpoch  []string `json:"last_epoch,omitempty"`
}

// soakResult is a worker's count of what its steady subscribers missed,
// and of its churn.
type soakResult struct {
	Lost       int64                  `json:"lost"`
	Duplicated int64                  `json:"duplicated"`
	Reordered  int64                  `json:"reordered"`
	Churn      map[string]*churnTally `json:"churn,omitempty"`
}

// onStream takes one stream message on steady connection r, latency ns
// after it was published.
func (w *worker) onStream(r *connRec, latency int64, seq uint64) {
	idx := r.conn.Tag
	gaps, kind := trackSeq(&r.lastSeq, w.gaps[idx], seq)
	switch {
	case len(gaps) > 0:
		w.gaps[idx] = gaps
	case w.gaps[idx] != nil:
		delete(w.gaps, idx)
	}
	switch kind {
	case seqDuplicate:
		w.stats.Duplicated++
		return
	case seqLate:
		w.stats.Reordered++
	}
	w.stats.Delivered++
	w.latency.Record(latency)
}

// lost counts the stream numbers that never reached a steady connection
// that subscribed, dropped ones included (they lost the rest).
func (w *worker) lost(end *streamEnd) int64 {
	if end == nil {
		return 0
	}
	var n int64
	for i := range w.recs {
		r := &w.recs[i]
		if !r.subscribed {
			continue
		}
		ch := (w.plan.First + i) % w.plan.Channels
		if ch >= len(end.Last) {
			continue
		}
		var unknown []uint64
		if ch < len(end.Unknown) {
			unknown = end.Unknown[ch]
		}
		n += missingSeqs(r.lastSeq, w.gaps[i], end.Last[ch], unknown)
	}
	return n
}

// soakResult completes s, made at stop, once every connection has ended.
func (w *worker) soakResult(s *soakResult) *soakResult {
	if s == nil {
		return nil
	}
	s.Duplicated, s.Reordered = w.stats.Duplicated, w.stats.Reordered
	s.Churn = w.churn.result()
	return s
}
