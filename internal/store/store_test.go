package store

import (
	"context"
	"fmt"
	"testing"
)

func TestStoreRoundTrip(t *testing.T) { eachEngine(t, testStoreRoundTrip) }

func testStoreRoundTrip(t *testing.T, open func() *Store) {
	ctx := context.Background()
	s := open()
	if err := s.Pair(ctx, "p1", "alice@old:993", "alice@new:993"); err != nil {
		t.Fatal(err)
	}
	// IDs are opaque strings of any shape.
	recs := []MessageRecord{
		{SrcPath: "INBOX", SrcID: "7.1", Identity: "a", State: StateIntent, DstPath: "INBOX"},
		{SrcPath: "INBOX", SrcID: "UIDL-ÄÖ/b", Identity: "b", State: StateIntent, DstPath: "INBOX"},
		{SrcPath: "INBOX", SrcID: "1234.5a5a5a5a5a5a", Identity: "c", State: StateIntent, DstPath: "INBOX"},
	}
	if err := s.Record(ctx, "p1", recs); err != nil {
		t.Fatal(err)
	}
	// Results overwrite intents.
	recs[0].State, recs[0].DstID = StateCopied, "9.41"
	recs[2].State, recs[2].Reason = StateFailed, "too big"
	if err := s.Record(ctx, "p1", []MessageRecord{recs[0], recs[2]}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveFolder(ctx, "p1", FolderState{SrcPath: "INBOX", Cursor: "opaque;cursor=1", DstPath: "INBOX", Messages: 3, Copied: 1}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// Everything survives a reopen (and migrations are idempotent).
	s = open()
	f, ok, err := s.Folder(ctx, "p1", "INBOX")
	if err != nil || !ok || f.Cursor != "opaque;cursor=1" || f.Messages != 3 || f.Copied != 1 {
		t.Fatalf("folder state: %+v %v %v", f, ok, err)
	}
	if n, err := s.Unsettled(ctx, "p1", "INBOX"); err != nil || n != 2 {
		t.Fatalf("unsettled = %d, %v; want the intent and the failure", n, err)
	}
	got, err := s.Lookup(ctx, "p1", "INBOX", []string{"7.1", "UIDL-ÄÖ/b", "1234.5a5a5a5a5a5a", "no such id"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got["7.1"].State != StateCopied || got["7.1"].DstID != "9.41" || got["UIDL-ÄÖ/b"].State != StateIntent ||
		got["1234.5a5a5a5a5a5a"].Reason != "too big" {
		t.Fatalf("lookup: %+v", got)
	}
	if other, _ := s.Lookup(ctx, "p1", "Sent", []string{"7.1"}); len(other) != 0 {
		t.Errorf("entries of another folder must not be found: %+v", other)
	}
	counts, err := s.CountStates(ctx, "p1")
	if err != nil || counts[StateCopied] != 1 || counts[StateIntent] != 1 || counts[StateFailed] != 1 {
		t.Fatalf("counts %v %v", counts, err)
	}
	if err := s.SetFlags(ctx, "p1", "INBOX", map[string]string{"7.1": `\Seen Work`}); err != nil {
		t.Fatal(err)
	}
	var copied []MessageRecord
	if err := s.Copied(ctx, "p1", "INBOX", func(r MessageRecord) error { copied = append(copied, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(copied) != 1 || copied[0].SrcID != "7.1" || copied[0].DstID != "9.41" || copied[0].Flags != `\Seen Work` {
		t.Fatalf("copied entries: %+v", copied)
	}
	var all int
	if err := s.Records(ctx, "p1", "INBOX", func(MessageRecord) error { all++; return nil }); err != nil || all != 3 {
		t.Fatalf("records: %d %v", all, err)
	}
	if err := s.Forget(ctx, "p1", "INBOX", []string{"7.1"}); err != nil {
		t.Fatal(err)
	}
	copied = nil
	_ = s.Copied(ctx, "p1", "INBOX", func(r MessageRecord) error { copied = append(copied, r); return nil })
	if len(copied) != 0 {
		t.Errorf("Forget left %+v", copied)
	}
	if err := s.ForgetFolder(ctx, "p1", "INBOX"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Folder(ctx, "p1", "INBOX"); ok {
		t.Error("ForgetFolder left the folder state")
	}
	if n, _ := s.Unsettled(ctx, "p1", "INBOX"); n != 0 {
		t.Error("ForgetFolder left message entries")
	}
	pairs, err := s.Pairs(ctx)
	if err != nil || len(pairs) != 1 || pairs[0].Source != "alice@old:993" {
		t.Fatalf("pairs %+v %v", pairs, err)
	}
}

// TestRecordManyRowsAndRepeats covers Record's multi-row statements: more
// rows than one statement carries, and the same message twice in one call
// (the later entry wins, as it would row by row), and Lookup over more
// IDs than one of its statements carries.
func TestRecordManyRowsAndRepeats(t *testing.T) { eachEngine(t, testRecordManyRowsAndRepeats) }

func testRecordManyRowsAndRepeats(t *testing.T, open func() *Store) {
	ctx := context.Background()
	s := open()
	if err := s.Pair(ctx, "p", "a", "b"); err != nil {
		t.Fatal(err)
	}
	var recs []MessageRecord
	var ids []string
	n := 3*recordChunk + 5 + lookupChunk
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("id-%d", i)
		ids = append(ids, id)
		recs = append(recs, MessageRecord{SrcPath: "INBOX", SrcID: id, Identity: "i", State: StateIntent})
	}
	// id-7 again, settled, in the same call.
	recs = append(recs, MessageRecord{SrcPath: "INBOX", SrcID: "id-7", Identity: "i", State: StateCopied, DstID: "70", Flags: `\Seen`})
	if err := s.Record(ctx, "p", recs); err != nil {
		t.Fatal(err)
	}
	counts, err := s.CountStates(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	if counts[StateIntent] != int64(n-1) || counts[StateCopied] != 1 {
		t.Fatalf("states after one call: %v", counts)
	}
	got, err := s.Lookup(ctx, "p", "INBOX", ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("lookup of %d IDs found %d", n, len(got))
	}
	if r := got["id-7"]; r.State != StateCopied || r.DstID != "70" || r.Flags != `\Seen` {
		t.Errorf("id-7: %+v", r)
	}
	if r := got[ids[n-1]]; r.State != StateIntent {
		t.Errorf("last ID: %+v", r)
	}
}

// A folder plan survives a reopen, segments with '/' included, and a
// later save replaces it.
func TestFolderPlansRoundTrip(t *testing.T) { eachEngine(t, testFolderPlansRoundTrip) }

func testFolderPlansRoundTrip(t *testing.T, open func() *Store) {
	ctx := context.Background()
	s := open()
	plans := []FolderPlan{
		{SrcPath: "Sent Items", Dst: []string{"Sent Items"}, Why: "same path"},
		{SrcPath: "Sent", Dst: []string{"Sent"}, DstRole: `\Sent`, Why: `special use \Sent (created)`},
		{SrcPath: "Old/2001", Dst: []string{"Archive", "a/b"}, Why: "mapping rule", Mapped: []string{"Archive", "a/b"}},
	}
	if err := s.SaveFolderPlans(ctx, "p", plans); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open()
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
