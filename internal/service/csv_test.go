package service

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseMailboxCSVAcceptedHeaders(t *testing.T) {
	alice := MailboxInput{
		SourceEmail: "alice@old.example.com", SourceLogin: "alice", SourcePassword: "s1",
		DestEmail: "alice@example.com", DestLogin: "alice@example.com", DestPassword: "d1",
		Flags: "",
	}
	tests := []struct {
		name string
		in   string
		want []MailboxInput
	}{
		{
			name: "full MigrationWiz header",
			in: "Source Email,Source Login Name,Source Password,Destination Email,Destination Login Name,Destination Password,Flags\n" +
				"alice@old.example.com,alice,s1,alice@example.com,alice@example.com,d1,\n" +
				"bob@old.example.com,,s2,bob@example.com,,d2,  Some Flag \n",
			want: []MailboxInput{alice, {
				SourceEmail: "bob@old.example.com", SourceLogin: "bob@old.example.com", SourcePassword: "s2",
				DestEmail: "bob@example.com", DestLogin: "bob@example.com", DestPassword: "d2",
				Flags: "  Some Flag ",
			}},
		},
		{
			name: "minimal header defaults logins to emails",
			in:   "Source Email,Source Password,Destination Email,Destination Password\nalice@old.example.com,s1,alice@example.com,d1\n",
			want: []MailboxInput{{
				SourceEmail: "alice@old.example.com", SourceLogin: "alice@old.example.com", SourcePassword: "s1",
				DestEmail: "alice@example.com", DestLogin: "alice@example.com", DestPassword: "d1",
			}},
		},
		{
			name: "reordered, case variants, spaces, CRLF",
			in: " destination PASSWORD ,SOURCE EMAIL,source  login name, Destination Email,source password,Destination Login Name\r\n" +
				"d1, alice@old.example.com ,alice,alice@example.com,s1,\r\n",
			want: []MailboxInput{alice},
		},
		{
			name: "UTF-8 BOM from Excel",
			in:   "\ufeffSource Email,Source Login Name,Source Password,Destination Email,Destination Login Name,Destination Password\nalice@old.example.com,alice,s1,alice@example.com,,d1\n",
			want: []MailboxInput{alice},
		},
		{
			name: "semicolons with a comma inside a password",
			in:   "Source Email;Source Login Name;Source Password;Destination Email;Destination Password\nalice@old.example.com;alice;s,1;alice@example.com;d1\n",
			want: []MailboxInput{{
				SourceEmail: "alice@old.example.com", SourceLogin: "alice", SourcePassword: "s,1",
				DestEmail: "alice@example.com", DestLogin: "alice@example.com", DestPassword: "d1",
			}},
		},
		{
			name: "blank lines and empty spreadsheet rows are skipped",
			in:   "\nSource Email,Source Login Name,Source Password,Destination Email,Destination Password\n\n,,,,\nalice@old.example.com,alice,s1,alice@example.com,d1\n\n",
			want: []MailboxInput{alice},
		},
		{
			name: "quoted fields keep passwords exactly, including spaces and quotes",
			in:   "Source Email,Source Password,Destination Email,Destination Password\nalice@old.example.com,\" p\"\"w, 1 \",alice@[192.0.2.7],\"d1\"\n",
			want: []MailboxInput{{
				SourceEmail: "alice@old.example.com", SourceLogin: "alice@old.example.com", SourcePassword: ` p"w, 1 `,
				DestEmail: "alice@[192.0.2.7]", DestLogin: "alice@[192.0.2.7]", DestPassword: "d1",
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, rowErrs, err := ParseMailboxCSV(strings.NewReader(tt.in))
			if err != nil || rowErrs != nil {
				t.Fatalf("err = %v, row errors = %v", err, rowErrs)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseMailboxCSVHeaderProblems(t *testing.T) {
	const row = "alice@old.example.com,s1,alice@example.com,d1"
	tests := []struct {
		name    string
		in      string
		want    []RowError // Row and Column only
		message []string   // substrings of the first error's message
	}{
		{
			name:    "missing password columns",
			in:      "Source Email,Destination Email\nalice@old.example.com,alice@example.com\n",
			want:    []RowError{{Row: 1}},
			message: []string{`"Source Password", "Destination Password"`, string(bytes.SplitN(MailboxCSVTemplate(), []byte("\r\n"), 2)[0]), "Source Email,Source Password,Destination Email,Destination Password"},
		},
		{
			name:    "unknown extra column",
			in:      "Source Email,Source Password,Destination Email,Destination Password,Notes\n" + row + ",hello\n",
			want:    []RowError{{Row: 1, Column: "Notes"}},
			message: []string{"unknown column"},
		},
		{
			name:    "misspelled column is unknown and its column missing",
			in:      "Sorce Email,Source Password,Destination Email,Destination Password\n" + row + "\n",
			want:    []RowError{{Row: 1, Column: "Sorce Email"}, {Row: 1}},
			message: []string{`did you mean "Source Email"?`},
		},
		{
			name:    "duplicate column",
			in:      "Source Email,Source Password,Destination Email,Destination Password,source email\n" + row + ",alice@old.example.com\n",
			want:    []RowError{{Row: 1, Column: "source email"}},
			message: []string{"columns 1 and 5"},
		},
		{
			name:    "header after blank lines is reported on its own line",
			in:      "\n\nSource Email,Source Password,Destination Email\nalice@old.example.com,s1,alice@example.com\n",
			want:    []RowError{{Row: 3}},
			message: []string{`"Destination Password"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, rowErrs, err := ParseMailboxCSV(strings.NewReader(tt.in))
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if got != nil {
				t.Errorf("mailboxes returned despite errors: %+v", got)
			}
			var pos []RowError
			for _, e := range rowErrs {
				pos = append(pos, RowError{Row: e.Row, Column: e.Column})
			}
			if !slices.Equal(pos, tt.want) {
				t.Fatalf("row errors %v, want positions %v", rowErrs, tt.want)
			}
			for _, m := range tt.message {
				if !strings.Contains(rowErrs[0].Message, m) {
					t.Errorf("message %q lacks %q", rowErrs[0].Message, m)
				}
			}
		})
	}
}

func TestParseMailboxCSVFileErrors(t *testing.T) {
	header := "Source Email,Source Password,Destination Email,Destination Password\n"
	var many strings.Builder
	many.WriteString(header)
	for i := range 10001 {
		fmt.Fprintf(&many, "u%d@old.example.com,p,u%d@example.com,p\n", i, i)
	}
	tests := []struct {
		name  string
		in    string
		is    error
		words string
	}{
		{name: "empty", in: "", words: "empty"},
		{name: "only blank lines", in: "\n \n,,\n", words: "empty"},
		{name: "header only", in: header + "\n,,,\n", is: ErrEmptyCSV},
		{name: "data without header", in: "alice@old.example.com,s1,alice@example.com,d1\n", words: "not a header"},
		{name: "UTF-16 text", in: "\xff\xfeS\x00o\x00u\x00", words: "not a CSV text file"},
		{name: "Windows-1252 text", in: header + "alice@old.example.com,caf\xe9,alice@example.com,d1\n", words: "not a CSV text file"},
		{name: "unbalanced quote in header", in: "\"Source Email,Source Password\n", words: "not a valid CSV file"},
		{name: "larger than 1 MiB", in: header + strings.Repeat("x", 1<<20), words: "larger than 1 MiB"},
		{name: "more than 10,000 rows", in: many.String(), words: "more than 10000 mailboxes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, rowErrs, err := ParseMailboxCSV(strings.NewReader(tt.in))
			if err == nil {
				t.Fatalf("no error; got %d mailboxes, row errors %v", len(got), rowErrs)
			}
			if got != nil || rowErrs != nil {
				t.Errorf("got mailboxes %v and row errors %v along with the error", got, rowErrs)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.words) {
				t.Errorf("err = %q, want it to mention %q", err, tt.words)
			}
		})
	}
}

func TestParseMailboxCSVRowCapIsInclusive(t *testing.T) {
	var b strings.Builder
	b.WriteString("Source Email,Source Password,Destination Email,Destination Password\n")
	for i := range 10000 {
		fmt.Fprintf(&b, "u%d@old.example.com,p,u%d@example.com,p\n", i, i)
	}
	got, rowErrs, err := ParseMailboxCSV(strings.NewReader(b.String()))
	if err != nil || rowErrs != nil {
		t.Fatalf("err = %v, row errors = %v", err, rowErrs)
	}
	if len(got) != 10000 {
		t.Fatalf("got %d mailboxes, want 10000", len(got))
	}
}

func TestParseMailboxCSVReportsEveryBadRow(t *testing.T) {
	in := strings.Join([]string{
		// The comments give the line numbers the errors must carry.
		"Source Email,Source Login Name,Source Password,Destination Email,Destination Login Name,Destination Password,Flags",
		"alice@old.example.com,,s1,alice@example.com,,d1,",          // 2 fine
		"bob@,,s2,bob@example.com,,d2,",                             // 3 bad source email
		"",                                                          // 4 blank, skipped
		"carol@old.example.com,,,carol@example,,,",                  // 5 three problems
		"dave@old.example.com,,s4,dave@example.com,,d4",             // 6 one value short
		"\"erin@old.example.com\",,\"multi\nline\",erin@x.com,,d5,", // 7-8 fine, spans two lines
		"Frank <frank@old.example.com>,,s6,frank@example.com,,d6,",  // 9 display name
		"ALICE@old.example.com,,s7,Alice@Example.com,,d7,",          // 10 duplicate of row 2
		"gina@old.example.com,,s8,gina@example.com,,d8,\"unclosed",  // 11 unterminated quote to EOF
	}, "\n")
	got, rowErrs, err := ParseMailboxCSV(strings.NewReader(in))
	if err != nil {
		t.Fatalf("err = %v", err)
	}
	if got != nil {
		t.Errorf("all-or-nothing broken: got %d mailboxes", len(got))
	}
	want := []struct {
		row     int
		column  string
		message string
	}{
		{3, "Source Email", "is not a valid email address"},
		{5, "Source Password", "password is missing"},
		{5, "Destination Email", "is not a valid email address"},
		{5, "Destination Password", "password is missing"},
		{6, "", "6 values but the header has 7"},
		{9, "Source Email", "is not a valid email address"},
		{10, "", "duplicates row 2"},
		{11, "", "not valid CSV"},
	}
	if len(rowErrs) != len(want) {
		t.Fatalf("got %d row errors, want %d:\n%v", len(rowErrs), len(want), rowErrs)
	}
	for i, w := range want {
		e := rowErrs[i]
		if e.Row != w.row || e.Column != w.column || !strings.Contains(e.Message, w.message) {
			t.Errorf("error %d = %#v, want row %d column %q message containing %q", i, e, w.row, w.column, w.message)
		}
	}
	if s := rowErrs[0].Error(); s != `row 3, column "Source Email": this is not a valid email address; it looks like name@company.com` {
		t.Errorf("Error() = %s", s)
	}
	// An email cell's value is never echoed: it may be a password in the
	// wrong column.
	for _, e := range rowErrs {
		for _, v := range []string{"bob@", "carol@example", "Frank"} {
			if strings.Contains(e.Message, v) {
				t.Errorf("row %d echoes the value %q: %s", e.Row, v, e.Message)
			}
		}
	}
	if s := rowErrs[6].Error(); !strings.HasPrefix(s, "row 10: duplicates row 2") {
		t.Errorf("Error() = %s", s)
	}
}

func TestParseMailboxCSVEmailValidation(t *testing.T) {
	tests := []struct {
		email string
		ok    bool
	}{
		{"alice@example.com", true},
		{"alice.smith+tag@mail.example.co.uk", true},
		{"alice@[192.0.2.1]", true},
		{"alice@[IPv6:2001:db8::1]", true},
		{"alice@exämple.com", true},
		{"alice", false},
		{"alice@", false},
		{"@example.com", false},
		{"alice@localhost", false},
		{"alice@example..com", false},
		{"alice@-example.com", false},
		{"alice@example.com.", false},
		{"a@b@example.com", false},
		{`"a@b"@example.com`, false},
		{"al ice@example.com", false},
		{"Alice <alice@example.com>", false},
		{"alice@[not-an-ip]", false},
	}
	for _, tt := range tests {
		t.Run(tt.email, func(t *testing.T) {
			in := "Source Email,Source Password,Destination Email,Destination Password\n" +
				`"` + strings.ReplaceAll(tt.email, `"`, `""`) + `",s,ok@example.com,d` + "\n"
			got, rowErrs, err := ParseMailboxCSV(strings.NewReader(in))
			if err != nil {
				t.Fatal(err)
			}
			if tt.ok && (len(got) != 1 || got[0].SourceEmail != tt.email) {
				t.Errorf("rejected: %v", rowErrs)
			}
			if !tt.ok && (got != nil || len(rowErrs) != 1 || rowErrs[0].Column != "Source Email") {
				t.Errorf("accepted or misreported: got %v, row errors %v", got, rowErrs)
			}
		})
	}
}

func TestParseMailboxCSVNeverShowsPasswords(t *testing.T) {
	const pw = "Zq9-Unl1kely-Pa55"
	tests := []struct {
		name string
		in   string
	}{
		{"swapped columns, password with an @", "Source Password,Source Email,Destination Email,Destination Password\nalice@old.example.com,@" + pw + ",alice@example.com,d1\n"},
		{"password under an email column", "Source Password,Source Email,Destination Email,Destination Password\nalice@old.example.com," + pw + ",alice@example.com,d1\n"},
		{"password that looks like an address", "Source Email,Source Password,Destination Email,Destination Password\n" + pw + "@,x" + pw + "@y,alice@example.com,d1\n"},
		{"part of the password in an email column", "Source Email,Source Password,Destination Email,Destination Password\nZq9-Unl1,y,alice@example.com," + pw + "\n"},
		{"short row", "Source Email,Source Password,Destination Email,Destination Password\nalice@old.example.com," + pw + ",alice@example.com\n"},
		{"long row", "Source Email,Source Password,Destination Email,Destination Password\nalice@old.example.com," + pw + ",alice@example.com,d1," + pw + "\n"},
		{"bare quote in the password", "Source Email,Source Password,Destination Email,Destination Password\nalice@old.example.com,a\"" + pw + ",alice@example.com,d1\n"},
		{"unterminated quote in the password", "Source Email,Source Password,Destination Email,Destination Password\nalice@old.example.com,\"" + pw + ",alice@example.com,d1\n"},
		{"no header, data first", "alice@old.example.com," + pw + ",alice@example.com," + pw + "\n"},
		{"value under an unnamed column", "Source Email,Source Password,Destination Email,Destination Password,\nalice@old.example.com,s,alice@example.com,d," + pw + "\n"},
		{"bad quote on the first line", "alice@old.example.com,x\"" + pw + ",a,b\n"},
		{"duplicate pair", "Source Email,Source Password,Destination Email,Destination Password\na@example.com," + pw + ",b@example.com," + pw + "\na@example.com," + pw + ",b@example.com," + pw + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, rowErrs, err := ParseMailboxCSV(strings.NewReader(tt.in))
			if err == nil && rowErrs == nil {
				t.Fatalf("no problem reported; got %v", got)
			}
			var msgs []string
			if err != nil {
				msgs = append(msgs, err.Error())
			}
			for _, e := range rowErrs {
				msgs = append(msgs, e.Error())
			}
			for _, m := range msgs {
				if strings.Contains(m, pw) || strings.Contains(m, pw[:8]) {
					t.Errorf("message reveals the password: %s", m)
				}
			}
		})
	}
}

func TestWriteMailboxCSVExport(t *testing.T) {
	at := time.Date(2026, 3, 4, 10, 5, 6, 0, time.FixedZone("CET", 3600))
	rows := []MailboxExportRow{
		{
			SourceEmail: "alice@old.example.com", SourceLogin: "alice", DestEmail: "alice@example.com", DestLogin: "alice@example.com",
			Status: "Completed with errors", StatusAt: at, ErrorClass: string(ClassTooLarge),
			LastError: "NO [LIMIT] message too large,\n\"see\" More info", Passes: 2,
			Copied: 1200, Present: 30, Failed: 1, BytesCopied: 52428800, Duration: 90*time.Second + 40*time.Millisecond,
		},
		{SourceEmail: "bob@old.example.com", DestEmail: "bob@example.com", Status: "Not submitted"},
	}
	var b bytes.Buffer
	if err := WriteMailboxCSV(&b, rows); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatalf("export does not parse back: %v", err)
	}
	want := [][]string{
		{"Source Email", "Source Login Name", "Destination Email", "Destination Login Name", "Status", "Status Time (UTC)", "Error Class", "Last Error", "Passes", "Items Copied", "Items Already Present", "Items Failed", "Bytes Copied", "Duration (s)"},
		{"alice@old.example.com", "alice", "alice@example.com", "alice@example.com", "Completed with errors", "2026-03-04T09:05:06Z", "message-too-large", "NO [LIMIT] message too large,\n\"see\" More info", "2", "1200", "30", "1", "52428800", "90.0"},
		{"bob@old.example.com", "", "bob@example.com", "", "Not submitted", "", "", "", "0", "0", "0", "0", "0", "0.0"},
	}
	if len(recs) != len(want) {
		t.Fatalf("got %d lines, want %d: %q", len(recs), len(want), recs)
	}
	for i := range want {
		if !slices.Equal(recs[i], want[i]) {
			t.Errorf("line %d:\n got %q\nwant %q", i+1, recs[i], want[i])
		}
	}
	for _, h := range recs[0] {
		if strings.Contains(strings.ToLower(h), "password") {
			t.Errorf("export has a password column %q", h)
		}
	}
}

func TestWriteMailboxCSVExportNeutralisesFormulas(t *testing.T) {
	tests := []struct{ in, want string }{
		{"=HYPERLINK(\"http://evil\")", "'=HYPERLINK(\"http://evil\")"},
		{"+1+2", "'+1+2"},
		{"-2+3", "'-2+3"},
		{"@SUM(A1)", "'@SUM(A1)"},
		{"\tcmd", "'\tcmd"},
		// csv.Writer drops a bare CR in CRLF mode; the apostrophe stays.
		{"\rcmd", "'cmd"},
		{"plain text", "plain text"},
		{"a=b", "a=b"},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var b bytes.Buffer
			err := WriteMailboxCSV(&b, []MailboxExportRow{{
				SourceEmail: tt.in, SourceLogin: tt.in, DestEmail: tt.in, DestLogin: tt.in,
				Status: tt.in, ErrorClass: tt.in, LastError: tt.in, Failed: 3,
			}})
			if err != nil {
				t.Fatal(err)
			}
			recs, err := csv.NewReader(&b).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			row := recs[1]
			// Only text columns are neutralised; numbers are checked below.
			for _, i := range []int{0, 1, 2, 3, 4, 6, 7} {
				if row[i] != tt.want {
					t.Errorf("column %q = %q, want %q", recs[0][i], row[i], tt.want)
				}
			}
			if row[11] != "3" {
				t.Errorf("number column changed: %q", row[11])
			}
		})
	}
}

func TestMailboxCSVTemplateParsesBack(t *testing.T) {
	tmpl := MailboxCSVTemplate()
	recs, err := csv.NewReader(bytes.NewReader(tmpl)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(recs[0], ","); got != "Source Email,Source Login Name,Source Password,Destination Email,Destination Login Name,Destination Password,Flags" {
		t.Errorf("template header = %q", got)
	}
	if len(recs) != 2 || !strings.HasSuffix(recs[1][0], "@example.com") {
		t.Errorf("template example row = %q", recs[1:])
	}
	if !bytes.Equal(tmpl, MailboxCSVTemplate()) {
		t.Error("template differs between calls")
	}
}

// The template's example row is never imported as a mailbox: uploaded as
// downloaded, or with the user's rows added below it, or with only its
// addresses or only its placeholder passwords left, it is a row error
// that says what to do, and nothing is imported.
func TestMailboxCSVTemplateExampleRowIsNotImported(t *testing.T) {
	tmpl := string(MailboxCSVTemplate())
	header, example, _ := strings.Cut(tmpl, "\r\n")
	for name, body := range map[string]string{
		"as downloaded":         tmpl,
		"with rows below":       tmpl + "bob@old.example,,pw1,bob@new.example,,pw2,\r\n",
		"addresses kept":        header + "\r\nalice@example.com,,real-1,alice@example.com,,real-2,\r\n",
		"placeholders kept":     header + "\r\ncarol@old.example,,source-password,carol@new.example,,destination-password,\r\n",
		"example not the first": header + "\r\nbob@old.example,,pw1,bob@new.example,,pw2,\r\n" + example,
	} {
		t.Run(name, func(t *testing.T) {
			got, rowErrs, err := ParseMailboxCSV(strings.NewReader(body))
			if err != nil || got != nil {
				t.Fatalf("imported %v (err %v)", got, err)
			}
			if len(rowErrs) != 1 || !strings.Contains(rowErrs[0].Message, "example row of the template") ||
				!strings.Contains(rowErrs[0].Message, "delete this line") {
				t.Errorf("row errors = %v", rowErrs)
			}
		})
	}
}
