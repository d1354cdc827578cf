//go:build race

package protocol

// raceEnabled lets allocation-count assertions step aside: the race
// detector's instrumentation adds allocations of its own.
const raceEnabled = true
