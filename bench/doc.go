// Package bench holds the side-by-side benchmark of Mailferry against its
// peers, mbsync (isync) and Dovecot's dsync, on a fixed synthetic mailbox.
//
// Everything is in the tests: run it with scripts/bench, which installs
// what is missing and sets MAILFERRY_BENCH=1. Without that variable the
// test skips at once, so `go test ./...` stays fast. Results and how to
// read them are in docs/BENCHMARKS.md.
package bench
