package client

import "container/heap"

// timer is a function due at a loop clock value.
type timer struct {
	at  int64
	seq uint64 // keeps timers due at the same time in the order they were set
	fn  func()
}

// timerHeap is a min-heap of timers by due time, owned by the loop.
type timerHeap []timer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)   { *h = append(*h, x.(timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = timer{}
	*h = old[:len(old)-1]
	return t
}

func (h *timerHeap) add(t timer) { heap.Push(h, t) }

// popDue removes and returns the earliest timer if it is due at now.
func (h *timerHeap) popDue(now int64) (timer, bool) {
	if len(*h) == 0 || (*h)[0].at > now {
		return timer{}, false
	}
	return heap.Pop(h).(timer), true
}
