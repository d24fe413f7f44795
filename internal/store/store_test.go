package store

import (
	"context"
	"testing"
)

func TestStoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenSQLite(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Pair(ctx, "p1", "alice@old:993", "alice@new:993"); err != nil {
		t.Fatal(err)
	}
	recs := []MessageRecord{
		{SrcPath: "INBOX", SrcUIDValidity: 7, SrcUID: 1, Identity: "a", State: StateIntent, DstPath: "INBOX"},
		{SrcPath: "INBOX", SrcUIDValidity: 7, SrcUID: 2, Identity: "b", State: StateIntent, DstPath: "INBOX"},
		{SrcPath: "INBOX", SrcUIDValidity: 7, SrcUID: 3, Identity: "c", State: StateIntent, DstPath: "INBOX"},
	}
	if err := s.Record(ctx, "p1", recs); err != nil {
		t.Fatal(err)
	}
	// Results overwrite intents.
	recs[0].State, recs[0].DstUID, recs[0].DstUIDValidity = StateCopied, 41, 9
	recs[2].State, recs[2].Reason = StateFailed, "too big"
	if err := s.Record(ctx, "p1", []MessageRecord{recs[0], recs[2]}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveFolder(ctx, "p1", FolderState{SrcPath: "INBOX", SrcUIDValidity: 7, DstPath: "INBOX", Watermark: 1, UIDNext: 4, Messages: 3, HighestModSeq: 12, Copied: 1}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// Everything survives a reopen (and migrations are idempotent).
	s, err = OpenSQLite(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f, ok, err := s.Folder(ctx, "p1", "INBOX")
	if err != nil || !ok || f.Watermark != 1 || f.UIDNext != 4 || f.HighestModSeq != 12 || f.SrcUIDValidity != 7 {
		t.Fatalf("folder state: %+v %v %v", f, ok, err)
	}
	un, err := s.Unsettled(ctx, "p1", "INBOX", 7, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(un) != 2 || un[2].State != StateIntent || un[3].State != StateFailed || un[3].Reason != "too big" {
		t.Fatalf("unsettled above watermark 1: %+v", un)
	}
	// Failed entries count as unsettled even below the watermark: a later
	// pass tries them again.
	if un, _ := s.Unsettled(ctx, "p1", "INBOX", 7, 3); len(un) != 2 {
		t.Fatalf("unsettled above watermark 1: %+v", un)
	}
	if un, _ := s.Unsettled(ctx, "p1", "INBOX", 8, 0); len(un) != 0 {
		t.Errorf("entries of another UIDVALIDITY must not count: %+v", un)
	}
	counts, err := s.CountStates(ctx, "p1")
	if err != nil || counts[StateCopied] != 1 || counts[StateIntent] != 1 || counts[StateFailed] != 1 {
		t.Fatalf("counts %v %v", counts, err)
	}
	// Flags of copied messages, streamed in UID order.
	if err := s.SetFlags(ctx, "p1", "INBOX", 7, map[uint32]string{1: `\Seen Work`}); err != nil {
		t.Fatal(err)
	}
	var copied []MessageRecord
	if err := s.Copied(ctx, "p1", "INBOX", 7, 0, 100, func(r MessageRecord) error { copied = append(copied, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(copied) != 1 || copied[0].SrcUID != 1 || copied[0].DstUID != 41 || copied[0].Flags != `\Seen Work` {
		t.Fatalf("copied entries: %+v", copied)
	}
	if err := s.Forget(ctx, "p1", "INBOX", 7, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	copied = nil
	_ = s.Copied(ctx, "p1", "INBOX", 7, 0, 100, func(r MessageRecord) error { copied = append(copied, r); return nil })
	if len(copied) != 0 {
		t.Errorf("Forget left %+v", copied)
	}
	if err := s.ForgetFolder(ctx, "p1", "INBOX"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Folder(ctx, "p1", "INBOX"); ok {
		t.Error("ForgetFolder left the folder state")
	}
	if un, _ := s.Unsettled(ctx, "p1", "INBOX", 7, 0); len(un) != 0 {
		t.Error("ForgetFolder left message entries")
	}
	pairs, err := s.Pairs(ctx)
	if err != nil || len(pairs) != 1 || pairs[0].Source != "alice@old:993" {
		t.Fatalf("pairs %+v %v", pairs, err)
	}
}

// TestRecordManyRowsAndRepeats covers Record's multi-row statements: more
// rows than one statement carries, and the same message twice in one call
// (the later entry wins, as it would row by row).
func TestRecordManyRowsAndRepeats(t *testing.T) {
	ctx := context.Background()
	s, err := OpenSQLite(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Pair(ctx, "p", "a", "b"); err != nil {
		t.Fatal(err)
	}
	var recs []MessageRecord
	for uid := uint32(1); uid <= 3*recordChunk+5; uid++ {
		recs = append(recs, MessageRecord{SrcPath: "INBOX", SrcUIDValidity: 1, SrcUID: uid, Identity: "i", State: StateIntent})
	}
	// UID 7 again, settled, in the same call.
	recs = append(recs, MessageRecord{SrcPath: "INBOX", SrcUIDValidity: 1, SrcUID: 7, Identity: "i", State: StateCopied, DstUID: 70, Flags: `\Seen`})
	if err := s.Record(ctx, "p", recs); err != nil {
		t.Fatal(err)
	}
	counts, err := s.CountStates(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	if counts[StateIntent] != 3*recordChunk+4 || counts[StateCopied] != 1 {
		t.Fatalf("states after one call: %v", counts)
	}
	un, err := s.Unsettled(ctx, "p", "INBOX", 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r := un[7]; r.State != StateCopied || r.DstUID != 70 || r.Flags != `\Seen` {
		t.Errorf("UID 7: %+v", r)
	}
	if r := un[3*recordChunk+5]; r.State != StateIntent {
		t.Errorf("last UID: %+v", r)
	}
}

// A folder plan survives a reopen, segments with '/' included, and a
// later save replaces it.
func TestFolderPlansRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenSQLite(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	plans := []FolderPlan{
		{SrcPath: "Sent Items", Dst: []string{"Sent Items"}, Why: "same path"},
		{SrcPath: "Sent", Dst: []string{"Sent"}, DstRole: `\Sent`, Why: `special use \Sent (created)`},
		{SrcPath: "Old/2001", Dst: []string{"Archive", "a/b"}, Why: "mapping rule", Mapped: []string{"Archive", "a/b"}},
	}
	if err := s.SaveFolderPlans(ctx, "p", plans); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = OpenSQLite(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.FolderPlans(ctx, "p")
	if err != nil || len(got) != 3 {
		t.Fatalf("plans: %v %+v", err, got)
	}
	if p := got["Old/2001"]; len(p.Dst) != 2 || p.Dst[1] != "a/b" || len(p.Mapped) != 2 || p.Why != "mapping rule" {
		t.Errorf("Old/2001: %+v", p)
	}
	if p := got["Sent"]; p.DstRole != `\Sent` || p.Mapped != nil {
		t.Errorf("Sent: %+v", p)
	}
	if err := s.SaveFolderPlans(ctx, "p", []FolderPlan{{SrcPath: "Old/2001", Dst: []string{"Archiv", "2001"}, Why: "mapping rule", Mapped: []string{"Archiv", "2001"}}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.FolderPlans(ctx, "p"); got["Old/2001"].Dst[0] != "Archiv" || len(got) != 3 {
		t.Errorf("after replacing: %+v", got)
	}
	if other, _ := s.FolderPlans(ctx, "q"); len(other) != 0 {
		t.Errorf("another pair sees %d plans", len(other))
	}
}
