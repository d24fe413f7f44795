package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/pressly/goose/v3"
)

// TestUpgradeMovesIMAPStateToOpaqueIDs writes the sync state as the
// release before the connector model kept it (schema version 6: UIDs and
// watermarks), opens the database with this code, and checks that every
// entry reads back in the IMAP connector's ID and cursor formats. The end
// to end check, a delta pass on a database the released binary wrote,
// is TestUpgradeFromRelease in cmd/mailferry.
func TestUpgradeMovesIMAPStateToOpaqueIDs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, dbFile))
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, mustSub(migrations, "migrations"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 6); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO mailbox_pairs (pair_key, source, destination, created_at) VALUES ('p', 'a@old:993', 'a@new:993', 1)`,
		`INSERT INTO folder_state (pair_key, src_path, src_uidvalidity, dst_path, watermark, uidnext, messages, highest_modseq,
			copied, present, failed, synced_at) VALUES ('p', 'INBOX', 1700000001, 'INBOX', 41, 43, 40, 977, 39, 0, 1, 5)`,
		`INSERT INTO folder_state (pair_key, src_path, src_uidvalidity, dst_path, watermark, uidnext, messages, highest_modseq,
			copied, present, failed, synced_at) VALUES ('p', 'Sent', 4294967295, 'Sent Items', 0, 1, 0, 0, 0, 0, 0, 5)`,
		`INSERT INTO message_state (pair_key, src_path, src_uidvalidity, src_uid, identity, state, dst_path, dst_uidvalidity,
			dst_uid, reason, updated_at, flags) VALUES ('p', 'INBOX', 1700000001, 7, 'id7', 'copied', 'INBOX', 99, 12, '', 5, '\Seen')`,
		`INSERT INTO message_state (pair_key, src_path, src_uidvalidity, src_uid, identity, state, dst_path, dst_uidvalidity,
			dst_uid, reason, updated_at) VALUES ('p', 'INBOX', 1700000001, 8, 'id8', 'copied', 'INBOX', 0, 0, '', 5)`,
		`INSERT INTO message_state (pair_key, src_path, src_uidvalidity, src_uid, identity, state, dst_path, reason, updated_at)
			VALUES ('p', 'INBOX', 1700000001, 9, 'id9', 'failed', 'INBOX', 'too big', 5)`,
		`INSERT INTO failed_items (pass_id, mailbox_id, folder, uid, size, kind, reason) VALUES ('x', 'y', 'INBOX', 9, 10, 'item', 'too big')`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	s, err := OpenSQLite(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f, ok, err := s.Folder(ctx, "p", "INBOX")
	if err != nil || !ok {
		t.Fatalf("folder: %v %v", ok, err)
	}
	const want = "imap1;from=42;messages=40;modseq=977;uidnext=43;uidvalidity=1700000001"
	if f.Cursor != want || f.DstPath != "INBOX" || f.Messages != 40 || f.Copied != 39 || f.Failed != 1 {
		t.Errorf("INBOX: %+v, want cursor %q", f, want)
	}
	if f, _, _ := s.Folder(ctx, "p", "Sent"); f.Cursor != "imap1;from=1;messages=0;modseq=0;uidnext=1;uidvalidity=4294967295" || f.DstPath != "Sent Items" {
		t.Errorf("Sent: %+v", f)
	}
	got, err := s.Lookup(ctx, "p", "INBOX", []string{"1700000001.7", "1700000001.8", "1700000001.9"})
	if err != nil {
		t.Fatal(err)
	}
	if r := got["1700000001.7"]; r.State != StateCopied || r.DstID != "99.12" || r.Flags != `\Seen` || r.Identity != "id7" {
		t.Errorf("UID 7: %+v", r)
	}
	if r := got["1700000001.8"]; r.State != StateCopied || r.DstID != "" {
		t.Errorf("UID 8 (copied without APPENDUID): %+v", r)
	}
	if r := got["1700000001.9"]; r.State != StateFailed || r.Reason != "too big" {
		t.Errorf("UID 9: %+v", r)
	}
	if n, _ := s.Unsettled(ctx, "p", "INBOX"); n != 1 {
		t.Errorf("unsettled = %d, want the failed one", n)
	}
	var id string
	var uid int64
	if err := s.DB().QueryRowContext(ctx, `SELECT uid, item_id FROM failed_items`).Scan(&uid, &id); err != nil || uid != 9 || id != "" {
		t.Errorf("failed item: uid %d id %q %v", uid, id, err)
	}
}
