package graphserver

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"mime"
	"net/mail"
	"strings"
	"time"
)

// mimeOf is what $value serves. Messages created from MIME keep their
// bytes; JSON-created ones get a message rebuilt from their properties, as
// Exchange rebuilds it (not byte for byte the same as Exchange's; see
// LIMITS.md).
func (s *Server) mimeOf(m *message) []byte {
	if m.writePath != WriteJSON {
		return m.mime
	}
	return buildMIME(m)
}

func buildMIME(m *message) []byte {
	var b bytes.Buffer
	hdr := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	addr := func(r recipient) string { return (&mail.Address{Name: r.Name, Address: r.Address}).String() }
	list := func(rs []recipient) string {
		out := make([]string, len(rs))
		for i, r := range rs {
			out[i] = addr(r)
		}
		return strings.Join(out, ", ")
	}
	if m.from != nil {
		hdr("From", addr(*m.from))
	}
	if m.sender != nil && m.from != nil && m.sender.Address != m.from.Address {
		hdr("Sender", addr(*m.sender))
	}
	for _, x := range []struct {
		k  string
		rs []recipient
	}{{"To", m.to}, {"Cc", m.cc}, {"Bcc", m.bcc}, {"Reply-To", m.replyTo}} {
		if len(x.rs) > 0 {
			hdr(x.k, list(x.rs))
		}
	}
	hdr("Subject", mime.QEncoding.Encode("utf-8", m.subject))
	sent := m.sent
	if sent.IsZero() {
		sent = m.created
	}
	hdr("Date", sent.UTC().Format(time.RFC1123Z))
	mid := m.messageID
	if mid == "" {
		mid = "<" + strings.Trim(m.id[6:30], "-_=") + "@graphserver.invalid>"
	}
	hdr("Message-ID", mid)
	for _, h := range m.headers {
		hdr(h.Name, h.Value)
	}
	hdr("MIME-Version", "1.0")
	ctype := "text/plain"
	if m.bodyType == "html" {
		ctype = "text/html"
	}
	body := base64Lines([]byte(m.body))
	var real []*attachment
	for _, a := range m.attachments {
		if a.via != "mime" {
			real = append(real, a)
		}
	}
	if len(real) == 0 {
		hdr("Content-Type", ctype+`; charset="utf-8"`)
		hdr("Content-Transfer-Encoding", "base64")
		b.WriteString("\r\n")
		b.WriteString(body)
		return b.Bytes()
	}
	boundary := "_gs_" + strings.Trim(m.id[6:26], "-_=")
	hdr("Content-Type", `multipart/mixed; boundary="`+boundary+`"`)
	b.WriteString("\r\n")
	fmt.Fprintf(&b, "--%s\r\nContent-Type: %s; charset=\"utf-8\"\r\nContent-Transfer-Encoding: base64\r\n\r\n%s", boundary, ctype, body)
	for _, a := range real {
		ct := a.contentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		disp := "attachment"
		if a.isInline {
			disp = "inline"
		}
		fmt.Fprintf(&b, "--%s\r\nContent-Type: %s; name=%q\r\nContent-Disposition: %s; filename=%q\r\n", boundary, ct, a.name, disp, a.name)
		if a.contentID != "" {
			fmt.Fprintf(&b, "Content-ID: <%s>\r\n", a.contentID)
		}
		fmt.Fprintf(&b, "Content-Transfer-Encoding: base64\r\n\r\n%s", base64Lines(a.content))
	}
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return b.Bytes()
}

// base64Lines encodes with CRLF every 76 characters (RFC 2045 section 6.8).
func base64Lines(p []byte) string {
	enc := base64.StdEncoding.EncodeToString(p)
	var b strings.Builder
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteString("\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc)
	b.WriteString("\r\n")
	return b.String()
}
