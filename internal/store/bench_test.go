package store

import (
	"context"
	"strconv"
	"testing"
)

// BenchmarkRecord writes entries the way a copy does: 64 at a time, each
// call one transaction.
func BenchmarkRecord(b *testing.B) {
	ctx := context.Background()
	s, err := OpenSQLite(ctx, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.Pair(ctx, "p", "a", "b"); err != nil {
		b.Fatal(err)
	}
	recs := make([]MessageRecord, 64)
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		for i := range recs {
			n++
			id := "1700000000." + strconv.Itoa(n)
			recs[i] = MessageRecord{SrcPath: "INBOX", SrcID: id, Identity: "0123456789abcdef0123456789abcdef",
				State: StateCopied, DstPath: "INBOX", DstID: id, Flags: `\Seen`}
		}
		if err := s.Record(ctx, "p", recs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "entries/s")
}
