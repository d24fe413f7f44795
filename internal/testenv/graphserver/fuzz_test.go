package graphserver

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// The parsers below read untrusted request data; each is fuzzed from the
// documentation's own examples. The seed corpus runs with go test.

func FuzzParseExtPropID(f *testing.F) {
	for _, s := range []string{"Integer 0x0E07", "SystemTime 0x0E06", "SystemTime 0x0039", "Long 0x0E08",
		"String {66f5a359-4659-4830-9070-00047ec6ac6e} Name Color", "Integer {11000E07-B51B-40D6-AF21-CAA85EDAB1D0} Id 0x0027",
		"String 0x3a25", "Integer0x0E07", "Integer 0x1FFFFF", "String {bad} Name x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parseExtPropID(s)
		if err != nil {
			return
		}
		// The canonical form parses back to the same property.
		q, err := parseExtPropID(p.String())
		if err != nil || q.key() != p.key() {
			t.Fatalf("%q -> %q -> %v %v", s, p.String(), q, err)
		}
	})
}

func FuzzParseExpand(f *testing.F) {
	for _, s := range []string{"singleValueExtendedProperties($filter=id eq 'Integer 0x0E07')",
		"SingleValueExtendedProperties($filter=id eq 'String {00020329-0000-0000-C000-000000000046} Name it''s')",
		"singleValueExtendedProperties($filter=id eq 'Integer 0x0E07' or id eq 'SystemTime 0x0E06')",
		"singleValueExtendedProperties", "attachments", "singleValueExtendedProperties($filter=id eq 'x'", "singleValueExtendedProperties($top=1)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids, all, gerr := parseExpandExtProps(s, msgType)
		if gerr != nil && (ids != nil || all) {
			t.Fatal("error with a result")
		}
		if gerr != nil && gerr.Status != http.StatusBadRequest {
			t.Fatalf("status %d", gerr.Status)
		}
	})
}

func FuzzParsePrefer(f *testing.F) {
	for _, s := range []string{"odata.maxpagesize=2", `outlook.body-content-type="text"`, "odata.maxpagesize=2, odata.track-changes",
		`odata.maxpagesize="10";x=y, outlook.timezone="Pacific Standard Time"`, `"`, ",,,="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h := http.Header{"Prefer": {s}}
		m := parsePrefer(h)
		if n, gerr := maxPageSize(m); gerr == nil && n < 0 {
			t.Fatalf("negative page size %d", n)
		}
	})
}

func FuzzParseSelect(f *testing.F) {
	for _, s := range []string{"subject,sender,isRead", "subject, body ,bodyPreview,uniqueBody", "IsRead", "", ",", "subject,,isRead", "fooBar"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, gerr := parseSelect(s, messageProps, msgType)
		if gerr == nil {
			for _, p := range sel {
				found := false
				for _, mp := range messageProps {
					found = found || mp == p
				}
				if !found {
					t.Fatalf("selected %q is not a message property", p)
				}
			}
		}
	})
}

func FuzzParseJWT(f *testing.F) {
	// The certificate-credentials page's encoded example (signature cut).
	f.Add("eyJhbGciOiJQUzI1NiIsIng1dCNTMjU2IjoiZ3g4dEd5c3lqY1JxS2pGUG5kN1JGd3Z3WkkwIn0.eyJhdWQiOiJodHRwczpcL1wvbG9naW4ubWljcm9zb2Z0b25saW5lLmNvbVwvam1wcmlldXJob3RtYWlsLm9ubWljcm9zb2Z0LmNvbVwvb2F1dGgyXC90b2tlbiIsImV4cCI6MTQ4NDU5MzM0MSwiaXNzIjoiOTdlMGE1YjctZDc0NS00MGI2LTk0ZmUtNWY3N2QzNWM2ZTA1IiwianRpIjoiMjJiM2JiMjYtZTA0Ni00MmRmLTljOTYtNjVkYmQ3MmMxYzgxIiwibmJmIjoxNDg0NTkyNzQxLCJzdWIiOiI5N2UwYTViNy1kNzQ1LTQwYjYtOTRmZS01Zjc3ZDM1YzZlMDUifQ.Gh95kHCOEGq5E_ArMBbDXhwKR577scxYaoJ1P")
	f.Add("a.b.c")
	f.Add("..")
	f.Add("eyJhbGciOiJub25lIn0.eyJhdWQiOlsiYSIsImIiXX0.")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parseJWT(s)
		if err == nil && string(p.signed) != s[:strings.LastIndexByte(s, '.')] {
			t.Fatal("signed part is not the first two segments")
		}
		// Verification never succeeds without a registered certificate.
		if verifyClientAssertion(s, "c", []string{"a"}, nil, time.Unix(1484592800, 0)) == nil {
			t.Fatal("an assertion verified without certificates")
		}
	})
}

func FuzzParseMessageJSON(f *testing.F) {
	for _, s := range []string{
		`{"subject":"Did you see last night's game?","importance":"Low","body":{"contentType":"HTML","content":"They were <b>awesome</b>!"},"toRecipients":[{"emailAddress":{"address":"AdeleV@contoso.onmicrosoft.com"}}]}`,
		`{"subject":"9/8/2018: concert","internetMessageHeaders":[{"name":"x-custom-header-group-name","value":"Washington"}]}`,
		`{"singleValueExtendedProperties":[{"id":"Integer 0x0E07","value":"1"},{"id":"SystemTime 0x0E06","value":"2021-03-04T05:06:07Z"}]}`,
		`{"attachments":[{"@odata.type":"#microsoft.graph.fileAttachment","name":"a.txt","contentBytes":"YQ=="}]}`,
		`{"flag":{"flagStatus":"flagged","dueDateTime":{"dateTime":"2026-01-01T00:00:00","timeZone":"UTC"}}}`,
		`[]`, `null`, `{"isRead":1}`, `{"receivedDateTime":"2016-10-19T10:37:00Z","hasAttachments":true}`,
	} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, create bool) {
		p, gerr := parseMessageJSON([]byte(s), create)
		if gerr != nil {
			if gerr.Status < 400 || gerr.Status > 499 || gerr.Code == "" {
				t.Fatalf("bad error %+v", gerr)
			}
			return
		}
		m := &message{ext: map[string]extProp{}}
		m.apply(p)
		_ = buildMIME(&message{id: "AAMkAGMxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx=", subject: m.subject, body: m.body})
	})
}

func FuzzParseBatch(f *testing.F) {
	for _, s := range []string{
		`{"requests":[{"id":"1","method":"GET","url":"/me/memberOf"},{"id":"4","url":"/users/1/x","method":"POST","body":{},"headers":{"Content-Type":"application/json"}}]}`,
		`{"requests":[{"id":"1","method":"GET","url":"..."},{"id":"2","dependsOn":["1"],"method":"GET","url":"..."}]}`,
		`{"requests":[]}`, `{}`, `{"requests":[{"id":"1","dependsOn":["1"],"method":"GET","url":"/a"}]}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		reqs, gerr := parseBatch([]byte(s))
		if gerr != nil {
			return
		}
		if len(reqs) == 0 || len(reqs) > maxBatch {
			t.Fatalf("%d requests accepted", len(reqs))
		}
		order := batchOrder(reqs)
		if len(order) != len(reqs) {
			t.Fatalf("order has %d of %d", len(order), len(reqs))
		}
	})
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-2097151/3483322", "bytes 2097152-3483321/3483322", "bytes 5-4/10", "bytes 0-9/9", "bytes */10", "bytes 0-99999999999999999999/1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start, end, total, ok := parseContentRange(s)
		if ok && !(0 <= start && start <= end && end < total) {
			t.Fatalf("accepted %d-%d/%d", start, end, total)
		}
	})
}

func FuzzParseMIME(f *testing.F) {
	f.Add([]byte("From: Administrator <admin@contoso.com>\r\nTo: Administrator <admin@contoso.com>\r\nSubject: This email has attachment.\r\nDate: Mon, 4 Sep 2017 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=\"iso-8859-1\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nThe attachment is an email.\r\n--b1\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\nSubject: inner\r\n\r\nx\r\n--b1--\r\n"))
	f.Add([]byte("Subject: =?utf-8?q?caf=C3=A9?=\r\n\r\nbody"))
	f.Add([]byte("not a message"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = parseMIME(b)
	})
}

func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"users/a@b/mailFolders/inbox/childFolders", "users/a@b/mailFolders('AAMk=')/messages/delta", "me/messages/AAMk=/$value",
		"users/x/messages/y/attachments/createUploadSession", "users/x/mailFolders/a/childFolders/b/childFolders/c/messages/m/attachments/z",
		"users('x')/mailFolders/inbox/importMime", "users", "users/x/mailFolders/inbox/messages/microsoft.graph.delta", "groups/x"} {
		f.Add("GET", "v1.0", s)
	}
	f.Fuzz(func(t *testing.T, method, version, path string) {
		var segs []string
		for _, s := range strings.Split(path, "/") {
			if s != "" {
				segs = append(segs, s)
			}
		}
		tg, gerr := parseTarget(method, version, segs)
		if (tg == nil) == (gerr == nil) {
			t.Fatal("exactly one of target and error")
		}
		if tg != nil && tg.route == "" {
			t.Fatal("target without a route")
		}
	})
}
