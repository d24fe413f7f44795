package graph

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
)

// flagPatch is the PATCH body (message-update) that gives a copy flags:
// isRead, flag.flagStatus and, for \Answered, PidTagLastVerbExecuted.
// Removing \Answered is not attempted (a 0 would also erase "forwarded").
//
// Keywords are Outlook categories (message resource: "categories"), the
// one free-form list of names a message has, so that a round trip keeps
// them; the list is replaced as a whole, as SetFlags must.
func flagPatch(flags []string) map[string]any {
	status := "notFlagged"
	if mail.HasFlag(flags, mail.FlagFlagged) {
		status = "flagged"
	}
	p := map[string]any{
		"isRead":     mail.HasFlag(flags, mail.FlagSeen),
		"flag":       map[string]string{"flagStatus": status},
		"categories": keywordsOf(flags),
	}
	if mail.HasFlag(flags, mail.FlagAnswered) {
		p["singleValueExtendedProperties"] = []extProp{{ID: propLastVerb, Value: strconv.Itoa(verbReply)}}
	}
	return p
}

func (c *Conn) batchUser() string { return strings.TrimPrefix(c.user, "/v1.0") }

// SetFlags replaces the flags of these copies, 20 per JSON batch. \Draft
// cannot change on Graph (PATCH ignores isDraft) and is left alone; an id
// Graph does not know (404) is skipped.
func (c *Conn) SetFlags(ctx context.Context, f connector.Folder, ids []connector.ID, flags []string) error {
	if len(ids) == 0 {
		return nil
	}
	body := flagPatch(flags)
	items := make([]batchItem, len(ids))
	for i, id := range ids {
		items[i] = batchItem{Method: http.MethodPatch, URL: c.batchUser() + "/messages/" + url.PathEscape(string(id)), Body: body}
	}
	return c.batchResults(ctx, items, accessWrite, "set flags in folder %q", f.Path.String())
}

// Delete deletes these copies, 20 per JSON batch. Graph's DELETE moves a
// message to Deleted Items (and deletes it for good there); an id Graph
// does not know is skipped.
func (c *Conn) Delete(ctx context.Context, f connector.Folder, ids []connector.ID) error {
	if len(ids) == 0 {
		return nil
	}
	items := make([]batchItem, len(ids))
	for i, id := range ids {
		items[i] = batchItem{Method: http.MethodDelete, URL: c.batchUser() + "/messages/" + url.PathEscape(string(id))}
	}
	return c.batchResults(ctx, items, accessWrite, "delete messages in folder %q", f.Path.String())
}

func (c *Conn) deleteOne(ctx context.Context, id string) error {
	resp, err := c.api.do(ctx, request{method: http.MethodDelete, url: c.user + "/messages/" + url.PathEscape(id), idempotent: true})
	if err == nil {
		resp.Close()
		return nil
	}
	if st, _ := apiStatus(err); st == http.StatusNotFound {
		return nil
	}
	return err
}

func (c *Conn) batchResults(ctx context.Context, items []batchItem, a access, op string, args ...any) error {
	res, err := c.batch(ctx, items)
	if err != nil {
		return err
	}
	for _, r := range res {
		if r.Err != nil && r.Status != http.StatusNotFound {
			return c.sortError(r.Err, a, connector.KindItem, connector.KindItem, op, args...)
		}
	}
	return nil
}

// Statuses reads each folder's totalItemCount, 20 folders per JSON
// batch. Graph gives no cheap "unchanged" test (a delta round is one),
// so Unchanged is never set.
func (c *Conn) Statuses(ctx context.Context, folders []connector.Folder, since []connector.Cursor) ([]connector.FolderStatus, []error) {
	sts := make([]connector.FolderStatus, len(folders))
	errs := make([]error, len(folders))
	items := make([]batchItem, len(folders))
	for i, f := range folders {
		items[i] = batchItem{Method: http.MethodGet, URL: c.batchUser() + "/mailFolders/" + url.PathEscape(f.Name) + "?$select=totalItemCount"}
	}
	res, err := c.batch(ctx, items)
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return sts, errs
	}
	for i, r := range res {
		if r.Err != nil {
			errs[i] = c.sortError(r.Err, accessRead, connector.KindMissingFolder, connector.KindConfig, "read the status of folder %q", folders[i].Path.String())
			continue
		}
		var v struct {
			TotalItemCount int64 `json:"totalItemCount"`
		}
		if err := json.Unmarshal(r.Body, &v); err != nil {
			errs[i] = connector.Errorf(connector.KindTransient, "", err, "read the status of folder %q", folders[i].Path.String())
			continue
		}
		sts[i].Messages = v.TotalItemCount
	}
	return sts, errs
}

// keywordsOf is the keywords among flags (not system flags, RFC 3501
// section 2.3.2), never nil so that a PATCH clears the categories.
func keywordsOf(flags []string) []string {
	out := []string{}
	for _, f := range flags {
		if f != "" && !strings.HasPrefix(f, "\\") {
			out = append(out, f)
		}
	}
	return out
}

// keywordFromCategory is a category as an IMAP keyword; ok is false for
// names that are no flag-keyword atom (RFC 3501 section 9: no space,
// parenthesis, brace, quote, backslash, '%', '*', ']' or control
// character), which an IMAP destination could not store. Outlook's own
// colour categories ("Red category") are such names.
func keywordFromCategory(c string) (string, bool) {
	if c == "" || len(c) > 255 {
		return "", false
	}
	for i := 0; i < len(c); i++ {
		b := c[i]
		if b <= ' ' || b >= 0x7f || strings.IndexByte(`(){"\\%*]`, b) >= 0 {
			return "", false
		}
	}
	return c, true
}
