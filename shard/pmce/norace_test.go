//go:build !race

package pmce

// raceEnabled: see race_test.go.
const raceEnabled = false
