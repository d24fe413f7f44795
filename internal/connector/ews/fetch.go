package ews

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/spool"
)

const (
	// fetchBatch and fetchBytes bound one GetItem of bodies: a few items
	// per call, so that a call stays well inside the minute EWS allows a
	// batch request (ews-throttling-in-exchange, "Throttling implications
	// for EWS batch requests").
	fetchBatch = 10
	fetchBytes = 8 << 20
	// maxBody is the largest body read (Exchange's own limits are far
	// lower); a bigger one fails that message.
	maxBody = 2 << 30
	// maxAnswerXML bounds the XML of an answer besides the bodies.
	maxAnswerXML = 256 << 20
)

// mimeResult is what GetItem said about one requested item.
type mimeResult struct {
	status respStatus
	body   int   // index of its body for consume, -1 when none
	err    error // the item failed (KindItem unless transient)
}

// getMIME runs one GetItem with IncludeMimeContent for ids
// (web-service-reference/getitem-operation-email-message) and streams
// each body to consume as it arrives; results are in the order of ids.
func (c *Conn) getMIME(ctx context.Context, what string, ids []string, consume func(body int, r io.Reader) error) ([]mimeResult, error) {
	t := true
	req := &getItemReq{Shape: shape{Base: "IdOnly", IncludeMIME: &t}, ItemIDs: refs(ids)}
	body, err := c.cl.marshal(req)
	if err != nil {
		return nil, err
	}
	var resp getItemResp
	var sp *splicer
	err = c.cl.do(ctx, what, int64(len(body)), func(w io.Writer) error {
		_, err := w.Write(body)
		return err
	}, true, func(r io.Reader) error {
		sp = newSplicer(r, consume)
		return decodeEnvelope(&limitedXML{r: sp, left: maxAnswerXML}, &resp)
	})
	if err != nil {
		return nil, err
	}
	if len(resp.Messages) != len(ids) {
		return nil, protocolErr(what, "GetItem answered %d messages for %d items", len(resp.Messages), len(ids))
	}
	out := make([]mimeResult, len(ids))
	for i, m := range resp.Messages {
		out[i] = mimeResult{status: m.respStatus, body: -1}
		if !m.ok() {
			out[i].err = messageErr(m.respStatus, fmt.Sprintf("%s: read message %s", what, ids[i]))
			continue
		}
		if len(m.Items.Items) == 0 || m.Items.Items[0].MIME == nil {
			out[i].err = &connector.Error{Kind: connector.KindItem, Op: what, Hint: hintItemSave,
				Err: fmt.Errorf("Exchange returned no MIME content for message %s", ids[i])}
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(m.Items.Items[0].MIME.Text))
		if err != nil || n < 0 || n >= sp.n {
			return nil, protocolErr(what, "GetItem's MimeContent of message %s could not be read", ids[i])
		}
		out[i].body = n
		if berr := sp.bodyErrs[n]; berr != nil {
			out[i].err = &connector.Error{Kind: connector.KindItem, Op: fmt.Sprintf("%s: read message %s", what, ids[i]),
				Hint: hintItemSave, Err: berr}
		}
	}
	return out, nil
}

// limitedXML fails an answer whose XML (bodies excluded) exceeds its
// budget, so that a misbehaving server cannot make the Decoder hold an
// unbounded text.
type limitedXML struct {
	r    io.Reader
	left int64
}

func (l *limitedXML) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, fmt.Errorf("ews: the answer is larger than %d MiB besides the messages", maxAnswerXML>>20)
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

// Fetch streams the MIME of msgs with GetItem, a few items per call.
// Every body is decoded from base64 as it arrives and spooled (memory up
// to 1 MiB within the Conn's budget, a temporary file beyond), so that
// neither a whole message nor a whole batch is ever held in memory and
// Body.Size is exact before fn sees the body. fn is called once the
// answer of a call has been read completely, so that a slow destination
// never holds an Exchange connection open. A message that is gone or
// cannot be read is reported to fn with a KindItem error; a transient
// per-message error (ErrorServerBusy, ErrorTooManyObjectsOpened) ends
// Fetch with that error after the others of its call were delivered, as
// a session failure that is retried.
//
// The bytes are what Exchange serves: MIME that it writes anew from the
// item's properties, which differs from what was delivered (see doc.go).
func (c *Conn) Fetch(ctx context.Context, f connector.Folder, msgs []connector.Message, fn func(connector.Body, error) error) error {
	what := c.folderOp("read messages of", f)
	for len(msgs) > 0 {
		n, total := 0, int64(0)
		for n < len(msgs) && n < fetchBatch && (n == 0 || total+msgs[n].Size <= fetchBytes) {
			total += msgs[n].Size
			n++
		}
		if err := c.fetchBatch(ctx, what, msgs[:n], fn); err != nil {
			return err
		}
		msgs = msgs[n:]
	}
	return nil
}

func (c *Conn) fetchBatch(ctx context.Context, what string, msgs []connector.Message, fn func(connector.Body, error) error) error {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = string(m.ID)
	}
	var bufs []*spool.Buffer
	defer func() {
		for _, b := range bufs {
			if b != nil {
				b.Release()
			}
		}
	}()
	results, err := c.getMIME(ctx, what, ids, func(i int, r io.Reader) error {
		for len(bufs) <= i {
			bufs = append(bufs, nil)
		}
		b, err := c.spool.ReadAll(ctx, r, maxBody)
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return &abortError{err} // the spool's disk, not the message
		}
		if err != nil {
			return err
		}
		bufs[i] = b
		return nil
	})
	if err != nil {
		return err
	}
	var transient error
	for k, res := range results {
		m := msgs[k]
		if res.err != nil {
			if kind := connector.KindOf(res.err); kind == connector.KindTransient || kind == connector.KindUnknown {
				if transient == nil {
					transient = res.err
				}
				continue
			} else if kind != connector.KindItem {
				return res.err
			}
			if err := fn(connector.Body{Message: m}, res.err); err != nil {
				return err
			}
			continue
		}
		b := bufs[res.body]
		if b == nil {
			if err := fn(connector.Body{Message: m}, &connector.Error{Kind: connector.KindItem, Op: what, Hint: hintItemSave,
				Err: fmt.Errorf("the MIME content of message %s could not be read", m.ID)}); err != nil {
				return err
			}
			continue
		}
		err := fn(connector.Body{Message: m, Reader: b.Open(), Size: b.Size()}, nil)
		b.Release()
		bufs[res.body] = nil
		if err != nil {
			return err
		}
	}
	return transient
}
