package pop3

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// refUnstuff is the reference for dotReader, written the obvious way on
// a whole buffer: split after each LF; a line that is "." CRLF (or "."
// LF) ends the data; otherwise one leading "." is removed (RFC 1939 §3).
// ok is false when the input ends before the terminator. rest is what
// follows the terminator.
func refUnstuff(in []byte) (data, rest []byte, ok bool) {
	for len(in) > 0 {
		i := bytes.IndexByte(in, '\n')
		if i < 0 {
			return data, nil, false
		}
		line := in[:i+1]
		in = in[i+1:]
		if string(line) == ".\r\n" || string(line) == ".\n" {
			return data, in, true
		}
		if line[0] == '.' {
			line = line[1:]
		}
		data = append(data, line...)
	}
	return data, nil, false
}

// stuff is what a server does to a message (RFC 1939 §3): a "." before
// every line beginning with ".", a CRLF when the message does not end in
// a line break, and the terminator.
func stuff(msg []byte) []byte {
	var b bytes.Buffer
	bol := true
	for _, c := range msg {
		if bol && c == '.' {
			b.WriteByte('.')
		}
		b.WriteByte(c)
		bol = c == '\n'
	}
	if !bol {
		b.WriteString("\r\n")
	}
	b.WriteString(".\r\n")
	return b.Bytes()
}

// unstuffWith runs dotReader over in with a read buffer of size bufSize,
// reading through Read (small reads) or WriteTo.
func unstuffWith(in []byte, bufSize int, viaWriteTo bool) (data, rest []byte, err error) {
	r := bufio.NewReaderSize(bytes.NewReader(in), bufSize)
	d := newDotReader(r)
	var out bytes.Buffer
	if viaWriteTo {
		_, err = d.WriteTo(&out)
	} else {
		buf := make([]byte, 7)
		for {
			var n int
			n, err = d.Read(buf)
			out.Write(buf[:n])
			if err != nil {
				break
			}
		}
		if errors.Is(err, io.EOF) {
			err = nil
		}
	}
	rest, _ = io.ReadAll(r)
	return out.Bytes(), rest, err
}

func TestDotReader(t *testing.T) {
	long := strings.Repeat("x", 10<<10)
	huge := "." + strings.Repeat("y", 200<<10) // longer than the 64 KiB read buffer
	for _, tc := range []struct {
		name, in, want string
	}{
		{"empty", ".\r\n", ""},
		{"simple", "a\r\nb\r\n.\r\n", "a\r\nb\r\n"},
		{"stuffed dot lines", "..\r\n...\r\n..x\r\n.\r\n", ".\r\n..\r\n.x\r\n"},
		{"dot inside lines stays", "a.b\r\n a\r\n\r\n.\r\n", "a.b\r\n a\r\n\r\n"},
		{"dot after CR is not a line start", "a\r.b\r\n.\r\n", "a\r.b\r\n"},
		{"bare LF kept", "a\nb\n..c\n.\n", "a\nb\n.c\n"},
		{"8-bit and NUL pass", "\xe4\xf6\x00\xff\r\n.\r\n", "\xe4\xf6\x00\xff\r\n"},
		{"10 KB line", long + "\r\n.\r\n", long + "\r\n"},
		{"200 KB stuffed line", "." + huge + "\r\n.\r\n", huge + "\r\n"},
		{"terminator needs line start", "x.\r\n.\r\n", "x.\r\n"},
		{"dot-space is data", ". \r\n.\r\n", " \r\n"},
	} {
		for _, size := range []int{16, 17, 4096, readBufferSize} {
			for _, viaWriteTo := range []bool{false, true} {
				got, rest, err := unstuffWith([]byte(tc.in+"+OK next\r\n"), size, viaWriteTo)
				if err != nil {
					t.Fatalf("%s (buffer %d): %v", tc.name, size, err)
				}
				if string(got) != tc.want {
					t.Errorf("%s (buffer %d, WriteTo %v): got %d bytes %q…, want %d bytes %q…", tc.name, size, viaWriteTo,
						len(got), truncate(string(got), 40), len(tc.want), truncate(tc.want, 40))
				}
				if string(rest) != "+OK next\r\n" {
					t.Errorf("%s: the reader consumed past the terminator: rest %q", tc.name, rest)
				}
			}
		}
	}
}

func TestDotReaderTruncated(t *testing.T) {
	for _, in := range []string{"", "abc", "abc\r\n", "abc\r\n.", "abc\r\n.\r", "..\r\n"} {
		_, _, err := unstuffWith([]byte(in), 16, true)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%q: err = %v, want io.ErrUnexpectedEOF (a body cut short must not look complete)", in, err)
		}
	}
}

func TestDotReaderLines(t *testing.T) {
	r := bufio.NewReaderSize(strings.NewReader("1 abc\r\n2 def\r\n..3\r\n.\r\n"), 16)
	var got []string
	if err := newDotReader(r).lines(func(l string) error { got = append(got, l); return nil }); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, "|") != "1 abc|2 def|.3" {
		t.Errorf("lines = %q", got)
	}
	r = bufio.NewReader(strings.NewReader(strings.Repeat("z", maxStatusLine+10) + "\r\n.\r\n"))
	var pe *protocolError
	if err := newDotReader(r).lines(func(string) error { return nil }); !errors.As(err, &pe) {
		t.Errorf("an over-long listing line: err = %v, want a protocol error", err)
	}
}

func FuzzDotReader(f *testing.F) {
	// Seeds: RFC 1939 §3's cases and the shapes that break parsers.
	for _, s := range []string{
		"", "\r\n", ".", "..", ".\r\n", "..\r\n", "a\r\n.\r\n", "x\n.\n", ".\r\n.\r\n",
		"line\r\n.line\r\n\r\n.\r\n", "no final newline", "\r\n.\r", strings.Repeat("a", 100) + "\r\n",
	} {
		f.Add([]byte(s), uint8(0))
	}
	f.Fuzz(func(t *testing.T, in []byte, sizeSeed uint8) {
		size := 16 + int(sizeSeed)
		// Any stream: the streaming reader agrees with the reference.
		want, wantRest, ok := refUnstuff(in)
		got, rest, err := unstuffWith(in, size, sizeSeed%2 == 0)
		if !ok {
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("unterminated input %q: err = %v", in, err)
			}
		} else {
			if err != nil {
				t.Fatalf("%q: %v", in, err)
			}
			if !bytes.Equal(got, want) || !bytes.Equal(rest, wantRest) {
				t.Fatalf("%q (buffer %d): got %q rest %q, want %q rest %q", in, size, got, rest, want, wantRest)
			}
		}
		// A message stuffed the way a server does comes back exactly,
		// with a final line break added when it had none.
		msg := in
		if len(msg) > 0 && msg[len(msg)-1] != '\n' {
			msg = append(append([]byte(nil), msg...), '\r', '\n')
		}
		got, rest, err = unstuffWith(stuff(in), size, sizeSeed%3 == 0)
		if err != nil || !bytes.Equal(got, msg) || len(rest) != 0 {
			t.Fatalf("round trip of %q: got %q rest %q err %v", in, got, rest, err)
		}
	})
}

func TestParseStatus(t *testing.T) {
	for _, tc := range []struct {
		line      string
		ok, cont  bool
		code, txt string
		bad       bool
	}{
		{line: "+OK", ok: true},
		{line: "+OK 2 320", ok: true, txt: "2 320"},
		{line: "+ok lower", ok: true, txt: "lower"},
		{line: "-ERR", ok: false},
		{line: "-ERR [AUTH] Authentication failed.", code: "AUTH", txt: "Authentication failed."},
		{line: "-ERR [SYS/TEMP] try later", code: "SYS/TEMP", txt: "try later"},
		{line: "-ERR [in-use] locked", code: "IN-USE", txt: "locked"},
		{line: "-ERR [unclosed code", txt: "[unclosed code"},
		{line: "+ ", cont: true},
		{line: "+ dGVzdA==", cont: true, txt: "dGVzdA=="},
		{line: "+OKAY", bad: true},
		{line: "* OK IMAP", bad: true},
		{line: "", bad: true},
	} {
		st, err := parseStatus(tc.line)
		if tc.bad {
			var pe *protocolError
			if !errors.As(err, &pe) {
				t.Errorf("%q: err = %v, want a protocol error", tc.line, err)
			}
			continue
		}
		if err != nil || st.ok != tc.ok || st.cont != tc.cont || st.code != tc.code || st.text != tc.txt {
			t.Errorf("%q: got %+v, %v", tc.line, st, err)
		}
	}
}

func FuzzParseStatus(f *testing.F) {
	for _, s := range []string{"+OK", "-ERR [AUTH] x", "+ abc", "+OK [", "-ERR []", "-ERR ]["} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		st, err := parseStatus(line)
		if err == nil && !st.cont && st.ok == strings.HasPrefix(strings.ToUpper(line), "-ERR") {
			t.Fatalf("%q: ok=%v", line, st.ok)
		}
	})
}

func TestReadLine(t *testing.T) {
	r := bufio.NewReaderSize(strings.NewReader("+OK hi\r\n-ERR bare lf\n"+strings.Repeat("x", maxStatusLine+1)+"\r\n"), 16)
	for _, want := range []string{"+OK hi", "-ERR bare lf"} {
		if got, err := readLine(r); err != nil || got != want {
			t.Errorf("readLine = %q, %v; want %q", got, err, want)
		}
	}
	var pe *protocolError
	if _, err := readLine(r); !errors.As(err, &pe) {
		t.Errorf("over-long status line: err = %v, want a protocol error", err)
	}
	if _, err := readLine(bufio.NewReader(strings.NewReader("+OK cut"))); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("line cut by EOF: err = %v", err)
	}
}

func TestListingLines(t *testing.T) {
	if n, uid, err := parseUIDLLine("3 000000036b0f7010"); err != nil || n != 3 || uid != "000000036b0f7010" {
		t.Errorf("UIDL line: %d %q %v", n, uid, err)
	}
	if n, size, err := parseListLine("12 4096 extra"); err != nil || n != 12 || size != 4096 {
		t.Errorf("LIST line: %d %d %v", n, size, err)
	}
	for _, bad := range []string{"", "x y", "0 abc", "-1 abc", "3"} {
		if _, _, err := parseUIDLLine(bad); err == nil {
			t.Errorf("UIDL line %q accepted", bad)
		}
	}
	for _, bad := range []string{"", "1", "1 -5", "a 5", "0 5"} {
		if _, _, err := parseListLine(bad); err == nil {
			t.Errorf("LIST line %q accepted", bad)
		}
	}
}
