package mbox

import (
	"bytes"
	"strconv"
	"strings"
	"time"
)

var fromPrefix = []byte("From ")

var months = map[string]time.Month{
	"jan": time.January, "feb": time.February, "mar": time.March, "apr": time.April,
	"may": time.May, "jun": time.June, "jul": time.July, "aug": time.August,
	"sep": time.September, "oct": time.October, "nov": time.November, "dec": time.December,
}

// parseFromLine reads a separator line "From <sender> <date>" (the
// sender may be missing or "-", as Thunderbird writes it). The date is
// asctime's "Mon Jan  2 15:04:05 2006" (RFC 4155, appendix A), also
// without the weekday or the seconds, and with a zone ("-0700", "+0100",
// a name) before or after the year, as the writers found in the wild put
// it. A numeric zone is applied; without one, or with a name, the date
// is UTC, as RFC 4155 asks writers to use. ok is false when no such date
// is found.
func parseFromLine(line []byte) (time.Time, bool) {
	rest, found := bytes.CutPrefix(line, fromPrefix)
	if !found || len(rest) > 1000 {
		return time.Time{}, false
	}
	f := strings.Fields(string(rest))
	// The date starts at the month (or the weekday before it); whatever
	// comes before is the sender.
	for i := range f {
		mon, ok := months[strings.ToLower(f[i])]
		if !ok || len(f[i]) != 3 {
			continue
		}
		if t, ok := parseDateFields(mon, f[i+1:]); ok {
			return t, true
		}
	}
	return time.Time{}, false
}

// parseDateFields reads "day hh:mm[:ss] [zone] year [zone]".
func parseDateFields(mon time.Month, f []string) (time.Time, bool) {
	if len(f) < 3 {
		return time.Time{}, false
	}
	day, err := strconv.Atoi(f[0])
	if err != nil || day < 1 || day > 31 {
		return time.Time{}, false
	}
	hms := strings.Split(f[1], ":")
	if len(hms) < 2 || len(hms) > 3 {
		return time.Time{}, false
	}
	var clock [3]int
	for i, s := range hms {
		n, err := strconv.Atoi(s)
		if err != nil || len(s) > 2 || n < 0 || i == 0 && n > 23 || i > 0 && n > 60 {
			return time.Time{}, false
		}
		clock[i] = n
	}
	rest := f[2:]
	offset, hasZone := 0, false
	if len(rest) > 0 {
		if o, ok := numericZone(rest[0]); ok || isZoneName(rest[0]) {
			offset, hasZone = o, ok
			rest = rest[1:]
		}
	}
	if len(rest) == 0 {
		return time.Time{}, false
	}
	year, err := strconv.Atoi(rest[0])
	if err != nil || len(rest[0]) != 4 {
		return time.Time{}, false
	}
	if len(rest) > 1 && !hasZone {
		if o, ok := numericZone(rest[1]); ok {
			offset = o
		}
	}
	t := time.Date(year, mon, day, clock[0], clock[1], clock[2], 0, time.FixedZone("", offset))
	if t.Day() != day {
		return time.Time{}, false // 31 Feb
	}
	return t, true
}

func numericZone(s string) (int, bool) {
	if len(s) != 5 || s[0] != '+' && s[0] != '-' {
		return 0, false
	}
	n, err := strconv.Atoi(s[1:])
	if err != nil || n%100 > 59 {
		return 0, false
	}
	o := (n/100*60 + n%100) * 60
	if s[0] == '-' {
		o = -o
	}
	return o, true
}

func isZoneName(s string) bool {
	if len(s) < 1 || len(s) > 5 {
		return false
	}
	for _, c := range s {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// formatFromLine is the separator Mailferry writes: the envelope sender
// is not known from IMAP, so it is MAILER-DAEMON as usual, and the date
// is the INTERNALDATE in UTC in asctime form (RFC 4155).
func formatFromLine(t time.Time) string {
	return "From MAILER-DAEMON " + t.UTC().Format(time.ANSIC) + "\n"
}

// looksLikeHeader reports whether line starts with a header field name
// and a colon (RFC 5322 section 2.2: printable ASCII but ':').
func looksLikeHeader(line []byte) bool {
	for i, c := range line {
		if c == ':' {
			return i > 0
		}
		if c <= ' ' || c > '~' || i > 76 {
			return false
		}
	}
	return false
}
