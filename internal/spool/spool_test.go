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
