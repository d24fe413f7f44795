package graphserver

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"time"
)

// mimeInfo is what the JSON view of a message shows of its MIME: the
// headers Exchange maps to properties and the first text body.
type mimeInfo struct {
	subject, messageID   string
	from, sender         *recipient
	to, cc, bcc, replyTo []recipient
	date                 time.Time
	bodyType, body       string
	attachments          int
}

var wordDecoder = &mime.WordDecoder{}

// parseMIME is tolerant: a message it cannot parse is stored all the same
// (the exact bytes are what $value returns) with empty properties.
func parseMIME(raw []byte) mimeInfo {
	var mi mimeInfo
	msg, err := mail.ReadMessage(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return mi
	}
	h := msg.Header
	if s, err := wordDecoder.DecodeHeader(h.Get("Subject")); err == nil {
		mi.subject = s
	} else {
		mi.subject = h.Get("Subject")
	}
	mi.messageID = strings.TrimSpace(h.Get("Message-Id"))
	if d, err := h.Date(); err == nil {
		mi.date = d.UTC()
	}
	one := func(name string) *recipient {
		l := addrs(h, name)
		if len(l) == 0 {
			return nil
		}
		return &l[0]
	}
	mi.from, mi.sender = one("From"), one("Sender")
	mi.to, mi.cc, mi.bcc, mi.replyTo = addrs(h, "To"), addrs(h, "Cc"), addrs(h, "Bcc"), addrs(h, "Reply-To")
	walkBody(h.Get("Content-Type"), h.Get("Content-Transfer-Encoding"), msg.Body, &mi, 0)
	return mi
}

func addrs(h mail.Header, name string) []recipient {
	if h.Get(name) == "" {
		return nil
	}
	l, err := h.AddressList(name)
	if err != nil {
		return nil
	}
	out := make([]recipient, 0, len(l))
	for _, a := range l {
		out = append(out, recipient{Name: a.Name, Address: a.Address})
	}
	return out
}

func walkBody(ctype, cte string, r io.Reader, mi *mimeInfo, depth int) {
	if depth > 10 {
		return
	}
	mt, params, err := mime.ParseMediaType(ctype)
	if err != nil || ctype == "" {
		mt = "text/plain"
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(r, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err != nil {
				return
			}
			disp, dparams, _ := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
			pct := p.Header.Get("Content-Type")
			pmt, pparams, _ := mime.ParseMediaType(pct)
			if disp == "attachment" || (dparams["filename"] != "" || (pparams["name"] != "" && !strings.HasPrefix(pmt, "multipart/"))) && !strings.HasPrefix(pmt, "text/") {
				mi.attachments++
				continue
			}
			walkBody(pct, p.Header.Get("Content-Transfer-Encoding"), p, mi, depth+1)
		}
	}
	if mi.body != "" && !(mt == "text/html" && mi.bodyType == "text") {
		return
	}
	if mt != "text/plain" && mt != "text/html" {
		return
	}
	var dec io.Reader = r
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "quoted-printable":
		dec = quotedprintable.NewReader(r)
	case "base64":
		dec = base64.NewDecoder(base64.StdEncoding, newlineStripper{r})
	}
	b, _ := io.ReadAll(io.LimitReader(dec, 1<<20))
	mi.body = string(b)
	mi.bodyType = "text"
	if mt == "text/html" {
		mi.bodyType = "html"
	}
}

// newlineStripper drops CR and LF so base64 bodies with line breaks decode.
type newlineStripper struct{ r io.Reader }

func (n newlineStripper) Read(p []byte) (int, error) {
	k, err := n.r.Read(p)
	j := 0
	for i := 0; i < k; i++ {
		if p[i] != '\r' && p[i] != '\n' {
			p[j] = p[i]
			j++
		}
	}
	return j, err
}
