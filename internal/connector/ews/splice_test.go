package ews

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

// splice runs the splicer over in and returns what the Decoder would
// read, the bodies and the per-body errors.
func splice(in []byte, chunk int) (out []byte, bodies [][]byte, errs map[int]error, err error) {
	var r io.Reader = bytes.NewReader(in)
	if chunk > 0 {
		r = &chunkedReader{data: in, n: chunk}
	}
	sp := newSplicer(r, func(i int, body io.Reader) error {
		b, err := io.ReadAll(body)
		for len(bodies) <= i {
			bodies = append(bodies, nil)
		}
		bodies[i] = b
		return err
	})
	out, err = io.ReadAll(sp)
	return out, bodies, sp.bodyErrs, err
}

// chunkedReader hands out at most n bytes per Read, so that tags and
// texts are split at every possible place.
type chunkedReader struct {
	data []byte
	n    int
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), c.n, len(c.data))
	copy(p, c.data[:k])
	c.data = c.data[k:]
	return k, nil
}

// getItemAnswer is a GetItem answer as the getitem-operation-email-
// message page shows it, with bodies and an error in between.
func getItemAnswer(texts ...string) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">` +
		`<!-- a comment with <t:MimeContent>bogus</t:MimeContent> --><s:Body><m:GetItemResponse ` +
		`xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">` +
		`<m:ResponseMessages>`)
	for i, text := range texts {
		if text == "ERROR" {
			b.WriteString(`<m:GetItemResponseMessage ResponseClass="Error"><m:MessageText>gone</m:MessageText><m:ResponseCode>ErrorItemNotFound</m:ResponseCode><m:Items/></m:GetItemResponseMessage>`)
			continue
		}
		fmt.Fprintf(&b, `<m:GetItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Items><t:Message>`+
			`<t:MimeContent CharacterSet="UTF-8" x='a>b'>%s</t:MimeContent><t:ItemId Id="id%d" ChangeKey="ck"/>`+
			`<t:Subject><![CDATA[not <t:MimeContent> here]]></t:Subject></t:Message></m:Items></m:GetItemResponseMessage>`, text, i)
	}
	b.WriteString(`</m:ResponseMessages></m:GetItemResponse></s:Body></s:Envelope>`)
	return b.String()
}

// wrap inserts XML white space into base64 text, as xs:base64Binary
// allows (and as .NET writes it, with line breaks every 76 characters).
func wrap(s string, every int) string {
	var b strings.Builder
	for i := 0; i < len(s); i += every {
		b.WriteString(s[i:min(i+every, len(s))])
		b.WriteString("\r\n ")
	}
	return b.String()
}

func TestSplicer(t *testing.T) {
	bodies := [][]byte{[]byte("From: a\r\n\r\nhello\r\n"), {}, bytes.Repeat([]byte{0, 1, 2, 0xff, '<', '&'}, 50000)}
	texts := []string{
		base64.StdEncoding.EncodeToString(bodies[0]),
		"",
		wrap(base64.StdEncoding.EncodeToString(bodies[2]), 76),
		"ERROR",
	}
	in := []byte(getItemAnswer(texts...))
	for _, chunk := range []int{0, 1, 3, 7, 4096} {
		out, got, errs, err := splice(in, chunk)
		if err != nil {
			t.Fatalf("chunk %d: %v", chunk, err)
		}
		if len(errs) != 0 {
			t.Errorf("chunk %d: body errors %v", chunk, errs)
		}
		if len(got) != 3 {
			t.Fatalf("chunk %d: %d bodies", chunk, len(got))
		}
		for i := range 3 {
			if !bytes.Equal(got[i], bodies[i]) {
				t.Errorf("chunk %d: body %d differs (%d bytes, want %d)", chunk, i, len(got[i]), len(bodies[i]))
			}
		}
		want := getItemAnswer("0", "1", "2", "ERROR")
		if string(out) != want {
			t.Errorf("chunk %d: the Decoder reads\n%s\nwant\n%s", chunk, out, want)
		}
		var resp getItemResp
		if err := decodeEnvelope(bytes.NewReader(out), &resp); err != nil || len(resp.Messages) != 4 {
			t.Fatalf("chunk %d: decode: %v, %d messages", chunk, err, len(resp.Messages))
		}
		if resp.Messages[2].Items.Items[0].MIME.Text != "2" || resp.Messages[3].Code != "ErrorItemNotFound" {
			t.Errorf("chunk %d: decoded %+v", chunk, resp.Messages)
		}
	}
}

// A self-closing MimeContent is an empty body, and the Decoder still
// sees its index.
func TestSplicerSelfClosing(t *testing.T) {
	in := `<a><t:MimeContent/><MimeContent CharacterSet="UTF-8" /><t:MimeContentUTF8>x</t:MimeContentUTF8></a>`
	out, bodies, _, err := splice([]byte(in), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := `<a><t:MimeContent>0</t:MimeContent><MimeContent CharacterSet="UTF-8" >1</MimeContent><t:MimeContentUTF8>x</t:MimeContentUTF8></a>`
	if string(out) != want || len(bodies) != 2 || len(bodies[0]) != 0 || len(bodies[1]) != 0 {
		t.Errorf("got %s, %d bodies", out, len(bodies))
	}
}

// Text that is not base64 fails that body only; a stream that ends
// inside a body fails the stream.
func TestSplicerBadBodies(t *testing.T) {
	good := base64.StdEncoding.EncodeToString([]byte("fine"))
	in := getItemAnswer("!!notbase64!!", "QUJD=", good, "QU&#66;D")
	out, bodies, errs, err := splice([]byte(in), 5)
	if err != nil {
		t.Fatalf("stream failed: %v", err)
	}
	for _, i := range []int{0, 1, 3} {
		if errs[i] == nil {
			t.Errorf("body %d (%q) was not refused", i, bodies[i])
		}
	}
	if errs[2] != nil || string(bodies[2]) != "fine" {
		t.Errorf("the good body: %q %v", bodies[2], errs[2])
	}
	var resp getItemResp
	if err := decodeEnvelope(bytes.NewReader(out), &resp); err != nil || len(resp.Messages) != 4 {
		t.Errorf("the rest of the answer is not readable: %v", err)
	}
	cut := in[:strings.Index(in, good)+3]
	if _, _, _, err := splice([]byte(cut), 0); err == nil || !strings.Contains(err.Error(), "ended early") {
		t.Errorf("a stream cut inside a body: %v", err)
	}
}

// The splicer's memory does not grow with a body: an 11 MB base64 text
// passes through a consumer that only counts.
func TestSplicerStreams(t *testing.T) {
	const n = 8 << 20
	body := io.LimitReader(rand.NewChaCha8([32]byte{1}), n)
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte(`<x><t:MimeContent>`))
		enc := base64.NewEncoder(base64.StdEncoding, pw)
		io.Copy(enc, body)
		enc.Close()
		pw.Write([]byte(`</t:MimeContent></x>`))
		pw.Close()
	}()
	var size int64
	sp := newSplicer(pr, func(i int, r io.Reader) error {
		var err error
		size, err = io.Copy(io.Discard, r)
		return err
	})
	out, err := io.ReadAll(sp)
	if err != nil || size != n || string(out) != `<x><t:MimeContent>0</t:MimeContent></x>` {
		t.Fatalf("err %v size %d out %q", err, size, out)
	}
}

// FuzzSplicer: whatever the input, the splicer never panics and never
// holds more than its bounds; input without a MimeContent start tag is
// passed through unchanged; and an answer built from arbitrary bodies
// gives them back exactly.
func FuzzSplicer(f *testing.F) {
	f.Add([]byte(getItemAnswer(base64.StdEncoding.EncodeToString([]byte("hi")), "ERROR")), []byte("body"), uint8(3))
	f.Add([]byte(`<a b="<">`), []byte{}, uint8(1))
	f.Add([]byte(`<!--`), []byte{0}, uint8(0))
	f.Add([]byte(`<![CDATA[ <t:MimeContent> ]]><t:MimeContent`), []byte("x\r\n"), uint8(2))
	f.Add([]byte(`<t:MimeContent a='>'>QQ==</t:MimeContent>`), bytes.Repeat([]byte("a"), 300), uint8(77))
	f.Fuzz(func(t *testing.T, in, body []byte, chunk uint8) {
		out, _, _, err := splice(in, int(chunk)+1)
		if !bytes.Contains(in, []byte("MimeContent")) && err == nil && !bytes.Equal(out, in) {
			t.Fatalf("input without MimeContent changed:\n%q\n%q", in, out)
		}
		text := base64.StdEncoding.EncodeToString(body)
		if chunk%2 == 1 {
			text = wrap(text, int(chunk)+1)
		}
		answer := getItemAnswer(text, "ERROR", text)
		out, bodies, errs, err := splice([]byte(answer), int(chunk)+1)
		if err != nil || len(errs) != 0 || len(bodies) != 2 {
			t.Fatalf("answer with %d-byte bodies: %v %v %d", len(body), err, errs, len(bodies))
		}
		if !bytes.Equal(bodies[0], body) || !bytes.Equal(bodies[1], body) {
			t.Fatalf("body changed")
		}
		if string(out) != getItemAnswer("0", "ERROR", "1") {
			t.Fatalf("Decoder input %q", out)
		}
		if err := xml.Unmarshal(out, new(struct{})); err != nil {
			t.Fatalf("Decoder input is not XML: %v", err)
		}
	})
}
