// Package spool holds message bodies between the source read and the
// destination write, so that a slow or failing side never stalls or
// corrupts the other. Bodies up to 1 MiB live in memory under a global
// byte budget, in fixed 8 KiB chunks that are reused; larger ones, or any
// body when the budget is spent, go to a temporary file. Peak memory
// therefore depends on the budget, never on message or mailbox size, and
// no allocation grows with a message: once the chunks a run needs exist,
// copying more messages allocates no body memory at all.
package spool

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sync/semaphore"
)

// Spool hands out Buffers. It is safe for concurrent use.
type Spool struct {
	dir       string
	threshold int64
	mem       *semaphore.Weighted

	mu   sync.Mutex
	free [][]byte // chunks returned by Release, reused before new ones
}

const (
	chunkSize = 8 << 10
	maxMemory = 1 << 20 // the largest body kept in memory
)

// New returns a spool that keeps up to budget bytes of bodies in memory,
// each at most 1 MiB; the rest is written to temporary files in dir ("" is
// the system default).
func New(dir string, budget int64) *Spool {
	budget = max(budget, maxMemory)
	return &Spool{dir: dir, threshold: maxMemory, mem: semaphore.NewWeighted(budget)}
}

// Buffer is one spooled body. Open may be called many times (a retried
// APPEND re-reads it); Release must be called once when done.
type Buffer struct {
	s      *Spool
	size   int64
	chunks [][]byte // in memory: full chunks, the last one partly used
	held   int64
	file   *os.File
}

// Size returns the number of bytes held.
func (b *Buffer) Size() int64 { return b.size }

// Open returns a reader over the whole body from its start.
func (b *Buffer) Open() io.Reader {
	if b.file != nil {
		return io.NewSectionReader(b.file, 0, b.size)
	}
	return &chunkReader{chunks: b.chunks, left: b.size}
}

// Release frees memory or deletes the temporary file.
func (b *Buffer) Release() {
	if b.file != nil {
		name := b.file.Name()
		_ = b.file.Close()
		_ = os.Remove(name)
		b.file = nil
	}
	if b.held > 0 {
		b.s.mu.Lock()
		b.s.free = append(b.s.free, b.chunks...)
		b.s.mu.Unlock()
		b.chunks = nil
		b.s.mem.Release(b.held)
		b.held = 0
	}
}

// chunks takes n chunks from the free list, making the ones missing.
func (s *Spool) chunks(n int) [][]byte {
	out := make([][]byte, n)
	s.mu.Lock()
	k := min(n, len(s.free))
	copy(out, s.free[len(s.free)-k:])
	clear(s.free[len(s.free)-k:])
	s.free = s.free[:len(s.free)-k]
	s.mu.Unlock()
	for i := k; i < n; i++ {
		out[i] = make([]byte, chunkSize)
	}
	return out
}

// chunkReader reads a body held in chunks.
type chunkReader struct {
	chunks [][]byte
	off    int   // offset in chunks[0]
	left   int64 // bytes not yet read
}

// current is the unread part of the first chunk.
func (r *chunkReader) current() []byte {
	return r.chunks[0][r.off:min(int64(len(r.chunks[0])), int64(r.off)+r.left)]
}

// advance marks n bytes of the current chunk read.
func (r *chunkReader) advance(n int) {
	r.off += n
	r.left -= int64(n)
	if r.off == len(r.chunks[0]) {
		r.chunks, r.off = r.chunks[1:], 0
	}
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.current())
	r.advance(n)
	return n, nil
}

// WriteTo lets io.Copy hand whole chunks to the writer.
func (r *chunkReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for r.left > 0 {
		n, err := w.Write(r.current())
		total += int64(n)
		r.advance(n)
		if err != nil {
			return total, err
		}
	}
	return total, nil
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
		n := int((size + chunkSize - 1) / chunkSize)
		want := int64(n) * chunkSize
		// TryAcquire keeps readers from queueing behind the budget: when
		// memory is spent the body goes to disk instead of waiting.
		if s.mem.TryAcquire(want) {
			b.held = want
			b.chunks = s.chunks(n)
			rest := size
			for _, c := range b.chunks {
				k := min(rest, chunkSize)
				if _, err := io.ReadFull(r, c[:k]); err != nil {
					b.Release()
					return nil, fmt.Errorf("spool: read body: %w", shortRead(err))
				}
				rest -= k
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

// ReadAll copies r until EOF into a new Buffer, for bodies whose size is
// known only once they end (a base64 text inside an XML answer is
// decoded as it arrives). Up to 1 MiB stays in memory while the budget
// allows; a longer body moves to a temporary file as soon as it passes
// that size, so memory stays bounded whatever the body's size. More than
// limit bytes (when limit > 0) is an error.
func (s *Spool) ReadAll(ctx context.Context, r io.Reader, limit int64) (*Buffer, error) {
	b := &Buffer{s: s}
	for b.size < s.threshold && s.mem.TryAcquire(chunkSize) {
		b.held += chunkSize
		c := s.chunks(1)[0]
		n, err := io.ReadFull(r, c)
		b.chunks = append(b.chunks, c)
		b.size += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			if limit > 0 && b.size > limit {
				b.Release()
				return nil, fmt.Errorf("spool: body larger than %d bytes", limit)
			}
			return b, ctx.Err()
		}
		if err != nil {
			b.Release()
			return nil, fmt.Errorf("spool: read body: %w", err)
		}
	}
	var one [1]byte
	if b.size == s.threshold {
		// Exactly 1 MiB so far: in memory if that is all.
		n, err := io.ReadFull(r, one[:])
		if err == io.EOF {
			if limit > 0 && b.size > limit {
				b.Release()
				return nil, fmt.Errorf("spool: body larger than %d bytes", limit)
			}
			return b, ctx.Err()
		}
		if err != nil {
			b.Release()
			return nil, fmt.Errorf("spool: read body: %w", err)
		}
		r = io.MultiReader(bytes.NewReader(one[:n]), r)
	}
	// Too long for memory, or the budget is spent: continue in a file
	// that starts with what was read so far.
	f, err := os.CreateTemp(s.dir, "mailferry-spool-*")
	if err != nil {
		b.Release()
		return nil, fmt.Errorf("spool: create temporary file: %w", err)
	}
	size := b.size
	_, err = (&chunkReader{chunks: b.chunks, left: size}).WriteTo(f)
	b.Release()
	b.file, b.size = f, size
	if err != nil {
		b.Release()
		return nil, fmt.Errorf("spool: write temporary file: %w", err)
	}
	src := r
	if limit > 0 {
		src = io.LimitReader(r, limit-size+1)
	}
	n, err := io.Copy(f, src)
	b.size += n
	if err == nil && limit > 0 && b.size > limit {
		err = fmt.Errorf("body larger than %d bytes", limit)
	}
	if err != nil {
		b.Release()
		return nil, fmt.Errorf("spool: read body: %w", err)
	}
	return b, ctx.Err()
}
