package spool

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestSpool(t *testing.T) {
	dir := t.TempDir()
	s := New(dir, 1<<20)
	ctx := context.Background()
	for _, size := range []int64{0, 1, 4096, 4097, 1 << 20, 3<<20 + 7} {
		data := make([]byte, size)
		_, _ = rand.Read(data)
		b, err := s.Read(ctx, bytes.NewReader(data), size)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		for i := 0; i < 2; i++ { // re-reading is what a retried APPEND does
			got, _ := io.ReadAll(b.Open())
			if !bytes.Equal(got, data) {
				t.Fatalf("size %d: read %d bytes, not the same", size, len(got))
			}
		}
		onDisk := b.file != nil
		if size > 1<<20 && !onDisk {
			t.Errorf("size %d should be spooled to disk", size)
		}
		b.Release()
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

func TestSpoolBudgetSpillsToDisk(t *testing.T) {
	s := New(t.TempDir(), 1<<20)
	ctx := context.Background()
	a, err := s.Read(ctx, bytes.NewReader(make([]byte, 1<<20)), 1<<20)
	if err != nil || a.file != nil {
		t.Fatalf("first body should be in memory: %v", err)
	}
	b, err := s.Read(ctx, bytes.NewReader(make([]byte, 100)), 100)
	if err != nil || b.file == nil {
		t.Fatalf("with the budget spent the body must go to disk, not wait: %v", err)
	}
	a.Release()
	b.Release()
	c, err := s.Read(ctx, bytes.NewReader(make([]byte, 100)), 100)
	if err != nil || c.file != nil {
		t.Fatalf("released budget must be reusable: %v", err)
	}
	c.Release()
}

func TestSpoolShortRead(t *testing.T) {
	s := New(os.TempDir(), 1<<20)
	for _, size := range []int64{10, 2 << 20} {
		if _, err := s.Read(context.Background(), bytes.NewReader(make([]byte, 5)), size); err == nil {
			t.Errorf("size %d: a short body must be an error", size)
		}
	}
}

// TestSpoolReusesChunks checks that once its chunks exist, spooling more
// bodies allocates no body memory: only small bookkeeping, the same for a
// 4 KB and a 1 MB body.
func TestSpoolReusesChunks(t *testing.T) {
	s := New(t.TempDir(), 4<<20)
	ctx := context.Background()
	for _, size := range []int{4 << 10, 1 << 20} {
		data := make([]byte, size)
		_, _ = rand.Read(data)
		r := bytes.NewReader(data)
		spool := func() {
			r.Reset(data)
			b, err := s.Read(ctx, r, int64(size))
			if err != nil || b.file != nil {
				t.Fatalf("size %d: %v (on disk: %v)", size, err, b != nil && b.file != nil)
			}
			var got bytes.Buffer
			if _, err := io.Copy(&got, b.Open()); err != nil || !bytes.Equal(got.Bytes(), data) {
				t.Fatalf("size %d: read back %d bytes, %v", size, got.Len(), err)
			}
			b.Release()
		}
		spool() // makes the chunks
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		const rounds = 20
		for range rounds {
			r.Reset(data)
			b, err := s.Read(ctx, r, int64(size))
			if err != nil {
				t.Fatal(err)
			}
			b.Release()
		}
		runtime.ReadMemStats(&after)
		if per := (after.TotalAlloc - before.TotalAlloc) / rounds; per > 4<<10 {
			t.Errorf("size %d: %d bytes allocated per body once warm", size, per)
		} else {
			t.Logf("size %d: %d bytes allocated per body once warm", size, per)
		}
	}
}

// ReadAll learns the size at EOF: short bodies stay in memory, long ones
// move to a file, limit is enforced, and the heap does not grow with the
// body.
func TestReadAll(t *testing.T) {
	dir := t.TempDir()
	s := New(dir, 1<<20)
	ctx := context.Background()
	for _, size := range []int64{0, 1, 8191, 8192, 8193, 1<<20 - 1, 1 << 20, 1<<20 + 1, 3<<20 + 7} {
		data := make([]byte, size)
		_, _ = rand.Read(data)
		b, err := s.ReadAll(ctx, io.MultiReader(bytes.NewReader(data[:size/2]), bytes.NewReader(data[size/2:])), 0)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if b.Size() != size {
			t.Fatalf("size %d: Size() = %d", size, b.Size())
		}
		for i := 0; i < 2; i++ {
			got, _ := io.ReadAll(b.Open())
			if !bytes.Equal(got, data) {
				t.Fatalf("size %d: read %d bytes, not the same", size, len(got))
			}
		}
		if onDisk := b.file != nil; onDisk != (size > 1<<20) {
			t.Errorf("size %d: on disk %v", size, onDisk)
		}
		b.Release()
	}
	if _, err := s.ReadAll(ctx, bytes.NewReader(make([]byte, 100)), 99); err == nil {
		t.Error("a body over the limit was accepted")
	}
	if _, err := s.ReadAll(ctx, bytes.NewReader(make([]byte, 2<<20)), 2<<20-1); err == nil {
		t.Error("a body over the limit (on disk) was accepted")
	}
	if b, err := s.ReadAll(ctx, bytes.NewReader(make([]byte, 2<<20)), 2<<20); err != nil {
		t.Errorf("a body of exactly the limit was refused: %v", err)
	} else {
		b.Release()
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
	if s.mem.TryAcquire(1 << 20) {
		s.mem.Release(1 << 20)
	} else {
		t.Error("ReadAll did not give its memory budget back")
	}
}

func TestReadAllBoundedHeap(t *testing.T) {
	s := New(t.TempDir(), 1<<20)
	const size = 24 << 20
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b, err := s.ReadAll(context.Background(), io.LimitReader(zeros{}, size), 0)
	runtime.ReadMemStats(&after)
	if err != nil || b.Size() != size {
		t.Fatalf("ReadAll: %v, size %d", err, b.Size())
	}
	b.Release()
	if grown := after.TotalAlloc - before.TotalAlloc; grown > 4<<20 {
		t.Errorf("spooling %d MiB allocated %d bytes", size>>20, grown)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
