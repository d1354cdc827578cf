package loadgen

import (
	"slices"
	"testing"
)

func TestTrackSeq(t *testing.T) {
	const (
		N = seqNext
		G = seqGap
		L = seqLate
		D = seqDuplicate
	)
	cases := []struct {
		name     string
		arrivals []uint64
		kinds    []seqKind
		gaps     []seqRange // left at the end
		last     uint64     // published
		unknown  []uint64
		missing  int64
	}{
		{"in order", []uint64{1, 2, 3}, []seqKind{N, N, N}, nil, 3, nil, 0},
		{"tail never came", []uint64{1, 2}, []seqKind{N, N}, nil, 5, nil, 3},
		{"nothing came", nil, nil, nil, 4, nil, 4},
		{"gap filled late", []uint64{1, 3, 2, 4}, []seqKind{N, G, L, N}, nil, 4, nil, 0},
		{"gap never filled", []uint64{1, 4, 5}, []seqKind{N, G, N}, []seqRange{{2, 3}}, 5, nil, 2},
		{"gap filled in the middle", []uint64{1, 5, 3}, []seqKind{N, G, L}, []seqRange{{2, 2}, {4, 4}}, 5, nil, 2},
		{"gap filled from both ends", []uint64{1, 5, 2, 4, 3}, []seqKind{N, G, L, L, L}, nil, 5, nil, 0},
		{"duplicate of the latest", []uint64{1, 2, 2, 3}, []seqKind{N, N, D, N}, nil, 3, nil, 0},
		{"duplicate of an old one", []uint64{1, 2, 3, 1}, []seqKind{N, N, N, D}, nil, 3, nil, 0},
		{"late then duplicate", []uint64{2, 1, 1}, []seqKind{G, L, D}, nil, 2, nil, 0},
		{"two gaps", []uint64{1, 3, 6}, []seqKind{N, G, G}, []seqRange{{2, 2}, {4, 5}}, 6, nil, 3},
		{"unknown publishes are not lost", []uint64{1, 3}, []seqKind{N, G}, []seqRange{{2, 2}}, 5, []uint64{2, 5}, 1},
		{"unknown and delivered", []uint64{1, 2, 3}, []seqKind{N, N, N}, nil, 3, []uint64{2}, 0},
		{"gap past the last published", []uint64{1, 4}, []seqKind{N, G}, []seqRange{{2, 3}}, 2, nil, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var highest uint64
			var gaps []seqRange
			var kinds []seqKind
			for _, s := range tc.arrivals {
				var k seqKind
				gaps, k = trackSeq(&highest, gaps, s)
				kinds = append(kinds, k)
			}
			if !slices.Equal(kinds, tc.kinds) {
				t.Errorf("kinds %v, want %v", kinds, tc.kinds)
			}
			if !slices.Equal(gaps, tc.gaps) {
				t.Errorf("gaps %v, want %v", gaps, tc.gaps)
			}
			if got := missingSeqs(highest, gaps, tc.last, tc.unknown); got != tc.missing {
				t.Errorf("missing %d, want %d", got, tc.missing)
			}
		})
	}
}

func BenchmarkTrackSeqInOrder(b *testing.B) {
	b.ReportAllocs()
	var highest uint64
	var gaps []seqRange
	for b.Loop() {
		gaps, _ = trackSeq(&highest, gaps, highest+1)
	}
}
