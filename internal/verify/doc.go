// Package verify is the proof of migration: it reads a source and a
// destination mailbox through the connector interfaces, independently of
// the sync state, plans their folders as a pass does (following the plan
// earlier passes recorded), matches every source message to its
// destination copy by identity (docs/IDENTITY.md) and compares the bytes
// of every pair by SHA-256 while they stream. The Report says, per
// folder, what matched byte for byte, what matched with other flags or
// another date, what is missing, extra, skipped by a filter, or failed
// in an earlier pass, and balances: source = matched + missing + skipped.
package verify
