package mail

import (
	"fmt"
	"math/rand/v2"
	"net/mail"
	"strings"
	"testing"
)

// TestQuickDateAgreesWithParseDate checks the shortcut against
// net/mail.ParseDate itself: identities stored by earlier runs depend on
// the exact instant every Date header yields.
func TestQuickDateAgreesWithParseDate(t *testing.T) {
	cases := []string{
		"Tue, 1 Jul 2003 10:52:37 +0200",
		"Tue, 01 Jul 2003 10:52:37 +0200 (CEST)",
		"1 Jul 2003 10:52 -0000",
		"Fri, 21 Nov 97 09:55:06 -0600",
		"Thu, 20 Nov 1997 09:55:06 MDT",
		"Thu, 20 Nov 1997 09:55:06 GMT",
		"Mon, 2 Jan 2006 15:04:05 -0700 (MST) extra",
		"Mon, 2 Jan 2006 15:04:05 -0700 ((nested))",
		"Mon 2 Jan 2006 15:04:05 +0100 (no comma)",
		"Mon, 31 Feb 2006 15:04:05 -0700",
		"Mon, 2 Jan 2006 25:04:05 -0700",
		"Mon, 2 Jan 2006 15:04:05 +9999",
		"Mon,  2   Jan 2006  15:04:05   +0100",
		"Mon 2 Jan 2006 15:04:05 +0100",
		"2-Jan-2006 15:04:05 +0100",
		"Tuesday, 1 Jul 2003 10:52:37 +0200",
		"Tue, 1 Jul 2003 10:52:37 +0200\r\n (CEST)",
		"Tue, 1 Jul 2003 10:52:37 +02",
		"",
		"not a date",
	}
	table := len(cases)
	r := rand.New(rand.NewPCG(3, 4))
	dows := []string{"", "Mon, ", "Tue,", "Wed ,", "Sun, "}
	months := []string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec", "Foo"}
	zones := []string{"+0000", "-0800", "+0530", "+1400", "-2400", "+2460", "UT", "GMT", "EST", "Z", "+01"}
	tails := []string{"", " (UTC)", " (a comment)", " junk", "  ", " (x (y))"}
	for range 5000 {
		day := r.IntN(33)
		year := []string{fmt.Sprint(1970 + r.IntN(60)), fmt.Sprintf("%02d", r.IntN(100)), "123"}[r.IntN(3)]
		tm := fmt.Sprintf("%02d:%02d", r.IntN(26), r.IntN(62))
		if r.IntN(3) > 0 {
			tm += fmt.Sprintf(":%02d", r.IntN(62))
		}
		dayStr := fmt.Sprint(day)
		if r.IntN(2) == 0 {
			dayStr = fmt.Sprintf("%02d", day)
		}
		cases = append(cases, fmt.Sprintf("%s%s %s %s %s %s%s", dows[r.IntN(len(dows))], dayStr,
			months[r.IntN(len(months))], year, tm, zones[r.IntN(len(zones))], tails[r.IntN(len(tails))]))
	}
	quick, numeric := 0, 0
	for i, c := range cases {
		want, werr := mail.ParseDate(c)
		// ParseDate ignores text after the zone, accepts nested comments
		// and takes "+01" for a zone name; the shortcut leaves those to it.
		plain := !strings.Contains(c, "junk") && !strings.Contains(c, "(x (y))") && !strings.Contains(c, "+01")
		if i >= table && werr == nil && strings.ContainsAny(c, "+-") && plain {
			numeric++
		}
		if q, ok := quickDate(c); ok {
			quick++
			if werr != nil || !q.Equal(want) || q.Format("-0700") != want.Format("-0700") {
				t.Errorf("quickDate(%q) = %v; ParseDate = %v, %v", c, q, want, werr)
			}
		}
		got, ok := parseDate(c)
		if ok != (werr == nil) || ok && !got.Equal(want) {
			t.Errorf("parseDate(%q) = %v, %v; ParseDate = %v, %v", c, got, ok, want, werr)
		}
	}
	// Every generated date that ParseDate accepts with a numeric zone and
	// a plain tail takes the shortcut.
	if quick < numeric {
		t.Errorf("the shortcut took only %d of the %d valid dates with a numeric zone", quick, numeric)
	}
	t.Logf("%d dates, %d valid with a numeric zone, %d through the shortcut", len(cases), numeric, quick)
}

func BenchmarkParseDate(b *testing.B) {
	const d = "Tue, 1 Jul 2003 10:52:37 +0200 (CEST)"
	b.Run("net/mail", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = mail.ParseDate(d)
		}
	})
	b.Run("parseDate", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = parseDate(d)
		}
	})
}
