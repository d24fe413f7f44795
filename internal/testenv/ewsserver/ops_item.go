package ewsserver

import (
	"encoding/base64"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// itemRef resolves a t:ItemId in the mailbox the request acts on.
func (c *reqCtx) itemRef(n *node) (*item, *itemError) {
	id, _ := n.attr("Id")
	switch {
	case id == "":
		return nil, newItemError("ErrorInvalidIdEmpty")
	case !idWellFormed(id, idKindItem):
		return nil, newItemError("ErrorInvalidIdMalformed")
	}
	if ck, ok := n.attr("ChangeKey"); ok {
		if _, err := base64.StdEncoding.DecodeString(ck); err != nil || ck == "" {
			return nil, &itemError{code: "ErrorInvalidChangeKey", text: "The change key is invalid."}
		}
	}
	if c.mbx == nil {
		return nil, newItemError("ErrorItemNotFound")
	}
	it := c.mbx.items[id]
	if it == nil {
		return nil, newItemError("ErrorItemNotFound")
	}
	return it, nil
}

// writeItem writes an item in ItemType order (MimeContent, ItemId,
// ParentFolderId, ItemClass, Subject, DateTimeReceived, Size, IsDraft,
// DateTimeSent, DateTimeCreated, HasAttachments, ExtendedProperty,
// LastModifiedTime, Flag) followed, for messages, by MessageType's
// InternetMessageId and IsRead. Default returns every property this
// server implements except MimeContent.
func (c *reqCtx) writeItem(w *xw, it *item, sh *shape) {
	el := "t:" + itemElement(it.class)
	isMsg := el == "t:Message"
	w.open(el)
	if sh.mime || sh.fields["item:MimeContent"] {
		w.leaf("t:MimeContent", base64.StdEncoding.EncodeToString(it.mime), "CharacterSet", "UTF-8")
	}
	w.empty("t:ItemId", "Id", it.id, "ChangeKey", it.changeKey)
	if sh.has("item:ParentFolderId", true) {
		w.empty("t:ParentFolderId", "Id", it.folder.id, "ChangeKey", it.folder.changeKey)
	}
	if sh.has("item:ItemClass", true) {
		w.leaf("t:ItemClass", it.class)
	}
	if sh.has("item:Subject", true) {
		w.leaf("t:Subject", it.subject)
	}
	if sh.has("item:DateTimeReceived", true) {
		w.leaf("t:DateTimeReceived", fmtTime(it.received))
	}
	if sh.has("item:Size", true) {
		w.leaf("t:Size", strconv.Itoa(len(it.mime)))
	}
	if sh.has("item:IsDraft", true) {
		w.leaf("t:IsDraft", strconv.FormatBool(it.isDraft()))
	}
	if !it.sent.IsZero() && sh.has("item:DateTimeSent", true) {
		w.leaf("t:DateTimeSent", fmtTime(it.sent))
	}
	if sh.has("item:DateTimeCreated", true) {
		w.leaf("t:DateTimeCreated", fmtTime(it.created))
	}
	if sh.has("item:HasAttachments", true) {
		w.leaf("t:HasAttachments", strconv.FormatBool(it.hasAttachments))
	}
	for _, k := range sh.ext {
		if v, ok := itemPropValue(it, k); ok {
			writeExtendedProperty(w, k, v)
		}
	}
	if sh.has("item:LastModifiedTime", true) {
		w.leaf("t:LastModifiedTime", fmtTime(it.modified))
	}
	if c.atLeast2013() && sh.has("item:Flag", true) {
		w.open("t:Flag")
		w.leaf("t:FlagStatus", flagStatusString(it.flagStatus))
		w.close("t:Flag")
	}
	if isMsg {
		if it.messageID != "" && sh.has("message:InternetMessageId", true) {
			w.leaf("t:InternetMessageId", it.messageID)
		}
		if sh.has("message:IsRead", true) {
			w.leaf("t:IsRead", strconv.FormatBool(it.isRead()))
		}
	}
	w.close(el)
}

func invalidPropertyError(uri string) *itemError {
	return &itemError{code: "ErrorInvalidPropertyRequest", text: errorText("ErrorInvalidPropertyRequest"), fieldURI: uri}
}

// findItem implements FindItem (web-service-reference/finditem-operation)
// with IndexedPageItemView paging and an optional one-field SortOrder.
func (s *Server) findItem(c *reqCtx, w *xw) *soapFault {
	sh, fault := c.shape(c.op.child(nsMessages, "ItemShape"), false)
	if fault != nil {
		return fault
	}
	traversal, _ := c.op.attr("Traversal")
	if traversal == "SoftDeleted" {
		return notImplFault(&notImplError{what: "FindItem Traversal=\"SoftDeleted\""})
	}
	less, fault := sortOrder(c.op.child(nsMessages, "SortOrder"))
	if fault != nil {
		return fault
	}
	invalid := sh.invalid
	if invalid == "" && (sh.mime || sh.fields["item:MimeContent"]) {
		// MIME content is only returned by GetItem and SyncFolderItems.
		invalid = "item:MimeContent"
	}
	view := c.op.child(nsMessages, "IndexedPageItemView")
	for _, ref := range c.op.child(nsMessages, "ParentFolderIds").children {
		if c.forced != nil {
			c.message(w, nil, nil, nil)
			continue
		}
		if invalid != "" {
			c.message(w, invalidPropertyError(invalid), nil, nil)
			continue
		}
		f, ierr := c.folderRef(ref)
		if ierr != nil {
			c.message(w, ierr, nil, nil)
			continue
		}
		var items []*item
		if traversal != "Associated" { // no folder-associated items are stored
			items = f.sortedItems()
		}
		sort.SliceStable(items, func(i, j int) bool { return less(items[i], items[j]) })
		limit := s.opts.FindCountLimit
		if len(items) > limit && c.version == "Exchange2010" {
			// ews-throttling-in-exchange: requests versioned Exchange
			// 2010 or earlier get ErrorServerBusy past EWSFindCountLimit.
			c.message(w, newItemError("ErrorServerBusy"), nil, nil)
			continue
		}
		pg, ierr := paginate(len(items), view, limit)
		if ierr != nil {
			c.message(w, ierr, nil, nil)
			continue
		}
		c.message(w, nil, func(w *xw) {
			w.open("m:RootFolder", pg.attrs(len(items))...)
			w.open("t:Items")
			for _, it := range items[pg.start:pg.end] {
				c.writeItem(w, it, sh)
			}
			w.close("t:Items")
			w.close("m:RootFolder")
		}, nil)
	}
	return nil
}

// sortOrder returns the order of FindItem results. Without SortOrder it is
// newest DateTimeReceived first; see LIMITS.md.
func sortOrder(n *node) (func(a, b *item) bool, *soapFault) {
	byReceivedDesc := func(a, b *item) bool {
		if !a.received.Equal(b.received) {
			return a.received.After(b.received)
		}
		return a.num > b.num
	}
	if n == nil {
		return byReceivedDesc, nil
	}
	orders := n.all(nsTypes, "FieldOrder")
	if len(orders) != 1 {
		return nil, notImplFault(&notImplError{what: "SortOrder with more than one FieldOrder"})
	}
	p := orders[0].children[0]
	uri, _ := p.attr("FieldURI")
	dir, _ := orders[0].attr("Order")
	var key func(a, b *item) int
	switch {
	case p.local == "FieldURI" && uri == "item:DateTimeReceived":
		key = func(a, b *item) int { return a.received.Compare(b.received) }
	case p.local == "FieldURI" && uri == "item:DateTimeCreated":
		key = func(a, b *item) int { return a.created.Compare(b.created) }
	case p.local == "FieldURI" && uri == "item:Size":
		key = func(a, b *item) int { return len(a.mime) - len(b.mime) }
	default:
		return nil, notImplFault(&notImplError{what: "SortOrder on " + p.local + " " + uri})
	}
	return func(a, b *item) bool {
		k := key(a, b)
		if k == 0 {
			k = int(a.num) - int(b.num)
		}
		if dir == "Descending" {
			return k > 0
		}
		return k < 0
	}, nil
}

// getItem implements GetItem (web-service-reference/getitem-operation-email-message):
// one response message per ItemId.
func (s *Server) getItem(c *reqCtx, w *xw) *soapFault {
	sh, fault := c.shape(c.op.child(nsMessages, "ItemShape"), false)
	if fault != nil {
		return fault
	}
	emptyItems := func(w *xw) { w.empty("m:Items") }
	for _, ref := range c.op.child(nsMessages, "ItemIds").children {
		if c.forced != nil {
			c.message(w, nil, nil, emptyItems)
			continue
		}
		if sh.invalid != "" {
			c.message(w, invalidPropertyError(sh.invalid), nil, emptyItems)
			continue
		}
		if ie := s.itemFault(c.opName); ie != nil {
			c.message(w, ie, nil, emptyItems)
			continue
		}
		it, ierr := c.itemRef(ref)
		if ierr != nil {
			c.message(w, ierr, nil, emptyItems)
			continue
		}
		c.message(w, nil, func(w *xw) {
			w.open("m:Items")
			c.writeItem(w, it, sh)
			w.close("m:Items")
		}, emptyItems)
	}
	return nil
}

// itemProps are the settable properties of an item in a CreateItem or a
// SetItemField.
type itemProps struct {
	mime       []byte
	hasMIME    bool
	class      string
	flags      *int32
	received   *string
	flagStatus *int
	isRead     *bool
	ext        map[propKey]string
}

// readItemProps collects the properties of a t:Message or t:Item element.
// The schema has already checked the order; this checks the values.
func readItemProps(n *node) (*itemProps, *itemError, *soapFault) {
	p := &itemProps{ext: map[propKey]string{}}
	for _, ch := range n.children {
		switch ch.local {
		case "MimeContent":
			// .NET's base64 decoder, which Exchange uses, skips white
			// space, so line-wrapped base64 is fine.
			raw := strings.Map(func(r rune) rune {
				if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
					return -1
				}
				return r
			}, ch.text.String())
			b, err := base64.StdEncoding.DecodeString(raw)
			if err != nil {
				return nil, newItemError("ErrorMimeContentInvalidBase64String"), nil
			}
			p.mime, p.hasMIME = b, true
		case "ItemClass":
			p.class = ch.value()
		case "ExtendedProperty":
			k, code := parseExtendedFieldURI(ch.child(nsTypes, "ExtendedFieldURI"))
			if code != "" {
				return nil, &itemError{code: code, text: extendedPropertyText(code)}, nil
			}
			vn := ch.child(nsTypes, "Value")
			if vn == nil {
				return nil, nil, notImplFault(&notImplError{what: "multi-valued extended properties (t:Values)"})
			}
			v := vn.text.String()
			code, err := checkPropValue(k.ptype, v)
			if err != nil {
				return nil, nil, notImplFault(err.(*notImplError))
			}
			if code != "" {
				return nil, &itemError{code: code, text: extendedPropertyText(code)}, nil
			}
			v = strings.TrimSpace(v)
			switch {
			case k.tag == tagMessageFlags && k.ptype == "Integer":
				f, _ := strconv.ParseInt(v, 10, 32)
				fl := int32(f)
				p.flags = &fl
			case k.tag == tagMessageDeliveryTime && k.ptype == "SystemTime":
				p.received = &v
			case k.tag == tagFlagStatus && k.ptype == "Integer":
				st, _ := strconv.Atoi(v)
				p.flagStatus = &st
			case k.tag == tagMessageSize:
				return nil, &itemError{code: "ErrorInvalidPropertySet", text: "PR_MESSAGE_SIZE is computed by the store and cannot be set."}, nil
			default:
				p.ext[k] = v
			}
		case "Flag":
			st, _ := flagStatusFromString(ch.child(nsTypes, "FlagStatus").value())
			p.flagStatus = &st
		case "IsRead":
			r := parseBool(ch.value())
			p.isRead = &r
		}
	}
	return p, nil, nil
}

// checkFlagVersion refuses t:Flag in a request versioned before
// Exchange2013, which added it.
func (c *reqCtx) checkFlagVersion(items []*node) *soapFault {
	if c.atLeast2013() {
		return nil
	}
	for _, n := range items {
		if n.child(nsTypes, "Flag") != nil {
			return &soapFault{code: "ErrorIncorrectSchemaVersion", text: errorText("ErrorIncorrectSchemaVersion") + " t:Flag needs Exchange2013 or later."}
		}
	}
	return nil
}

// createItem implements CreateItem for messages given as MIME
// (createitem-operation-email-message; how-to-import-items-by-using-ews-in-exchange).
//
// Draft state follows Exchange: without PR_MESSAGE_FLAGS (0x0E07) the item
// is a draft (MSGFLAG_UNSENT); with it, the value given is stored, so 1 is
// read and 0 unread, neither a draft. The MIME bytes are stored exactly as
// received.
func (s *Server) createItem(c *reqCtx, w *xw) *soapFault {
	items := c.op.child(nsMessages, "Items").children
	if fault := c.checkFlagVersion(items); fault != nil {
		return fault
	}
	for _, n := range items {
		if n.child(nsTypes, "MimeContent") == nil {
			return notImplFault(&notImplError{what: "CreateItem without t:MimeContent"})
		}
	}
	disposition, hasDisposition := c.op.attr("MessageDisposition")
	var target *folder
	var terr *itemError
	if ref := c.op.child(nsMessages, "SavedItemFolderId"); ref != nil {
		target, terr = c.folderRef(ref.children[0])
	} else if c.mbx == nil {
		terr = newItemError("ErrorMissingEmailAddress")
	} else if disposition == "SendAndSaveCopy" {
		target = c.mbx.distinguished["sentitems"]
	} else {
		// SaveOnly without SavedItemFolderId saves to Drafts.
		target = c.mbx.distinguished["drafts"]
	}
	emptyItems := func(w *xw) { w.empty("m:Items") }
	stopped := false
	for _, n := range items {
		switch {
		case c.forced != nil:
			c.message(w, nil, nil, emptyItems)
			continue
		case stopped:
			c.message(w, &itemError{code: "ErrorBatchProcessingStopped", text: errorText("ErrorBatchProcessingStopped"), class: "Warning"}, nil, emptyItems)
			continue
		case terr != nil:
			c.message(w, terr, nil, emptyItems)
			continue
		case n.local == "Message" && !hasDisposition:
			c.message(w, newItemError("ErrorMessageDispositionRequired"), nil, emptyItems)
			continue
		}
		if ie := s.itemFault(c.opName); ie != nil {
			c.message(w, ie, nil, emptyItems)
			continue
		}
		p, ierr, fault := readItemProps(n)
		if fault != nil {
			return fault
		}
		if ierr != nil {
			c.message(w, ierr, nil, emptyItems)
			continue
		}
		mbx := target.mbx
		if mbx.maxMessage > 0 && int64(len(p.mime)) > mbx.maxMessage {
			c.message(w, newItemError("ErrorMessageSizeExceeded"), nil, emptyItems)
			continue
		}
		if mbx.quota > 0 && mbx.size()+int64(len(p.mime)) > mbx.quota {
			// ErrorQuotaExceeded stops the batch: the items after it
			// get ErrorBatchProcessingStopped (responsecode reference).
			c.message(w, newItemError("ErrorQuotaExceeded"), nil, emptyItems)
			stopped = true
			continue
		}
		it := &item{mime: p.mime, class: p.class, ext: p.ext, origin: "CreateItem"}
		if p.flags != nil {
			it.flags = *p.flags
		} else {
			it.flags = msgFlagUnsent | msgFlagRead
		}
		if p.isRead != nil {
			if *p.isRead {
				it.flags |= msgFlagRead
			} else {
				it.flags &^= msgFlagRead
			}
		}
		if p.received != nil {
			t, _ := parseDateTime(*p.received)
			it.received = t
		}
		if p.flagStatus != nil {
			it.flagStatus = *p.flagStatus
		}
		element := n.local
		if disposition == "SendOnly" || disposition == "SendAndSaveCopy" {
			s.recordSent(c, disposition, p.mime)
			if disposition == "SendAndSaveCopy" {
				it.flags = it.flags&^msgFlagUnsent | msgFlagRead
				mbx.addItem(target, it, s.now())
			}
			// No item id is returned for a sent message.
			c.message(w, nil, emptyItems, emptyItems)
			continue
		}
		mbx.addItem(target, it, s.now())
		c.message(w, nil, func(w *xw) {
			w.open("m:Items")
			w.open("t:" + element)
			w.empty("t:ItemId", "Id", it.id, "ChangeKey", it.changeKey)
			w.close("t:" + element)
			w.close("m:Items")
		}, emptyItems)
	}
	return nil
}

func (s *Server) recordSent(c *reqCtx, disposition string, mime []byte) {
	smtp := ""
	if c.mbx != nil {
		smtp = c.mbx.smtp
	}
	s.sent = append(s.sent, SentMessage{Account: c.acct.smtp, Mailbox: smtp, Disposition: disposition, MIME: append([]byte(nil), mime...)})
	if s.opts.TB != nil {
		s.opts.TB.Errorf("ewsserver: %s asked Exchange to SEND a message (MessageDisposition=%s); Mailferry must only ever use SaveOnly", c.acct.smtp, disposition)
	}
}

// updateItem implements UpdateItem for message:IsRead, item:Flag and
// extended properties (web-service-reference/updateitem-operation).
func (s *Server) updateItem(c *reqCtx, w *xw) *soapFault {
	conflict, _ := c.op.attr("ConflictResolution")
	disposition, hasDisposition := c.op.attr("MessageDisposition")
	if disposition == "SendOnly" || disposition == "SendAndSaveCopy" {
		return notImplFault(&notImplError{what: "UpdateItem with MessageDisposition=" + disposition})
	}
	if c.op.child(nsMessages, "SavedItemFolderId") != nil {
		return notImplFault(&notImplError{what: "UpdateItem with SavedItemFolderId"})
	}
	emptyItems := func(w *xw) { w.empty("m:Items") }
	for _, ch := range c.op.child(nsMessages, "ItemChanges").children {
		if c.forced != nil {
			c.message(w, nil, nil, emptyItems)
			continue
		}
		if fault := c.checkFlagVersion(setFieldItems(ch)); fault != nil {
			return fault
		}
		if ie := s.itemFault(c.opName); ie != nil {
			c.message(w, ie, nil, emptyItems)
			continue
		}
		idn := ch.child(nsTypes, "ItemId")
		it, ierr := c.itemRef(idn)
		if ierr != nil {
			c.message(w, ierr, nil, emptyItems)
			continue
		}
		if itemElement(it.class) == "Message" && !hasDisposition {
			c.message(w, newItemError("ErrorMessageDispositionRequired"), nil, emptyItems)
			continue
		}
		ck, hasCK := idn.attr("ChangeKey")
		switch {
		case !hasCK && conflict == "AutoResolve":
			// itemid reference: AutoResolve needs the change key.
			c.message(w, newItemError("ErrorChangeKeyRequiredForWriteOperations"), nil, emptyItems)
			continue
		case hasCK && ck != it.changeKey && conflict == "NeverOverwrite":
			c.message(w, newItemError("ErrorIrresolvableConflict"), nil, emptyItems)
			continue
		}
		apply, content, ierr, fault := c.itemUpdates(it, ch.child(nsTypes, "Updates"))
		if fault != nil {
			return fault
		}
		if ierr != nil {
			c.message(w, ierr, nil, emptyItems)
			continue
		}
		for _, fn := range apply {
			fn()
		}
		it.modified = s.now()
		c.mbx.touch(it, content)
		element := itemElement(it.class)
		c.message(w, nil, func(w *xw) {
			w.open("m:Items")
			w.open("t:" + element)
			w.empty("t:ItemId", "Id", it.id, "ChangeKey", it.changeKey)
			w.close("t:" + element)
			w.close("m:Items")
		}, emptyItems)
	}
	return nil
}

func setFieldItems(change *node) []*node {
	var out []*node
	for _, u := range change.child(nsTypes, "Updates").children {
		if u.local == "SetItemField" && len(u.children) == 2 {
			out = append(out, u.children[1])
		}
	}
	return out
}

// itemUpdates checks every change description of one ItemChange and
// returns the changes to apply; nothing is applied if one is invalid.
// content is false if only the read flag changes.
func (c *reqCtx) itemUpdates(it *item, updates *node) (apply []func(), content bool, ierr *itemError, fault *soapFault) {
	for _, u := range updates.children {
		path := u.children[0]
		uri, _ := path.attr("FieldURI")
		var key propKey
		if path.local == "ExtendedFieldURI" {
			var code string
			if key, code = parseExtendedFieldURI(path); code != "" {
				return nil, false, &itemError{code: code, text: extendedPropertyText(code)}, nil
			}
		} else if uri != "message:IsRead" && uri != "item:Flag" {
			return nil, false, nil, notImplFault(&notImplError{what: fmt.Sprintf("UpdateItem %s of %s", u.local, uri)})
		}
		if u.local == "DeleteItemField" {
			switch {
			case uri == "item:Flag" || (key.tag == tagFlagStatus && key.ptype == "Integer"):
				apply = append(apply, func() { it.flagStatus = flagStatusNone })
				content = true
			case path.local == "ExtendedFieldURI" && key.tag != tagMessageFlags && key.tag != tagMessageDeliveryTime && key.tag != tagMessageSize:
				k := key
				apply = append(apply, func() { delete(it.ext, k) })
				content = true
			default:
				return nil, false, &itemError{code: "ErrorInvalidPropertyDelete", text: "This property cannot be deleted."}, nil
			}
			continue
		}
		// SetItemField: the item element must hold exactly the one
		// property the path names (ChangeDescriptionType).
		target := u.children[1]
		if len(target.children) != 1 {
			return nil, false, newItemError("ErrorIncorrectUpdatePropertyCount"), nil
		}
		prop := target.children[0]
		switch {
		case uri == "message:IsRead" && prop.local == "IsRead":
			read := parseBool(prop.value())
			apply = append(apply, func() {
				if read {
					it.flags |= msgFlagRead
				} else {
					it.flags &^= msgFlagRead
				}
			})
		case uri == "item:Flag" && prop.local == "Flag":
			st, _ := flagStatusFromString(prop.child(nsTypes, "FlagStatus").value())
			apply = append(apply, func() { it.flagStatus = st })
			content = true
		case path.local == "ExtendedFieldURI" && prop.local == "ExtendedProperty":
			p, ie, f := readItemProps(target)
			if f != nil || ie != nil {
				return nil, false, ie, f
			}
			pk, _ := parseExtendedFieldURI(prop.child(nsTypes, "ExtendedFieldURI"))
			if pk != key {
				return nil, false, newItemError("ErrorIncorrectUpdatePropertyCount"), nil
			}
			switch {
			case p.flags != nil:
				// After the first save only the read bit of
				// PR_MESSAGE_FLAGS can change; MSGFLAG_UNSENT stays as
				// it was ([MS-OXCMSG] 2.2.1.6), so a draft stays a draft.
				read := *p.flags&msgFlagRead != 0
				apply = append(apply, func() {
					if read {
						it.flags |= msgFlagRead
					} else {
						it.flags &^= msgFlagRead
					}
				})
			case p.received != nil:
				t, _ := parseDateTime(*p.received)
				apply = append(apply, func() { it.received = t })
				content = true
			case p.flagStatus != nil:
				st := *p.flagStatus
				apply = append(apply, func() { it.flagStatus = st })
				content = true
			default:
				for k, v := range p.ext {
					k, v := k, v
					apply = append(apply, func() {
						if it.ext == nil {
							it.ext = map[propKey]string{}
						}
						it.ext[k] = v
					})
				}
				content = true
			}
		default:
			return nil, false, newItemError("ErrorIncorrectUpdatePropertyCount"), nil
		}
	}
	return apply, content, nil, nil
}

// deleteItem implements DeleteItem (web-service-reference/deleteitem-operation).
// SoftDelete moves the item to Recoverable Items\Deletions, where a
// client's folder listing does not see it; MoveToDeletedItems moves it to
// Deleted Items (or soft-deletes it if it is there already).
func (s *Server) deleteItem(c *reqCtx, w *xw) *soapFault {
	dt, _ := c.op.attr("DeleteType")
	for _, ref := range c.op.child(nsMessages, "ItemIds").children {
		if c.forced != nil {
			c.message(w, nil, nil, nil)
			continue
		}
		if ie := s.itemFault(c.opName); ie != nil {
			c.message(w, ie, nil, nil)
			continue
		}
		it, ierr := c.itemRef(ref)
		if ierr != nil {
			c.message(w, ierr, nil, nil)
			continue
		}
		m := c.mbx
		deleted, dumpster := m.distinguished["deleteditems"], m.distinguished["recoverableitemsdeletions"]
		switch {
		case dt == "HardDelete":
			m.removeItem(it)
		case dt == "MoveToDeletedItems" && it.folder != deleted:
			m.moveItem(it, deleted, s.now())
		default:
			m.moveItem(it, dumpster, s.now())
		}
		c.message(w, nil, nil, nil)
	}
	return nil
}
