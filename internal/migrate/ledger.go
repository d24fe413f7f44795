package migrate

import (
	"sync"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
)

// ledger tracks one destination folder's contents by identity. It is
// shared by every source folder that maps to the same destination, so
// that, say, "Sent" and "Sent Items" merging into one \Sent folder never
// write the same message twice.
type ledger struct {
	dest connector.Folder
	// startUIDNext is the destination's UIDNEXT when it was indexed: any
	// message at or above it arrived during this run.
	startUIDNext uint32
	uidValidity  uint32
	acceptAny    bool
	permanent    []string

	// appends holds a read lock from the moment an APPEND is sent until
	// its outcome is known; reconciling an uncertain APPEND takes the
	// write lock, so it sees the folder with nothing in flight.
	appends sync.RWMutex

	mu sync.Mutex
	// have counts, per identity, the copies on the destination: those
	// found when indexing plus those this run has decided to write.
	have map[mail.Identity]int
	// confirmed counts this run's appends the server acknowledged.
	confirmed map[mail.Identity]int
}

func newLedger(dest connector.Folder) *ledger {
	return &ledger{dest: dest, have: make(map[mail.Identity]int), confirmed: make(map[mail.Identity]int)}
}

// claimer decides, for one source folder, which messages to copy. Source
// folders keep their own multiset count so that two identical messages in
// one folder are both copied, while a message that an earlier folder
// already put into the same destination is not written again.
type claimer struct {
	l    *ledger
	used map[mail.Identity]int
}

func (l *ledger) claimer() *claimer { return &claimer{l: l, used: make(map[mail.Identity]int)} }

// claim returns true if id must be copied, false if already there.
func (c *claimer) claim(id mail.Identity) bool {
	c.used[id]++
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	if c.used[id] <= c.l.have[id] {
		return false
	}
	c.l.have[id]++
	return true
}

func (l *ledger) confirm(id mail.Identity) {
	l.mu.Lock()
	l.confirmed[id]++
	l.mu.Unlock()
}

// unclaim gives back a claim whose copy finally failed, so that another
// source folder holding the same message may still bring it over.
func (l *ledger) unclaim(id mail.Identity) {
	l.mu.Lock()
	if l.have[id] > 0 {
		l.have[id]--
	}
	l.mu.Unlock()
}

// force takes a claim without looking at what the destination holds: in
// a delta pass a message above the watermark is new by construction.
func (c *claimer) force(id mail.Identity) {
	c.used[id]++
	c.l.mu.Lock()
	c.l.have[id]++
	c.l.mu.Unlock()
}
