package graph

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sync"

	"github.com/mailferry/mailferry/internal/connector"
)

// held is a body kept between its download and its callback.
type held interface {
	Open() io.Reader
	Size() int64
	Release()
}

// Fetch downloads the MIME of msgs from messages/{id}/$value, up to
// MaxConnections at once, and hands each to fn from the calling
// goroutine. Each body is first read completely into the spool (memory up
// to 1 MiB, else a temporary file): its size is then exact before fn sees
// it, even without a Content-Length, and no concurrency slot is held
// while fn runs. The latter matters because the slots are shared by every
// mailbox of the app: a callback that waits for a Graph destination of the
// same app would otherwise wait for itself.
func (c *Conn) Fetch(ctx context.Context, f connector.Folder, msgs []connector.Message, fn func(connector.Body, error) error) error {
	if len(msgs) == 0 {
		return nil
	}
	type result struct {
		m   connector.Message
		buf held
		err error // per message (KindItem) or of the session
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan connector.Message)
	results := make(chan result)
	var wg sync.WaitGroup
	for range min(int(c.api.lim.connCap), len(msgs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range work {
				buf, err := c.download(ctx, m)
				select {
				case results <- result{m: m, buf: buf, err: err}:
				case <-ctx.Done():
					if buf != nil {
						buf.Release()
					}
					return
				}
			}
		}()
	}
	go func() {
		defer close(work)
		for _, m := range msgs {
			select {
			case work <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(results) }()

	var failure error
	for r := range results {
		if failure != nil {
			if r.buf != nil {
				r.buf.Release()
			}
			continue
		}
		switch {
		case r.err != nil && connector.KindOf(r.err) == connector.KindItem:
			failure = fn(connector.Body{Message: r.m}, r.err)
		case r.err != nil:
			failure = r.err
		default:
			m := r.m
			m.Size = r.buf.Size()
			failure = fn(connector.Body{Message: m, Reader: r.buf.Open(), Size: m.Size}, nil)
			r.buf.Release()
		}
		if failure != nil {
			cancel()
		}
	}
	return failure
}

func (c *Conn) download(ctx context.Context, m connector.Message) (held, error) {
	resp, err := c.api.do(ctx, request{method: http.MethodGet, url: c.user + "/messages/" + url.PathEscape(string(m.ID)) + "/$value", idempotent: true})
	if err != nil {
		if st, _ := apiStatus(err); st == http.StatusNotFound {
			return nil, connector.Errorf(connector.KindItem, "", err, "read message %s: it no longer exists", shortID(m.ID))
		}
		return nil, c.sortError(err, accessRead, connector.KindItem, connector.KindItem, "read message %s", shortID(m.ID))
	}
	defer resp.Close()
	var buf held
	if resp.ContentLength >= 0 {
		b, err := c.spool.Read(ctx, resp.Body, resp.ContentLength)
		if err != nil {
			return nil, connector.Errorf(connector.KindTransient, "", err, "read message %s", shortID(m.ID))
		}
		buf = b
	} else {
		b, err := spoolUnknown(resp.Body, c.spoolDir)
		if err != nil {
			return nil, connector.Errorf(connector.KindTransient, "", err, "read message %s", shortID(m.ID))
		}
		buf = b
	}
	return buf, nil
}

// shortID keeps error messages readable: Graph ids are ~150 characters.
func shortID(id connector.ID) string {
	if len(id) > 24 {
		return "…" + string(id[len(id)-20:])
	}
	return string(id)
}

// unknownBody is a body of unknown length: up to memLimit in memory,
// beyond that in a temporary file.
type unknownBody struct {
	mem  []byte
	file *os.File
	size int64
}

const memLimit = 1 << 20

func spoolUnknown(r io.Reader, dir string) (*unknownBody, error) {
	head := make([]byte, memLimit+1)
	n, err := io.ReadFull(r, head)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &unknownBody{mem: head[:n], size: int64(n)}, nil
	}
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, "mailferry-graph-*")
	if err != nil {
		return nil, fmt.Errorf("spool a message: %w", err)
	}
	b := &unknownBody{file: f}
	if _, err := f.Write(head); err != nil {
		b.Release()
		return nil, fmt.Errorf("spool a message: %w", err)
	}
	m, err := io.Copy(f, r)
	if err != nil {
		b.Release()
		return nil, err
	}
	b.size = int64(len(head)) + m
	return b, nil
}

func (b *unknownBody) Open() io.Reader {
	if b.file != nil {
		return io.NewSectionReader(b.file, 0, b.size)
	}
	return bytes.NewReader(b.mem)
}

func (b *unknownBody) Size() int64 { return b.size }

func (b *unknownBody) Release() {
	if b.file != nil {
		name := b.file.Name()
		b.file.Close()
		os.Remove(name)
		b.file = nil
	}
	b.mem = nil
}

// ReadAt lets upload sessions send a spooled attachment in ranges.
func (b *unknownBody) ReadAt(p []byte, off int64) (int, error) {
	if b.file != nil {
		return b.file.ReadAt(p, off)
	}
	return bytes.NewReader(b.mem).ReadAt(p, off)
}
