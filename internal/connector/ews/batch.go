package ews

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
)

// Small messages are written several per CreateItem request: CreateItem
// takes a list of items and answers one response message per item, in
// order (web-service-reference/createitem-operation-email-message). On a
// link with a round trip of 20 ms this multiplies what four connections
// write (BenchmarkAppend: about 160 messages/s one per request, see the
// package documentation for the figures with batches). A batch is sent
// when it is full, when a caller waits for one of its messages, or
// batchLinger after its first message, so that no message waits longer
// than that for company. A message marked Retry, or larger than
// batchItemMax, is sent on its own and streamed.
//
// Exchange handles the items of a batch one after the other and checks
// the throttling budget between them (ews-throttling-in-exchange,
// "Throttling implications for EWS batch requests"), so batches are kept
// small.
const (
	batchItems   = 10
	batchBytes   = 1 << 20
	batchItemMax = 128 << 10
	batchLinger  = 3 * time.Millisecond
)

// batch is the messages waiting to be written to one folder.
type batch struct {
	ctx   context.Context
	f     connector.Folder
	what  string
	items []*batchItem
	size  int
	timer *time.Timer
	sent  bool
}

type batchItem struct {
	req         connector.AppendRequest // Body already read into raw
	raw         []byte
	withHeaders bool
	p           *pendingAppend
}

// appendBatched reads a small message into memory and adds it to its
// folder's batch.
func (c *Conn) appendBatched(ctx context.Context, f connector.Folder, what string, req connector.AppendRequest) (connector.PendingAppend, error) {
	raw := make([]byte, req.Size)
	if _, err := io.ReadFull(req.Body, raw); err != nil {
		return nil, &connector.Error{Kind: connector.KindTransient, Op: what, Err: fmt.Errorf("read the message: %w", err)}
	}
	it := &batchItem{req: req, raw: raw, withHeaders: !c.noTransportHeaders.Load(), p: &pendingAppend{done: make(chan struct{})}}
	it.req.Body = nil
	c.bmu.Lock()
	b := c.batches[f.Name]
	if b == nil {
		b = &batch{ctx: ctx, f: f, what: what}
		c.batches[f.Name] = b
		b.timer = time.AfterFunc(batchLinger, func() { c.sendBatch(b) })
	}
	b.items = append(b.items, it)
	b.size += len(raw)
	full := len(b.items) >= batchItems || b.size >= batchBytes
	c.bmu.Unlock()
	it.p.flush = func() { c.sendBatch(b) }
	if full {
		c.sendBatch(b)
	}
	return it.p, nil
}

// flushBatches sends every waiting batch (Close).
func (c *Conn) flushBatches() {
	c.bmu.Lock()
	var bs []*batch
	for _, b := range c.batches {
		bs = append(bs, b)
	}
	c.bmu.Unlock()
	for _, b := range bs {
		c.sendBatch(b)
	}
}

// sendBatch writes b once (later calls do nothing) and reads its answer
// in the background.
func (c *Conn) sendBatch(b *batch) {
	c.bmu.Lock()
	if b.sent {
		c.bmu.Unlock()
		return
	}
	b.sent = true
	b.timer.Stop()
	if c.batches[b.f.Name] == b {
		delete(c.batches, b.f.Name)
	}
	c.bmu.Unlock()
	fail := func(err error) {
		for _, it := range b.items {
			it.p.err = err
			close(it.p.done)
		}
	}
	pre, post, err := c.frameParts(b.f)
	if err != nil {
		fail(err)
		return
	}
	var body bytes.Buffer
	body.Write(pre)
	for _, it := range b.items {
		head := it.raw[:min(len(it.raw), maxHeaderBlock)]
		closing, err := itemClose(it.req, head, it.withHeaders)
		if err != nil {
			fail(err)
			return
		}
		body.WriteString(itemOpen)
		enc := base64.NewEncoder(base64.StdEncoding, &body)
		_, _ = enc.Write(it.raw)
		_ = enc.Close()
		body.Write(closing)
	}
	body.Write(post)
	data := body.Bytes()
	x, err := c.tr.send(b.ctx, int64(len(data)), func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	if err != nil {
		_, err = c.cl.sorted(b.ctx, b.what, err, false)
		if ce, ok := err.(*connector.Error); ok {
			ce.Uncertain = false // the request did not go out whole
		}
		fail(err)
		return
	}
	go func() {
		var resp createItemResp
		err := x.receive(func(r *http.Response) error {
			return handleResponse(r, func(rd io.Reader) error { return decodeEnvelope(rd, &resp) })
		})
		if err != nil {
			_, err = c.cl.sorted(b.ctx, b.what, err, false)
			fail(err)
			return
		}
		if len(resp.Messages) != len(b.items) {
			err := protocolErr(b.what, "CreateItem answered %d messages for %d items", len(resp.Messages), len(b.items))
			err.(*connector.Error).Uncertain = true
			fail(err)
			return
		}
		for i, it := range b.items {
			it.p.res, it.p.err = c.itemResult(b.what, resp.Messages[i], it.withHeaders)
			close(it.p.done)
		}
	}()
}
