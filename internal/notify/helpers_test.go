package notify

import (
	"bytes"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"testing"
)

// parsed is a received message decoded the way a mail client would.
type parsed struct {
	header  mail.Header
	subject string
	body    string
}

func parseMail(t *testing.T, data []byte) parsed {
	t.Helper()
	if i := bytes.IndexByte(bytes.ReplaceAll(data, []byte("\r\n"), nil), '\n'); i >= 0 {
		t.Errorf("message has a bare LF line ending")
	}
	for i, c := range data {
		if c >= 0x80 {
			t.Fatalf("message has a non-ASCII byte at offset %d; headers and body must be 7-bit", i)
		}
	}
	for _, line := range strings.Split(string(data), "\r\n") {
		if len(line) > 78 {
			t.Errorf("line longer than 78 characters: %q", line)
		}
	}
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("parse message: %v\n%s", err, data)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		t.Fatalf("decode subject %q: %v", msg.Header.Get("Subject"), err)
	}
	if cte := msg.Header.Get("Content-Transfer-Encoding"); cte != "quoted-printable" {
		t.Fatalf("Content-Transfer-Encoding = %q", cte)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatalf("decode body: %v", err)
	}
	return parsed{header: msg.Header, subject: subject, body: string(body)}
}

// crlf is how a text body comes back after transport.
func crlf(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\n", "\r\n")
	if !strings.HasSuffix(s, "\r\n") {
		s += "\r\n"
	}
	return s
}

func checkHeaders(t *testing.T, p parsed, wantFrom, wantTo string) {
	t.Helper()
	from, err := p.header.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Address != wantFrom {
		t.Errorf("From = %v (%v), want %s", from, err, wantFrom)
	}
	to, err := p.header.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Address != wantTo {
		t.Errorf("To = %v (%v), want %s", to, err, wantTo)
	}
	if _, err := p.header.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
	id := p.header.Get("Message-ID")
	domain := wantFrom[strings.LastIndexByte(wantFrom, '@')+1:]
	if !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@"+domain+">") {
		t.Errorf("Message-ID = %q, want <random@%s>", id, domain)
	}
	if v := p.header.Get("MIME-Version"); v != "1.0" {
		t.Errorf("MIME-Version = %q", v)
	}
	mt, params, err := mime.ParseMediaType(p.header.Get("Content-Type"))
	if err != nil || mt != "text/plain" || !strings.EqualFold(params["charset"], "utf-8") {
		t.Errorf("Content-Type = %q", p.header.Get("Content-Type"))
	}
}
