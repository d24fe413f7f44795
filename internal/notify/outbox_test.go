package notify

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
)

var outboxName = regexp.MustCompile(`^\d{8}T\d{6}\.\d{9}-[0-9a-f]{12}\.eml$`)

func TestOutboxWritesAndLogs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	var logs bytes.Buffer
	o := NewOutbox(dir, slog.New(slog.NewJSONHandler(&logs, nil)))

	m := Message{
		To:      "Zoë <zoe@example.org>",
		Subject: "Dein Anmeldelink – gültig 15 Minuten",
		Text:    "Hallo Zoë,\n\nmelde dich hier an:\nhttps://mailferry.example/login?token=Zm9v=YmFy&x=1\n",
	}
	if err := o.Send(context.Background(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}

	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := di.Mode().Perm(); perm != 0o700 {
		t.Errorf("outbox directory mode = %04o, want 0700", perm)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("outbox holds %d entries, want 1: %v", len(entries), entries)
	}
	name := entries[0].Name()
	if !outboxName.MatchString(name) {
		t.Errorf("file name %q does not match %s", name, outboxName)
	}
	path := filepath.Join(dir, name)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("file mode = %04o, want 0600", perm)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := parseMail(t, data)
	checkHeaders(t, p, "mailferry@localhost", "zoe@example.org")
	if p.subject != m.Subject {
		t.Errorf("subject = %q, want %q", p.subject, m.Subject)
	}
	if want := crlf(m.Text); p.body != want {
		t.Errorf("body = %q, want %q", p.body, want)
	}

	var rec map[string]any
	sc := bufio.NewScanner(&logs)
	if !sc.Scan() {
		t.Fatal("nothing logged")
	}
	if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
		t.Fatalf("log line %q: %v", sc.Bytes(), err)
	}
	for k, want := range map[string]string{
		"level":   "INFO",
		"to":      m.To,
		"subject": m.Subject,
		"body":    m.Text,
		"file":    path,
	} {
		if rec[k] != want {
			t.Errorf("log %s = %q, want %q", k, rec[k], want)
		}
	}
	if sc.Scan() {
		t.Errorf("more than one log line: %s", sc.Bytes())
	}
}

func TestOutboxNamesSortByTime(t *testing.T) {
	dir := t.TempDir()
	o := NewOutbox(dir, nil)
	var subjects []string
	for _, s := range []string{"first", "second", "third", "fourth"} {
		if err := o.Send(context.Background(), Message{To: "a@example.org", Subject: s, Text: s}); err != nil {
			t.Fatal(err)
		}
		subjects = append(subjects, s)
	}
	entries, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, parseMail(t, data).subject)
	}
	if !slices.Equal(got, subjects) {
		t.Errorf("files in name order hold %q, want %q (no temporary files either)", got, subjects)
	}
}

func TestOutboxRejectsBadMessage(t *testing.T) {
	dir := t.TempDir()
	if err := NewOutbox(dir, nil).Send(context.Background(), Message{To: "nobody", Text: "x"}); err == nil {
		t.Fatal("Send accepted an invalid recipient")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := NewOutbox(dir, nil).Send(ctx, Message{To: "a@example.org", Text: "x"}); err == nil {
		t.Fatal("Send with a cancelled context succeeded")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("outbox holds %d entries after failed sends", len(entries))
	}
}
