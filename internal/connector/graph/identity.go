package graph

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
)

// Extended properties ([MS-OXPROPS]) read and written by id. Graph
// spells them "{type} {tag}" (singlevaluelegacyextendedproperty).
const (
	propFlags        = "Integer 0x0E07"    // PidTagMessageFlags: mfRead 0x1, mfUnsent 0x8
	propDelivery     = "SystemTime 0x0E06" // PidTagMessageDeliveryTime: the received time
	propSubmit       = "SystemTime 0x0039" // PidTagClientSubmitTime: the sent time
	propSize         = "Integer 0x0E08"    // PidTagMessageSize
	propLastVerb     = "Integer 0x1081"    // PidTagLastVerbExecuted: 102 reply, 103 reply all, 104 forward
	propIdentityName = "MailferryIdentity"
	// propIdentityGUID is Mailferry's own property set for the named
	// property that keeps a copy's identity (see identityProp).
	propIdentityGUID = "{6f3a1b0e-5d2c-4f8a-9b7e-1c2d3e4f5a6b}"
	propIdentity     = "String " + propIdentityGUID + " Name " + propIdentityName
)

// [MS-OXOMSG] §2.2.1.33 PidTagLastVerbExecuted values meaning "answered".
const (
	verbReply    = 102
	verbReplyAll = 103
)

type extProp struct {
	ID    string `json:"id"`
	Value string `json:"value"`
}

// sameProp compares two extended property ids as Graph may normalise
// them ("Integer 0xe07" for "Integer 0x0E07"): by type and tag number, or
// for named properties by set GUID and name, ignoring case.
func sameProp(a, b string) bool {
	at, arest, ok1 := strings.Cut(strings.TrimSpace(a), " ")
	bt, brest, ok2 := strings.Cut(strings.TrimSpace(b), " ")
	if !ok1 || !ok2 || !strings.EqualFold(at, bt) {
		return false
	}
	an, aerr := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(arest), "0x"), 16, 32)
	bn, berr := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(brest), "0x"), 16, 32)
	if aerr == nil && berr == nil {
		return an == bn
	}
	return strings.EqualFold(strings.Join(strings.Fields(arest), " "), strings.Join(strings.Fields(brest), " "))
}

func propValue(props []extProp, id string) (string, bool) {
	for _, p := range props {
		if sameProp(p.ID, id) {
			return p.Value, true
		}
	}
	return "", false
}

// identityValue is the identity property's value: the identity in hex
// and, for a copy whose MIME was stored as given, its size in bytes
// ("<hex> <size>"), which Graph's properties do not give (PidTagMessageSize
// is the store's size of the item, not of its MIME).
func identityValue(id mail.Identity, size int64) string {
	if size <= 0 {
		return id.String()
	}
	return id.String() + " " + strconv.FormatInt(size, 10)
}

// parseIdentity reads the identity property back; size is 0 when the
// value has none (a rebuilt copy, or one written before sizes were kept).
func parseIdentity(s string) (id mail.Identity, size int64, ok bool) {
	h, n, hasSize := strings.Cut(strings.TrimSpace(s), " ")
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != len(id) {
		return id, 0, false
	}
	if hasSize {
		if size, err = strconv.ParseInt(n, 10, 64); err != nil || size < 0 {
			return id, 0, false
		}
	}
	copy(id[:], b)
	return id, size, true
}

type header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// headersFromGraph builds the identity fields from internetMessageHeaders.
// ok is false when they cannot give the same identity as the MIME would:
// without Message-ID the identity includes the message's size, which
// Graph's properties do not give exactly, and without From nothing
// identifies the message.
func headersFromGraph(hs []header) (mail.Headers, bool) {
	var block bytes.Buffer
	want := mail.IdentityHeaderFields()
	seen := map[string]bool{}
	for _, h := range hs {
		for _, w := range want {
			if strings.EqualFold(h.Name, w) && !seen[w] {
				seen[w] = true
				block.WriteString(w + ": " + h.Value + "\r\n")
			}
		}
	}
	block.WriteString("\r\n")
	parsed := mail.ParseHeaders(block.Bytes())
	return parsed, parsed.MessageID != "" && parsed.From != ""
}

// maxHeaderBlock bounds what a header peek reads.
const maxHeaderBlock = 256 << 10

// peek reads a message's header block and exact MIME size from the start
// of its $value, then drops the connection's stream. It is the fallback
// when Graph's properties cannot give the identity (see headersFromGraph).
func (c *Conn) peek(ctx context.Context, id string) (block []byte, size int64, err error) {
	resp, err := c.api.do(ctx, request{method: http.MethodGet, url: c.user + "/messages/" + url.PathEscape(id) + "/$value", idempotent: true})
	if err != nil {
		return nil, 0, err
	}
	defer resp.Close()
	br := bufio.NewReaderSize(io.LimitReader(resp.Body, maxHeaderBlock), 16<<10)
	var buf bytes.Buffer
	for {
		line, err := br.ReadSlice('\n')
		buf.Write(line)
		if len(bytes.TrimRight(line, "\r\n")) == 0 && len(line) > 0 {
			break // the empty line that ends the header
		}
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			break // no body, or a header block over the bound
		}
	}
	size = resp.ContentLength
	if rest := size - int64(buf.Len()); size >= 0 && rest <= 64<<10 {
		// Reading a small rest keeps an HTTP/1.1 connection for the
		// next request (closing a body early closes it); over HTTP/2
		// dropping the stream is cheap either way.
		_, _ = io.Copy(io.Discard, br)
		_, _ = io.Copy(io.Discard, resp.Body)
	}
	if size < 0 {
		// No Content-Length: count the rest.
		n, err := io.Copy(io.Discard, br)
		if err != nil {
			return nil, 0, &connector.Error{Kind: connector.KindTransient, Op: "read a message's size", Err: err}
		}
		m, err := io.Copy(io.Discard, resp.Body)
		if err != nil {
			return nil, 0, &connector.Error{Kind: connector.KindTransient, Op: "read a message's size", Err: err}
		}
		size = int64(buf.Len()) + n + m
	}
	return buf.Bytes(), size, nil
}
