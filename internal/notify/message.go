package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"time"
)

// Message is one outgoing email with a plain text body.
type Message struct {
	To      string // one address, optionally with a display name
	Subject string
	Text    string // plain text body
}

// Sender delivers messages.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// envelope is a Message checked and ready to go: the bare addresses for
// SMTP and the complete RFC 5322 message.
type envelope struct {
	from, to string // addr-spec, no display name
	data     []byte
}

// compose builds the RFC 5322 message for m, sent by from, with CRLF line
// endings and a quoted-printable body, which keeps every line 7-bit and
// short whatever the text holds.
func compose(from string, m Message, now time.Time) (envelope, error) {
	fromAddr, err := mail.ParseAddress(from)
	if err != nil {
		return envelope{}, fmt.Errorf("invalid sender address %q: %w", from, err)
	}
	if strings.TrimSpace(m.To) == "" {
		return envelope{}, errors.New("no recipient address")
	}
	toAddr, err := mail.ParseAddress(m.To)
	if err != nil {
		return envelope{}, fmt.Errorf("invalid recipient address %q: %w", m.To, err)
	}
	msgID, err := messageID(fromAddr.Address)
	if err != nil {
		return envelope{}, err
	}

	var b bytes.Buffer
	header := func(name, value string) {
		b.WriteString(fold(name, value))
		b.WriteString("\r\n")
	}
	// Address.String encodes non-ASCII display names as RFC 2047 words.
	header("From", fromAddr.String())
	header("To", toAddr.String())
	header("Subject", encodeSubject(m.Subject))
	header("Date", now.Format(time.RFC1123Z))
	header("Message-ID", msgID)
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")

	qp := quotedprintable.NewWriter(&b)
	// In text mode the writer turns every line break into CRLF, so bodies
	// written with Unix line endings come out right.
	if _, err := qp.Write([]byte(m.Text)); err != nil {
		return envelope{}, fmt.Errorf("encode message body: %w", err)
	}
	if err := qp.Close(); err != nil {
		return envelope{}, fmt.Errorf("encode message body: %w", err)
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	return envelope{from: fromAddr.Address, to: toAddr.Address, data: b.Bytes()}, nil
}

// encodeSubject drops line breaks, which would otherwise let a
// caller-supplied subject inject headers.
func encodeSubject(s string) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\r' || r == '\n' }), " ")
	return mime.QEncoding.Encode("utf-8", s)
}

// maxLine is RFC 2047's limit for header lines holding encoded words,
// slightly below RFC 5322's recommended 78 for any line.
const maxLine = 76

// fold renders a header field, breaking it before spaces so that lines stay
// within maxLine where the words allow. Unfolding removes only the CRLF, so
// the value is unchanged; between encoded words the space is ignored
// anyway. The break may come right after the colon, which RFC 5322 allows,
// because a full-length encoded word does not fit after the field name.
func fold(name, value string) string {
	var b strings.Builder
	b.WriteString(name + ":")
	lineLen := b.Len()
	for _, word := range strings.Split(value, " ") {
		if lineLen+1+len(word) > maxLine && lineLen > 1 {
			b.WriteString("\r\n")
			lineLen = 0
		}
		b.WriteString(" " + word)
		lineLen += 1 + len(word)
	}
	return b.String()
}

// messageID uses the sender's domain, as RFC 5322 suggests, so the ID is
// unique to this installation.
func messageID(fromAddr string) (string, error) {
	host := "localhost"
	if at := strings.LastIndexByte(fromAddr, '@'); at >= 0 && at < len(fromAddr)-1 {
		host = fromAddr[at+1:]
	}
	var r [16]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("generate Message-ID: %w", err)
	}
	return "<" + hex.EncodeToString(r[:]) + "@" + host + ">", nil
}
