package pop3

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
)

func TestCursor(t *testing.T) {
	ids := []connector.ID{"000000016b0f7010", "000000026b0f7010", "abc", "abc"}
	c := makeCursor(true, ids)
	if !strings.HasPrefix(string(c), cursorUIDL) {
		t.Fatalf("cursor %q lacks its kind", c)
	}
	s, ok := parseCursor(c, true)
	if !ok || len(s) != 3 {
		t.Fatalf("parseCursor = %v, %v (want 3 distinct hashes)", s, ok)
	}
	for _, id := range ids {
		if !s.has(id) {
			t.Errorf("cursor lost %q", id)
		}
	}
	if s.has("000000036b0f7010") {
		t.Error("cursor has an ID never put in")
	}
	if !s.equalIDs([]connector.ID{"abc", "000000026b0f7010", "000000016b0f7010"}) || s.equalIDs(ids[:2]) {
		t.Error("equalIDs is not set equality")
	}
	if _, ok := parseCursor(c, false); ok {
		t.Error("a UIDL cursor was accepted for content IDs")
	}
	for _, bad := range []connector.Cursor{"", "pop3-uidl-1:!!", "pop3-uidl-1:AAAA", "imap:1.2.3", cursorUIDL + "AAAAAAAAAAEAAAAAAAAAAA"} {
		if _, ok := parseCursor(bad, true); ok {
			t.Errorf("malformed cursor %q accepted", bad)
		}
	}
	if s, ok := parseCursor(makeCursor(true, nil), true); !ok || len(s) != 0 {
		t.Errorf("empty maildrop cursor: %v %v", s, ok)
	}
	// 8 bytes per message: about 10.7 base64 characters.
	many := make([]connector.ID, 1000)
	for i := range many {
		many[i] = connector.ID(strings.Repeat("u", 40) + string(rune('a'+i%26)) + time.Duration(i).String())
	}
	if n := len(makeCursor(true, many)) - len(cursorUIDL); n > 10700 {
		t.Errorf("cursor of 1000 IDs is %d characters, want about 10,667", n)
	}
}

func TestReceivedDate(t *testing.T) {
	mk := func(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }
	for _, tc := range []struct {
		name, block, want string
	}{
		{"topmost Received wins", "Received: from b by c; Tue, 2 Jul 2024 10:00:05 +0200\n" +
			"Received: from a by b; Tue, 2 Jul 2024 09:59:00 +0200\nDate: Mon, 1 Jul 2024 08:00:00 +0000\n\n", "2024-07-02T08:00:05Z"},
		{"folded Received", "Received: from b\n\tby c with ESMTP id 42;\n\tWed, 3 Jul 2024 12:00:00 -0400 (EDT)\n\n", "2024-07-03T16:00:00Z"},
		{"unreadable topmost, next one", "Received: garbage; not a date\nReceived: x; Thu, 4 Jul 2024 00:00:00 +0000\n\n", "2024-07-04T00:00:00Z"},
		{"no Received: Date", "Date: Fri, 5 Jul 2024 01:02:03 +0100\nSubject: x\n\n", "2024-07-05T00:02:03Z"},
		{"nothing", "Subject: x\n\n", ""},
		{"broken header", "\x00\x01garbage", ""},
	} {
		got := receivedDate(mk(tc.block))
		var s string
		if !got.IsZero() {
			s = got.UTC().Format(time.RFC3339)
		}
		if s != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, s, tc.want)
		}
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		raw, scheme, host, user, redacted string
		port                              int
	}{
		{"pop3s://pop.example.com", "pop3s", "pop.example.com", "", "pop3s://pop.example.com:995", 995},
		{"POP3+STARTTLS://alice%40example.com@pop.example.com", "pop3+starttls", "pop.example.com", "alice@example.com", "pop3+starttls://alice%40example.com@pop.example.com:110", 110},
		{"pop3://[::1]:1110/", "pop3", "::1", "", "pop3://[::1]:1110", 1110},
	} {
		e, err := Parse(tc.raw)
		if err != nil {
			t.Fatalf("%s: %v", tc.raw, err)
		}
		if e.Scheme != tc.scheme || e.Host != tc.host || e.Port != tc.port || e.User != tc.user || e.Redacted != tc.redacted || e.Raw != tc.raw {
			t.Errorf("%s: %+v", tc.raw, e)
		}
	}
	for _, bad := range []string{"imaps://host", "pop3s://", "pop3s://host:0", "pop3s://host:99999", "pop3s://host/INBOX", "pop3s://host?x=1", "pop3s:host"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	_, err := Parse("pop3s://alice:hunter2@pop.example.com")
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "password") {
		t.Errorf("password in URL: err = %v (must refuse, without repeating it)", err)
	}
	if _, err := Parse("pop3s://alice:hunter2@pop.example.com:bad"); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("unparseable URL with password: err = %v", err)
	}
	b := Backend()
	if b.Name != "pop3" || !b.Source || b.Destination || b.Local || strings.Join(b.Schemes, ",") != "pop3s,pop3+starttls,pop3" {
		t.Errorf("Backend() = %+v", b)
	}
	if _, err := connector.NewRegistry(b); err != nil {
		t.Errorf("registry refuses the backend: %v", err)
	}
}

// TestOpenRefusesBeforeConnecting: settings that cannot work are refused
// without any connection being made (and so without any password sent).
func TestOpenRefusesBeforeConnecting(t *testing.T) {
	dialed := false
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		dialed = true
		return nil, errors.New("must not dial")
	}
	ep := func(raw string) connector.Endpoint {
		e, err := Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	creds := connector.Credentials{Username: "alice", Password: "s3cret"}
	for _, tc := range []struct {
		name string
		e    connector.Endpoint
		o    connector.OpenOptions
		hint string
	}{
		{"plaintext", ep("pop3://pop.example.com"), connector.OpenOptions{Credentials: creds}, "--allow-plaintext"},
		{"destination", ep("pop3s://pop.example.com"), connector.OpenOptions{Role: connector.RoleDestination, Credentials: creds}, "source"},
		{"no user", ep("pop3s://pop.example.com"), connector.OpenOptions{}, "user name"},
		{"line break in password", ep("pop3s://pop.example.com"),
			connector.OpenOptions{Credentials: connector.Credentials{Username: "alice", Password: "x\r\nDELE 1"}}, "stray characters"},
	} {
		tc.o.Dial = dial
		_, err := Open(context.Background(), tc.e, tc.o)
		if connector.KindOf(err) != connector.KindConfig || !strings.Contains(connector.HintOf(err), tc.hint) {
			t.Errorf("%s: err = %v (kind %v, hint %q), want a config error hinting %q", tc.name, err, connector.KindOf(err), connector.HintOf(err), tc.hint)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: the error shows the password: %v", tc.name, err)
		}
	}
	if dialed {
		t.Error("Open connected although the settings were refused")
	}
}

func TestErrorKinds(t *testing.T) {
	for _, tc := range []struct {
		code  string
		login bool
		want  connector.Kind
	}{
		{"", true, connector.KindAuth},
		{"AUTH", true, connector.KindAuth},
		{"SYS/PERM", true, connector.KindAuth},
		{"IN-USE", true, connector.KindTransient},
		{"LOGIN-DELAY", true, connector.KindTransient},
		{"SYS/TEMP", true, connector.KindTransient},
		{"", false, connector.KindItem},
		{"IN-USE", false, connector.KindTransient},
		{"SYS/TEMP", false, connector.KindTransient},
	} {
		se := &serverError{code: tc.code, text: "no"}
		var err error
		if tc.login {
			err = loginError(se, "log in")
		} else {
			err = classify(se, "fetch")
		}
		if connector.KindOf(err) != tc.want || connector.HintOf(err) == "" && tc.want != connector.KindItem {
			t.Errorf("code %q (login %v): kind %v hint %q, want %v", tc.code, tc.login, connector.KindOf(err), connector.HintOf(err), tc.want)
		}
	}
	var stall error = &stallError{msg: "no answer"}
	if connector.KindOf(classify(stall, "x")) != connector.KindTransient {
		t.Error("a stall is not transient")
	}
	if connector.KindOf(classify(&protocolError{msg: "x"}, "x")) != connector.KindTransient {
		t.Error("a garbled answer is not transient")
	}
}
