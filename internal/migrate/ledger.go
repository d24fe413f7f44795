package migrate

import (
	"sort"
	"strings"
	"sync"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
)

// ledger tracks one destination folder's contents, copy by copy: per
// identity, every copy with its INTERNALDATE and flags. It is shared by
// every source folder that maps to the same destination, so that, say,
// "Sent" and "Sent Items" merging into one \Sent folder never write the
// same message twice, and it is freed once no source folder mapping to it
// is in flight (run.releaseLedger): memory follows the folders being
// copied, not the mailbox.
//
// Copies are told apart by date and flags because two messages with the
// same bytes (so the same identity) are still two messages: a destination
// that holds one of them must get the other, with its own flags and date.
type ledger struct {
	dest connector.Folder
	// cursor is the destination folder's state when it was opened: what
	// a listing since it shows arrived during this run.
	cursor    connector.Cursor
	acceptAny bool
	permanent []string
	// indexed is set once the destination's messages are in the ledger
	// (a full pass, or indexLedger); under mu once the ledger is shared.
	indexed bool

	// appends holds a read lock from the moment an APPEND is sent until
	// its outcome is known; reconciling an uncertain APPEND takes the
	// write lock, so it sees the folder with nothing in flight.
	appends sync.RWMutex

	mu sync.Mutex
	// head is, per identity, the index in copies of its last copy; the
	// copies of one identity are chained through destCopy.next.
	head   map[mail.Identity]int32
	copies []destCopy
	// names interns flag keys: most messages share a handful of flag
	// sets, which then cost one string each.
	names map[string]string
	// confirmed counts this run's appends the server acknowledged (or
	// that were found after their answer was lost), by identity and date
	// and by identity alone.
	confirmed   map[copyKey]int
	confirmedID map[mail.Identity]int

	refs int // source folders in flight using it; guarded by run.mu
}

// destCopy is one copy of a message on the destination, or one that this
// run decided to write (virtual).
type destCopy struct {
	date  int64  // INTERNALDATE, Unix seconds; 0 when unknown
	flags string // matchKey of its flags
	next  int32  // previous copy of the same identity, -1 at the end
	// virtual copies are the ones this run decided to write; gone marks
	// one whose write finally failed.
	virtual, gone bool
}

type copyKey struct {
	id   mail.Identity
	date int64
}

func newLedger(dest connector.Folder) *ledger {
	l := &ledger{dest: dest}
	l.reset()
	return l
}

// reset forgets the index, before the destination is listed (again).
func (l *ledger) reset() {
	l.head = make(map[mail.Identity]int32)
	l.copies = l.copies[:0]
	l.names = make(map[string]string)
	l.confirmed = make(map[copyKey]int)
	l.confirmedID = make(map[mail.Identity]int)
}

// unixDate is a message's INTERNALDATE as compared between servers:
// Dovecot, among others, keeps the instant but not the time zone, and
// IMAP dates have whole seconds.
func unixDate(m connector.Message) int64 {
	if m.InternalDate.IsZero() {
		return 0
	}
	return m.InternalDate.Unix()
}

// matchKey is the form in which flags are compared between a source
// message and a destination copy: the flags a copy can carry, lower-cased
// (flag names are case-insensitive, RFC 3501 2.3.2) and sorted.
func matchKey(flags []string) string {
	switch len(flags) {
	case 0:
		return ""
	case 1:
		// The common case, without allocating: one system flag.
		for _, c := range [...]string{`\seen`, `\answered`, `\flagged`, `\draft`} {
			if strings.EqualFold(flags[0], c) {
				return c
			}
		}
	}
	f := mail.CopyableFlags(flags, true, nil)
	for i := range f {
		f[i] = strings.ToLower(f[i])
	}
	sort.Strings(f)
	return strings.Join(f, " ")
}

// add appends a copy; l.mu must be held.
func (l *ledger) add(id mail.Identity, date int64, flags string, virtual bool) int32 {
	name, ok := l.names[flags]
	if !ok {
		l.names[flags] = flags
		name = flags
	}
	next, ok := l.head[id]
	if !ok {
		next = -1
	}
	l.copies = append(l.copies, destCopy{date: date, flags: name, next: next, virtual: virtual})
	i := int32(len(l.copies) - 1)
	l.head[id] = i
	return i
}

// index records a message found on the destination.
func (l *ledger) index(m connector.Message) {
	l.mu.Lock()
	l.add(m.Identity, unixDate(m), matchKey(m.Flags), false)
	l.mu.Unlock()
}

// claimer decides, for one source folder, which messages to copy. It
// pairs the folder's messages with the ledger's copies one to one (a
// multiset), so that two identical messages in one folder are both
// copied, while a message that an earlier folder already put into the
// same destination is not written again.
//
// Pairing prefers a copy with the same date (and then the same flags). A
// message whose identity has copies on the destination, none with its
// date, waits until the whole folder is listed (resolve): a later
// message of the folder may be the better match for them.
type claimer struct {
	l       *ledger
	taken   []uint64 // bit set over l.copies
	pending []connector.Message
}

func (l *ledger) claimer() *claimer { return &claimer{l: l} }

func (c *claimer) isTaken(i int32) bool {
	w := int(i) / 64
	return w < len(c.taken) && c.taken[w]&(1<<(uint(i)%64)) != 0
}

func (c *claimer) take(i int32) {
	w := int(i) / 64
	for len(c.taken) <= w {
		c.taken = append(c.taken, 0)
	}
	c.taken[w] |= 1 << (uint(i) % 64)
}

// claim returns present when a copy of m is on the destination (or one
// another folder's message is being written), deferred when the decision
// waits for resolve, and neither when m must be copied.
func (c *claimer) claim(m connector.Message) (present, deferred bool) {
	l := c.l
	date, key := unixDate(m), matchKey(m.Flags)
	l.mu.Lock()
	defer l.mu.Unlock()
	best, other := int32(-1), false
	for i, ok := l.head[m.Identity]; ok && i >= 0; i = l.copies[i].next {
		cp := &l.copies[i]
		if cp.gone || c.isTaken(i) {
			continue
		}
		if cp.date != date {
			other = true
			continue
		}
		if cp.flags == key {
			best = i
			break
		}
		if best < 0 {
			best = i
		}
	}
	switch {
	case best >= 0:
		c.take(best)
		return true, false
	case other:
		c.pending = append(c.pending, m)
		return false, true
	}
	c.take(l.add(m.Identity, date, key, true))
	return false, false
}

// force takes a claim without looking at what the destination holds: in
// a delta pass a message above the watermark is new by construction.
func (c *claimer) force(m connector.Message) {
	c.l.mu.Lock()
	c.take(c.l.add(m.Identity, unixDate(m), matchKey(m.Flags), true))
	c.l.mu.Unlock()
}

// resolve pairs the messages that waited with the copies still free,
// best matches first (same date, then same flags), and returns those
// found present and those to copy.
func (c *claimer) resolve() (present, copy []connector.Message) {
	if len(c.pending) == 0 {
		return nil, nil
	}
	l := c.l
	l.mu.Lock()
	defer l.mu.Unlock()
	type pair struct {
		m     int
		cp    int32
		score int
	}
	var pairs []pair
	for mi, m := range c.pending {
		date, key := unixDate(m), matchKey(m.Flags)
		for i, ok := l.head[m.Identity]; ok && i >= 0; i = l.copies[i].next {
			cp := l.copies[i]
			if cp.gone || c.isTaken(i) {
				continue
			}
			s := 0
			if cp.date == date {
				s += 2
			}
			if cp.flags == key {
				s++
			}
			pairs = append(pairs, pair{mi, i, s})
		}
	}
	sort.SliceStable(pairs, func(a, b int) bool { return pairs[a].score > pairs[b].score })
	paired := make([]bool, len(c.pending))
	for _, p := range pairs {
		if !paired[p.m] && !c.isTaken(p.cp) {
			c.take(p.cp)
			paired[p.m] = true
		}
	}
	for mi, m := range c.pending {
		if paired[mi] {
			present = append(present, m)
			continue
		}
		c.take(l.add(m.Identity, unixDate(m), matchKey(m.Flags), true))
		copy = append(copy, m)
	}
	c.pending = nil
	return present, copy
}

// confirm counts an append of m that the destination acknowledged.
func (l *ledger) confirm(m connector.Message) {
	l.mu.Lock()
	l.confirmed[copyKey{m.Identity, unixDate(m)}]++
	l.confirmedID[m.Identity]++
	l.mu.Unlock()
}

// unclaim gives back a claim whose copy finally failed, so that another
// source folder holding the same message may still bring it over.
func (l *ledger) unclaim(m connector.Message) {
	date, key := unixDate(m), matchKey(m.Flags)
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, ok := l.head[m.Identity]; ok && i >= 0; i = l.copies[i].next {
		cp := &l.copies[i]
		if cp.virtual && !cp.gone && cp.date == date && cp.flags == key {
			cp.gone = true
			return
		}
	}
}

// landed decides, from the messages that arrived in the folder during
// this run (tail), whether the APPEND of m whose answer was lost stored
// it, and counts it confirmed if so. It compares copies with m's date:
// with two identical messages of different dates, finding the other one
// must not pass for this one. Only when the destination evidently does
// not keep the dates it is given (no copy of the identity carries a date
// this run sent) does it fall back to counting the identity alone.
// l.mu must not be held.
func (l *ledger) landed(m connector.Message, tail []connector.Message) bool {
	date := unixDate(m)
	var byDate, byID int
	dates := map[int64]bool{}
	for _, t := range tail {
		if t.Identity != m.Identity {
			continue
		}
		byID++
		d := unixDate(t)
		dates[d] = true
		if d == date {
			byDate++
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	k := copyKey{m.Identity, date}
	found := date != 0 && byDate > l.confirmed[k]
	if !found && (date == 0 || !l.sentAnyDate(m.Identity, dates)) {
		found = byID > l.confirmedID[m.Identity]
	}
	if found {
		l.confirmed[k]++
		l.confirmedID[m.Identity]++
	}
	return found
}

// sentAnyDate reports whether this run decided to write a copy of id with
// one of these dates: then the destination keeps the dates it is given.
func (l *ledger) sentAnyDate(id mail.Identity, dates map[int64]bool) bool {
	for i, ok := l.head[id]; ok && i >= 0; i = l.copies[i].next {
		if cp := l.copies[i]; cp.virtual && dates[cp.date] {
			return true
		}
	}
	return false
}
