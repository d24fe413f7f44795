//go:build race

package ews

// raceEnabled: the race detector makes byte-wise work ten times slower,
// so the large-message test uses a smaller message under it.
const raceEnabled = true
