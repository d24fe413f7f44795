package gmailimap_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testenv/gmailimap"
)

// day0 is an hour before midnight UTC, so that a test can cross a
// budget day.
func day0() time.Time { return time.Date(2024, 3, 10, 23, 0, 0, 0, time.UTC) }

// sized returns a message of exactly n octets.
func sized(id string, n int) []byte {
	m := rawMsg(id, "sized")
	if len(m) < n {
		m = append(m[:len(m)-2], bytes.Repeat([]byte("x"), n-len(m))...)
		m = append(m, "\r\n"...)
	}
	return m
}

// TestDailyDownloadLimit shrinks the 2,500 MB budget to 1,000 octets:
// the FETCH that would go past it gets Gmail's OVERQUOTA answer, so does
// every later body fetch that day, other commands work, and the next day
// the budget is back.
func TestDailyDownloadLimit(t *testing.T) {
	clk := gmailimap.NewClock(day0())
	s := start(t, &gmailimap.Options{Now: clk.Now, DailyDownloadBytes: 1000})
	for _, id := range []string{"d1", "d2", "d3"} {
		seed(t, s, gmailimap.Message{Raw: sized(id, 400), Labels: []string{`\Inbox`}})
	}
	rc := login(t, s)
	rc.ok("SELECT INBOX")
	u, st := rc.do("FETCH 1:3 (BODY.PEEK[])")
	if len(u) != 2 || st != "NO [OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)" {
		t.Fatalf("FETCH past the budget: %d responses, %q", len(u), st)
	}
	if got := s.Usage(alice, clk.Now()); got.Downloaded != 800 {
		t.Fatalf("usage %+v, want the 800 octets sent", got)
	}
	// Suspended for the day, even for a small part.
	if _, st := rc.do("FETCH 1 (BODY.PEEK[]<0.10>)"); !strings.HasPrefix(st, "NO [OVERQUOTA]") {
		t.Fatalf("later the same day: %q", st)
	}
	// Commands without message data still work, and so do new logins.
	rc.ok("FETCH 1:3 (UID FLAGS RFC822.SIZE X-GM-MSGID)")
	login(t, s).ok("SELECT INBOX")
	// The next day (DayZone UTC) the budget is back.
	clk.Advance(time.Hour)
	rc.ok("FETCH 3 (BODY.PEEK[])")
	byDay := s.UsageByDay(alice)
	if byDay["2024-03-10"].Downloaded != 800 || byDay["2024-03-11"].Downloaded != 400 {
		t.Fatalf("usage by day %+v", byDay)
	}
	if st := s.Stats(); st.OverLimit != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// TestDailyDownloadLimitBye checks the other reported behaviour: the
// session ends with "* BYE Session expired, please login again." and
// the account is locked out until the next day.
func TestDailyDownloadLimitBye(t *testing.T) {
	clk := gmailimap.NewClock(day0())
	s := start(t, &gmailimap.Options{Now: clk.Now, DailyDownloadBytes: 500, OverLimit: gmailimap.OverLimitBye})
	seed(t, s, gmailimap.Message{Raw: sized("b1", 400), Labels: []string{`\Inbox`}})
	seed(t, s, gmailimap.Message{Raw: sized("b2", 400), Labels: []string{`\Inbox`}})
	rc := login(t, s)
	rc.ok("SELECT INBOX")
	rc.send("f UID FETCH 1:* (BODY.PEEK[])")
	if r := rc.response(); !strings.HasPrefix(r, "* 1 FETCH (UID 1 BODY[] ") {
		t.Fatalf("first message: %.60q", r)
	}
	if l := rc.line(); l != "* BYE Session expired, please login again." {
		t.Fatalf("want BYE, got %q", l)
	}
	if !rc.eof() {
		t.Fatal("connection open after BYE")
	}
	rc2 := dial(t, s)
	if _, st := rc2.do("LOGIN " + alice + " " + alicePw); st != "NO [ALERT] Account exceeded command or bandwidth limits. (Failure)" {
		t.Fatalf("login while suspended: %q", st)
	}
	clk.Advance(time.Hour)
	rc2.ok("LOGIN " + alice + " " + alicePw)
	rc2.ok("SELECT INBOX")
	rc2.ok("FETCH 2 (BODY.PEEK[])")
}

// TestDailyUploadLimit shrinks the 500 MB upload budget: the APPEND that
// would go past it is refused before the client sends the literal.
func TestDailyUploadLimit(t *testing.T) {
	clk := gmailimap.NewClock(day0())
	s := start(t, &gmailimap.Options{Now: clk.Now, DailyUploadBytes: 700})
	c := client(t, s)
	appendRaw(t, c, "INBOX", sized("u1", 400), nil)
	rc := login(t, s)
	rc.send("a APPEND INBOX {400}")
	if l := rc.line(); l != "a NO [OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)" {
		t.Fatalf("APPEND past the budget: %q", l)
	}
	// The connection goes on: the literal was never invited.
	rc.ok("NOOP")
	if got := s.Usage(alice, clk.Now()); got.Uploaded != 400 || len(s.Messages(alice)) != 1 {
		t.Fatalf("usage %+v, %d messages", got, len(s.Messages(alice)))
	}
	clk.Advance(2 * time.Hour)
	appendRaw(t, c, "INBOX", sized("u2", 400), nil)
	if n := len(s.Messages(alice)); n != 2 {
		t.Fatalf("next day: %d messages", n)
	}
}

// TestAppendLimit checks APPENDLIMIT: a larger literal is refused with
// Gmail's "[TOOBIG] Message too large" before it is sent, and one of
// exactly the limit is accepted.
func TestAppendLimit(t *testing.T) {
	s := start(t, &gmailimap.Options{AppendLimit: 500})
	rc := login(t, s)
	if u := rc.ok("CAPABILITY"); !strings.HasSuffix(u[0], " APPENDLIMIT=500") {
		t.Fatalf("caps %q", u[0])
	}
	rc.send("a APPEND INBOX {501}")
	if l := rc.line(); l != "a BAD [TOOBIG] Message too large. https://support.google.com/mail/answer/6584#limit" {
		t.Fatalf("too big: %q", l)
	}
	rc.ok("NOOP")
	c := client(t, s)
	appendRaw(t, c, "INBOX", sized("big", 500), nil)
	if st := s.Stats(); st.TooBig != 1 || len(s.Messages(alice)) != 1 {
		t.Fatalf("stats %+v", st)
	}
	// A non-synchronizing literal may not exceed 4096 octets (RFC 7888).
	s2 := start(t, nil)
	rc2 := login(t, s2)
	rc2.send("b APPEND INBOX {5000+}")
	rc2.send(string(sized("nonsync", 5000)))
	if _, st := rc2.until("b"); !strings.HasPrefix(st, "BAD [TOOBIG]") {
		t.Fatalf("LITERAL- over 4096: %q", st)
	}
	rc2.ok("NOOP")
}

// TestConnectionCap checks the 15 simultaneous connections per account
// and the answers of LOGIN and XOAUTH2 to the 16th.
func TestConnectionCap(t *testing.T) {
	s := start(t, &gmailimap.Options{Verify: func(user, token string) error { return nil }})
	var open []*rawConn
	for i := 0; i < 15; i++ {
		open = append(open, login(t, s))
	}
	rc := dial(t, s)
	if _, st := rc.do("LOGIN " + alice + " " + alicePw); st != "NO [ALERT] Too many simultaneous connections. (Failure)" {
		t.Fatalf("16th LOGIN: %q", st)
	}
	// XOAUTH2 gets the error challenge first, then the alert (as
	// captured in MailKit issue 377).
	rc.send("x AUTHENTICATE XOAUTH2 " + b64("user="+alice+"\x01auth=Bearer tok\x01\x01"))
	if l := rc.line(); l != "+ "+capturedChallenge {
		t.Fatalf("challenge %q", l)
	}
	rc.send("")
	if _, st := rc.until("x"); st != "NO [ALERT] Too many simultaneous connections. (Failure)" {
		t.Fatalf("16th XOAUTH2: %q", st)
	}
	// Connections not logged in do not count; a LOGOUT frees a slot.
	open[0].ok("NOOP")
	open[0].do("LOGOUT")
	waitFor(t, func() bool { n, _ := s.Connections(alice); return n == 14 })
	rc.ok("LOGIN " + alice + " " + alicePw)
	if now, peak := s.Connections(alice); now != 15 || peak != 15 {
		t.Fatalf("connections %d, peak %d", now, peak)
	}
	if st := s.Stats(); st.TooManyConnections != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not reached in 5 s")
}

// TestSessionLifetime ends a session that has lived too long with
// Gmail's "Session expired" BYE.
func TestSessionLifetime(t *testing.T) {
	clk := gmailimap.NewClock(day0())
	s := start(t, &gmailimap.Options{Now: clk.Now, SessionLifetime: time.Hour})
	rc := login(t, s)
	rc.ok("NOOP")
	clk.Advance(time.Hour)
	rc.send("a NOOP")
	if l := rc.line(); l != "* BYE Session expired, please login again." {
		t.Fatalf("got %q", l)
	}
}

// TestQuota checks GETQUOTAROOT against the account's storage.
func TestQuota(t *testing.T) {
	s := start(t, &gmailimap.Options{StorageQuota: 10 << 20})
	seed(t, s, gmailimap.Message{Raw: sized("q1", 3000), Labels: []string{`\Inbox`}})
	rc := login(t, s)
	u := rc.ok("GETQUOTAROOT INBOX")
	if strings.Join(u, "|") != `* QUOTAROOT "INBOX" ""|* QUOTA "" (STORAGE 3 10240)` {
		t.Fatalf("quota %q", u)
	}
}

// TestUploadLimitByeAndLoginFault checks the BYE mode for uploads and a
// fault on LOGIN, which only a fault without User can hit.
func TestUploadLimitByeAndLoginFault(t *testing.T) {
	clk := gmailimap.NewClock(day0())
	s := start(t, &gmailimap.Options{Now: clk.Now, DailyUploadBytes: 100, OverLimit: gmailimap.OverLimitBye})
	rc := login(t, s)
	rc.send("a APPEND INBOX {200}")
	if l := rc.line(); l != "* BYE Session expired, please login again." {
		t.Fatalf("upload past the budget: %q", l)
	}
	if _, st := dial(t, s).do("LOGIN " + alice + " " + alicePw); st != "NO [ALERT] Account exceeded command or bandwidth limits. (Failure)" {
		t.Fatalf("login while suspended: %q", st)
	}
	clk.Advance(time.Hour)
	s.InjectFault(gmailimap.Fault{Command: "LOGIN", Action: gmailimap.FaultReply, Text: "NO [UNAVAILABLE] Temporary System Error"})
	rc = dial(t, s)
	if _, st := rc.do("LOGIN " + alice + " " + alicePw); st != "NO [UNAVAILABLE] Temporary System Error" {
		t.Fatalf("LOGIN fault: %q", st)
	}
	rc.ok("LOGIN " + alice + " " + alicePw)
	if len(s.Messages(alice)) != 0 || s.Usage(alice, day0()).Uploaded != 0 {
		t.Fatalf("refused upload was stored or counted: %+v", s.Usage(alice, day0()))
	}
}
