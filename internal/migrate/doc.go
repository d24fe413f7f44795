// Package migrate is the copy engine: it plans which source folder goes
// where, finds what the destination already holds, and moves the rest
// through a pipeline of fetchers, appenders and answer-waiters. It knows
// the two ends only as connector.Source and connector.Destination.
//
// Guarantees, in order of importance:
//   - a message is never written twice: messages already on the
//     destination are recognised by identity, and an APPEND whose answer
//     was lost is checked against the destination before it is retried;
//   - bytes, flags and INTERNALDATE are copied unchanged;
//   - every folder keeps the destination its first pass recorded;
//   - one bad message is recorded (folder, ID, size, reason) and the rest
//     goes on; a dropped connection is retried, and a server that stops
//     answering is waited for (Options.RetryBudget) before what is left is
//     reported; only login, TLS and quota problems stop a run;
//   - the counts balance: every source message of a pass is copied,
//     already present, skipped, failed or (when stopped) left
//     (Result.Balance).
package migrate
