package migrate

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
)

func copyOf(id byte, uid uint32, date int, flags ...string) connector.Message {
	return connector.Message{ID: connector.ID(strconv.Itoa(int(uid))), Identity: mail.Identity{id}, Flags: flags,
		InternalDate: time.Date(2020, 1, 1, 0, 0, date, 0, time.UTC)}
}

// Pairing is one to one, prefers the copy with the same date, and waits
// for the whole folder before giving a copy of another date to anyone.
func TestClaimPairsCopiesByDateAndFlags(t *testing.T) {
	l := newLedger(connector.Folder{})
	// The destination holds the message twice: dated 2 and dated 3.
	l.index(copyOf(1, 10, 2, `\Seen`))
	l.index(copyOf(1, 11, 3))
	c := l.claimer()
	// The source holds it three times: dated 1, 3 and 2, in this order.
	type outcome struct{ present, deferred bool }
	got := []outcome{}
	for _, m := range []connector.Message{copyOf(1, 1, 1), copyOf(1, 2, 3), copyOf(1, 3, 2, `\SEEN`)} {
		p, d := c.claim(m)
		got = append(got, outcome{p, d})
	}
	want := []outcome{{false, true}, {true, false}, {true, false}}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("message %d: present %v deferred %v, want %v", i+1, got[i].present, got[i].deferred, want[i])
		}
	}
	present, copy := c.resolve()
	if len(present) != 0 || len(copy) != 1 || copy[0].ID != "1" {
		t.Errorf("resolve: present %v, copy %v; want UID 1 copied", present, copy)
	}
	// A second source folder mapping to the same destination finds all
	// three (the one being written included): nothing is written twice.
	c2 := l.claimer()
	for _, m := range []connector.Message{copyOf(1, 7, 1), copyOf(1, 8, 2), copyOf(1, 9, 3)} {
		if p, _ := c2.claim(m); !p {
			t.Errorf("second folder: ID %s not found present", m.ID)
		}
	}
	// Unless the write failed: then the other folder may bring it.
	l.unclaim(copyOf(1, 1, 1))
	c3 := l.claimer()
	if p, d := c3.claim(copyOf(1, 5, 1)); p || !d {
		t.Errorf("after unclaim: present %v deferred %v; want it to wait for the folder", p, d)
	}
	if _, copy := c3.resolve(); len(copy) != 0 {
		// Copies dated 2 and 3 are free for c3: one of them pairs.
		t.Errorf("after unclaim: resolve copies %v, want the message paired with a free copy", copy)
	}
}

// With more source copies than destination copies, the best matches pair
// and the rest is copied.
func TestResolvePrefersExactMatches(t *testing.T) {
	l := newLedger(connector.Folder{})
	l.index(copyOf(2, 20, 9, "$Work")) // another tool lost the dates
	c := l.claimer()
	for _, m := range []connector.Message{copyOf(2, 1, 1), copyOf(2, 2, 2, "$work")} {
		if p, d := c.claim(m); p || !d {
			t.Fatalf("ID %s: present %v deferred %v", m.ID, p, d)
		}
	}
	present, copy := c.resolve()
	if len(present) != 1 || present[0].ID != "2" || len(copy) != 1 || copy[0].ID != "1" {
		t.Errorf("present %v copy %v; want UID 2 (same flags) present, UID 1 copied", present, copy)
	}
}

// A lost answer is resolved by the copy with the message's date; only a
// destination that evidently ignores the dates it is given falls back to
// counting identities.
func TestLandedLooksForTheRightDate(t *testing.T) {
	l := newLedger(connector.Folder{})
	c := l.claimer()
	a, b := copyOf(3, 1, 5), copyOf(3, 2, 6)
	c.claim(a)
	c.claim(b)
	tail := []connector.Message{copyOf(3, 100, 5)} // a landed
	if l.landed(b, tail) {
		t.Error("b counted as landed because its twin a is there")
	}
	if !l.landed(a, tail) {
		t.Error("a not found although it landed")
	}
	if l.landed(a, tail) {
		t.Error("a counted twice")
	}
	// A server that stamps its own dates: identity counting it is.
	l2 := newLedger(connector.Folder{})
	l2.claimer().claim(a)
	if !l2.landed(a, []connector.Message{copyOf(3, 100, 59)}) {
		t.Error("a copy with the server's own date not recognised")
	}
}

// A ledger lives while a folder that maps to it is in flight, and no
// longer.
func TestLedgerIsFreedWithItsLastFolder(t *testing.T) {
	r := &run{ledgers: map[string]*ledger{}, ledgerLocks: map[string]*sync.Mutex{}}
	dest := mail.Path{"Sent"}
	l := newLedger(connector.Folder{Path: dest})
	l.refs = 2
	r.ledgers[dest.Key()] = l
	a := &folderState{plan: FolderPlan{Dest: connector.Folder{Path: dest}}, led: l}
	b := &folderState{plan: FolderPlan{Dest: connector.Folder{Path: dest}}, led: l}
	r.releaseLedger(a)
	if r.ledgers[dest.Key()] == nil {
		t.Fatal("freed while another folder still uses it")
	}
	r.releaseLedger(b)
	if len(r.ledgers) != 0 {
		t.Error("still held after its last folder finished")
	}
}
