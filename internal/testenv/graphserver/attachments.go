package graphserver

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

func (c *reqCtx) attachmentJSON(m *message, a *attachment, withContent bool) obj {
	o := obj{{"@odata.type", "#microsoft.graph.fileAttachment"}, {"@odata.mediaContentType", orDefault(a.contentType, "application/octet-stream")},
		{"id", a.id}, {"lastModifiedDateTime", graphTime(a.modified)}, {"name", a.name}, {"contentType", orDefault(a.contentType, "application/octet-stream")},
		{"size", len(a.content)}, {"isInline", a.isInline}, {"contentId", nilIf(a.contentID != "", a.contentID)}, {"contentLocation", nil}}
	if withContent {
		o.set("contentBytes", base64.StdEncoding.EncodeToString(a.content))
	}
	return o
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// handleAddAttachment serves POST .../attachments with a fileAttachment
// (message-post-attachments); the 4 MB request limit bounds its size.
func (s *Server) handleAddAttachment(c *reqCtx) *graphError {
	if gerr := jsonContent(c.r); gerr != nil {
		return gerr
	}
	a, gerr := parseFileAttachment(c.body)
	if gerr != nil {
		return gerr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, gerr := c.resolveMessage()
	if gerr != nil {
		return gerr
	}
	a.id, a.via, a.modified = graphID("AAMkAGA"), "post", s.now()
	m.attachments = append(m.attachments, a)
	s.touch(m)
	o := obj{{"@odata.context", c.context(c.userCtx() + "/messages('" + m.id + "')/attachments/$entity")}}
	writeJSON(c.w, http.StatusCreated, append(o, c.attachmentJSON(m, a, true)...))
	return nil
}

func (s *Server) handleGetAttachments(c *reqCtx) *graphError {
	q, gerr := parseQuery(c.r.URL.Query(), "$select ", []string{"id", "lastModifiedDateTime", "name", "contentType", "size", "isInline", "contentId", "contentLocation", "contentBytes"}, "microsoft.graph.attachment")
	if gerr != nil {
		return gerr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, gerr := c.resolveMessage()
	if gerr != nil {
		return gerr
	}
	ctx := c.userCtx() + "/messages('" + m.id + "')/attachments"
	if c.t.route == RouteGetAttachment {
		for _, a := range m.attachments {
			if a.id == c.t.attachKey && a.via != "mime" {
				o := obj{{"@odata.context", c.context(ctx + "/$entity")}}
				writeJSON(c.w, http.StatusOK, append(o, c.attachmentJSON(m, a, true).pick(q.sel)...))
				return nil
			}
		}
		return errItemNotFound()
	}
	vals := []obj{}
	for _, a := range m.attachments {
		if a.via != "mime" {
			vals = append(vals, c.attachmentJSON(m, a, true).pick(q.sel))
		}
	}
	writeJSON(c.w, http.StatusOK, obj{{"@odata.context", c.context(ctx)}, {"value", vals}})
	return nil
}

func (s *Server) handleDeleteAttachment(c *reqCtx) *graphError {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, gerr := c.resolveMessage()
	if gerr != nil {
		return gerr
	}
	for i, a := range m.attachments {
		if a.id == c.t.attachKey && a.via != "mime" {
			m.attachments = append(m.attachments[:i], m.attachments[i+1:]...)
			s.touch(m)
			c.w.WriteHeader(http.StatusNoContent)
			return nil
		}
	}
	return errItemNotFound()
}

type uploadSession struct {
	id, authToken string
	user          *mbx
	messageID     string
	name, ctype   string
	contentID     string
	isInline      bool
	size          int64
	data          []byte
	expires       time.Time
	appID         string
}

// handleCreateUploadSession serves attachment: createUploadSession for a
// file of 3 to 150 MB (attachment-createuploadsession).
func (s *Server) handleCreateUploadSession(c *reqCtx) *graphError {
	if gerr := jsonContent(c.r); gerr != nil {
		return gerr
	}
	props, gerr := decodeObject(c.body, "microsoft.graph.createUploadSession")
	if gerr != nil {
		return gerr
	}
	var item map[string]json.RawMessage
	for k, v := range props {
		if !strings.EqualFold(k, "AttachmentItem") {
			return errUnknownProperty(k, "microsoft.graph.createUploadSession")
		}
		if err := json.Unmarshal(v, &item); err != nil {
			return errBodyRead("An object of type 'microsoft.graph.attachmentItem' was expected for parameter 'AttachmentItem'.")
		}
	}
	if item == nil {
		return newError(http.StatusBadRequest, "ErrorInvalidRequest", "The parameter 'AttachmentItem' is required.")
	}
	us := &uploadSession{size: -1}
	for k, v := range item {
		var err error
		switch strings.ToLower(k) {
		case "attachmenttype":
			var t string
			err = json.Unmarshal(v, &t)
			if err == nil && !strings.EqualFold(t, "file") {
				return newError(http.StatusBadRequest, "ErrorInvalidRequest", "attachmentType '%s' is not supported; use 'file'.", t)
			}
		case "name":
			err = json.Unmarshal(v, &us.name)
		case "size":
			err = json.Unmarshal(v, &us.size)
		case "contenttype":
			err = json.Unmarshal(v, &us.ctype)
		case "isinline":
			err = json.Unmarshal(v, &us.isInline)
		case "contentid":
			err = json.Unmarshal(v, &us.contentID)
		default:
			return errUnknownProperty(k, "microsoft.graph.attachmentItem")
		}
		if err != nil {
			return errBodyRead("The value of '%s' in AttachmentItem has the wrong type.", k)
		}
	}
	if us.name == "" || us.size < 0 {
		return newError(http.StatusBadRequest, "ErrorInvalidRequest", "AttachmentItem needs at least attachmentType, name and size.")
	}
	if us.size < s.opts.MinUploadSessionSize {
		return newError(http.StatusBadRequest, "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize", "Attachment size must be greater than the minimum size (%d bytes); POST smaller files to the attachments collection.", s.opts.MinUploadSessionSize)
	}
	if us.size > s.opts.MaxAttachmentSize {
		return newError(http.StatusBadRequest, "ErrorAttachmentSizeShouldNotBeGreaterThanMaximumSize", "Attachment size must not exceed %d bytes.", s.opts.MaxAttachmentSize)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, gerr := c.resolveMessage()
	if gerr != nil {
		return gerr
	}
	us.id, us.authToken, us.user, us.messageID = graphID("AAMkAGS"), "eyJhbGciOiJSUzI1NiJ9."+newID(24), c.u, m.id
	us.expires, us.appID = s.now().Add(15*time.Minute), c.p.tok.app.clientID
	s.mail.uploads[us.id] = us
	uploadURL := fmt.Sprintf("%s/api/v2.0/Users('%s@%s')/Messages('%s')/AttachmentSessions('%s')?authtoken=%s",
		s.URL, c.u.id, c.u.tenant.id, url.PathEscape(m.id), url.PathEscape(us.id), us.authToken)
	writeJSON(c.w, http.StatusCreated, obj{{"@odata.context", c.context("microsoft.graph.uploadSession")}, {"uploadUrl", uploadURL},
		{"expirationDateTime", us.expires.UTC().Format("2006-01-02T15:04:05.0000000Z")}, {"nextExpectedRanges", []string{"0-"}}})
	return nil
}

var sessionRE = regexp.MustCompile(`AttachmentSessions\('([^']+)'\)$`)
var rangeRE = regexp.MustCompile(`^bytes (\d+)-(\d+)/(\d+)$`)

// parseContentRange parses "bytes {start}-{end}/{total}" (RFC 9110 section
// 14.4, as outlook-large-attachments requires).
func parseContentRange(v string) (start, end, total int64, ok bool) {
	m := rangeRE.FindStringSubmatch(strings.TrimSpace(v))
	if m == nil {
		return 0, 0, 0, false
	}
	var err error
	if start, err = strconv.ParseInt(m[1], 10, 64); err != nil {
		return 0, 0, 0, false
	}
	if end, err = strconv.ParseInt(m[2], 10, 64); err != nil {
		return 0, 0, 0, false
	}
	if total, err = strconv.ParseInt(m[3], 10, 64); err != nil {
		return 0, 0, 0, false
	}
	return start, end, total, start <= end && end < total
}

// serveUpload serves PUT (a byte range) and DELETE (cancel) on an upload
// URL. The URL is pre-authenticated: an Authorization header is refused,
// as outlook-large-attachments says not to send one.
func (s *Server) serveUpload(w http.ResponseWriter, r *http.Request, reqID string) {
	now := s.now()
	fail := func(e *graphError) { writeError(w, e, reqID, now) }
	route := RouteUploadChunk
	if r.Method == http.MethodDelete {
		route = RouteCancelUpload
	} else if r.Method != http.MethodPut {
		fail(errNotSupported())
		return
	}
	if gerr := s.countAndFault(route); gerr != nil {
		fail(gerr)
		return
	}
	if r.Header.Get("Authorization") != "" {
		e := newError(http.StatusUnauthorized, "InvalidAudienceForResource", "The audience claim value is invalid for current resource. Do not send an Authorization header to an upload URL; it carries its own token.")
		fail(e)
		return
	}
	mm := sessionRE.FindStringSubmatch(r.URL.Path)
	s.mu.Lock()
	var us *uploadSession
	if mm != nil {
		us = s.mail.uploads[mm[1]]
	}
	if us == nil || r.URL.Query().Get("authtoken") != us.authToken {
		s.mu.Unlock()
		fail(newError(http.StatusNotFound, "ErrorItemNotFound", "The upload session was not found or has expired."))
		return
	}
	if !now.Before(us.expires) {
		delete(s.mail.uploads, us.id)
		s.mu.Unlock()
		fail(newError(http.StatusNotFound, "ErrorItemNotFound", "The upload session has expired."))
		return
	}
	s.mu.Unlock()
	if r.Method == http.MethodDelete {
		s.mu.Lock()
		delete(s.mail.uploads, us.id)
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	start, end, total, ok := parseContentRange(r.Header.Get("Content-Range"))
	if !ok {
		fail(newError(http.StatusBadRequest, "ErrorInvalidRequest", "The Content-Range header is missing or malformed; expected 'bytes {start}-{end}/{total}'."))
		return
	}
	n := end - start + 1
	if n > s.opts.MaxUploadChunk {
		fail(newError(http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "A byte range may carry at most %d bytes.", s.opts.MaxUploadChunk))
		return
	}
	if r.ContentLength >= 0 && r.ContentLength != n {
		fail(newError(http.StatusBadRequest, "ErrorInvalidRequest", "Content-Length %d does not match the Content-Range length %d.", r.ContentLength, n))
		return
	}
	body, gerr := readBody(r, s.opts.MaxUploadChunk)
	if gerr != nil {
		fail(gerr)
		return
	}
	if int64(len(body)) != n {
		fail(newError(http.StatusBadRequest, "ErrorInvalidRequest", "The body has %d bytes but Content-Range announces %d.", len(body), n))
		return
	}
	release, gerr := s.admit(us.appID, us.user.upn, n)
	if gerr != nil {
		fail(gerr)
		return
	}
	defer release()
	s.waitGate()
	s.mu.Lock()
	defer s.mu.Unlock()
	if total != us.size {
		writeError(w, newError(http.StatusBadRequest, "fragmentLengthMismatch", "Declared total size %d differs from the upload session's %d.", total, us.size), reqID, now)
		return
	}
	if start != int64(len(us.data)) {
		writeError(w, newError(http.StatusRequestedRangeNotSatisfiable, "invalidRange", "The byte range must start at %d; bytes must be uploaded in order.", len(us.data)), reqID, now)
		return
	}
	us.data = append(us.data, body...)
	if int64(len(us.data)) < us.size {
		writeJSON(w, http.StatusOK, obj{{"@odata.context", s.URL + "/api/v2.0/$metadata#Users('" + us.user.id + "')/Messages('" + us.messageID + "')/AttachmentSessions/$entity"},
			{"expirationDateTime", us.expires.UTC().Format("2006-01-02T15:04:05.0000000Z")}, {"nextExpectedRanges", []string{strconv.Itoa(len(us.data))}}})
		return
	}
	delete(s.mail.uploads, us.id)
	m := us.user.messages[us.messageID]
	if m == nil {
		writeError(w, errItemNotFound(), reqID, now)
		return
	}
	a := &attachment{id: graphID("AAMkAGA"), name: us.name, contentType: us.ctype, contentID: us.contentID, isInline: us.isInline, content: us.data, via: "uploadSession", modified: now}
	m.attachments = append(m.attachments, a)
	s.touch(m)
	w.Header().Set("Location", fmt.Sprintf("%s/api/v2.0/Users('%s')/Messages('%s')/Attachments('%s')", s.URL, us.user.id, url.PathEscape(m.id), url.PathEscape(a.id)))
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}
