package graphserver

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

var messageProps = []string{"bccRecipients", "body", "bodyPreview", "categories", "ccRecipients", "changeKey", "conversationId",
	"conversationIndex", "createdDateTime", "flag", "from", "hasAttachments", "id", "importance", "inferenceClassification",
	"internetMessageHeaders", "internetMessageId", "isDeliveryReceiptRequested", "isDraft", "isRead", "isReadReceiptRequested",
	"lastModifiedDateTime", "parentFolderId", "receivedDateTime", "replyTo", "sender", "sentDateTime", "subject",
	"toRecipients", "uniqueBody", "webLink"}

func graphTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

func recipientJSON(r *recipient) any {
	if r == nil {
		return nil
	}
	return obj{{"emailAddress", obj{{"name", r.Name}, {"address", r.Address}}}}
}

func recipientsJSON(rs []recipient) []any {
	out := []any{}
	for i := range rs {
		out = append(out, recipientJSON(&rs[i]))
	}
	return out
}

var tagRE = regexp.MustCompile(`<[^>]*>`)

func preview(m *message) string {
	t := m.body
	if m.bodyType == "html" {
		t = tagRE.ReplaceAllString(t, "")
	}
	t = strings.TrimSpace(strings.Join(strings.Fields(t), " "))
	if r := []rune(t); len(r) > 255 {
		t = string(r[:255])
	}
	return t
}

func (m *message) hasAttachments() bool { return len(m.attachments) > 0 }

// derivedExt gives the MAPI properties every message has, computed from
// its state: PR_MESSAGE_FLAGS, delivery and submit times.
func (m *message) derivedExt(id extPropID) (string, bool) {
	if id.kind != 't' {
		return "", false
	}
	switch {
	case id.tag == tagMessageFlags && id.typ == extTypeInteger:
		f := 0
		if m.isRead {
			f |= msgflagRead
		}
		if m.isDraft {
			f |= msgflagUnsent
		}
		if m.hasAttachments() {
			f |= 0x10 // mfHasAttach
		}
		return strconv.Itoa(f), true
	case id.tag == tagDeliveryTime && id.typ == extTypeSystemTime:
		return graphTime(m.received), true
	case id.tag == tagClientSubmit && id.typ == extTypeSystemTime:
		return graphTime(m.sent), true
	case id.tag == tagMessageSize && id.typ == extTypeInteger:
		// Exchange's size of the item, which is not its MIME's: here
		// the stored MIME, or the body and attachments of a JSON one.
		n := len(m.mime)
		if m.mime == nil {
			n = len(m.body)
			for _, a := range m.attachments {
				n += len(a.content)
			}
		}
		return strconv.Itoa(n), true
	}
	return "", false
}

// messageJSON renders a message as the message resource; sel nil gives the
// default property set (without internetMessageHeaders and uniqueBody).
func (c *reqCtx) messageJSON(m *message, q *query) obj {
	o := obj{{"@odata.etag", `W/"` + m.changeKey + `"`}, {"id", m.id},
		{"createdDateTime", graphTime(m.created)}, {"lastModifiedDateTime", graphTime(m.mod)}, {"changeKey", m.changeKey},
		{"categories", append([]string{}, m.categories...)}, {"receivedDateTime", graphTime(m.received)}, {"sentDateTime", graphTime(m.sent)},
		{"hasAttachments", m.hasAttachments()}, {"internetMessageId", m.messageID}, {"subject", m.subject}, {"bodyPreview", preview(m)},
		{"importance", m.importance}, {"parentFolderId", m.folder.id}, {"conversationId", m.conversationID},
		{"conversationIndex", base64.StdEncoding.EncodeToString([]byte(m.conversationID[:16]))},
		{"isDeliveryReceiptRequested", m.deliveryRcpt}, {"isReadReceiptRequested", m.readRcpt}, {"isRead", m.isRead}, {"isDraft", m.isDraft},
		{"webLink", "https://outlook.office365.com/owa/?ItemID=" + url.QueryEscape(m.id) + "&exvsurl=1&viewmodel=ReadMessageItem"},
		{"inferenceClassification", m.inference},
		{"body", obj{{"contentType", m.bodyType}, {"content", m.body}}},
		{"sender", recipientJSON(m.sender)}, {"from", recipientJSON(m.from)},
		{"toRecipients", recipientsJSON(m.to)}, {"ccRecipients", recipientsJSON(m.cc)}, {"bccRecipients", recipientsJSON(m.bcc)},
		{"replyTo", recipientsJSON(m.replyTo)}}
	flag := obj{{"flagStatus", m.flagStatus}}
	keys := make([]string, 0, len(m.flagExtra))
	for k := range m.flagExtra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		flag.set(k, m.flagExtra[k])
	}
	o.set("flag", flag)
	var sel []string
	if q != nil && q.sel != nil {
		sel = q.sel
		hs := []any{}
		for _, h := range m.headers {
			hs = append(hs, obj{{"name", h.Name}, {"value", h.Value}})
		}
		o.set("internetMessageHeaders", hs)
		o.set("uniqueBody", obj{{"contentType", m.bodyType}, {"content", m.body}})
		o = o.pick(sel)
	}
	if !c.p.has(RoleMailRead, RoleMailReadWrite) {
		// Mail.ReadBasic.All: no body, preview or headers.
		var basic obj
		for _, p := range o {
			switch p.k {
			case "body", "bodyPreview", "uniqueBody", "internetMessageHeaders":
			default:
				basic = append(basic, p)
			}
		}
		o = basic
	}
	if q != nil && (q.expandEP != nil || q.expandEPAll) {
		o.set("singleValueExtendedProperties@odata.context", c.context(c.userCtx()+"/messages('"+m.id+"')/singleValueExtendedProperties"))
		var props []any
		if q.expandEPAll {
			for _, p := range m.ext {
				props = append(props, obj{{"id", p.id.String()}, {"value", p.value}})
			}
		}
		for _, id := range q.expandEP {
			if v, ok := m.derivedExt(id); ok {
				props = append(props, obj{{"id", id.String()}, {"value", v}})
			} else if p, ok := m.ext[id.key()]; ok {
				props = append(props, obj{{"id", p.id.String()}, {"value", p.value}})
			}
		}
		if props == nil {
			props = []any{}
		}
		o.set("singleValueExtendedProperties", props)
	}
	return o
}

// resolveMessage finds the addressed message; under mailFolders/{id} it
// must be in that folder.
func (c *reqCtx) resolveMessage() (*message, *graphError) {
	m := c.u.messages[c.t.messageKey]
	if m == nil {
		return nil, errItemNotFound()
	}
	if c.t.viaFolder {
		f, gerr := c.resolveFolder()
		if gerr != nil {
			return nil, gerr
		}
		if m.folder != f {
			return nil, errItemNotFound()
		}
	}
	return m, nil
}

func (s *Server) handleGetMessage(c *reqCtx) *graphError {
	q, gerr := parseQuery(c.r.URL.Query(), "$select $expand ", messageProps, msgType)
	if gerr != nil {
		return gerr
	}
	s.mu.Lock()
	m, gerr := c.resolveMessage()
	if gerr != nil {
		s.mu.Unlock()
		return gerr
	}
	ctx := c.userCtx() + "/messages/$entity"
	if q.sel != nil {
		ctx = c.userCtx() + "/messages(" + strings.Join(q.sel, ",") + ")/$entity"
	}
	o := append(obj{{"@odata.context", c.context(ctx)}}, c.messageJSON(m, q)...)
	s.mu.Unlock()
	writeJSON(c.w, http.StatusOK, o)
	return nil
}

// handleGetMIME streams the MIME bytes (message-get, example "Get MIME
// content": Content-Type text/plain).
func (s *Server) handleGetMIME(c *reqCtx) *graphError {
	if gerr := noQuery(c.r.URL.Query()); gerr != nil {
		return gerr
	}
	s.mu.Lock()
	m, gerr := c.resolveMessage()
	if gerr != nil {
		s.mu.Unlock()
		return gerr
	}
	b := s.mimeOf(m)
	s.mu.Unlock()
	h := c.w.Header()
	h.Set("Content-Type", "text/plain")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	c.w.WriteHeader(http.StatusOK)
	_, _ = bytes.NewReader(b).WriteTo(c.w)
	return nil
}

func noQuery(q url.Values) *graphError {
	for k := range q {
		if strings.HasPrefix(k, "$") {
			return newError(http.StatusBadRequest, "BadRequest", "The query parameter '%s' is not supported.", k)
		}
	}
	return nil
}

// handleListMessages lists a folder's messages (or the mailbox's), newest
// first, paged with $top and $skip.
func (s *Server) handleListMessages(c *reqCtx) *graphError {
	q, gerr := parseQuery(c.r.URL.Query(), "$select $top $skip $expand ", messageProps, msgType)
	if gerr != nil {
		return gerr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []*message
	ctxPath := c.userCtx() + "/messages"
	if c.t.route == RouteListMessages {
		f, gerr := c.resolveFolder()
		if gerr != nil {
			return gerr
		}
		all = append(all, f.messages...)
		ctxPath = c.userCtx() + "/mailFolders('" + f.id + "')/messages"
	} else {
		for _, m := range c.u.messages {
			all = append(all, m)
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].received.After(all[j].received) })
	size := s.opts.PageSize
	if q.top > 0 {
		size = q.top
	}
	from := min(q.skip, len(all))
	to := min(from+size, len(all))
	o := obj{{"@odata.context", c.context(ctxPath)}}
	if to < len(all) {
		nq := url.Values{}
		for k, v := range c.r.URL.Query() {
			nq[k] = v
		}
		nq.Set("$skip", strconv.Itoa(to))
		nq.Set("$top", strconv.Itoa(size))
		o.set("@odata.nextLink", c.s.URL+c.r.URL.Path+"?"+encodeQuery(nq))
	}
	vals := []obj{}
	for _, m := range all[from:to] {
		vals = append(vals, c.messageJSON(m, q))
	}
	o.set("value", vals)
	writeJSON(c.w, http.StatusOK, o)
	return nil
}

// decodeMIMEBody decodes a base64 MIME request body (user-post-messages:
// "Invalid base64 string for MIME content").
func decodeMIMEBody(body []byte) ([]byte, *graphError) {
	clean := bytes.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, body)
	raw, err := base64.StdEncoding.DecodeString(string(clean))
	if err != nil || len(raw) == 0 {
		return nil, newError(http.StatusBadRequest, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content.")
	}
	return raw, nil
}

// handleCreateMessage serves POST /messages (into Drafts) and POST
// /mailFolders/{id}/messages: text/plain is base64 MIME and always makes a
// draft; application/json is a message resource, a draft unless
// PR_MESSAGE_FLAGS without mfUnsent is set in the same request.
func (s *Server) handleCreateMessage(c *reqCtx) *graphError {
	ct := c.r.Header.Get("Content-Type")
	mt := strings.ToLower(strings.TrimSpace(strings.Split(ct, ";")[0]))
	switch mt {
	case "text/plain":
		raw, gerr := decodeMIMEBody(c.body)
		if gerr != nil {
			return gerr
		}
		return s.storeMIME(c, raw, WriteMIMEDraft)
	case "application/json":
		p, gerr := parseMessageJSON(c.body, true)
		if gerr != nil {
			return gerr
		}
		return s.storeJSON(c, p)
	default:
		return errMediaType(ct)
	}
}

func (c *reqCtx) createFolder() (*folder, *graphError) {
	if c.t.route == RouteCreateMessage {
		return c.u.wellKnown["drafts"], nil
	}
	return c.resolveFolder()
}

func (s *Server) storeMIME(c *reqCtx, raw []byte, path WritePath) *graphError {
	s.mu.Lock()
	f, gerr := c.createFolder()
	if gerr != nil {
		s.mu.Unlock()
		return gerr
	}
	now := s.now()
	m := s.newMessage(c.u, f, path, raw, now)
	if path == WriteMIMEDraft {
		m.isDraft, m.isRead = true, true
	}
	if m.sent.IsZero() {
		m.sent = now
	}
	s.addMessage(f, m)
	o := append(obj{{"@odata.context", c.context(c.userCtx() + "/messages/$entity")}}, c.messageJSON(m, nil)...)
	s.mu.Unlock()
	writeJSON(c.w, http.StatusCreated, o)
	return nil
}

func (s *Server) storeJSON(c *reqCtx, p *msgPatch) *graphError {
	s.mu.Lock()
	f, gerr := c.createFolder()
	if gerr != nil {
		s.mu.Unlock()
		return gerr
	}
	now := s.now()
	m := s.newMessage(c.u, f, WriteJSON, nil, now)
	m.isDraft, m.isRead, m.sent, m.bodyType = true, true, now, "text"
	m.from = &recipient{Address: c.u.upn}
	for _, e := range p.ext {
		switch {
		case e.id.isTag(tagMessageFlags):
			n, _ := strconv.Atoi(e.value)
			m.isDraft = n&msgflagUnsent != 0
			m.isRead = n&msgflagRead != 0
		case e.id.isTag(tagDeliveryTime):
			m.received, _ = time.Parse(time.RFC3339Nano, e.value)
		case e.id.isTag(tagClientSubmit):
			m.sent, _ = time.Parse(time.RFC3339Nano, e.value)
		default:
			m.ext[e.id.key()] = e
		}
	}
	m.apply(p)
	if p.from == nil && m.sender == nil {
		m.sender = m.from
	}
	for _, a := range p.attachments {
		a.id, a.modified = graphID("AAMkAGA"), now
		m.attachments = append(m.attachments, a)
	}
	s.addMessage(f, m)
	o := append(obj{{"@odata.context", c.context(c.userCtx() + "/messages/$entity")}}, c.messageJSON(m, nil)...)
	s.mu.Unlock()
	writeJSON(c.w, http.StatusCreated, o)
	return nil
}

// apply sets the properties given in p (not the extended ones).
func (m *message) apply(p *msgPatch) {
	if p.subject != nil {
		m.subject = *p.subject
	}
	if p.messageID != nil {
		m.messageID = *p.messageID
	}
	if p.importance != nil {
		m.importance = *p.importance
	}
	if p.inference != nil {
		m.inference = *p.inference
	}
	if p.body != nil {
		m.bodyType, m.body = p.body.typ, p.body.content
	}
	if p.from != nil {
		m.from = p.from
	}
	if p.sender != nil {
		m.sender = p.sender
	}
	for _, x := range []struct {
		src *[]recipient
		dst *[]recipient
	}{{p.to, &m.to}, {p.cc, &m.cc}, {p.bcc, &m.bcc}, {p.replyTo, &m.replyTo}} {
		if x.src != nil {
			*x.dst = *x.src
		}
	}
	if p.isRead != nil {
		m.isRead = *p.isRead
	}
	if p.deliveryRcpt != nil {
		m.deliveryRcpt = *p.deliveryRcpt
	}
	if p.readRcpt != nil {
		m.readRcpt = *p.readRcpt
	}
	if p.categories != nil {
		m.categories = *p.categories
	}
	if p.flagStatus != nil {
		m.flagStatus = *p.flagStatus
		m.flagExtra = p.flagExtra
	}
	if p.headers != nil {
		m.headers = *p.headers
	}
}

// handleImportMime serves the beta importMime action: base64 MIME in a
// text/plain body, stored exactly, never a draft (mailfolder-importmime).
func (s *Server) handleImportMime(c *reqCtx) *graphError {
	ct := c.r.Header.Get("Content-Type")
	if mt := strings.ToLower(strings.TrimSpace(strings.Split(ct, ";")[0])); mt != "text/plain" {
		return errMediaType(ct)
	}
	raw, gerr := decodeMIMEBody(c.body)
	if gerr != nil {
		return gerr
	}
	return s.storeMIME(c, raw, WriteImportMIME)
}

// handleUpdateMessage applies a PATCH (message-update). Draft-only
// properties are refused on sent messages; isDraft and other read-only
// properties are ignored, as the service is reported to do; the unsent
// bit of PR_MESSAGE_FLAGS cannot change after creation.
func (s *Server) handleUpdateMessage(c *reqCtx) *graphError {
	if gerr := jsonContent(c.r); gerr != nil {
		return gerr
	}
	p, gerr := parseMessageJSON(c.body, false)
	if gerr != nil {
		return gerr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, gerr := c.resolveMessage()
	if gerr != nil {
		return gerr
	}
	if !m.isDraft && len(p.draftOnly) > 0 {
		return newError(http.StatusBadRequest, "ErrorInvalidPropertyUpdateSentMessage", "The property '%s' can be updated only while the message is a draft.", p.draftOnly[0])
	}
	for _, e := range p.ext {
		switch {
		case e.id.isTag(tagMessageFlags):
			n, _ := strconv.Atoi(e.value)
			m.isRead = n&msgflagRead != 0
		case e.id.isTag(tagDeliveryTime):
			m.received, _ = time.Parse(time.RFC3339Nano, e.value)
		case e.id.isTag(tagClientSubmit):
			m.sent, _ = time.Parse(time.RFC3339Nano, e.value)
		default:
			m.ext[e.id.key()] = e
		}
	}
	m.apply(p)
	s.touch(m)
	o := append(obj{{"@odata.context", c.context(c.userCtx() + "/messages/$entity")}}, c.messageJSON(m, nil)...)
	writeJSON(c.w, http.StatusOK, o)
	return nil
}

// handleDeleteMessage moves the message to Deleted Items, or removes it
// when it is there already (message-delete).
func (s *Server) handleDeleteMessage(c *reqCtx) *graphError {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, gerr := c.resolveMessage()
	if gerr != nil {
		return gerr
	}
	trash := c.u.wellKnown["deleteditems"]
	s.removeMessage(c.u, m)
	if m.folder != trash {
		m.id = graphID("AAMkAGM")
		s.addMessage(trash, m)
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}
