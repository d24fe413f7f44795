package ews

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
)

// Append stores one message with CreateItem (web-service-reference/
// createitem-operation-email-message):
//
//   - MessageDisposition="SaveOnly" always, with SavedItemFolderId: the
//     item is saved in the folder and never sent (web-service-reference/
//     createitem: "SaveOnly … No email message is sent").
//   - t:MimeContent: the message, base64-encoded while it is sent, so
//     that a large message is never held in memory.
//   - PR_MESSAGE_FLAGS 0x0E07 = 1 (read) or 0 (unread), never with
//     MSGFLAG_UNSENT: without it Exchange stores a MIME import as a
//     draft, and the draft state cannot be changed once the item exists
//     (how-to-import-items-by-using-ews-in-exchange; [MS-OXCMSG]
//     2.2.1.6). A \Draft source message is therefore stored as a normal
//     (sent or received) message: Exchange offers no way to import a
//     draft that Outlook would then open for editing without risking
//     that every import is one, and a message that looks like a draft is
//     worse than a draft that reads like a message.
//   - PR_MESSAGE_DELIVERY_TIME 0x0E06: the received date (INTERNALDATE).
//   - PR_LAST_VERB_EXECUTED 0x1081 and PR_ICON_INDEX 0x1080 for \Answered
//     (102, 0x105) or else $Forwarded (104, 0x106).
//   - PR_TRANSPORT_MESSAGE_HEADERS 0x007D: the message's header block,
//     from which a later listing computes the identity (headers.go). It
//     is left out when the block is not valid UTF-8 or holds characters
//     XML cannot carry, and for good once the server refuses it.
//   - t:Flag with FlagStatus Flagged for \Flagged (ItemType, Exchange
//     2013 and later).
//
// The elements follow ItemType's order in types.xsd: MimeContent …
// ExtendedProperty … Flag. Append returns once the request is written
// (small messages: once they are queued for a batch, see batch.go); Wait
// returns the new ItemId (AppendResult.ID). The answer is read in the
// background under ctx, which must therefore stay valid until Wait
// returns; cancelling it earlier makes the outcome Uncertain.
func (c *Conn) Append(ctx context.Context, f connector.Folder, req connector.AppendRequest) (connector.PendingAppend, error) {
	what := c.folderOp("store a message in", f)
	if req.Size < 0 {
		return nil, &connector.Error{Kind: connector.KindItem, Op: what, Err: fmt.Errorf("negative size %d", req.Size)}
	}
	if !f.IsMail() {
		return nil, &connector.Error{Kind: connector.KindConfig, Op: what,
			Err: fmt.Errorf("it is a %s folder, not a mail folder", f.Class), Hint: "Only mail folders are copied."}
	}
	if !req.Retry && req.Size <= batchItemMax && c.batching {
		return c.appendBatched(ctx, f, what, req)
	}
	head, rest, err := peekHead(req.Body, req.Size)
	if err != nil {
		return nil, &connector.Error{Kind: connector.KindTransient, Op: what, Err: fmt.Errorf("read the message: %w", err)}
	}
	withHeaders := !c.noTransportHeaders.Load()
	prefix, suffix, err := c.createItemFrame(f, req, head, withHeaders)
	if err != nil {
		return nil, err
	}
	n := int64(len(prefix)) + int64(base64.StdEncoding.EncodedLen(int(req.Size))) + int64(len(suffix))
	if req.Size > maxBody {
		return nil, &connector.Error{Kind: connector.KindItem, Op: what, Hint: hintTooBig, Err: fmt.Errorf("the message has %d bytes", req.Size)}
	}
	body := func(w io.Writer) error {
		if _, err := w.Write(prefix); err != nil {
			return err
		}
		enc := base64.NewEncoder(base64.StdEncoding, w)
		m, err := io.CopyN(enc, rest, req.Size)
		if err != nil {
			if err == io.EOF {
				return fmt.Errorf("the message ended after %d of %d bytes", m, req.Size)
			}
			return err
		}
		if err := enc.Close(); err != nil {
			return err
		}
		_, err = w.Write(suffix)
		return err
	}
	x, err := c.tr.send(ctx, n, body)
	if err != nil {
		_, err = c.cl.sorted(ctx, what, err, false)
		// The request did not go out whole: nothing was stored.
		var ce *connector.Error
		if errors.As(err, &ce) {
			ce.Uncertain = false
		}
		return nil, err
	}
	p := &pendingAppend{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		var resp createItemResp
		err := x.receive(func(r *http.Response) error {
			return handleResponse(r, func(b io.Reader) error { return decodeEnvelope(b, &resp) })
		})
		if err != nil {
			_, p.err = c.cl.sorted(ctx, what, err, false)
			return
		}
		p.res, p.err = c.createItemResult(what, &resp, withHeaders)
	}()
	return p, nil
}

type pendingAppend struct {
	done chan struct{}
	res  connector.AppendResult
	err  error
	// flush sends the batch the message waits in, if it is not sent yet.
	flush func()
}

func (p *pendingAppend) Wait() (connector.AppendResult, error) {
	if p.flush != nil {
		p.flush()
	}
	<-p.done
	return p.res, p.err
}

// createItemResult reads the answer for one item.
func (c *Conn) createItemResult(what string, resp *createItemResp, withHeaders bool) (connector.AppendResult, error) {
	if len(resp.Messages) != 1 {
		err := protocolErr(what, "CreateItem answered %d messages for one item", len(resp.Messages))
		err.(*connector.Error).Uncertain = true
		return connector.AppendResult{}, err
	}
	return c.itemResult(what, resp.Messages[0], withHeaders)
}

// itemResult reads one CreateItemResponseMessage.
func (c *Conn) itemResult(what string, m itemsRespMsg, withHeaders bool) (connector.AppendResult, error) {
	if !m.ok() {
		if withHeaders && refusesProperty(m.Code) {
			// The server will not take PR_TRANSPORT_MESSAGE_HEADERS; later
			// messages go without it, and this one is sent again.
			c.noTransportHeaders.Store(true)
			return connector.AppendResult{}, &connector.Error{Kind: connector.KindTransient, Op: what, Hint: hintTemp,
				Err: fmt.Errorf("Exchange refused the header property (%s); the message is sent again without it", m.Code)}
		}
		return connector.AppendResult{}, messageErr(m.respStatus, what)
	}
	if len(m.Items.Items) == 0 || m.Items.Items[0].ID.ID == "" {
		return connector.AppendResult{}, nil
	}
	return connector.AppendResult{ID: connector.ID(m.Items.Items[0].ID.ID)}, nil
}

func refusesProperty(code string) bool {
	switch code {
	case "ErrorInvalidPropertySet", "ErrorInvalidExtendedProperty", "ErrorInvalidExtendedPropertyValue",
		"ErrorInvalidPropertyRequest", "ErrorPropertyUpdate":
		return true
	}
	return false
}

// createItemFrame returns the request up to the base64 text of
// MimeContent, and from its end to the end of the request.
func (c *Conn) createItemFrame(f connector.Folder, req connector.AppendRequest, head []byte, withHeaders bool) (prefix, suffix []byte, err error) {
	pre, post, err := c.frameParts(f)
	if err != nil {
		return nil, nil, err
	}
	closing, err := itemClose(req, head, withHeaders)
	if err != nil {
		return nil, nil, err
	}
	return append(pre, itemOpen...), append(closing, post...), nil
}

// frameParts is a CreateItem request for folder f split where its items
// go.
func (c *Conn) frameParts(f connector.Folder) (pre, post []byte, err error) {
	frame, err := c.cl.marshal(&createItemReq{Disposition: "SaveOnly", Folder: folderRef{ID: f.Name}, Items: "@ITEMS@"})
	if err != nil {
		return nil, nil, err
	}
	at := bytes.Index(frame, []byte("@ITEMS@"))
	if at < 0 {
		return nil, nil, errors.New("ews: CreateItem frame without its marker")
	}
	return frame[:at:at], frame[at+len("@ITEMS@"):], nil
}

// itemOpen starts an item, up to its base64 text.
const itemOpen = `<t:Message><t:MimeContent CharacterSet="UTF-8">`

// itemClose ends an item after its base64 text.
func itemClose(req connector.AppendRequest, head []byte, withHeaders bool) ([]byte, error) {
	tail, err := messageTail(req, head, withHeaders)
	if err != nil {
		return nil, err
	}
	out := append([]byte(`</t:MimeContent>`), tail...)
	return append(out, `</t:Message>`...), nil
}

// messageTail is what follows MimeContent in t:Message.
func messageTail(req connector.AppendRequest, head []byte, withHeaders bool) ([]byte, error) {
	var b bytes.Buffer
	enc := xml.NewEncoder(&b)
	ext := func(p prop, v string) error {
		return enc.EncodeElement(extPropOut{Path: p, Value: v}, xml.StartElement{Name: xml.Name{Local: "t:ExtendedProperty"}})
	}
	flags := int64(0)
	if mail.HasFlag(req.Flags, mail.FlagSeen) {
		flags = msgflagRead
	}
	if err := ext(propMessageFlags, strconv.FormatInt(flags, 10)); err != nil {
		return nil, err
	}
	if !req.InternalDate.IsZero() {
		if err := ext(propDeliveryTime, ewsTime(req.InternalDate)); err != nil {
			return nil, err
		}
	}
	verb, icon := verbOf(req.Flags)
	if verb != 0 {
		if err := ext(propLastVerb, strconv.Itoa(verb)); err != nil {
			return nil, err
		}
		if err := ext(propIconIndex, strconv.Itoa(icon)); err != nil {
			return nil, err
		}
	}
	if withHeaders {
		if block, ok := transportHeaders(head, int64(len(head)) == req.Size); ok {
			if err := ext(propTransportHeaders, block); err != nil {
				return nil, err
			}
		}
	}
	if mail.HasFlag(req.Flags, mail.FlagFlagged) {
		if err := enc.EncodeElement(flagOut{Status: "Flagged"}, xml.StartElement{Name: xml.Name{Local: "t:Flag"}}); err != nil {
			return nil, err
		}
	}
	if err := enc.Flush(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// verbOf returns PR_LAST_VERB_EXECUTED and PR_ICON_INDEX for a message's
// flags, 0 for neither.
func verbOf(flags []string) (verb, icon int) {
	switch {
	case mail.HasFlag(flags, mail.FlagAnswered):
		return verbReplyToSender, iconReplied
	case mail.HasFlag(flags, "$Forwarded"):
		return verbForward, iconForwarded
	}
	return 0, 0
}

// transportHeaders is the header block without its final empty line,
// when XML can carry it unchanged. whole says head is the whole message:
// one without an empty line is all header.
func transportHeaders(head []byte, whole bool) (string, bool) {
	i := endOfHeader(head)
	if i < 0 {
		if !whole {
			return "", false
		}
		i = len(head)
	}
	block := bytes.TrimRight(head[:i], "\r\n")
	if len(block) == 0 || !utf8.Valid(block) {
		return "", false
	}
	for _, r := range string(block) {
		// XML 1.0 §2.2 Char.
		if r < 0x20 && r != '\t' && r != '\r' && r != '\n' || r == 0xFFFE || r == 0xFFFF {
			return "", false
		}
	}
	return string(block) + "\r\n", true
}

// peekHead reads the start of a body, up to its header block's end or
// maxHeaderBlock bytes, and returns it with a reader of the whole body.
func peekHead(r io.Reader, size int64) ([]byte, io.Reader, error) {
	var head []byte
	buf := make([]byte, 0, min(size, 8<<10))
	for int64(len(head)) < size && len(head) < maxHeaderBlock {
		want := min(int64(cap(buf)), size-int64(len(head)), int64(maxHeaderBlock-len(head)))
		if want <= 0 {
			break
		}
		n, err := io.ReadFull(r, buf[:want])
		head = append(head, buf[:n]...)
		if err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				break // short: the write reports it
			}
			return nil, nil, err
		}
		if endOfHeader(head) >= 0 {
			break
		}
	}
	return head, io.MultiReader(bytes.NewReader(head), r), nil
}
