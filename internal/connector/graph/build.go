package graph

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode every charset go-message knows to UTF-8
	gomail "github.com/emersion/go-message/mail"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
)

// The JSON path rebuilds a message from its MIME as Graph's message
// resource: header fields become properties, the HTML (else the text)
// part becomes the body, every other leaf part an attachment. What it
// keeps and what it loses is listed in doc.go.

// Limits of the JSON path's rebuilt headers: Graph accepts only x-
// headers in internetMessageHeaders (reported); the size Exchange allows
// is not documented, so it is kept small.
const (
	maxCustomHeaders     = 40
	maxCustomHeaderBytes = 8 << 10
	maxBodyBytes         = 3 << 20 // the body travels in the creating request
)

type emailAddress struct {
	EmailAddress struct {
		Name    string `json:"name,omitempty"`
		Address string `json:"address"`
	} `json:"emailAddress"`
}

type itemBody struct {
	ContentType string `json:"contentType"`
	Content     string `json:"content"`
}

type fileAttachment struct {
	Type         string `json:"@odata.type"`
	Name         string `json:"name"`
	ContentType  string `json:"contentType,omitempty"`
	ContentBytes string `json:"contentBytes"`
	IsInline     bool   `json:"isInline"`
	ContentID    string `json:"contentId,omitempty"`
}

// jsonMessage is the creating request's body (user-post-messages,
// message resource).
type jsonMessage struct {
	Subject                string            `json:"subject"`
	Body                   itemBody          `json:"body"`
	From                   *emailAddress     `json:"from,omitempty"`
	Sender                 *emailAddress     `json:"sender,omitempty"`
	ToRecipients           []emailAddress    `json:"toRecipients,omitempty"`
	CcRecipients           []emailAddress    `json:"ccRecipients,omitempty"`
	BccRecipients          []emailAddress    `json:"bccRecipients,omitempty"`
	ReplyTo                []emailAddress    `json:"replyTo,omitempty"`
	InternetMessageID      string            `json:"internetMessageId,omitempty"`
	IsRead                 bool              `json:"isRead"`
	Importance             string            `json:"importance,omitempty"`
	IsReadReceiptRequested bool              `json:"isReadReceiptRequested,omitempty"`
	Flag                   map[string]string `json:"flag,omitempty"`
	Categories             []string          `json:"categories,omitempty"`
	InternetMessageHeaders []header          `json:"internetMessageHeaders,omitempty"`
	Attachments            []fileAttachment  `json:"attachments,omitempty"`
	ExtendedProperties     []extProp         `json:"singleValueExtendedProperties"`
}

// part is one attachment of a rebuilt message, decoded and spooled.
type part struct {
	name, contentType, contentID string
	inline                       bool
	data                         held
}

// rebuilt is a message ready for the JSON path.
type rebuilt struct {
	msg   jsonMessage
	parts []*part
}

func (r *rebuilt) release() {
	for _, p := range r.parts {
		p.data.Release()
	}
}

// errNotMIME marks a message go-message cannot read at all.
var errNotMIME = errors.New("not a readable MIME message")

// rebuild reads the MIME from r.
func rebuild(r io.Reader, spoolDir string, req connector.AppendRequest, identity mail.Identity) (*rebuilt, error) {
	e, err := message.Read(r)
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return nil, fmt.Errorf("%w: %v", errNotMIME, err)
	}
	h := gomail.Header{Header: e.Header}
	out := &rebuilt{}
	m := &out.msg
	if s, err := h.Subject(); err == nil {
		m.Subject = s
	} else {
		m.Subject = h.Get("Subject")
	}
	m.Subject = strings.ToValidUTF8(m.Subject, "\uFFFD")
	if from := addresses(h, "From"); len(from) > 0 {
		m.From = &from[0]
		m.Sender = &from[0]
	}
	if s := addresses(h, "Sender"); len(s) > 0 {
		m.Sender = &s[0]
	}
	m.ToRecipients = addresses(h, "To")
	m.CcRecipients = addresses(h, "Cc")
	m.BccRecipients = addresses(h, "Bcc")
	m.ReplyTo = addresses(h, "Reply-To")
	if id := strings.TrimSpace(h.Get("Message-Id")); id != "" {
		m.InternetMessageID = id
	}
	m.Importance = importance(h)
	m.IsReadReceiptRequested = h.Get("Disposition-Notification-To") != ""
	m.InternetMessageHeaders = customHeaders(h)

	w := &walker{spoolDir: spoolDir, out: out}
	if err := w.walk(e, ""); err != nil {
		out.release()
		return nil, err
	}
	if w.html != nil && w.text != nil && w.textParent != "alternative" {
		// A text part that was not the HTML's alternative is content
		// of its own: keep it as an attachment.
		data, _ := spoolUnknown(bytes.NewReader(w.text), spoolDir)
		out.parts = append([]*part{{name: defaultName("text/plain", 0), contentType: "text/plain", data: data}}, out.parts...)
	}
	switch {
	case w.html != nil:
		m.Body = itemBody{ContentType: "html", Content: strings.ToValidUTF8(string(w.html), "\uFFFD")}
	case w.text != nil:
		m.Body = itemBody{ContentType: "text", Content: strings.ToValidUTF8(string(w.text), "\uFFFD")}
	default:
		m.Body = itemBody{ContentType: "text", Content: ""}
	}

	seen := mail.HasFlag(req.Flags, mail.FlagSeen)
	m.IsRead = seen
	status := "notFlagged"
	if mail.HasFlag(req.Flags, mail.FlagFlagged) {
		status = "flagged"
	}
	m.Flag = map[string]string{"flagStatus": status}
	m.Categories = keywordsOf(req.Flags)
	// PidTagMessageFlags in the creating request is what makes the
	// message a received one rather than a draft: mfRead, and mfUnsent
	// only for a source draft.
	flags := 0
	if seen {
		flags |= 0x1
	}
	if mail.HasFlag(req.Flags, mail.FlagDraft) {
		flags |= 0x8
	}
	m.ExtendedProperties = append(m.ExtendedProperties, extProp{ID: propFlags, Value: fmt.Sprint(flags)})
	sent, _ := h.Date()
	received := req.InternalDate
	if received.IsZero() {
		received = sent
	}
	if sent.IsZero() {
		sent = received
	}
	if !received.IsZero() {
		m.ExtendedProperties = append(m.ExtendedProperties, extProp{ID: propDelivery, Value: systemTime(received)})
	}
	if !sent.IsZero() {
		m.ExtendedProperties = append(m.ExtendedProperties, extProp{ID: propSubmit, Value: systemTime(sent)})
	}
	m.ExtendedProperties = append(m.ExtendedProperties, identityProps(req.Flags, identity, 0)...)
	return out, nil
}

// identityProps are the properties every written copy gets: \Answered as
// PidTagLastVerbExecuted, and the identity of the source bytes so that a
// later listing gives the same identity whatever Exchange did to the
// MIME.
func identityProps(flags []string, identity mail.Identity, size int64) []extProp {
	var p []extProp
	if mail.HasFlag(flags, mail.FlagAnswered) {
		p = append(p, extProp{ID: propLastVerb, Value: fmt.Sprint(verbReply)})
	}
	return append(p, extProp{ID: propIdentity, Value: identityValue(identity, size)})
}

// systemTime formats a SystemTime property value (ISO 8601, UTC).
func systemTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

func addresses(h gomail.Header, key string) []emailAddress {
	if h.Get(key) == "" {
		return nil
	}
	list, err := h.AddressList(key)
	if err != nil {
		// One bad address spoils the list for net/mail: take the
		// ones that parse on their own.
		list = nil
		for _, s := range strings.Split(h.Get(key), ",") {
			if a, err := gomail.ParseAddress(strings.TrimSpace(s)); err == nil {
				list = append(list, a)
			}
		}
	}
	var out []emailAddress
	for _, a := range list {
		if a.Address == "" {
			continue
		}
		var e emailAddress
		e.EmailAddress.Name = strings.ToValidUTF8(a.Name, "\uFFFD")
		e.EmailAddress.Address = a.Address
		out = append(out, e)
	}
	return out
}

func importance(h gomail.Header) string {
	switch strings.ToLower(strings.TrimSpace(h.Get("Importance"))) {
	case "high":
		return "high"
	case "low":
		return "low"
	}
	if p := strings.TrimSpace(h.Get("X-Priority")); p != "" {
		switch p[0] {
		case '1', '2':
			return "high"
		case '4', '5':
			return "low"
		}
	}
	switch strings.ToLower(strings.TrimSpace(h.Get("Priority"))) {
	case "urgent":
		return "high"
	case "non-urgent":
		return "low"
	}
	return ""
}

// customHeaders keeps the X- headers, unfolded, within the bounds above.
func customHeaders(h gomail.Header) []header {
	var out []header
	total := 0
	fields := h.Fields()
	for fields.Next() {
		k := fields.Key()
		if len(k) < 3 || !strings.EqualFold(k[:2], "x-") {
			continue
		}
		v := strings.ToValidUTF8(strings.Join(strings.Fields(fields.Value()), " "), "\uFFFD")
		if len(out) >= maxCustomHeaders || total+len(k)+len(v) > maxCustomHeaderBytes {
			break
		}
		total += len(k) + len(v)
		out = append(out, header{Name: k, Value: v})
	}
	return out
}

// walker visits the MIME tree.
type walker struct {
	spoolDir   string
	out        *rebuilt
	html, text []byte
	textParent string // the multipart the text body came from
}

// walk visits e, inside a multipart of subtype parent ("" at the top).
func (w *walker) walk(e *message.Entity, parent string) error {
	if mr := e.MultipartReader(); mr != nil {
		mt, _, _ := e.Header.ContentType()
		sub := strings.TrimPrefix(strings.ToLower(mt), "multipart/")
		for {
			p, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
				return fmt.Errorf("%w: %v", errNotMIME, err)
			}
			if err := w.walk(p, sub); err != nil {
				return err
			}
		}
	}
	mt, params, _ := e.Header.ContentType()
	mt = strings.ToLower(mt)
	if mt == "" {
		mt = "text/plain"
	}
	disp, _, _ := e.Header.ContentDisposition()
	ah := gomail.AttachmentHeader{Header: e.Header}
	name, _ := ah.Filename()
	if name == "" {
		name = params["name"]
	}
	attachment := strings.EqualFold(disp, "attachment") || (name != "" && !strings.EqualFold(disp, "inline"))
	if !attachment {
		switch {
		case mt == "text/html" && w.html == nil:
			b, err := readBounded(e.Body)
			if err != nil {
				return err
			}
			w.html = b
			return nil
		case mt == "text/plain" && w.text == nil && w.html == nil:
			b, err := readBounded(e.Body)
			if err != nil {
				return err
			}
			w.text, w.textParent = b, parent
			return nil
		case mt == "text/plain" && parent == "alternative":
			// The plain alternative of an HTML body: Exchange makes
			// its own.
			_, err := io.Copy(io.Discard, e.Body)
			return err
		}
	}
	data, err := spoolUnknown(e.Body, w.spoolDir)
	if err != nil {
		return fmt.Errorf("%w: %v", errNotMIME, err)
	}
	cid := strings.Trim(strings.TrimSpace(e.Header.Get("Content-Id")), "<>")
	if name == "" {
		name = defaultName(mt, len(w.out.parts)+1)
	}
	w.out.parts = append(w.out.parts, &part{
		name:        strings.ToValidUTF8(name, "_"),
		contentType: mt,
		contentID:   cid,
		inline:      !attachment && cid != "",
		data:        data,
	})
	return nil
}

func readBounded(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxBodyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNotMIME, err)
	}
	if len(b) > maxBodyBytes {
		return nil, errBodyTooLarge
	}
	return b, nil
}

var errBodyTooLarge = errors.New("the message's text is larger than Graph's JSON path carries (3 MB)")

// defaultName names a part that has no file name, as Outlook would.
func defaultName(mt string, n int) string {
	switch mt {
	case "message/rfc822":
		return fmt.Sprintf("message%03d.eml", n)
	case "text/plain":
		return fmt.Sprintf("ATT%05d.txt", n)
	case "text/html":
		return fmt.Sprintf("ATT%05d.htm", n)
	case "text/calendar":
		return fmt.Sprintf("invite%03d.ics", n)
	}
	if rest, ok := strings.CutPrefix(mt, "image/"); ok && rest != "" && !strings.ContainsAny(rest, "/\\. ") {
		ext := strings.TrimPrefix(rest, "x-")
		if ext == "jpeg" {
			ext = "jpg"
		}
		return fmt.Sprintf("image%03d.%s", n, ext)
	}
	return fmt.Sprintf("ATT%05d.bin", n)
}

// inlineAttachment returns p as an attachment of the creating request.
func inlineAttachment(p *part) (fileAttachment, error) {
	var b bytes.Buffer
	enc := base64.NewEncoder(base64.StdEncoding, &b)
	if _, err := io.Copy(enc, p.data.Open()); err != nil {
		return fileAttachment{}, err
	}
	enc.Close()
	return fileAttachment{
		Type: "#microsoft.graph.fileAttachment", Name: p.name, ContentType: p.contentType,
		ContentBytes: b.String(), IsInline: p.inline, ContentID: p.contentID,
	}, nil
}
