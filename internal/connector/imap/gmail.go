package imap

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/utf7"
	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
)

// Gmail shows labels as folders (developers.google.com/gmail/imap/
// imap-extensions, "Gmail treats labels as folders"): a message with the
// labels Inbox and Work is in INBOX, in Work and in [Gmail]/All Mail.
// Copied folder by folder it would arrive three times. When the server
// offers X-GM-EXT-1, the connector reads each listed message's
// X-GM-LABELS and marks the copies that are not to be made from this
// folder (connector.Message.Skip), which the engine counts as skipped:
//
//   - GmailLabelsOnce (the default): a message is copied once, from the
//     first of its folders in this order: INBOX, Sent (\Sent), Drafts
//     (\Drafts), the user's labels by name, Spam (\Junk), Trash
//     (\Trash), and [Gmail]/All Mail last, so that only mail without any
//     of these labels lands there.
//   - GmailLabelsFolders: a message is copied into the folder of every
//     label it has; All Mail still gets only the unlabelled ones.
//
// In both, [Gmail]/Starred (\Flagged) and [Gmail]/Important are views,
// not places: starred is the \Flagged flag, copied with the message, and
// Important is Gmail's own guess. Their messages are copied from their
// other folders.
const (
	GmailLabelsOnce    = "once"
	GmailLabelsFolders = "folders"
)

// capGmail is Gmail's extension capability.
const capGmail = imap.Cap("X-GM-EXT-1")

// ParseGmailLabels checks a --gmail-labels value.
func ParseGmailLabels(s string) (string, error) {
	switch strings.ToLower(s) {
	case "", GmailLabelsOnce:
		return GmailLabelsOnce, nil
	case GmailLabelsFolders:
		return GmailLabelsFolders, nil
	}
	return "", fmt.Errorf("--gmail-labels %q: use once (each message copied once, by label priority) or folders (a copy in the folder of every label)", s)
}

// Gmail's system labels as X-GM-LABELS shows them (Extensions page;
// "\Draft" per the captured answers, "\Drafts" in the page's example).
const (
	labelInbox     = `\Inbox`
	labelSent      = `\Sent`
	labelDraft     = `\Draft`
	labelDrafts    = `\Drafts`
	labelSpam      = `\Spam`
	labelTrash     = `\Trash`
	labelStarred   = `\Starred`
	labelImportant = `\Important`
)

// gmailFolder is what a folder is to the label logic.
type gmailFolder struct {
	label string // its label; "" for All Mail and views
	all   bool   // [Gmail]/All Mail
	view  bool   // Starred, Important
}

func (c *Conn) gmailFolderOf(f connector.Folder) gmailFolder {
	switch {
	case f.Path.IsInbox():
		return gmailFolder{label: labelInbox}
	case f.Role == mail.RoleAll:
		return gmailFolder{all: true}
	case f.Role == mail.RoleFlagged:
		return gmailFolder{view: true}
	case f.Role == mail.RoleSent:
		return gmailFolder{label: labelSent}
	case f.Role == mail.RoleDrafts:
		return gmailFolder{label: labelDraft}
	case f.Role == mail.RoleJunk:
		return gmailFolder{label: labelSpam}
	case f.Role == mail.RoleTrash:
		return gmailFolder{label: labelTrash}
	}
	c.mu.Lock()
	important := c.gmailImportant[f.Name]
	c.mu.Unlock()
	if important {
		return gmailFolder{view: true}
	}
	return gmailFolder{label: f.Name}
}

// labelRank orders labels for GmailLabelsOnce; ok is false for views.
func labelRank(l string) (rank int, ok bool) {
	switch l {
	case labelInbox:
		return 0, true
	case labelSent:
		return 1, true
	case labelDraft, labelDrafts:
		return 2, true
	case labelSpam:
		return 4, true
	case labelTrash:
		return 5, true
	case labelStarred, labelImportant:
		return 0, false
	}
	if strings.HasPrefix(l, `\`) {
		return 0, false // another system label: not a folder
	}
	return 3, true
}

// home is the label whose folder a message with these labels is copied
// from in GmailLabelsOnce; "" means All Mail.
func home(labels []string) string {
	best, bestRank := "", 99
	for _, l := range labels {
		r, ok := labelRank(l)
		if !ok {
			continue
		}
		if r < bestRank || r == bestRank && l < best {
			best, bestRank = l, r
		}
	}
	if best == labelDrafts {
		best = labelDraft
	}
	return best
}

// hasFolderLabel reports whether a message has a label other than views.
func hasFolderLabel(labels []string) bool {
	return home(labels) != ""
}

// gmailSkips wraps a listing callback so that messages not to be copied
// from folder f carry Message.Skip. Labels are read over a connection of
// its own (go-imap cannot parse X-GM-LABELS), one UID FETCH per batch.
func (c *Conn) gmailSkips(ctx context.Context, f connector.Folder, fn func([]connector.Message) error) (func([]connector.Message) error, func()) {
	gf := c.gmailFolderOf(f)
	var raw *appendConn
	cleanup := func() {
		if raw != nil {
			raw.conn.Close()
		}
	}
	if c.cfg.GmailLabels == GmailLabelsFolders && !gf.all && !gf.view {
		return fn, cleanup // every label folder keeps all of its messages
	}
	return func(ms []connector.Message) error {
		var uids []uint32
		for _, m := range ms {
			if m.Change != connector.ChangeNew {
				continue
			}
			if _, uid, ok := parseID(m.ID); ok {
				uids = append(uids, uid)
			}
		}
		if len(uids) == 0 {
			return fn(ms)
		}
		if gf.view {
			for i := range ms {
				if ms[i].Change == connector.ChangeNew {
					ms[i].Skip = "a Gmail view (starred or important), not a label: the message is copied from its label folder, or from All Mail"
				}
			}
			return fn(ms)
		}
		if raw == nil {
			var err error
			if raw, err = c.dialRaw(ctx); err != nil {
				return err
			}
			if err := raw.examine(f.Name); err != nil {
				return classify(err, fmt.Sprintf("read the Gmail labels of %q", f.Name))
			}
		}
		labels, err := raw.gmailLabels(uids)
		if err != nil {
			return classify(err, fmt.Sprintf("read the Gmail labels of %q", f.Name))
		}
		for i := range ms {
			m := &ms[i]
			_, uid, ok := parseID(m.ID)
			if m.Change != connector.ChangeNew || !ok {
				continue
			}
			ls := labels[uid]
			if gf.label != "" {
				// Gmail leaves the selected folder's own label out
				// (reported); it is the message's all the same.
				ls = append(ls, gf.label)
			}
			switch h := home(ls); {
			case gf.all && h != "":
				m.Skip = fmt.Sprintf("Gmail: in the label folder %s, copied from there rather than from All Mail", labelName(h))
			case !gf.all && h != gf.label && !(gf.label == labelDraft && h == labelDrafts):
				m.Skip = fmt.Sprintf("Gmail: also labelled %s, copied from that folder only (--gmail-labels=folders copies it into every label's folder)", labelName(h))
			}
		}
		return fn(ms)
	}, cleanup
}

func labelName(l string) string {
	switch l {
	case labelInbox:
		return "INBOX"
	case labelSent:
		return "Sent"
	case labelDraft, labelDrafts:
		return "Drafts"
	case labelSpam:
		return "Spam"
	case labelTrash:
		return "Trash"
	}
	return strconv.Quote(l)
}

// examine opens mailbox read-only on the raw connection.
func (a *appendConn) examine(mailbox string) error {
	name, err := utf7.Encoding.NewEncoder().String(mailbox)
	if err != nil {
		return err
	}
	return a.simple("EXAMINE " + quote(name))
}

// gmailLabels runs UID FETCH uids (UID X-GM-LABELS) and returns the
// labels by UID, user labels decoded from modified UTF-7.
func (a *appendConn) gmailLabels(uids []uint32) (map[uint32][]string, error) {
	var set strings.Builder
	for i, u := range uids {
		if i > 0 {
			set.WriteByte(',')
		}
		set.WriteString(strconv.FormatUint(uint64(u), 10))
	}
	out := map[uint32][]string{}
	a.seq++
	tag := "M" + strconv.FormatUint(a.seq, 10)
	if _, err := a.bw.WriteString(tag + " UID FETCH " + set.String() + " (UID X-GM-LABELS)\r\n"); err != nil {
		return nil, err
	}
	if err := a.bw.Flush(); err != nil {
		return nil, err
	}
	dec := utf7.Encoding.NewDecoder()
	for {
		line, err := a.readLine()
		if err != nil {
			return nil, err
		}
		if t, rest, ok := strings.Cut(line, " "); ok && t == tag {
			_, _, err := parseStatus(rest)
			return out, err
		}
		uid, labels, ok := parseGmailFetch(line)
		if !ok {
			continue
		}
		for i, l := range labels {
			if !strings.HasPrefix(l, `\`) {
				if d, err := dec.String(l); err == nil {
					labels[i] = d
				}
			}
		}
		out[uid] = labels
	}
}

// parseGmailFetch reads `* n FETCH (... UID u ... X-GM-LABELS (l ...) ...)`
// (RFC 3501 section 7.4.2; X-GM-LABELS is a list of astrings, Extensions
// page). ok is false for any other line.
func parseGmailFetch(line string) (uid uint32, labels []string, ok bool) {
	rest, found := strings.CutPrefix(line, "* ")
	if !found {
		return 0, nil, false
	}
	_, rest, found = strings.Cut(rest, " ")
	if !found || !strings.HasPrefix(strings.ToUpper(rest), "FETCH (") {
		return 0, nil, false
	}
	p := &sexpr{s: rest[len("FETCH "):]}
	items, err := p.list()
	if err != nil {
		return 0, nil, false
	}
	haveUID, haveLabels := false, false
	for i := 0; i+1 < len(items); i += 2 {
		name, _ := items[i].(string)
		switch strings.ToUpper(name) {
		case "UID":
			s, _ := items[i+1].(string)
			n, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				return 0, nil, false
			}
			uid, haveUID = uint32(n), true
		case "X-GM-LABELS":
			l, isList := items[i+1].([]any)
			if !isList {
				return 0, nil, false
			}
			labels = []string{}
			for _, v := range l {
				s, isStr := v.(string)
				if !isStr {
					return 0, nil, false
				}
				labels = append(labels, s)
			}
			haveLabels = true
		}
	}
	return uid, labels, haveUID && haveLabels
}

// sexpr reads IMAP's parenthesized lists of atoms and quoted strings
// (RFC 3501 section 4); literals do not occur here (readLine drops them).
type sexpr struct {
	s string
	i int
}

var errSyntax = errors.New("imap: unreadable FETCH response")

func (p *sexpr) list() ([]any, error) {
	if p.i >= len(p.s) || p.s[p.i] != '(' {
		return nil, errSyntax
	}
	p.i++
	var out []any
	for depth := 0; depth < 8; {
		for p.i < len(p.s) && p.s[p.i] == ' ' {
			p.i++
		}
		if p.i >= len(p.s) {
			return nil, errSyntax
		}
		switch c := p.s[p.i]; c {
		case ')':
			p.i++
			return out, nil
		case '(':
			l, err := p.list()
			if err != nil {
				return nil, err
			}
			out = append(out, l)
		case '"':
			s, err := p.quoted()
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		default:
			start := p.i
			for p.i < len(p.s) && p.s[p.i] != ' ' && p.s[p.i] != '(' && p.s[p.i] != ')' {
				if p.s[p.i] == '[' {
					// BODY[...] style items: up to the closing bracket.
					if j := strings.IndexByte(p.s[p.i:], ']'); j > 0 {
						p.i += j
					}
				}
				p.i++
			}
			out = append(out, p.s[start:p.i])
		}
	}
	return nil, errSyntax
}

func (p *sexpr) quoted() (string, error) {
	var b strings.Builder
	for p.i++; p.i < len(p.s); p.i++ {
		switch c := p.s[p.i]; c {
		case '\\':
			if p.i+1 >= len(p.s) {
				return "", errSyntax
			}
			p.i++
			b.WriteByte(p.s[p.i])
		case '"':
			p.i++
			return b.String(), nil
		default:
			b.WriteByte(c)
		}
	}
	return "", errSyntax
}

// Gmail's bandwidth limits ("Gmail bandwidth limits",
// support.google.com/a/answer/1071518: 2,500 MB download and 500 MB
// upload over IMAP a day): past them Gmail answers NO [OVERQUOTA]
// "Account exceeded command or bandwidth limits." (captured), or ends
// the session and refuses logins with [ALERT] and the same words. That
// is not a full mailbox, and not a failed message: the pass waits until
// the limit resets and goes on. Google says only "up to 24 hours", so
// the wait is until the next midnight UTC plus a margin, never more
// than a day.
func gmailBandwidth(text string) bool {
	return strings.Contains(strings.ToLower(text), "exceeded command or bandwidth limits")
}

func untilGmailReset(now time.Time) time.Duration {
	now = now.UTC()
	next := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 5, 0, 0, time.UTC)
	return next.Sub(now)
}

const hintGmailBandwidth = "Gmail's daily IMAP limit (2,500 MB downloaded, 500 MB uploaded a day) was reached. " +
	"Mailferry pauses and goes on when Gmail lifts it (within a day); nothing is lost or copied twice. " +
	"Large mailboxes take several days through IMAP."

func gmailBandwidthError(op string, err error, now time.Time) error {
	return &connector.Error{Kind: connector.KindTransient, Op: op, Hint: hintGmailBandwidth, Err: err, RetryAfter: untilGmailReset(now), DailyLimit: true}
}
