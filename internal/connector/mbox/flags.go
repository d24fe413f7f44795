package mbox

import (
	"bufio"
	"bytes"
	"strconv"
	"strings"

	"github.com/emersion/go-message/textproto"
	"github.com/mailferry/mailferry/internal/mail"
)

const forwarded = "$Forwarded"

// flagsFromHeader reads the flags that mail programs keep in mbox
// header fields:
//   - Status: R \Seen (O "old" is no IMAP flag);
//   - X-Status: A \Answered, F \Flagged, T \Draft, D \Deleted (mutt,
//     Dovecot, c-client);
//   - X-Keywords: keywords separated by spaces or commas (Dovecot, mutt);
//   - X-Mozilla-Status: Thunderbird's hex bits 0x1 read, 0x2 replied,
//     0x4 marked, 0x8 expunged, 0x1000 forwarded;
//   - X-Mozilla-Keys: Thunderbird's keywords, separated by spaces.
func flagsFromHeader(block []byte) []string {
	if len(block) == 0 {
		return nil
	}
	h, err := textproto.ReadHeader(bufio.NewReaderSize(bytes.NewReader(block), max(len(block), 16)))
	if err != nil && h.Len() == 0 {
		return nil
	}
	var out []string
	add := func(f string) {
		if f != "" && !mail.HasFlag(out, f) {
			out = append(out, f)
		}
	}
	if strings.ContainsRune(h.Get("Status"), 'R') {
		add(mail.FlagSeen)
	}
	for _, c := range h.Get("X-Status") {
		switch c {
		case 'A':
			add(mail.FlagAnswered)
		case 'F':
			add(mail.FlagFlagged)
		case 'T':
			add(mail.FlagDraft)
		case 'D':
			add(mail.FlagDeleted)
		}
	}
	for _, k := range strings.FieldsFunc(h.Get("X-Keywords"), func(r rune) bool { return r == ' ' || r == ',' || r == '\t' }) {
		add(k)
	}
	if v, err := strconv.ParseUint(strings.TrimSpace(h.Get("X-Mozilla-Status")), 16, 32); err == nil {
		for _, b := range []struct {
			bit  uint64
			flag string
		}{{0x1, mail.FlagSeen}, {0x2, mail.FlagAnswered}, {0x4, mail.FlagFlagged}, {0x8, mail.FlagDeleted}, {0x1000, forwarded}} {
			if v&b.bit != 0 {
				add(b.flag)
			}
		}
	}
	for _, k := range strings.Fields(h.Get("X-Mozilla-Keys")) {
		add(k)
	}
	return out
}

// flagLines are the header lines Mailferry writes to carry flags:
// Status (always: "RO" read, "O" unread but not new), X-Status and
// X-Keywords (when there is something to say). Keywords that are not
// IMAP atoms (spaces, commas, control characters) cannot be written in
// X-Keywords and are left out; IMAP never has such keywords.
func flagLines(flags []string, eol string) []string {
	status := "O"
	var xs, kws []string
	for _, f := range flags {
		switch {
		case strings.EqualFold(f, mail.FlagSeen):
			status = "RO"
		case strings.EqualFold(f, mail.FlagAnswered):
			xs = append(xs, "A")
		case strings.EqualFold(f, mail.FlagFlagged):
			xs = append(xs, "F")
		case strings.EqualFold(f, mail.FlagDraft):
			xs = append(xs, "T")
		case strings.EqualFold(f, mail.FlagDeleted):
			xs = append(xs, "D")
		case mail.IsSystemFlag(f):
		case strings.ContainsFunc(f, func(r rune) bool { return r <= ' ' || r == ',' || r == 0x7f }):
		default:
			if !mail.HasFlag(kws, f) {
				kws = append(kws, f)
			}
		}
	}
	lines := []string{"Status: " + status + eol}
	if len(xs) > 0 {
		lines = append(lines, "X-Status: "+strings.Join(dedupe(xs), "")+eol)
	}
	if len(kws) > 0 {
		lines = append(lines, "X-Keywords: "+strings.Join(kws, " ")+eol)
	}
	return lines
}

func dedupe(s []string) []string {
	var out []string
	for _, x := range s {
		if !mail.HasFlag(out, x) {
			out = append(out, x)
		}
	}
	return out
}
