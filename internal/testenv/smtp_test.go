package testenv_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mailferry/mailferry/internal/testenv"
)

func sendRaw(t *testing.T, addr string, auth sasl.Client, from string, to []string, body string) error {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	if auth != nil {
		if err := c.Auth(auth); err != nil {
			return err
		}
	}
	if err := c.SendMail(from, to, strings.NewReader(body)); err != nil {
		return err
	}
	return c.Quit()
}

func TestSMTPServerRecords(t *testing.T) {
	s := testenv.StartSMTP(t)
	if s.Host != "127.0.0.1" || s.Port == 0 || s.Addr != fmt.Sprintf("127.0.0.1:%d", s.Port) {
		t.Fatalf("address fields = %q %q %d", s.Addr, s.Host, s.Port)
	}
	const body = "Subject: one\r\n\r\nfirst line\r\n.leading dot\r\n"
	if err := sendRaw(t, s.Addr, nil, "a@example.org", []string{"b@example.org", "c@example.org"}, body); err != nil {
		t.Fatalf("send: %v", err)
	}
	if err := sendRaw(t, s.Addr, nil, "d@example.org", []string{"e@example.org"}, "Subject: two\r\n\r\nx\r\n"); err != nil {
		t.Fatalf("send: %v", err)
	}
	msgs := s.Messages()
	if len(msgs) != 2 {
		t.Fatalf("got %d messages, want 2", len(msgs))
	}
	m := msgs[0]
	if m.From != "a@example.org" || strings.Join(m.To, ",") != "b@example.org,c@example.org" || string(m.Data) != body {
		t.Errorf("first message = %+v (data %q)", m, m.Data)
	}
	if msgs[1].From != "d@example.org" || len(msgs[1].To) != 1 {
		t.Errorf("second message = %+v; envelope of the first leaked into it?", msgs[1])
	}
	// Messages returns copies: changing them must not change the record.
	msgs[0].Data[0] = 'X'
	msgs[0].To[0] = "changed"
	if again := s.Messages()[0]; again.Data[0] != 'S' || again.To[0] != "b@example.org" {
		t.Errorf("Messages shares memory with the server's record")
	}
}

func TestSMTPServerWaitFor(t *testing.T) {
	s := testenv.StartSMTP(t)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(100 * time.Millisecond)
		for _, rcpt := range []string{"other@example.org", "Late@Example.org"} {
			if err := sendRaw(t, s.Addr, nil, "a@example.org", []string{rcpt}, "Subject: late\r\n\r\n"+rcpt+"\r\n"); err != nil {
				t.Errorf("send: %v", err)
			}
		}
	}()
	m := s.WaitFor(t, "late@example.org", 5*time.Second)
	wg.Wait()
	if len(m.To) != 1 || m.To[0] != "Late@Example.org" {
		t.Errorf("WaitFor returned %+v", m)
	}
}

// recordingTB stands in for a test whose failure we want to observe.
type recordingTB struct {
	testing.TB
	failed string
}

func (r *recordingTB) Helper() {}
func (r *recordingTB) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
}

func TestSMTPServerWaitForTimesOut(t *testing.T) {
	s := testenv.StartSMTP(t)
	rec := &recordingTB{TB: t}
	start := time.Now()
	s.WaitFor(rec, "nobody@example.org", 150*time.Millisecond)
	if rec.failed == "" || !strings.Contains(rec.failed, "nobody@example.org") {
		t.Errorf("WaitFor did not fail the test usefully: %q", rec.failed)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 3*time.Second {
		t.Errorf("WaitFor gave up after %v, want about 150ms", d)
	}
}

func TestSMTPServerAuth(t *testing.T) {
	s := testenv.StartSMTPWithAuth(t, "user", "pass")

	err := sendRaw(t, s.Addr, nil, "a@example.org", []string{"b@example.org"}, "Subject: x\r\n\r\nx\r\n")
	if err == nil {
		t.Error("unauthenticated mail accepted")
	}
	err = sendRaw(t, s.Addr, sasl.NewPlainClient("", "user", "wrong"), "a@example.org", []string{"b@example.org"}, "Subject: x\r\n\r\nx\r\n")
	if se, ok := err.(*smtp.SMTPError); !ok || se.Code != 535 {
		t.Errorf("wrong password: error = %v, want a 535 reply", err)
	}
	if n := len(s.Messages()); n != 0 {
		t.Fatalf("%d messages recorded before a successful login", n)
	}
	err = sendRaw(t, s.Addr, sasl.NewPlainClient("", "user", "pass"), "a@example.org", []string{"b@example.org"}, "Subject: x\r\n\r\nx\r\n")
	if err != nil {
		t.Fatalf("authenticated send: %v", err)
	}
	s.WaitFor(t, "b@example.org", time.Second)
}
