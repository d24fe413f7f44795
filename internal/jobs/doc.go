// Package jobs runs passes as durable River jobs: one job per mailbox and
// pass, whose arguments are IDs only (never secrets). A worker takes a
// lease on its mailbox and a slot of its source host in the database, so
// any number of worker processes sharing the database neither run one
// mailbox twice nor hammer one provider. The embedded default is River's
// SQLite driver; the PostgreSQL driver plugs in the same way.
package jobs
