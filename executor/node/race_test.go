//go:build race

package node_test

// raceEnabled reports a -race build: sync.Pool then drops items at random,
// so packages that pool their scratch (regexp) allocate far more.
const raceEnabled = true
