package graph

import (
	"encoding/json"
	"strings"

	"github.com/mailferry/mailferry/internal/connector"
)

// A folder's cursor holds the delta links of three per-folder delta
// queries (message-delta, changeType=created, updated and deleted), so
// that a listing can say which messages are new, which changed and which
// went, as the connector contract requires: a plain delta query returns
// new and changed messages alike. Each link already encodes the query's
// options (delta-query-messages: "Microsoft Graph automatically encodes
// any OData and custom query options into the @odata.deltaLink").
type cursor struct {
	V       int    `json:"v"`
	Folder  string `json:"f"` // the folder id the links belong to
	Created string `json:"c"`
	Updated string `json:"u"`
	Deleted string `json:"d"`
}

const cursorPrefix = "graph1:"

func (k cursor) encode() connector.Cursor {
	k.V = 1
	b, _ := json.Marshal(k)
	return connector.Cursor(cursorPrefix + string(b))
}

// decodeCursor reads a cursor of folder folderID back; ok is false for
// anything else (another folder's, another connector's, damaged).
func decodeCursor(s connector.Cursor, folderID string, valid func(string) bool) (cursor, bool) {
	raw, found := strings.CutPrefix(string(s), cursorPrefix)
	if !found {
		return cursor{}, false
	}
	var k cursor
	if err := json.Unmarshal([]byte(raw), &k); err != nil || k.V != 1 || k.Folder != folderID {
		return cursor{}, false
	}
	for _, l := range []string{k.Created, k.Updated, k.Deleted} {
		if !valid(l) {
			return cursor{}, false
		}
	}
	return k, true
}
