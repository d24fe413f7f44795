package imap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
)

const defaultListBatch = 500

func identitySection() *imap.FetchItemBodySection {
	return &imap.FetchItemBodySection{
		Specifier:    imap.PartSpecifierHeader,
		HeaderFields: mail.IdentityHeaderFields(),
		Peek:         true,
	}
}

// List implements connector.Conn. A folder listed ForAppend is opened with
// SELECT so that PERMANENTFLAGS is known; otherwise with EXAMINE, which
// guarantees that reading never changes the source.
//
// SELECT and the FETCH commands travel together (one round trip): the
// FETCH is sent before the answer to SELECT says whether the folder is
// empty or was renumbered, and its answer is then ignored. With a valid
// Since cursor only UIDs from the cursor's "from" on are listed as new
// (UID FETCH from:*); with Changes, the older messages whose flags changed
// since the cursor's HIGHESTMODSEQ (CHANGEDSINCE, RFC 7162 section 3.1.4)
// or, without CONDSTORE, every older message flags only; with AllOld every
// older message flags only.
func (c *Conn) List(ctx context.Context, f connector.Folder, opts connector.ListOptions, fn func([]connector.Message) error) (connector.Listing, error) {
	var lst connector.Listing
	since, haveSince := cursor{}, false
	if opts.Since != "" {
		if since, haveSince = parseCursor(opts.Since); !haveSince {
			if opts.StrictSince {
				return lst, invalidCursor(f, "it was not made by the IMAP connector")
			}
			lst.Reset = true
		}
	}
	if c.gmail && !opts.ForAppend && !opts.NoMessages && c.cfg.Source {
		var done func()
		fn, done = c.gmailSkips(ctx, f, fn)
		defer done()
	}
	s, err := c.acquireIn(ctx, f.Name)
	if err != nil {
		return lst, err
	}
	defer c.release(s)
	defer s.guard(ctx)()
	// The session waits for the server except while fn runs.
	wait := s.busy()
	defer func() { wait() }()
	// On a server whose SELECT omits UIDNEXT, a STATUS ahead of it
	// supplies it.
	var pre *imapclient.StatusCommand
	var desel *imapclient.Command
	if c.noUIDNext.Load() {
		if s.selected == f.Name {
			desel = c.deselect(s)
		}
		pre = s.c.Status(f.Name, &imap.StatusOptions{UIDNext: true})
	}
	selCmd := c.startSelect(s, f.Name, opts.ForAppend)
	plan := c.listPlan(opts, since, haveSince)
	// Only the first FETCH travels with the SELECT. A second one is sent
	// once the first is read: Dovecot runs pipelined FETCH commands at
	// once and interleaves their answers, while go-imap hands each
	// message with a literal to its command and stops reading until it
	// is consumed, so reading one command after the other would wait
	// forever.
	cmds := plan.send(s, 0)
	var preData *imap.StatusData
	var preErr error
	if desel != nil {
		if err := desel.Wait(); err != nil {
			var ie *imap.Error
			if !errors.As(err, &ie) {
				closeAll(cmds)
				s.fail(err)
				return lst, s.classify(err, fmt.Sprintf("open folder %q", f.Name))
			}
		}
	}
	if pre != nil {
		preData, preErr = pre.Wait()
	}
	sel, err := c.selected(s, selCmd, f.Name, opts.ForAppend)
	if err != nil {
		closeAll(cmds)
		return lst, err
	}
	// RFC 3501 section 6.3.1 requires UIDNEXT in the answer to SELECT;
	// Courier-IMAP 5 leaves it out.
	late := false
	if sel.UIDNext == 0 {
		switch {
		case preData != nil:
			sel.UIDNext = preData.UIDNext
		case preErr != nil:
			closeAll(cmds)
			s.fail(preErr)
			return lst, s.classify(preErr, fmt.Sprintf("status of folder %q", f.Name))
		default:
			c.noUIDNext.Store(true)
			late = true
		}
	}
	if haveSince && sel.UIDValidity != since.uidValidity {
		// Renumbered (RFC 3501 section 2.3.1.1): the cursor's UIDs mean
		// nothing. What the pipelined FETCH returns is of no use.
		if err := drainAll(s, cmds, f.Name); err != nil {
			return lst, err
		}
		if opts.StrictSince {
			return lst, invalidCursor(f, fmt.Sprintf("its UIDVALIDITY changed from %d to %d", since.uidValidity, sel.UIDValidity))
		}
		lst.Reset, haveSince = true, false
		plan = c.listPlan(connector.ListOptions{NoMessages: opts.NoMessages}, cursor{}, false)
		cmds = plan.send(s, 0)
	}
	lst.Status = connector.FolderStatus{Messages: int64(sel.NumMessages)}
	for _, fl := range sel.PermanentFlags {
		if fl == imap.FlagWildcard {
			lst.Accept.AnyKeyword = true
		} else {
			lst.Accept.Flags = append(lst.Accept.Flags, string(fl))
		}
	}
	next := uint32(sel.UIDNext)
	batch := opts.Batch
	if batch <= 0 {
		batch = defaultListBatch
	}
	buf := make([]connector.Message, 0, min(batch, 64))
	var fnErr error
	deliver := func(force bool) {
		if fnErr != nil || len(buf) == 0 || (!force && len(buf) < batch) {
			return
		}
		wait()
		fnErr = fn(buf)
		wait = s.busy()
		buf = make([]connector.Message, 0, min(batch, 64))
	}
	var highest uint32
	empty := sel.NumMessages == 0
	for i := 0; i < len(cmds); i++ {
		lc := cmds[i]
		if i > 0 {
			if fnErr != nil || empty {
				break
			}
			lc = plan.send(s, i)[0]
		}
		// Some servers answer a FETCH of "n:*" in an empty folder, or
		// beyond its last UID, with NO or BAD; that is not a failure.
		// What they do return is listed all the same: it arrived after
		// the SELECT.
		mayRefuse := empty || (lc.change == connector.ChangeNew && plan.from >= next && next > 0)
		err := readAll(lc.cmd, func(md *imapclient.FetchMessageData) error {
			if fnErr != nil {
				return nil // drain: the command must be consumed to keep the session usable
			}
			m, uid, err := readListing(md)
			if err != nil {
				return err
			}
			if uid < lc.min || (lc.max > 0 && uid > lc.max) {
				return nil // "n:*" includes the last message even below n (RFC 3501 6.4.8)
			}
			if lc.change == connector.ChangeNew {
				highest = max(highest, uid)
			}
			m.ID, m.Change = makeID(sel.UIDValidity, uid), lc.change
			buf = append(buf, m)
			deliver(false)
			return nil
		})
		if err != nil {
			var ie *imap.Error
			if mayRefuse && errors.As(err, &ie) {
				continue
			}
			var lf *literalFailed
			if errors.As(err, &lf) {
				// As in Fetch: no drain, and Close in the background.
				s.broken.Store(true)
				go func() { _ = s.c.Close() }()
				return lst, s.classify(lf.err, fmt.Sprintf("list messages in %q", f.Name))
			}
			s.fail(err)
			return lst, s.classify(err, fmt.Sprintf("list messages in %q", f.Name))
		}
	}
	if late {
		bound := uint32(0)
		if plan.throughStar() {
			bound = highest // listed through "*"
		}
		if next, err = c.uidNext(s, f.Name, bound); err != nil {
			return lst, err
		}
	}
	// Every UID below from was listed (or did not exist when it was).
	from := max(next, 1)
	if haveSince {
		from = max(from, since.from)
	}
	if highest >= from {
		from = highest + 1
	}
	lst.Cursor = connector.Cursor(cursor{uidValidity: sel.UIDValidity, uidNext: next, from: from,
		messages: int64(sel.NumMessages), modSeq: sel.HighestModSeq}.String())
	deliver(true)
	wait()
	if fnErr != nil {
		return lst, fnErr
	}
	return lst, nil
}

func invalidCursor(f connector.Folder, why string) error {
	return &connector.Error{Kind: connector.KindItem, Op: fmt.Sprintf("list messages in %q", f.Name),
		Err: fmt.Errorf("%w: %s", connector.ErrCursorInvalid, why)}
}

// listPlan says which FETCH commands a listing needs.
type listPlan struct {
	c    *Conn
	full bool // UID FETCH 1:* with metadata
	from uint32
	// old lists UIDs 1:from-1, flags only; changedSince narrows it with
	// CHANGEDSINCE.
	old          bool
	changedSince uint64
	none         bool
}

func (c *Conn) listPlan(opts connector.ListOptions, since cursor, haveSince bool) listPlan {
	p := listPlan{c: c, from: 1}
	switch {
	case opts.NoMessages:
		p.none = true
	case !haveSince:
		p.full = true
	default:
		p.from = since.from
		if p.from > 1 && (opts.AllOld || opts.Changes) {
			p.old = true
			if !opts.AllOld && c.condStore && since.modSeq > 0 {
				p.changedSince = since.modSeq
			}
		}
	}
	return p
}

// throughStar reports whether the listing asked for UIDs up to "*".
func (p listPlan) throughStar() bool { return !p.none }

// listCmd is one FETCH of a listing and what its messages are.
type listCmd struct {
	set      imap.UIDSet
	opts     *imap.FetchOptions
	cmd      *imapclient.FetchCommand // nil until sent
	change   connector.Change
	min, max uint32
}

// send writes the plan's i-th FETCH command without waiting for its
// answer. For i == 0 it returns a slot for every command of the plan,
// only the first of which is sent; the others are sent with send(s, i)
// in turn.
func (p listPlan) send(s *session, i int) []listCmd {
	if p.none {
		return nil
	}
	// New messages first, so that copying starts while the flags of the
	// old ones are read.
	var specs []listCmd
	var set imap.UIDSet
	set.AddRange(imap.UID(p.from), 0) // from:*
	fo := &imap.FetchOptions{UID: true, Flags: true, InternalDate: true, RFC822Size: true,
		BodySection: []*imap.FetchItemBodySection{identitySection()}}
	specs = append(specs, listCmd{set: set, opts: fo, change: connector.ChangeNew, min: p.from})
	if p.old {
		var set imap.UIDSet
		set.AddRange(1, imap.UID(p.from-1))
		fo := &imap.FetchOptions{UID: true, Flags: true}
		if p.changedSince > 0 {
			fo.ChangedSince = p.changedSince
		}
		specs = append(specs, listCmd{set: set, opts: fo, change: connector.ChangeFlags, min: 1, max: p.from - 1})
	}
	specs[i].cmd = s.c.Fetch(specs[i].set, specs[i].opts)
	if i == 0 {
		return specs
	}
	return specs[i : i+1]
}

// readAll hands every message of cmd to fn, then closes cmd; after fn's
// first error the rest is drained, except after a literal whose read
// failed: that one must not be read again (see literalFailed), so the
// error is returned at once and the caller drops the session.
func readAll(cmd *imapclient.FetchCommand, fn func(*imapclient.FetchMessageData) error) error {
	var fnErr error
	for {
		md := cmd.Next()
		if md == nil {
			break
		}
		if fnErr == nil {
			fnErr = fn(md)
			var lf *literalFailed
			if errors.As(fnErr, &lf) {
				return fnErr
			}
		}
	}
	if err := cmd.Close(); err != nil {
		return err
	}
	return fnErr
}

func closeAll(cmds []listCmd) {
	for _, lc := range cmds {
		if lc.cmd != nil {
			_ = lc.cmd.Close()
		}
	}
}

// drainAll reads and drops the answers of cmds; an IMAP NO or BAD is
// not a failure here, a broken connection is.
func drainAll(s *session, cmds []listCmd, name string) error {
	for _, lc := range cmds {
		if lc.cmd == nil {
			continue
		}
		if err := lc.cmd.Close(); err != nil {
			var ie *imap.Error
			if !errors.As(err, &ie) {
				s.fail(err)
				return s.classify(err, fmt.Sprintf("list messages in %q", name))
			}
		}
	}
	return nil
}

// uidNext reads a folder's UIDNEXT with STATUS after it was listed, the
// first time a server's SELECT turned out to lack it (later listings ask
// before selecting). A message that arrived since the listing must stay
// above the UIDNEXT reported, or a delta pass would skip it, so with
// highest, the largest UID listed through "*", the answer is capped at
// highest+1.
func (c *Conn) uidNext(s *session, name string, highest uint32) (uint32, error) {
	data, err := s.c.Status(name, &imap.StatusOptions{UIDNext: true}).Wait()
	if err != nil {
		s.fail(err)
		return 0, s.classify(err, fmt.Sprintf("status of folder %q", name))
	}
	next := uint32(data.UIDNext)
	if highest > 0 && next > highest+1 {
		next = highest + 1
	}
	return next, nil
}

func readListing(md *imapclient.FetchMessageData) (connector.Message, uint32, error) {
	var m connector.Message
	var uid uint32
	var header []byte
	for {
		item := md.Next()
		if item == nil {
			break
		}
		switch it := item.(type) {
		case imapclient.FetchItemDataUID:
			uid = uint32(it.UID)
		case imapclient.FetchItemDataFlags:
			m.Flags = make([]string, len(it.Flags))
			for i, f := range it.Flags {
				m.Flags[i] = string(f)
			}
		case imapclient.FetchItemDataInternalDate:
			m.InternalDate = it.Time
		case imapclient.FetchItemDataRFC822Size:
			m.Size = it.Size
		case imapclient.FetchItemDataBodySection:
			if it.Literal != nil {
				// Header fields of one message: small by construction, but
				// cap anyway against a hostile server.
				lit := &watchedLiteral{r: it.Literal, left: it.Literal.Size()}
				b, err := io.ReadAll(io.LimitReader(lit, 256<<10))
				if err == nil {
					_, err = io.Copy(io.Discard, lit)
				}
				if err != nil || lit.failed {
					if err == nil {
						err = io.ErrUnexpectedEOF
					}
					// Not to be read again (see literalFailed).
					return m, uid, &literalFailed{err}
				}
				header = b
			}
		}
	}
	if header != nil {
		m.Headers = mail.ParseHeaders(header)
		m.Identity = mail.ComputeIdentity(m.Headers, m.Size)
	}
	return m, uid, nil
}

// Fetch implements connector.Source with one pipelined UID FETCH per
// call: the server streams every body back to back, so a batch costs one
// round trip however long the link.
func (c *Conn) Fetch(ctx context.Context, f connector.Folder, msgs []connector.Message, fn func(connector.Body, error) error) error {
	if len(msgs) == 0 {
		return nil
	}
	// Marked before the session is released (defers run last first), so
	// that the folder keeps it while the fetcher picks its next batch.
	c.startReading(f.Name)
	defer c.doneReading(f.Name)
	s, err := c.acquireIn(ctx, f.Name)
	if err != nil {
		return err
	}
	defer c.release(s)
	defer s.guard(ctx)()
	defer s.busy()() // deliver pauses it while fn runs
	var sel *imapclient.SelectCommand
	if s.selected != f.Name {
		sel = c.startSelect(s, f.Name, false)
	}
	// IDs name UIDs of one UIDVALIDITY; the answer to SELECT (or the one
	// the session holds) says whether they still mean these messages.
	want := make(map[uint32]connector.Message, len(msgs))
	var stale []connector.Message
	validity := uint32(0)
	var set imap.UIDSet
	for _, m := range msgs {
		v, uid, ok := parseID(m.ID)
		if !ok || (validity != 0 && v != validity) {
			stale = append(stale, m)
			continue
		}
		validity = v
		want[uid] = m
		set.AddNum(imap.UID(uid))
	}
	var cmd *imapclient.FetchCommand
	if len(want) > 0 {
		cmd = s.c.Fetch(set, &imap.FetchOptions{
			UID:         true,
			BodySection: []*imap.FetchItemBodySection{{Peek: true}},
		})
	}
	if sel != nil {
		if _, err := c.selected(s, sel, f.Name, false); err != nil {
			if cmd != nil {
				_ = cmd.Close() // fails too: no mailbox is selected
			}
			return err
		}
	}
	if len(want) > 0 && s.validity != validity {
		// Renumbered since it was listed: these UIDs may name other
		// messages now, so their answers are dropped unread.
		if err := cmd.Close(); err != nil {
			var ie *imap.Error
			if !errors.As(err, &ie) {
				s.fail(err)
				return s.classify(err, fmt.Sprintf("fetch messages from %q", f.Name))
			}
		}
		for _, m := range want {
			stale = append(stale, m)
		}
		want, cmd = nil, nil
	}
	for _, m := range stale {
		gone := &connector.Error{Kind: connector.KindItem, Op: fmt.Sprintf("fetch %s from %q", m.ID, f.Name),
			Err: errors.New("the folder was renumbered (UIDVALIDITY changed) since it was listed; the next pass compares it by identity")}
		if err := paused(s, func() error { return fn(connector.Body{Message: m}, gone) }); err != nil {
			return err
		}
	}
	if cmd == nil {
		return nil
	}
	var fnErr error
	for {
		md := cmd.Next()
		if md == nil {
			break
		}
		if fnErr != nil {
			continue
		}
		fnErr = c.deliver(ctx, s, md, want, fn)
		var lf *literalFailed
		if errors.As(fnErr, &lf) {
			// A literal whose read failed must not be read again:
			// go-imap's reader goroutine, released by the failure,
			// reads the same buffer (a data race), and draining would
			// read it again. The connection is dead anyway: drop the
			// session without draining. Close waits for that goroutine,
			// which has nothing left to read; in the background, so a
			// surprise cannot hold the fetch.
			s.broken.Store(true)
			go func() { _ = s.c.Close() }()
			return lf.err
		}
	}
	if err := cmd.Close(); err != nil && fnErr == nil {
		s.fail(err)
		return s.classify(err, fmt.Sprintf("fetch messages from %q", f.Name))
	}
	if fnErr != nil {
		// The session may be mid-stream; drop it rather than drain it.
		s.broken.Store(true)
		return fnErr
	}
	// What the server did not return was expunged meanwhile (RFC 3501
	// 6.4.8: UID FETCH ignores UIDs that do not exist).
	for _, m := range msgs {
		_, uid, _ := parseID(m.ID)
		if pm, pending := want[uid]; pending && pm.ID == m.ID {
			err := &connector.Error{Kind: connector.KindItem, Op: fmt.Sprintf("fetch %s from %q", m.ID, f.Name),
				Err: errors.New("the message no longer exists on the source (deleted or moved during the migration)")}
			if err := fn(connector.Body{Message: m}, err); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *Conn) deliver(ctx context.Context, s *session, md *imapclient.FetchMessageData, want map[uint32]connector.Message, fn func(connector.Body, error) error) error {
	var uid uint32
	for {
		item := md.Next()
		if item == nil {
			return nil
		}
		switch it := item.(type) {
		case imapclient.FetchItemDataUID:
			uid = uint32(it.UID)
		case imapclient.FetchItemDataBodySection:
			m, ok := want[uid]
			if !ok {
				// go-imap asks for UID first and servers answer in that
				// order; a body we cannot attribute is skipped rather
				// than guessed, and reported as missing below.
				if it.Literal != nil {
					lit := &watchedLiteral{r: it.Literal, left: it.Literal.Size()}
					if _, err := io.Copy(io.Discard, lit); err != nil || lit.failed {
						if err == nil {
							err = io.ErrUnexpectedEOF
						}
						return &literalFailed{s.classify(err, "fetch message")}
					}
				}
				continue
			}
			delete(want, uid)
			if it.Literal == nil {
				if err := paused(s, func() error {
					return fn(connector.Body{Message: m}, &connector.Error{Kind: connector.KindItem,
						Op: fmt.Sprintf("fetch %s", m.ID), Err: errors.New("the server returned no content for this message")})
				}); err != nil {
					return err
				}
				continue
			}
			size := it.Literal.Size()
			// fn may block on what follows (a slow destination): only its
			// reads of the body wait for this server.
			lit := &watchedLiteral{r: watchedReader{r: it.Literal, w: s.w}, left: size}
			if err := paused(s, func() error { return fn(connector.Body{Message: m, Reader: lit, Size: size}, nil) }); err != nil {
				if lit.failed {
					return &literalFailed{err}
				}
				return err
			}
			if _, err := io.Copy(io.Discard, lit); err != nil {
				return &literalFailed{s.classify(err, "fetch message")}
			}
		}
	}
}

// watchedLiteral remembers whether reading a message literal failed
// before its end (a connection cut mid-literal shows as a plain io.EOF):
// such a literal must not be read again.
type watchedLiteral struct {
	r      io.Reader
	left   int64 // bytes announced and not read yet
	failed bool
}

func (w *watchedLiteral) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	w.left -= int64(n)
	if err != nil && (err != io.EOF || w.left > 0) {
		w.failed = true
	}
	return n, err
}

// literalFailed carries an error met while or after a literal's read
// failed (see Fetch).
type literalFailed struct{ err error }

func (e *literalFailed) Error() string { return e.err.Error() }
func (e *literalFailed) Unwrap() error { return e.err }

// paused runs fn, a caller's callback, without counting its time as a
// wait for the server: the session is busy again when it returns.
func paused(s *session, fn func() error) error {
	s.w.disarm()
	defer s.w.rearm()
	return fn()
}

// pendingAppend is an APPEND whose answer has not been read yet.
type pendingAppend struct {
	c    *Conn
	s    *session
	cmd  *imapclient.AppendCommand
	stop func() bool
	op   string
}

// Append implements connector.Destination. The literal is sent with
// LITERAL+ where offered, so consecutive appends on one session do not
// wait for each other's answers.
func (c *Conn) Append(ctx context.Context, f connector.Folder, req connector.AppendRequest) (connector.PendingAppend, error) {
	op := fmt.Sprintf("append to %q", f.Name)
	req, err := toCRLF(req, op)
	if err != nil {
		return nil, err
	}
	if max := c.feats.MaxMessageSize; max > 0 && req.Size > max {
		return nil, &connector.Error{Kind: connector.KindItem, Op: op, Hint: hintTooBig,
			Err: fmt.Errorf("message of %d bytes is larger than the destination's limit of %d bytes", req.Size, max)}
	}
	if c.literalPlus {
		return c.appendPipelined(ctx, f, req, op)
	}
	var s *session
	if c.appendAffinity.Load() {
		s, err = c.acquireForAppend(ctx, f.Name)
	} else {
		s, err = c.acquire(ctx)
	}
	if err != nil {
		return nil, err
	}
	stop := s.guard(ctx)
	flags := make([]imap.Flag, len(req.Flags))
	for i, fl := range req.Flags {
		flags[i] = imap.Flag(fl)
	}
	s.inflight.Add(1)
	// Without LITERAL+ go-imap waits for the server's "+" before the
	// literal, and then sends it: both are waits for the server.
	sending := s.busy()
	if s.selected == f.Name && s.readOnly {
		// Courier-IMAP refuses an APPEND to the folder the session
		// examines ("Current box is selected READ-ONLY"); its answer
		// comes before the APPEND's.
		_ = c.deselect(s)
	}
	cmd := s.c.Append(f.Name, req.Size, &imap.AppendOptions{Flags: flags, Time: req.InternalDate})
	n, werr := io.Copy(cmd, req.Body)
	if werr == nil && n != req.Size {
		werr = fmt.Errorf("message body has %d bytes, expected %d", n, req.Size)
	}
	if werr != nil {
		// A literal cut short leaves the server waiting for bytes that
		// will never come; the session is unusable and the message was
		// not stored (the server stores nothing until the literal ends).
		sending()
		e := s.classify(werr, op)
		s.broken.Store(true)
		_ = s.c.Close()
		s.inflight.Add(-1)
		stop()
		c.release(s)
		return nil, e
	}
	err = cmd.Close()
	sending()
	if err != nil {
		s.inflight.Add(-1)
		stop()
		// The literal may have reached the server in full even though
		// the close failed: the outcome is unknown.
		s.fail(err)
		c.release(s)
		return nil, uncertain(s.classify(err, op))
	}
	if c.appendSequential.Load() {
		// See Open: the answer is read before the session takes the
		// next APPEND, so that the server never has an answer and a
		// continuation to send at once. Wait then returns it at once.
		done := s.busy()
		_, _ = cmd.Wait()
		done()
	}
	// The session goes back to the pool while the answer is pending: the
	// next Append may use it, which is what pipelines the writes. The
	// cancellation guard ends here: once the message is sent, its answer
	// is awaited even by a cancelled run (see rawPending.Wait), bounded
	// by go-imap's own response timeout.
	stop()
	c.release(s)
	return &pendingAppend{c: c, s: s, cmd: cmd, stop: func() bool { return true }, op: op}, nil
}

func (p *pendingAppend) Wait() (connector.AppendResult, error) {
	defer p.stop()
	defer p.s.inflight.Add(-1)
	done := p.s.busy()
	data, err := p.cmd.Wait()
	done()
	if err != nil {
		var ie *imap.Error
		if errors.As(err, &ie) {
			return connector.AppendResult{}, classifyAppendNo(ie, p.op)
		}
		// No tagged answer: the connection failed after the bytes left.
		p.s.fail(err)
		return connector.AppendResult{}, uncertain(p.s.classify(err, p.op))
	}
	return appendResult(data.UIDValidity, uint32(data.UID)), nil
}

// appendResult is the new copy's ID from APPENDUID (RFC 4315 section 3),
// none when the server did not say.
func appendResult(uidValidity, uid uint32) connector.AppendResult {
	if uidValidity == 0 || uid == 0 {
		return connector.AppendResult{}
	}
	return connector.AppendResult{ID: makeID(uidValidity, uid)}
}

// toCRLF gives req a body whose bare LFs are CRLF, and the size of that
// (see crlf.go). The body is read twice: once to count, once to send,
// through req.Reopen when the caller offers it, else from memory.
func toCRLF(req connector.AppendRequest, op string) (connector.AppendRequest, error) {
	reopen := req.Reopen
	if reopen == nil {
		b, err := io.ReadAll(io.LimitReader(req.Body, req.Size+1))
		if err != nil {
			return req, &connector.Error{Kind: connector.KindTransient, Op: op, Err: err}
		}
		if int64(len(b)) != req.Size {
			return req, &connector.Error{Kind: connector.KindItem, Op: op, Err: fmt.Errorf("message body has %d bytes, expected %d", len(b), req.Size)}
		}
		reopen = func() io.Reader { return bytes.NewReader(b) }
		req.Body = reopen()
	}
	// Reopen's reader yields exactly Size bytes (AppendRequest), so it
	// is read as it is: wrapped in a LimitReader it would hide its
	// WriteTo from bareLFs.
	n, err := bareLFs(reopen())
	if err != nil {
		return req, &connector.Error{Kind: connector.KindTransient, Op: op, Err: err}
	}
	if n == 0 {
		return req, nil
	}
	req.Body = newCRLFReader(io.LimitReader(req.Body, req.Size))
	req.Size += n
	return req, nil
}

func classifyAppendNo(ie *imap.Error, op string) error {
	e := classify(ie, op).(*connector.Error)
	e.Err = fmt.Errorf("server said: %s", strings.TrimSpace(ie.Text))
	return e
}

func uncertain(err error) error {
	var ce *connector.Error
	if errors.As(err, &ce) {
		ce.Uncertain = true
	}
	return err
}

// appendPipelined sends the APPEND on an appendConn without waiting for
// anything; the answer is read by that connection's reader.
func (c *Conn) appendPipelined(ctx context.Context, f connector.Folder, req connector.AppendRequest, op string) (connector.PendingAppend, error) {
	a, err := c.acquireAppender(ctx, f.Name)
	if err != nil {
		return nil, err
	}
	b, idx, err := a.send(f.Name, req, req.Retry)
	if err != nil {
		if b != nil {
			// The message is complete on the wire; only ending or
			// flushing the command failed, so it may have been stored.
			return &rawPending{c: c, a: a, b: b, idx: idx, op: op, ctx: ctx}, nil
		}
		c.releaseAppender(a)
		var uw errUncertainWrite
		if errors.As(err, &uw) {
			if a.w.stalled() {
				return nil, uncertain(a.w.stallFailure(op))
			}
			return nil, uncertain(classify(uw.err, op))
		}
		if a.w.stalled() {
			return nil, a.w.stallFailure(op)
		}
		// The literal did not reach the server whole: nothing stored.
		e := classify(err, op)
		var ce *connector.Error
		if errors.As(e, &ce) && ce.Kind == connector.KindUnknown {
			ce.Kind = connector.KindTransient
		}
		return nil, e
	}
	return &rawPending{c: c, a: a, b: b, idx: idx, op: op, ctx: ctx}, nil
}

// appendAnswerTimeout bounds the wait for one APPEND's answer; a server
// that says nothing for this long is treated as a dropped connection.
// cancelGrace is how long a cancelled run still waits for answers.
const (
	appendAnswerTimeout = 5 * time.Minute
	cancelGrace         = 30 * time.Second
)

type rawPending struct {
	c   *Conn
	a   *appendConn
	b   *batch
	idx int
	op  string
	ctx context.Context
}

func (p *rawPending) Wait() (connector.AppendResult, error) {
	defer p.c.releaseAppender(p.a)
	t := time.NewTimer(appendAnswerTimeout)
	defer t.Stop()
	select {
	case <-p.b.done:
	case <-t.C:
		p.a.fail(errors.New("no answer from the server"))
		<-p.b.done
	case <-p.ctx.Done():
		// Cancelled: the message is on the wire and the server will
		// answer. Waiting for that answer (briefly) turns "unknown" into
		// a recorded result and, above all, means nothing of ours is
		// still on its way to the server when the next run indexes the
		// destination: a late arrival there would be copied twice.
		grace := time.NewTimer(cancelGrace)
		defer grace.Stop()
		select {
		case <-p.b.done:
		case <-grace.C:
			p.a.fail(p.ctx.Err())
			<-p.b.done
		}
	}
	err := p.b.err
	// final is published under the connection's mutex: a failed
	// connection wakes waiters while the idle timer may still be ending
	// the batch.
	p.a.mu.Lock()
	final := p.b.final
	p.a.mu.Unlock()
	if err == nil {
		if p.idx < len(p.b.uids) && len(p.b.uids) == final {
			return appendResult(p.b.valid, p.b.uids[p.idx]), nil
		}
		return connector.AppendResult{}, nil
	}
	var ie *imap.Error
	if !errors.As(err, &ie) && p.a.w.stalled() {
		return connector.AppendResult{}, uncertain(p.a.w.stallFailure(p.op))
	}
	if errors.As(err, &ie) {
		e := classifyAppendNo(ie, p.op)
		if final > 1 {
			// MULTIAPPEND is all or nothing (RFC 3502): the refusal may
			// be for a neighbour. Retrying alone finds the real culprit.
			e.(*connector.Error).Kind = connector.KindTransient
			e.(*connector.Error).Op += " (in a batch of " + strconv.Itoa(final) + ", retrying alone)"
		}
		return connector.AppendResult{}, e
	}
	return connector.AppendResult{}, uncertain(classify(err, p.op))
}

// SetFlags implements connector.FlagSetter with UID STORE FLAGS.SILENT.
func (c *Conn) SetFlags(ctx context.Context, f connector.Folder, ids []connector.ID, flags []string) error {
	return c.store(ctx, f, ids, "set flags", func(s *session, set imap.UIDSet) error {
		fl := make([]imap.Flag, len(flags))
		for i, x := range flags {
			fl[i] = imap.Flag(x)
		}
		return s.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsSet, Silent: true, Flags: fl}, nil).Close()
	})
}

// Delete implements connector.Deleter. With UIDPLUS, UID EXPUNGE (RFC
// 4315) removes exactly these messages; a plain EXPUNGE would also
// remove anything else the user had marked \Deleted, so without UIDPLUS
// the messages are only marked.
func (c *Conn) Delete(ctx context.Context, f connector.Folder, ids []connector.ID) error {
	return c.store(ctx, f, ids, "delete messages", func(s *session, set imap.UIDSet) error {
		if err := s.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
			return err
		}
		if !c.uidPlus {
			return nil
		}
		return s.c.UIDExpunge(set).Close()
	})
}

// store runs fn on the UIDs of ids that belong to the folder's current
// UIDVALIDITY; IDs of another (the folder was renumbered since they were
// made) or not of this connector are ignored, so they can never touch
// other messages.
func (c *Conn) store(ctx context.Context, f connector.Folder, ids []connector.ID, what string, fn func(*session, imap.UIDSet) error) error {
	if len(ids) == 0 {
		return nil
	}
	// Preferably the session that has the folder open already (the
	// engine opened it for the pass, and sends one STORE per flag set):
	// one SELECT per folder rather than nearly one per STORE.
	s, err := c.acquireIn(ctx, f.Name)
	if err != nil {
		return err
	}
	defer c.release(s)
	defer s.guard(ctx)()
	defer s.busy()()
	if s.selected != f.Name || s.readOnly {
		if _, err := c.selectFolder(s, f.Name, true); err != nil {
			return err
		}
	}
	var set imap.UIDSet
	for _, id := range ids {
		if v, uid, ok := parseID(id); ok && v == s.validity {
			set.AddNum(imap.UID(uid))
		}
	}
	if len(set) == 0 {
		return nil
	}
	if err := fn(s, set); err != nil {
		s.fail(err)
		return s.classify(err, fmt.Sprintf("%s in %q", what, f.Name))
	}
	return nil
}
