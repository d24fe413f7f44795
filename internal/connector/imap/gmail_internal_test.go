package imap

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseGmailFetch(t *testing.T) {
	for line, want := range map[string]string{
		`* 1 FETCH (X-GM-LABELS ("\\Inbox" "\\Important" Work) UID 7)`:           `7 \Inbox|\Important|Work`,
		`* 2 FETCH (UID 8 X-GM-LABELS (\Inbox "My \"quoted\" label" [Mailbox]))`: `8 \Inbox|My "quoted" label|[Mailbox]`,
		`* 3 FETCH (X-GM-LABELS () UID 9 FLAGS (\Seen))`:                         `9 `,
		`* 4 FETCH (FLAGS (\Seen) UID 9)`:                                        `-`,
		`* 5 EXISTS`:                                                             `-`,
		`* 6 FETCH (UID 9 X-GM-LABELS ("unterminated)`:                           `-`,
	} {
		uid, labels, ok := parseGmailFetch(line)
		got := "-"
		if ok {
			got = strings.TrimSpace(strings.Join([]string{itoa(uid), strings.Join(labels, "|")}, " "))
			if len(labels) == 0 {
				got = itoa(uid) + " "
			}
		}
		if got != want {
			t.Errorf("%s: got %q, want %q", line, got, want)
		}
	}
}

func itoa(u uint32) string { return strconv.FormatUint(uint64(u), 10) }

func FuzzParseGmailFetch(f *testing.F) {
	f.Add(`* 1 FETCH (X-GM-LABELS ("\\Inbox" Work) UID 7)`)
	f.Add(`* 1 FETCH (UID 7 X-GM-LABELS ((((((((((x)))))))))))`)
	f.Add(`* 1 FETCH (BODY[HEADER.FIELDS (A B)] "x" UID 1 X-GM-LABELS ())`)
	f.Fuzz(func(t *testing.T, line string) {
		// Never a panic; a line it accepts has a label list.
		if _, labels, ok := parseGmailFetch(line); ok && labels == nil {
			t.Fatal("accepted without X-GM-LABELS")
		}
	})
}

func TestUntilGmailReset(t *testing.T) {
	for _, now := range []time.Time{
		time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 2, 23, 59, 59, 0, time.UTC),
		time.Date(2026, 12, 31, 12, 0, 0, 0, time.FixedZone("", -8*3600)),
	} {
		d := untilGmailReset(now)
		if d <= 0 || d > 24*time.Hour+5*time.Minute || now.Add(d).UTC().Hour() != 0 {
			t.Errorf("%v: wait %v", now, d)
		}
	}
}
