//go:build race

package pmce

// raceEnabled lets allocation-count assertions step aside: under the race
// detector sync.Pool drops items at random, so pooled state is remade.
const raceEnabled = true
