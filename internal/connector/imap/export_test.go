package imap

// DelayedACKs turns off the quick ACKs that connections to servers
// without LITERAL+ use, for benchmarks that show what they are for.
func DelayedACKs(c *Conn) {
	c.quickAck.Store(false)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.idle {
		s.w.quickAck.Store(false)
	}
}

// AppendStrategy overrides how appends go to a server without LITERAL+:
// sequential waits for each answer before the next APPEND on a session;
// affinity keeps a folder's appends on one session.
func AppendStrategy(c *Conn, sequential, affinity bool) {
	c.appendSequential.Store(sequential)
	c.appendAffinity.Store(affinity)
}
