package imap

import (
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
func (c *Conn) List(ctx context.Context, f connector.Folder, opts connector.ListOptions, fn func([]connector.Message) error) (connector.FolderStatus, error) {
	var st connector.FolderStatus
	s, err := c.acquire(ctx)
	if err != nil {
		return st, err
	}
	defer c.release(s)
	defer s.guard(ctx)()
	// The session waits for the server except while fn runs.
	wait := s.busy()
	defer func() { wait() }()
	// SELECT and the listing FETCH travel together (one round trip); the
	// FETCH is sent before we know whether the folder is empty, and its
	// answer is then ignored. On a server whose SELECT omits UIDNEXT, a
	// STATUS ahead of them supplies it.
	var pre *imapclient.StatusCommand
	if c.noUIDNext.Load() {
		pre = s.c.Status(f.Name, &imap.StatusOptions{UIDNext: true})
	}
	selCmd := c.startSelect(s, f.Name, opts.ForAppend)
	batch := opts.Batch
	if batch <= 0 {
		batch = defaultListBatch
	}
	min := opts.MinUID
	if min == 0 {
		min = 1
	}
	var set imap.UIDSet
	set.AddRange(imap.UID(min), imap.UID(opts.MaxUID)) // min:* when MaxUID is 0
	fo := &imap.FetchOptions{UID: true, Flags: true}
	if !opts.FlagsOnly {
		fo.InternalDate, fo.RFC822Size = true, true
		fo.BodySection = []*imap.FetchItemBodySection{identitySection()}
	}
	if opts.ChangedSince > 0 && c.feats.CondStore {
		fo.ChangedSince = opts.ChangedSince
	}
	cmd := s.c.Fetch(set, fo)
	var preData *imap.StatusData
	var preErr error
	if pre != nil {
		preData, preErr = pre.Wait()
	}
	sel, err := c.selected(s, selCmd, f.Name, opts.ForAppend)
	if err != nil {
		_ = cmd.Close()
		return st, err
	}
	// RFC 3501 section 6.3.1 requires UIDNEXT in the answer to SELECT;
	// Courier-IMAP 5 leaves it out.
	late := false
	if sel.UIDNext == 0 {
		switch {
		case preData != nil:
			sel.UIDNext = preData.UIDNext
		case preErr != nil:
			_ = cmd.Close()
			s.fail(preErr)
			return st, s.classify(preErr, fmt.Sprintf("status of folder %q", f.Name))
		default:
			c.noUIDNext.Store(true)
			late = true
		}
	}
	st = connector.FolderStatus{
		UIDValidity:   sel.UIDValidity,
		UIDNext:       uint32(sel.UIDNext),
		Messages:      sel.NumMessages,
		HighestModSeq: sel.HighestModSeq,
	}
	for _, fl := range sel.PermanentFlags {
		if fl == imap.FlagWildcard {
			st.AcceptAnyKeyword = true
		} else {
			st.PermanentFlags = append(st.PermanentFlags, string(fl))
		}
	}
	if sel.NumMessages == 0 || (opts.MinUID > 0 && opts.MinUID >= st.UIDNext && st.UIDNext > 0) {
		// Nothing to list. Some servers answer a FETCH of "1:*" in an
		// empty folder with NO or BAD; that is not a failure here.
		// (Close drains whatever was returned.)
		if err := cmd.Close(); err != nil {
			var ie *imap.Error
			if !errors.As(err, &ie) {
				s.fail(err)
				return st, s.classify(err, fmt.Sprintf("list messages in %q", f.Name))
			}
		}
		if late {
			if st.UIDNext, err = c.uidNext(s, f.Name, 0); err != nil {
				return st, err
			}
		}
		return st, nil
	}
	buf := make([]connector.Message, 0, batch)
	var fnErr error
	var highest uint32
	for {
		md := cmd.Next()
		if md == nil {
			break
		}
		if fnErr != nil {
			continue // drain: the command must be consumed to keep the session usable
		}
		m, err := readListing(md)
		if err != nil {
			fnErr = err
			continue
		}
		highest = max(highest, m.UID)
		if m.UID < opts.MinUID || (opts.MaxUID > 0 && m.UID > opts.MaxUID) {
			continue // "n:*" includes the last message even below n (RFC 3501 6.4.8)
		}
		buf = append(buf, m)
		if len(buf) == batch {
			wait()
			fnErr = fn(buf)
			wait = s.busy()
			buf = buf[:0:0]
			buf = make([]connector.Message, 0, batch)
		}
	}
	if err := cmd.Close(); err != nil {
		s.fail(err)
		return st, s.classify(err, fmt.Sprintf("list messages in %q", f.Name))
	}
	if late {
		bound := uint32(0)
		if opts.MaxUID == 0 {
			bound = highest // listed through "*"
		}
		if st.UIDNext, err = c.uidNext(s, f.Name, bound); err != nil {
			return st, err
		}
	}
	wait()
	if fnErr != nil {
		return st, fnErr
	}
	if len(buf) > 0 {
		if err := fn(buf); err != nil {
			return st, err
		}
	}
	return st, nil
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

func readListing(md *imapclient.FetchMessageData) (connector.Message, error) {
	var m connector.Message
	var header []byte
	for {
		item := md.Next()
		if item == nil {
			break
		}
		switch it := item.(type) {
		case imapclient.FetchItemDataUID:
			m.UID = uint32(it.UID)
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
				b, err := io.ReadAll(io.LimitReader(it.Literal, 256<<10))
				if err != nil {
					return m, err
				}
				_, _ = io.Copy(io.Discard, it.Literal)
				header = b
			}
		}
	}
	if header != nil {
		m.Headers = mail.ParseHeaders(header)
		m.Identity = mail.ComputeIdentity(m.Headers, m.Size)
	}
	return m, nil
}

// Fetch implements connector.Source with one pipelined UID FETCH per
// call: the server streams every body back to back, so a batch costs one
// round trip however long the link.
func (c *Conn) Fetch(ctx context.Context, f connector.Folder, msgs []connector.Message, fn func(connector.Body, error) error) error {
	if len(msgs) == 0 {
		return nil
	}
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
	want := make(map[uint32]connector.Message, len(msgs))
	var set imap.UIDSet
	for _, m := range msgs {
		want[m.UID] = m
		set.AddNum(imap.UID(m.UID))
	}
	cmd := s.c.Fetch(set, &imap.FetchOptions{
		UID:         true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	})
	if sel != nil {
		if _, err := c.selected(s, sel, f.Name, false); err != nil {
			_ = cmd.Close() // fails too: no mailbox is selected
			return err
		}
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
		if _, pending := want[m.UID]; pending {
			err := &connector.Error{Kind: connector.KindItem, Op: fmt.Sprintf("fetch UID %d from %q", m.UID, f.Name),
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
					_, _ = io.Copy(io.Discard, it.Literal)
				}
				continue
			}
			delete(want, uid)
			if it.Literal == nil {
				if err := paused(s, func() error {
					return fn(connector.Body{Message: m}, &connector.Error{Kind: connector.KindItem,
						Op: fmt.Sprintf("fetch UID %d", uid), Err: errors.New("the server returned no content for this message")})
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
	if max := c.feats.MaxMessageSize; max > 0 && req.Size > max {
		return nil, &connector.Error{Kind: connector.KindItem, Op: op, Hint: hintTooBig,
			Err: fmt.Errorf("message of %d bytes is larger than the destination's limit of %d bytes", req.Size, max)}
	}
	if c.literalPlus {
		return c.appendPipelined(ctx, f, req, op)
	}
	var s *session
	var err error
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
	return connector.AppendResult{UID: uint32(data.UID), UIDValidity: data.UIDValidity}, nil
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
		res := connector.AppendResult{UIDValidity: p.b.valid}
		if p.idx < len(p.b.uids) && len(p.b.uids) == final {
			res.UID = p.b.uids[p.idx]
		}
		return res, nil
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

// SetFlags implements connector.Destination with UID STORE FLAGS.SILENT.
func (c *Conn) SetFlags(ctx context.Context, f connector.Folder, uids []uint32, flags []string) error {
	return c.store(ctx, f, uids, "set flags", func(s *session, set imap.UIDSet) error {
		fl := make([]imap.Flag, len(flags))
		for i, x := range flags {
			fl[i] = imap.Flag(x)
		}
		return s.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsSet, Silent: true, Flags: fl}, nil).Close()
	})
}

// Delete implements connector.Destination. With UIDPLUS, UID EXPUNGE
// (RFC 4315) removes exactly these messages; a plain EXPUNGE would also
// remove anything else the user had marked \Deleted, so without UIDPLUS
// the messages are only marked.
func (c *Conn) Delete(ctx context.Context, f connector.Folder, uids []uint32) error {
	return c.store(ctx, f, uids, "delete messages", func(s *session, set imap.UIDSet) error {
		if err := s.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
			return err
		}
		if !c.feats.UIDPlus {
			return nil
		}
		return s.c.UIDExpunge(set).Close()
	})
}

func (c *Conn) store(ctx context.Context, f connector.Folder, uids []uint32, what string, fn func(*session, imap.UIDSet) error) error {
	if len(uids) == 0 {
		return nil
	}
	s, err := c.acquire(ctx)
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
	for _, u := range uids {
		set.AddNum(imap.UID(u))
	}
	if err := fn(s, set); err != nil {
		s.fail(err)
		return s.classify(err, fmt.Sprintf("%s in %q", what, f.Name))
	}
	return nil
}
