//go:build !race

package ews

const raceEnabled = false
