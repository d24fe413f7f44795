package gmailimap

import "strings"

// FaultAction is what an injected fault does to the command it hits.
type FaultAction int

const (
	// FaultReply answers the command with Fault.Text as its tagged
	// status (e.g. "NO [UNAVAILABLE] Temporary System Error") without
	// running it.
	FaultReply FaultAction = iota
	// FaultBye sends "* BYE <Text>" and closes the connection instead of
	// running the command.
	FaultBye
	// FaultDrop closes the connection without a word instead of running
	// the command.
	FaultDrop
	// FaultDropAfter runs the command (its effects happen: an APPEND is
	// stored) and closes the connection after AfterBytes bytes of its
	// response, 0 meaning before any: the client never learns the
	// outcome.
	FaultDropAfter
)

// Fault makes the server misbehave for matching commands.
type Fault struct {
	// User is the account whose connections are hit; "" hits every
	// connection, including those not logged in yet (the only way to hit
	// LOGIN and AUTHENTICATE).
	User string
	// Command is the command name as Commands counts it ("UID FETCH",
	// "APPEND", "LOGIN"); "" hits any command.
	Command string
	// Times is how many commands are hit; 0 means 1.
	Times      int
	Action     FaultAction
	Text       string
	AfterBytes int64
}

// InjectFault arms a fault. Faults are checked in the order injected.
func (s *Server) InjectFault(f Fault) {
	if f.Times <= 0 {
		f.Times = 1
	}
	f.Command = strings.ToUpper(f.Command)
	s.mu.Lock()
	s.faults = append(s.faults, &f)
	s.mu.Unlock()
}

// takeFault returns the first armed fault matching the command, using
// one of its Times.
func (s *Server) takeFault(user, name string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if (f.User == "" || strings.EqualFold(f.User, user)) && (f.Command == "" || f.Command == name) {
			hit := *f
			f.Times--
			if f.Times == 0 {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
			return &hit
		}
	}
	return nil
}

// applyFaults runs an armed fault for the command about to run. It
// reports whether the session goes on; for FaultReply the command has
// been answered and the caller must read the next one, which it learns
// from c.p.err being set to a literalRefused carrying the reply.
func (c *session) applyFaults(name string) bool {
	f := c.s.takeFault(c.user, name)
	if f == nil {
		return true
	}
	switch f.Action {
	case FaultReply:
		c.p.err = &literalRefused{resp: f.Text}
	case FaultBye:
		c.sendBye(f.Text)
		return false
	case FaultDrop:
		c.close()
		return false
	case FaultDropAfter:
		c.dropAfter = f.AfterBytes
	}
	return true
}
