package graph

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
)

const maxMessageSize = 150 << 20

type pendingAppend struct {
	done chan struct{}
	res  connector.AppendResult
	err  error
}

func (p *pendingAppend) Wait() (connector.AppendResult, error) {
	<-p.done
	return p.res, p.err
}

// Append writes one message to folder f, never as a draft unless the
// source's copy is one (\Draft). The path, per message:
//
//   - \Draft: POST the MIME to the folder's messages (user-post-messages:
//     a MIME POST always makes a draft), bytes kept;
//   - importMime available and the MIME fits one request: the beta
//     importMime action, bytes kept, then one PATCH for what the action
//     does not take from the MIME (read state, flag, received date);
//   - otherwise the JSON path: the message rebuilt as JSON with
//     PidTagMessageFlags (no mfUnsent), the received and sent times in
//     the creating request, attachments that do not fit added with POSTs
//     or upload sessions. AppendResult.Rebuilt is set: the copy is
//     content-equivalent, not byte-exact.
//
// Every copy also gets Mailferry's identity property, so that listing
// the destination finds the source's identity again.
func (c *Conn) Append(ctx context.Context, f connector.Folder, req connector.AppendRequest) (connector.PendingAppend, error) {
	switch {
	case req.Size <= 0:
		return nil, connector.Errorf(connector.KindItem, "", errors.New("empty message"), "append to %q", f.Path.String())
	case req.Size > maxMessageSize:
		return nil, connector.Errorf(connector.KindItem, "Microsoft 365 takes messages of up to 150 MB", fmt.Errorf("message of %d bytes", req.Size), "append to %q", f.Path.String())
	}
	buf, err := c.spool.Read(ctx, req.Body, req.Size)
	if err != nil {
		return nil, connector.Errorf(connector.KindTransient, "", err, "read the message to append to %q", f.Path.String())
	}
	identity := mail.ComputeIdentity(mail.ParseHeaders(headerBlock(buf.Open())), req.Size)
	p := &pendingAppend{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		defer buf.Release()
		p.res, p.err = c.write(ctx, f, req, buf, identity)
	}()
	return p, nil
}

// headerBlock reads the header block (up to and including the empty
// line) from r.
func headerBlock(r io.Reader) []byte {
	br := bufio.NewReaderSize(io.LimitReader(r, maxHeaderBlock), 16<<10)
	var b bytes.Buffer
	for {
		line, err := br.ReadSlice('\n')
		b.Write(line)
		if len(line) > 0 && len(bytes.TrimRight(line, "\r\n")) == 0 {
			break
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			break
		}
	}
	return b.Bytes()
}

func base64Len(n int64) int64 { return (n + 2) / 3 * 4 }

func (c *Conn) write(ctx context.Context, f connector.Folder, req connector.AppendRequest, buf held, identity mail.Identity) (connector.AppendResult, error) {
	fits := base64Len(req.Size)+1024 <= c.set.maxRequestBody
	draft := mail.HasFlag(req.Flags, mail.FlagDraft)
	switch {
	case draft && fits:
		return c.writeMIME(ctx, f, req, buf, identity, c.user+"/mailFolders/"+url.PathEscape(f.Name)+"/messages", false)
	case !draft && fits && c.importMime.Load():
		res, err := c.writeMIME(ctx, f, req, buf, identity, c.importURL(f.Name), true)
		if !errors.Is(err, errUseJSON) {
			return res, err
		}
	}
	return c.writeJSON(ctx, f, req, buf, identity)
}

// errUseJSON says importMime refused a message in a way that means "not
// here": the JSON path is taken, nothing was stored.
var errUseJSON = errors.New("importMime not available")

// writeMIME POSTs the base64 MIME to u (a folder's messages: a draft, or
// importMime), then PATCHes what the MIME does not carry.
func (c *Conn) writeMIME(ctx context.Context, f connector.Folder, req connector.AppendRequest, buf held, identity mail.Identity, u string, imported bool) (connector.AppendResult, error) {
	var enc bytes.Buffer
	w := base64.NewEncoder(base64.StdEncoding, &enc)
	if _, err := io.Copy(w, buf.Open()); err != nil {
		return connector.AppendResult{}, connector.Errorf(connector.KindTransient, "", err, "read the message to append")
	}
	w.Close()
	body, n := bytesBody(enc.Bytes())
	resp, err := c.api.do(ctx, request{method: http.MethodPost, url: u, contentType: "text/plain", body: body, bodyLen: n})
	if err != nil {
		if imported {
			st, code := apiStatus(err)
			switch {
			case st == http.StatusForbidden, st == http.StatusNotFound, st == http.StatusMethodNotAllowed,
				st == http.StatusBadRequest && strings.EqualFold(code, "BadRequest"):
				// The permission or the action went away: stop
				// trying it for this mailbox.
				c.importMime.Store(false)
				return connector.AppendResult{}, errUseJSON
			case st == http.StatusRequestEntityTooLarge:
				return connector.AppendResult{}, errUseJSON
			}
		}
		return connector.AppendResult{}, c.sortError(err, accessWrite, connector.KindMissingFolder, connector.KindItem, "append to %q", f.Path.String())
	}
	var m struct {
		ID string `json:"id"`
	}
	derr := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&m)
	resp.Close()
	if derr != nil || m.ID == "" {
		return connector.AppendResult{}, &connector.Error{Kind: connector.KindTransient, Op: fmt.Sprintf("append to %q", f.Path.String()), Err: errors.New("Graph's answer names no message id"), Uncertain: true}
	}
	patch := flagPatch(req.Flags)
	props := identityProps(req.Flags, identity, req.Size)
	if !req.InternalDate.IsZero() {
		// importMime takes the time of the import as the received
		// time (not documented either way), and a MIME draft the time
		// it was created; the source's is set now. (Whether Exchange
		// keeps PidTagMessageDeliveryTime on a draft is unverified.)
		props = append(props, extProp{ID: propDelivery, Value: systemTime(req.InternalDate)})
	}
	patch["singleValueExtendedProperties"] = props
	pb, _ := json.Marshal(patch)
	if err := c.sendJSON(ctx, http.MethodPatch, c.user+"/messages/"+url.PathEscape(m.ID), pb, true, nil); err != nil {
		// Stored, but without its flags or date: the caller must look
		// before writing it again.
		e := c.sortError(err, accessWrite, connector.KindItem, connector.KindItem, "set the flags of the message appended to %q", f.Path.String())
		return connector.AppendResult{ID: connector.ID(m.ID)}, uncertain(e)
	}
	return connector.AppendResult{ID: connector.ID(m.ID)}, nil
}

func uncertain(err error) error {
	var e *connector.Error
	if errors.As(err, &e) {
		cp := *e
		cp.Uncertain = true
		return &cp
	}
	return &connector.Error{Kind: connector.KindTransient, Err: err, Uncertain: true}
}

// writeJSON is the JSON path.
func (c *Conn) writeJSON(ctx context.Context, f connector.Folder, req connector.AppendRequest, buf held, identity mail.Identity) (connector.AppendResult, error) {
	op := fmt.Sprintf("append to %q", f.Path.String())
	rb, err := rebuild(buf.Open(), c.spoolDir, req, identity)
	if err != nil {
		if errors.Is(err, errNotMIME) || errors.Is(err, errBodyTooLarge) {
			return connector.AppendResult{}, connector.Errorf(connector.KindItem, "", err, "%s", op)
		}
		return connector.AppendResult{}, connector.Errorf(connector.KindTransient, "", err, "%s", op)
	}
	defer rb.release()

	bare, _ := json.Marshal(rb.msg)
	room := c.set.maxRequestBody - int64(len(bare)) - 4096
	var later []*part
	for _, p := range rb.parts {
		n := base64Len(p.data.Size()) + 512 + int64(len(p.name)+len(p.contentType)+len(p.contentID))
		if p.data.Size() <= c.set.inlineAttachment && n <= room {
			a, err := inlineAttachment(p)
			if err != nil {
				return connector.AppendResult{}, connector.Errorf(connector.KindTransient, "", err, "%s", op)
			}
			rb.msg.Attachments = append(rb.msg.Attachments, a)
			room -= n
			continue
		}
		later = append(later, p)
	}
	body, err := json.Marshal(rb.msg)
	if err != nil {
		return connector.AppendResult{}, connector.Errorf(connector.KindItem, "", err, "%s", op)
	}
	if int64(len(body)) > c.set.maxRequestBody {
		return connector.AppendResult{}, connector.Errorf(connector.KindItem, "", errors.New("the message's text and headers are larger than one Graph request carries"), "%s", op)
	}
	var created struct {
		ID string `json:"id"`
	}
	if err := c.sendJSON(ctx, http.MethodPost, c.user+"/mailFolders/"+url.PathEscape(f.Name)+"/messages", body, false, &created); err != nil {
		return connector.AppendResult{}, c.sortError(err, accessWrite, connector.KindMissingFolder, connector.KindItem, "%s", op)
	}
	if created.ID == "" {
		return connector.AppendResult{}, &connector.Error{Kind: connector.KindTransient, Op: op, Err: errors.New("Graph's answer names no message id"), Uncertain: true}
	}
	for _, p := range later {
		if err := c.attach(ctx, created.ID, p); err != nil {
			// A message without all its attachments must not stay:
			// remove it, and say nothing was stored if that worked.
			e := c.sortError(err, accessWrite, connector.KindItem, connector.KindItem, "%s: attach %q", op, p.name)
			if derr := c.deleteOne(context.WithoutCancel(ctx), created.ID); derr != nil {
				return connector.AppendResult{ID: connector.ID(created.ID)}, uncertain(e)
			}
			return connector.AppendResult{}, e
		}
	}
	return connector.AppendResult{ID: connector.ID(created.ID), Rebuilt: true}, nil
}

// attach adds p to message id: one POST when its base64 fits one
// request, else an upload session (attachment-createuploadsession,
// outlook-large-attachments).
func (c *Conn) attach(ctx context.Context, id string, p *part) error {
	base := c.user + "/messages/" + url.PathEscape(id) + "/attachments"
	if base64Len(p.data.Size())+2048 <= c.set.maxRequestBody {
		a, err := inlineAttachment(p)
		if err != nil {
			return err
		}
		b, _ := json.Marshal(a)
		return c.sendJSON(ctx, http.MethodPost, base, b, false, nil)
	}
	item := map[string]any{
		"attachmentType": "file",
		"name":           p.name,
		"size":           p.data.Size(),
		"contentType":    p.contentType,
		"isInline":       p.inline,
	}
	if p.contentID != "" {
		item["contentId"] = p.contentID
	}
	b, _ := json.Marshal(map[string]any{"AttachmentItem": item})
	var session struct {
		UploadURL string `json:"uploadUrl"`
	}
	if err := c.sendJSON(ctx, http.MethodPost, base+"/createUploadSession", b, false, &session); err != nil {
		return err
	}
	if u, err := url.Parse(session.UploadURL); err != nil || u.Scheme != "https" || u.Host == "" {
		return errors.New("Graph's upload session has no https upload URL")
	}
	ra, ok := p.data.(io.ReaderAt)
	if !ok {
		return errors.New("spooled attachment cannot be read at an offset")
	}
	total := p.data.Size()
	for off := int64(0); off < total; off += c.set.uploadChunk {
		end := min(off+c.set.uploadChunk, total)
		chunk := func() io.Reader { return io.NewSectionReader(ra, off, end-off) }
		resp, err := c.api.do(ctx, request{
			method: http.MethodPut, url: session.UploadURL, anonymous: true, idempotent: true,
			contentType: "application/octet-stream",
			header:      map[string]string{"Content-Range": fmt.Sprintf("bytes %d-%d/%d", off, end-1, total)},
			body:        chunk, bodyLen: end - off,
		})
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Close()
	}
	return nil
}
