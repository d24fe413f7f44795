package bench

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// msgPrint is what a server serves for one message.
type msgPrint struct {
	hash     [32]byte // sha256 of BODY[] (normalised for mbsync, see stripTUID)
	size     int64
	flags    string // system flags except \Recent, sorted, space-separated
	keywords string // sorted, space-separated
	date     int64  // INTERNALDATE, Unix seconds (Dovecot keeps no zone)
}

// mailboxPrint is every message of a mailbox, per folder.
type mailboxPrint map[string][]msgPrint

func (p mailboxPrint) count() (n int) {
	for _, ms := range p {
		n += len(ms)
	}
	return n
}

// fingerprint reads every message of user's mailbox as the server serves
// it. normalise, if set, is applied to each message's bytes before
// hashing.
func fingerprint(addr, user, password string, normalise func([]byte) []byte) (mailboxPrint, error) {
	c, err := imapclient.DialInsecure(addr, &imapclient.Options{Dialer: &net.Dialer{Timeout: 10 * time.Second}})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.Login(user, password).Wait(); err != nil {
		return nil, fmt.Errorf("login %s: %w", user, err)
	}
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	out := mailboxPrint{}
	for _, mb := range list {
		if slices.Contains(mb.Attrs, imap.MailboxAttrNoSelect) || slices.Contains(mb.Attrs, imap.MailboxAttrNonExistent) {
			continue
		}
		sel, err := c.Select(mb.Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			return nil, fmt.Errorf("examine %s: %w", mb.Mailbox, err)
		}
		out[mb.Mailbox] = nil
		if sel.NumMessages == 0 {
			continue
		}
		var all imap.SeqSet
		all.AddRange(1, 0) // 1:*
		cmd := c.Fetch(all, &imap.FetchOptions{Flags: true, InternalDate: true,
			BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
		for {
			md := cmd.Next()
			if md == nil {
				break
			}
			var p msgPrint
			for {
				item := md.Next()
				if item == nil {
					break
				}
				switch item := item.(type) {
				case imapclient.FetchItemDataFlags:
					p.flags, p.keywords = splitFlags(item.Flags)
				case imapclient.FetchItemDataInternalDate:
					p.date = item.Time.Unix()
				case imapclient.FetchItemDataBodySection:
					raw, err := io.ReadAll(item.Literal)
					if err != nil {
						cmd.Close()
						return nil, fmt.Errorf("fetch %s: %w", mb.Mailbox, err)
					}
					if normalise != nil {
						raw = normalise(raw)
					}
					p.hash = sha256.Sum256(raw)
					p.size = int64(len(raw))
				}
			}
			out[mb.Mailbox] = append(out[mb.Mailbox], p)
		}
		if err := cmd.Close(); err != nil {
			return nil, fmt.Errorf("fetch %s: %w", mb.Mailbox, err)
		}
	}
	_ = c.Logout().Wait()
	return out, nil
}

func splitFlags(fl []imap.Flag) (system, keywords string) {
	var sys, kw []string
	for _, f := range fl {
		s := string(f)
		switch {
		case strings.EqualFold(s, `\Recent`):
		case strings.HasPrefix(s, `\`):
			sys = append(sys, s)
		default:
			kw = append(kw, s)
		}
	}
	slices.Sort(sys)
	slices.Sort(kw)
	return strings.Join(sys, " "), strings.Join(kw, " ")
}

// stripTUID removes the "X-TUID: ..." header line mbsync adds to every
// message it copies, so that what is left can be compared with the
// source byte for byte.
func stripTUID(raw []byte) []byte {
	end := bytes.Index(raw, []byte("\r\n\r\n"))
	if end < 0 {
		end = len(raw)
	}
	for i := 0; i < end; {
		j := bytes.Index(raw[i:], []byte("\r\n"))
		if j < 0 {
			j = len(raw) - i
		} else {
			j += 2
		}
		if bytes.HasPrefix(raw[i:], []byte("X-TUID: ")) {
			return append(slices.Clip(raw[:i]), raw[i+j:]...)
		}
		i += j
	}
	return raw
}

// verdict compares a destination with the source.
type verdict struct {
	srcMsgs, dstMsgs int
	missingFolders   []string
	countMismatch    []string // folders whose message count differs
	bytesExact       int      // source messages found by hash in the same destination folder
	flagsOK          int      // of those, same system flags
	keywordsOK       int      // of those, same keywords
	datesOK          int      // of those, same INTERNALDATE
	srcKeyworded     int      // source messages that carry keywords
}

func compare(src, dst mailboxPrint) verdict {
	v := verdict{srcMsgs: src.count(), dstMsgs: dst.count()}
	folders := make([]string, 0, len(src))
	for f := range src {
		folders = append(folders, f)
	}
	slices.Sort(folders)
	for _, f := range folders {
		sm := src[f]
		dm, ok := dst[f]
		if !ok {
			v.missingFolders = append(v.missingFolders, f)
			continue
		}
		if len(sm) != len(dm) {
			v.countMismatch = append(v.countMismatch, fmt.Sprintf("%s %d/%d", f, len(dm), len(sm)))
		}
		byHash := map[[32]byte][]msgPrint{}
		for _, m := range dm {
			byHash[m.hash] = append(byHash[m.hash], m)
		}
		for _, m := range sm {
			if m.keywords != "" {
				v.srcKeyworded++
			}
			cands := byHash[m.hash]
			if len(cands) == 0 {
				continue
			}
			d := cands[0]
			byHash[m.hash] = cands[1:]
			v.bytesExact++
			if d.flags == m.flags {
				v.flagsOK++
			}
			if d.keywords == m.keywords {
				v.keywordsOK++
			}
			if d.date == m.date {
				v.datesOK++
			}
		}
	}
	return v
}

// complete is true when every source message arrived, each exactly once.
func (v verdict) complete() bool {
	return v.srcMsgs == v.dstMsgs && len(v.missingFolders) == 0 && len(v.countMismatch) == 0
}

func (v verdict) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "messages %d/%d", v.dstMsgs, v.srcMsgs)
	if len(v.missingFolders) > 0 {
		fmt.Fprintf(&b, ", MISSING FOLDERS %v", v.missingFolders)
	}
	if len(v.countMismatch) > 0 {
		fmt.Fprintf(&b, ", COUNT MISMATCH %v", v.countMismatch)
	}
	fmt.Fprintf(&b, "; byte-identical %d/%d; of those: flags %d, keywords %d, INTERNALDATE %d",
		v.bytesExact, v.srcMsgs, v.flagsOK, v.keywordsOK, v.datesOK)
	return b.String()
}
