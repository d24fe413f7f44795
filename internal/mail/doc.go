// Package mail holds Mailferry's domain types that every other package
// shares: folder paths, special-use roles, flags and message identity.
// It does no I/O, so connectors and the engine agree on meaning without
// depending on each other.
package mail
