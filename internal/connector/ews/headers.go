package ews

import (
	"bytes"
	"context"
	"io"
	"strings"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
)

// A message's identity (mail.ComputeIdentity) is made from the raw
// values of its Message-ID, Date, From, To and Subject header fields, so
// that the same message has the same identity on every server. EWS's
// typed properties (From, Subject, InternetMessageId) are parsed and
// re-encoded values, not the header text, so the identity is computed
// from the header block itself:
//
//  1. PR_TRANSPORT_MESSAGE_HEADERS (0x007D), the Internet header block
//     Exchange keeps for delivered mail and that this connector sets on
//     every message it writes, read with GetItem for up to headerBatch
//     items per call; FindItem and SyncFolderItems cannot return it
//     (they truncate long properties, syncfolderitems-operation
//     "Remarks").
//  2. For items without it (mail that was never delivered by transport:
//     sent items, drafts, items imported by other tools), the head of
//     the MIME that GetItem returns, streamed: the header block is kept,
//     the rest is only counted, which also gives the exact RFC 822 size.

const (
	headerBatch   = 100
	mimeHeadBatch = 8
	// mimeHeadBytes bounds the listed size of the items whose MIME one
	// GetItem streams for their headers.
	mimeHeadBytes  = 4 << 20
	maxHeaderBlock = 256 << 10
)

// withHeaders fills Headers and Identity of new messages and drops those
// that vanished since they were listed.
func (c *Conn) withHeaders(ctx context.Context, what string, msgs []connector.Message) ([]connector.Message, error) {
	blocks := make([][]byte, len(msgs))
	gone := make([]bool, len(msgs))
	var missing []int
	for start := 0; start < len(msgs); start += headerBatch {
		end := min(start+headerBatch, len(msgs))
		ids := make([]itemRef, 0, end-start)
		for _, m := range msgs[start:end] {
			ids = append(ids, itemRef{ID: string(m.ID)})
		}
		var resp getItemResp
		if err := c.cl.call(ctx, what, &getItemReq{Shape: idOnly(propTransportHeaders), ItemIDs: ids}, &resp); err != nil {
			return nil, err
		}
		if len(resp.Messages) != len(ids) {
			return nil, protocolErr(what, "GetItem answered %d messages for %d items", len(resp.Messages), len(ids))
		}
		for k, m := range resp.Messages {
			i := start + k
			if !m.ok() || len(m.Items.Items) == 0 {
				if err := listItemErr(m.respStatus, what); err != nil {
					return nil, err
				}
				gone[i] = true
				continue
			}
			if v, ok := findExt(m.Items.Items[0].Extended, propTransportHeaders.Tag); ok && strings.TrimSpace(v) != "" {
				blocks[i] = headerBlock([]byte(v))
				continue
			}
			missing = append(missing, i)
		}
	}
	for len(missing) > 0 {
		n, total := 0, int64(0)
		for n < len(missing) && n < mimeHeadBatch && (n == 0 || total+msgs[missing[n]].Size <= mimeHeadBytes) {
			total += msgs[missing[n]].Size
			n++
		}
		chunk := missing[:n]
		missing = missing[n:]
		heads := make(map[int][]byte)
		sizes := make(map[int]int64)
		ids := make([]string, len(chunk))
		for k, i := range chunk {
			ids[k] = string(msgs[i].ID)
		}
		results, err := c.getMIME(ctx, what, ids, func(b int, r io.Reader) error {
			head, size, err := readHead(r)
			heads[b], sizes[b] = head, size
			return err
		})
		if err != nil {
			return nil, err
		}
		for k, res := range results {
			i := chunk[k]
			if res.err != nil || res.body < 0 {
				if res.err != nil && connector.KindOf(res.err) != connector.KindItem {
					return nil, res.err
				}
				// The item vanished or its MIME cannot be read: it is
				// listed by its header-less identity, and the copy will
				// report what is wrong with it.
				if res.err != nil && res.status.Code != "" && isGone(res.status.Code) {
					gone[i] = true
				}
				continue
			}
			blocks[i] = heads[res.body]
			msgs[i].Size = sizes[res.body]
		}
	}
	out := msgs[:0]
	for i, m := range msgs {
		if gone[i] {
			continue
		}
		m.Headers = mail.ParseHeaders(blocks[i])
		m.Identity = mail.ComputeIdentity(m.Headers, m.Size)
		out = append(out, m)
	}
	return out, nil
}

func isGone(code string) bool {
	return code == "ErrorItemNotFound" || code == "ErrorInvalidIdMalformed" || code == "ErrorInvalidIdEmpty"
}

// headerBlock makes a header block end with an empty line, so that a
// property value without one (as XML delivers it, with LF line ends)
// parses like the head of a message.
func headerBlock(b []byte) []byte {
	b = bytes.TrimRight(b, "\r\n")
	return append(b, "\r\n\r\n"...)
}

// readHead keeps a message's header block (up to maxHeaderBlock) and
// counts the rest.
func readHead(r io.Reader) ([]byte, int64, error) {
	var head []byte
	buf := make([]byte, 32<<10)
	var size int64
	done := false
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if !done {
				from := max(len(head)-3, 0)
				head = append(head, buf[:n]...)
				if i := endOfHeader(head[from:]); i >= 0 {
					head, done = head[:from+i], true
				} else if len(head) >= maxHeaderBlock {
					head, done = head[:maxHeaderBlock], true
				}
			}
			size += int64(n)
		}
		if err == io.EOF {
			return head, size, nil
		}
		if err != nil {
			return head, size, err
		}
	}
}

// endOfHeader returns the length of b up to and including the empty
// line that ends a header block, or -1.
func endOfHeader(b []byte) int {
	if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
		if j := bytes.Index(b, []byte("\n\n")); j >= 0 && j < i {
			return j + 2
		}
		return i + 4
	}
	if j := bytes.Index(b, []byte("\n\n")); j >= 0 {
		return j + 2
	}
	return -1
}
