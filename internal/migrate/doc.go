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
//   - one bad message is recorded (folder, UID, size, reason) and the rest
//     goes on; only login, TLS, connection and quota problems stop a run.
package migrate
