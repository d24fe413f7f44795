// Package service is the migration service behind the API and the
// portal: owners, projects, mailbox pairs, passes and their statistics,
// the mailbox status machine, and the Solve Issue catalogue. It keeps
// everything in the database (nothing a second worker process would need
// lives in memory) and never returns a password: they are sealed with
// AES-256-GCM on the way in and opened only by the worker that uses them.
package service
