package ewsserver

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzRequest feeds arbitrary bytes through the whole request path short
// of HTTP: the XML parser, the envelope and header checks, schema
// validation and the operation. It must never panic, and whatever it
// answers must be a well-formed document. The seeds are the documented
// requests in testdata, so plain `go test` runs them too.
func FuzzRequest(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.xml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(bytes.ReplaceAll(b, []byte("{{"), []byte("x")))
	}
	f.Add([]byte(soap("", `<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:SyncFolderId><t:DistinguishedFolderId Id="inbox"/></m:SyncFolderId><m:SyncState>AQABAAAAAgA=</m:SyncState><m:MaxChangesReturned>1</m:MaxChangesReturned></m:SyncFolderItems>`)))
	s := New(nil)
	if err := s.AddUser(alice, UserOptions{Password: alicePW}); err != nil {
		f.Fatal(err)
	}
	mb := s.Mailbox(alice)
	if _, err := mb.AddItem(mb.DistinguishedFolderID("inbox"), SeedItem{MIME: []byte(testMIME)}); err != nil {
		f.Fatal(err)
	}
	s.mu.Lock()
	acct := s.users[alice]
	s.mu.Unlock()
	f.Fuzz(func(t *testing.T, body []byte) {
		c, fault := s.prepare(body, acct, &Request{})
		if fault != nil {
			if fault.code == "" {
				t.Fatal("fault without a code")
			}
			return
		}
		out, fault := s.dispatch(c)
		if fault != nil {
			return
		}
		if _, err := parseXML(bytes.NewReader(out)); err != nil {
			t.Fatalf("response is not well-formed: %v\n%s", err, out)
		}
	})
}
