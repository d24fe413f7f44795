package ewsserver

import (
	"strconv"
	"strings"
)

// folderRef resolves a t:FolderId or t:DistinguishedFolderId element to a
// folder of the mailbox the request acts on.
func (c *reqCtx) folderRef(n *node) (*folder, *itemError) {
	switch n.local {
	case "DistinguishedFolderId":
		mbx := c.mbx
		if mb := n.child(nsTypes, "Mailbox"); mb != nil {
			if ea := mb.child(nsTypes, "EmailAddress"); ea != nil {
				u := c.s.users[strings.ToLower(ea.value())]
				if u == nil || u.mbx == nil {
					return nil, newItemError("ErrorNonExistentMailbox")
				}
				if u.mbx != c.mbx {
					// Delegate access needs folder permissions, which
					// this server does not model.
					return nil, newItemError("ErrorAccessDenied")
				}
				mbx = u.mbx
			}
		}
		if mbx == nil {
			return nil, newItemError("ErrorMissingEmailAddress")
		}
		id, _ := n.attr("Id")
		f := mbx.distinguished[id]
		if f == nil {
			return nil, newItemError("ErrorFolderNotFound")
		}
		return f, nil
	default: // FolderId
		id, _ := n.attr("Id")
		switch {
		case id == "":
			return nil, newItemError("ErrorInvalidIdEmpty")
		case !idWellFormed(id, idKindFolder):
			return nil, newItemError("ErrorInvalidIdMalformed")
		}
		if c.mbx == nil {
			return nil, newItemError("ErrorFolderNotFound")
		}
		f := c.mbx.folders[id]
		if f == nil {
			return nil, newItemError("ErrorFolderNotFound")
		}
		return f, nil
	}
}

// writeFolder writes a folder in BaseFolderType order (FolderId,
// ParentFolderId, FolderClass, DisplayName, TotalCount, ChildFolderCount,
// ExtendedProperty, ..., DistinguishedFolderId), then FolderType's
// UnreadCount for the types that have it.
func (c *reqCtx) writeFolder(w *xw, f *folder, sh *shape) {
	el := "t:" + f.element
	w.open(el)
	w.empty("t:FolderId", "Id", f.id, "ChangeKey", f.changeKey)
	if f.parent != nil && sh.has("folder:ParentFolderId", false) {
		w.empty("t:ParentFolderId", "Id", f.parent.id, "ChangeKey", f.parent.changeKey)
	}
	if f.class != "" && sh.has("folder:FolderClass", false) {
		w.leaf("t:FolderClass", f.class)
	}
	if sh.has("folder:DisplayName", true) {
		w.leaf("t:DisplayName", f.name)
	}
	if sh.has("folder:TotalCount", true) {
		w.leaf("t:TotalCount", strconv.Itoa(len(f.items)))
	}
	if sh.has("folder:ChildFolderCount", true) {
		w.leaf("t:ChildFolderCount", strconv.Itoa(len(f.children)))
	}
	for _, k := range sh.ext {
		if v, ok := folderPropValue(f, k); ok {
			writeExtendedProperty(w, k, v)
		}
	}
	if f.distinguished != "" && c.atLeast2013() && sh.has("folder:DistinguishedFolderId", false) {
		w.leaf("t:DistinguishedFolderId", f.distinguished)
	}
	if (f.element == "Folder" || f.element == "TasksFolder") && sh.has("folder:UnreadCount", true) {
		w.leaf("t:UnreadCount", strconv.Itoa(f.unread()))
	}
	w.close(el)
}

func writeExtendedProperty(w *xw, k propKey, v string) {
	w.open("t:ExtendedProperty")
	var attrs []string
	switch {
	case k.tag >= 0:
		// Exchange echoes tags in lower case without leading zeros,
		// e.g. 0xe07; clients must compare them as numbers.
		attrs = []string{"PropertyTag", "0x" + strconv.FormatInt(int64(k.tag), 16)}
	default:
		if guidPatternLike(k.set) {
			attrs = []string{"PropertySetId", k.set}
		} else {
			attrs = []string{"DistinguishedPropertySetId", k.set}
		}
		if k.name != "" {
			attrs = append(attrs, "PropertyName", k.name)
		} else {
			attrs = append(attrs, "PropertyId", strconv.Itoa(k.id))
		}
	}
	attrs = append(attrs, "PropertyType", k.ptype)
	w.empty("t:ExtendedFieldURI", attrs...)
	w.leaf("t:Value", v)
	w.close("t:ExtendedProperty")
}

func guidPatternLike(s string) bool { return len(s) == 36 && strings.Count(s, "-") == 4 }

// findFolder implements FindFolder (web-service-reference/findfolder-operation).
func (s *Server) findFolder(c *reqCtx, w *xw) *soapFault {
	sh, fault := c.shape(c.op.child(nsMessages, "FolderShape"), true)
	if fault != nil {
		return fault
	}
	traversal, _ := c.op.attr("Traversal")
	if traversal == "SoftDeleted" {
		return notImplFault(&notImplError{what: "FindFolder Traversal=\"SoftDeleted\""})
	}
	view := c.op.child(nsMessages, "IndexedPageFolderView")
	for _, ref := range c.op.child(nsMessages, "ParentFolderIds").children {
		if c.forced != nil {
			c.message(w, nil, nil, nil)
			continue
		}
		if sh.invalid != "" {
			c.message(w, &itemError{code: "ErrorInvalidPropertyRequest", text: errorText("ErrorInvalidPropertyRequest"), fieldURI: sh.invalid}, nil, nil)
			continue
		}
		f, ierr := c.folderRef(ref)
		if ierr != nil {
			c.message(w, ierr, nil, nil)
			continue
		}
		list := f.children
		if traversal == "Deep" {
			list = f.descendants()
		}
		pg, ierr := paginate(len(list), view, s.opts.FindCountLimit)
		if ierr != nil {
			c.message(w, ierr, nil, nil)
			continue
		}
		c.message(w, nil, func(w *xw) {
			w.open("m:RootFolder", pg.attrs(len(list))...)
			w.open("t:Folders")
			for _, sub := range list[pg.start:pg.end] {
				c.writeFolder(w, sub, sh)
			}
			w.close("t:Folders")
			w.close("m:RootFolder")
		}, nil)
	}
	return nil
}

// getFolder implements GetFolder (web-service-reference/getfolder-operation).
func (s *Server) getFolder(c *reqCtx, w *xw) *soapFault {
	sh, fault := c.shape(c.op.child(nsMessages, "FolderShape"), true)
	if fault != nil {
		return fault
	}
	emptyFolders := func(w *xw) { w.empty("m:Folders") }
	for _, ref := range c.op.child(nsMessages, "FolderIds").children {
		if c.forced != nil {
			c.message(w, nil, nil, emptyFolders)
			continue
		}
		if sh.invalid != "" {
			c.message(w, &itemError{code: "ErrorInvalidPropertyRequest", text: errorText("ErrorInvalidPropertyRequest"), fieldURI: sh.invalid}, nil, emptyFolders)
			continue
		}
		f, ierr := c.folderRef(ref)
		if ierr != nil {
			c.message(w, ierr, nil, emptyFolders)
			continue
		}
		c.message(w, nil, func(w *xw) {
			w.open("m:Folders")
			c.writeFolder(w, f, sh)
			w.close("m:Folders")
		}, emptyFolders)
	}
	return nil
}

// createFolder implements CreateFolder
// (web-service-reference/createfolder-operation): the parent must exist
// (ErrorParentFolderNotFound) and a name may occur once per parent
// (ErrorFolderExists).
func (s *Server) createFolder(c *reqCtx, w *xw) *soapFault {
	emptyFolders := func(w *xw) { w.empty("m:Folders") }
	parentRef := c.op.child(nsMessages, "ParentFolderId").children[0]
	parent, perr := c.folderRef(parentRef)
	if perr != nil && (perr.code == "ErrorFolderNotFound" || perr.code == "ErrorInvalidIdMalformed") {
		perr = newItemError("ErrorParentFolderNotFound")
	}
	for _, fe := range c.op.child(nsMessages, "Folders").children {
		if c.forced != nil || perr != nil {
			c.message(w, perr, nil, emptyFolders)
			continue
		}
		name := ""
		if dn := fe.child(nsTypes, "DisplayName"); dn != nil {
			name = dn.text.String()
		}
		class := ""
		if fc := fe.child(nsTypes, "FolderClass"); fc != nil {
			class = fc.value()
		}
		element := fe.local
		switch {
		case strings.TrimSpace(name) == "":
			c.message(w, &itemError{code: "ErrorFolderSavePropertyError", text: "The folder save operation failed due to invalid property values: DisplayName is required."}, nil, emptyFolders)
			continue
		case element != "Folder" && class != "":
			c.message(w, newItemError("ErrorNoFolderClassOverride"), nil, emptyFolders)
			continue
		case parent.childNamed(name) != nil:
			c.message(w, newItemError("ErrorFolderExists"), nil, emptyFolders)
			continue
		}
		switch element {
		case "CalendarFolder":
			class = "IPF.Appointment"
		case "ContactsFolder":
			class = "IPF.Contact"
		case "TasksFolder":
			class = "IPF.Task"
		default:
			if class == "" {
				class = "IPF.Note"
			}
			element = elementForClass(class)
		}
		f := c.mbx.newFolder(parent, name, class, element, "")
		c.message(w, nil, func(w *xw) {
			w.open("m:Folders")
			w.open("t:" + f.element)
			w.empty("t:FolderId", "Id", f.id, "ChangeKey", f.changeKey)
			w.close("t:" + f.element)
			w.close("m:Folders")
		}, emptyFolders)
	}
	return nil
}

// page is the window of a FindItem or FindFolder result.
type page struct {
	start, end int
	next       int
	last       bool
	paged      bool
}

// attrs are RootFolder's FindResponsePagingAttributes.
func (p page) attrs(total int) []string {
	var a []string
	if p.paged {
		a = append(a, "IndexedPagingOffset", strconv.Itoa(p.next))
	}
	return append(a, "TotalItemsInView", strconv.Itoa(total), "IncludesLastItemInRange", strconv.FormatBool(p.last))
}

// paginate applies IndexedPageItemView/IndexedPageFolderView and the
// EWSFindCountLimit (how-to-perform-paged-searches-by-using-ews-in-exchange:
// IndexedPagingOffset is the offset of the first entry not returned).
func paginate(total int, view *node, limit int) (page, *itemError) {
	if view == nil {
		end := min(total, limit)
		return page{start: 0, end: end, next: end, last: end == total}, nil
	}
	max := -1
	if v, ok := view.attr("MaxEntriesReturned"); ok {
		max, _ = strconv.Atoi(strings.TrimSpace(v))
		if max <= 0 {
			return page{}, newItemError("ErrorInvalidPagingMaxRows")
		}
	}
	ov, _ := view.attr("Offset")
	offset, _ := strconv.Atoi(strings.TrimSpace(ov))
	if offset < 0 {
		return page{}, newItemError("ErrorInvalidIndexedPagingParameters")
	}
	bp, _ := view.attr("BasePoint")
	take := func(avail int) int {
		n := avail
		if max >= 0 {
			n = min(n, max)
		}
		return min(n, limit)
	}
	if bp == "End" {
		endIdx := total - offset
		if endIdx < 0 {
			endIdx = 0
		}
		n := take(endIdx)
		return page{start: endIdx - n, end: endIdx, next: offset + n, last: endIdx-n == 0, paged: true}, nil
	}
	start := min(offset, total)
	n := take(total - start)
	return page{start: start, end: start + n, next: start + n, last: start+n == total, paged: true}, nil
}

// shape parses a FolderShape or ItemShape; an unimplemented property is a
// fault, an invalid extended property path a per-message error stored in
// shape.invalid's stead.
func (c *reqCtx) shape(n *node, folders bool) (*shape, *soapFault) {
	sh, err := parseShape(n, folders)
	if err != nil {
		if ne, ok := err.(*notImplError); ok {
			return nil, notImplFault(ne)
		}
		if ie, ok := err.(*itemError); ok {
			// Exchange rejects a bad ExtendedFieldURI for the whole
			// request.
			return nil, &soapFault{code: ie.code, text: ie.text}
		}
	}
	if !folders && !c.atLeast2013() && sh.fields["item:Flag"] {
		return nil, &soapFault{code: "ErrorIncorrectSchemaVersion", text: errorText("ErrorIncorrectSchemaVersion") + " item:Flag needs Exchange2013 or later."}
	}
	return sh, nil
}
