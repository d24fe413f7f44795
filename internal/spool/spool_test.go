package spool

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
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
