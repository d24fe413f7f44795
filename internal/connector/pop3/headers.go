package pop3

import (
	"bufio"
	"bytes"
	"net/mail"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/mailferry/mailferry/internal/connector"
	mfmail "github.com/mailferry/mailferry/internal/mail"
)

// metadata fills in what a listing reports of a message from its header
// block: the identity headers, the identity and the received date.
func metadata(m *connector.Message, block []byte) {
	m.Headers = mfmail.ParseHeaders(block)
	m.Identity = mfmail.ComputeIdentity(m.Headers, m.Size)
	m.InternalDate = receivedDate(block)
}

// receivedDate is when the message reached the mailbox, which POP3 does
// not report: the date of the newest Received: field, else the Date:
// field, else the zero time.
//
// Each relay prepends its Received: field (RFC 5321 §4.4), so the newest
// is the topmost: the one the final server added on delivery, which is
// what an IMAP server would have kept as INTERNALDATE. Fields whose date
// cannot be read are passed over for the next older one. Its date is what
// follows the last ";" (RFC 5321 §4.4: "; date-time").
func receivedDate(block []byte) time.Time {
	h, err := textproto.ReadHeader(bufio.NewReaderSize(bytes.NewReader(block), max(len(block), 16)))
	if err != nil && h.Len() == 0 {
		return time.Time{}
	}
	for _, v := range h.Values("Received") {
		i := strings.LastIndexByte(v, ';')
		if i < 0 {
			continue
		}
		if t, ok := parseDate(v[i+1:]); ok {
			return t
		}
	}
	if t, ok := parseDate(h.Get("Date")); ok {
		return t
	}
	return time.Time{}
}

// parseDate reads an RFC 5322 date-time, unfolded, with the lenient
// parser of net/mail (obsolete forms, zone names, comments).
func parseDate(s string) (time.Time, bool) {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return time.Time{}, false
	}
	t, err := mail.ParseDate(s)
	return t, err == nil
}
