// Package spool holds message bodies between the source read and the
// destination write, so that a slow or failing side never stalls or
// corrupts the other. Small bodies live in pooled memory under a global
// byte budget; large ones, or any body when the budget is spent, go to a
// temporary file. Peak memory therefore depends on the budget, never on
// message or mailbox size.
package spool

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/bits"
	"os"
	"sync"

	"golang.org/x/sync/semaphore"
)

// Spool hands out Buffers. It is safe for concurrent use.
type Spool struct {
	dir       string
	threshold int64
	budget    int64
	mem       *semaphore.Weighted
	pools     [maxClass + 1]sync.Pool
}

const (
	minClass = 12 // 4 KiB
	maxClass = 20 // 1 MiB: the largest body kept in memory
)

// New returns a spool that keeps up to budget bytes of bodies in memory,
// each at most 1 MiB; the rest is written to temporary files in dir ("" is
// the system default).
func New(dir string, budget int64) *Spool {
	if budget < 1<<maxClass {
		budget = 1 << maxClass
	}
	return &Spool{dir: dir, threshold: 1 << maxClass, budget: budget, mem: semaphore.NewWeighted(budget)}
}

// Buffer is one spooled body. Open may be called many times (a retried
// APPEND re-reads it); Release must be called once when done.
type Buffer struct {
	s    *Spool
	size int64
	mem  []byte
	held int64
	file *os.File
}

// Size returns the number of bytes held.
func (b *Buffer) Size() int64 { return b.size }

// Open returns a reader over the whole body from its start.
func (b *Buffer) Open() io.Reader {
	if b.file != nil {
		return io.NewSectionReader(b.file, 0, b.size)
	}
	return bytes.NewReader(b.mem[:b.size])
}

// Release frees memory or deletes the temporary file.
func (b *Buffer) Release() {
	if b.file != nil {
		name := b.file.Name()
		_ = b.file.Close()
		_ = os.Remove(name)
		b.file = nil
	}
	if b.mem != nil {
		c := class(int64(cap(b.mem)))
		b.s.pools[c].Put(b.mem[:0])
		b.mem = nil
		b.s.mem.Release(b.held)
		b.held = 0
	}
}

// Read copies exactly size bytes from r into a new Buffer. A short read is
// an error: a body that does not match its announced size must never be
// written anywhere.
func (s *Spool) Read(ctx context.Context, r io.Reader, size int64) (*Buffer, error) {
	if size < 0 {
		return nil, fmt.Errorf("spool: negative size %d", size)
	}
	b := &Buffer{s: s, size: size}
	if size <= s.threshold {
		c := class(size)
		want := int64(1) << c
		// TryAcquire keeps readers from queueing behind the budget: when
		// memory is spent the body goes to disk instead of waiting.
		if s.mem.TryAcquire(want) {
			b.held = want
			buf, _ := s.pools[c].Get().([]byte)
			if buf == nil {
				buf = make([]byte, 0, want)
			}
			b.mem = buf[:size]
			if _, err := io.ReadFull(r, b.mem); err != nil {
				b.Release()
				return nil, fmt.Errorf("spool: read body: %w", shortRead(err))
			}
			return b, nil
		}
	}
	f, err := os.CreateTemp(s.dir, "mailferry-spool-*")
	if err != nil {
		return nil, fmt.Errorf("spool: create temporary file: %w", err)
	}
	b.file = f
	n, err := io.Copy(f, io.LimitReader(r, size))
	if err == nil && n != size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		b.Release()
		return nil, fmt.Errorf("spool: read body: %w", shortRead(err))
	}
	return b, ctx.Err()
}

func shortRead(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func class(n int64) int {
	if n <= 1<<minClass {
		return minClass
	}
	c := bits.Len64(uint64(n - 1))
	if c > maxClass {
		c = maxClass
	}
	return c
}
