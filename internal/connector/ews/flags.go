package ews

import (
	"context"
	"strconv"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
)

// updateBatch is how many items one UpdateItem or DeleteItem changes.
const updateBatch = 100

// SetFlags replaces the flags of these messages with UpdateItem
// (web-service-reference/updateitem-operation), ConflictResolution
// AlwaysOverwrite and MessageDisposition SaveOnly: message:IsRead for
// \Seen, item:Flag (Flagged or NotFlagged) for \Flagged, and
// PR_LAST_VERB_EXECUTED/PR_ICON_INDEX for \Answered and $Forwarded
// (deleted when neither). \Draft cannot be changed on an existing item
// ([MS-OXCMSG] 2.2.1.6) and is ignored; so are keywords. An ID that is
// gone (ErrorItemNotFound) is ignored.
func (c *Conn) SetFlags(ctx context.Context, f connector.Folder, ids []connector.ID, flags []string) error {
	what := c.folderOp("set flags in", f)
	seen, flagged := mail.HasFlag(flags, mail.FlagSeen), mail.HasFlag(flags, mail.FlagFlagged)
	verb, icon := verbOf(flags)
	status := "NotFlagged"
	if flagged {
		status = "Flagged"
	}
	updates := []update{
		{Path: prop{Field: "message:IsRead"}, Value: &messageValue{IsRead: &seen}},
		{Path: prop{Field: "item:Flag"}, Value: &messageValue{Flag: &flagOut{Status: status}}},
	}
	if verb != 0 {
		updates = append(updates,
			update{Path: propLastVerb, Value: &messageValue{Extended: &extPropOut{Path: propLastVerb, Value: strconv.Itoa(verb)}}},
			update{Path: propIconIndex, Value: &messageValue{Extended: &extPropOut{Path: propIconIndex, Value: strconv.Itoa(icon)}}})
	} else {
		updates = append(updates, update{Delete: true, Path: propLastVerb}, update{Delete: true, Path: propIconIndex})
	}
	for start := 0; start < len(ids); start += updateBatch {
		chunk := ids[start:min(start+updateBatch, len(ids))]
		req := &updateItemReq{Conflict: "AlwaysOverwrite", Disposition: "SaveOnly"}
		for _, id := range chunk {
			req.Changes = append(req.Changes, itemChange{Item: itemRef{ID: string(id)}, Updates: updates})
		}
		var resp updateItemResp
		if err := c.cl.call(ctx, what, req, &resp); err != nil {
			return err
		}
		if len(resp.Messages) != len(chunk) {
			return protocolErr(what, "UpdateItem answered %d messages for %d items", len(resp.Messages), len(chunk))
		}
		for _, m := range resp.Messages {
			if m.ok() || isGone(m.Code) {
				continue
			}
			return messageErr(m.respStatus, what)
		}
	}
	return nil
}

// Delete removes exactly these messages with DeleteItem
// (web-service-reference/deleteitem-operation), DeleteType SoftDelete:
// they leave the folder for the mailbox's Recoverable Items, from which
// an administrator can still restore them for the retention period. An
// ID that is gone is not an error.
func (c *Conn) Delete(ctx context.Context, f connector.Folder, ids []connector.ID) error {
	what := c.folderOp("delete messages in", f)
	for start := 0; start < len(ids); start += updateBatch {
		chunk := ids[start:min(start+updateBatch, len(ids))]
		req := &deleteItemReq{DeleteType: "SoftDelete"}
		for _, id := range chunk {
			req.ItemIDs = append(req.ItemIDs, itemRef{ID: string(id)})
		}
		var resp deleteItemResp
		if err := c.cl.call(ctx, what, req, &resp); err != nil {
			return err
		}
		if len(resp.Messages) != len(chunk) {
			return protocolErr(what, "DeleteItem answered %d messages for %d items", len(resp.Messages), len(chunk))
		}
		for _, m := range resp.Messages {
			if m.ok() || isGone(m.Code) {
				continue
			}
			return messageErr(m, what)
		}
	}
	return nil
}
