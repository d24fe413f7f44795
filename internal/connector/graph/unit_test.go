package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
	"github.com/mailferry/mailferry/internal/testenv/graphserver"
)

// Real Exchange fills internetMessageHeaders for received mail (the test
// server returns none, so the listing peeks there): the identity from
// the headers Graph gives equals the MIME's.
func TestIdentityFromInternetMessageHeaders(t *testing.T) {
	raw := msg(5, "")
	var hs []header
	for _, line := range strings.Split(strings.TrimSpace(string(headerBlock(bytes.NewReader(raw)))), "\r\n") {
		k, v, _ := strings.Cut(line, ": ")
		hs = append(hs, header{Name: k, Value: v})
	}
	hs = append([]header{{Name: "Received", Value: "from x by y"}}, hs...)
	h, ok := headersFromGraph(hs)
	if !ok {
		t.Fatal("complete headers refused")
	}
	if mail.ComputeIdentity(h, 0) != identityOf(raw) {
		t.Fatal("identity from internetMessageHeaders differs from the MIME's")
	}
	// Without Message-ID the size counts, which Graph does not give
	// exactly: a peek is needed.
	if _, ok := headersFromGraph(hs[2:]); ok {
		t.Fatal("headers without Message-ID accepted")
	}
	if _, ok := headersFromGraph([]header{{Name: "X-Custom", Value: "1"}}); ok {
		t.Fatal("X- headers only accepted")
	}
}

func TestSameProp(t *testing.T) {
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{"Integer 0x0E07", "Integer 0xe07", true},
		{"Integer 0x0E07", "integer 0x0e07", true},
		{"Integer 0x0E07", "Integer 0x0E08", false},
		{"Integer 0x0E07", "SystemTime 0x0E07", false},
		{propIdentity, strings.ToUpper(propIdentity), true},
		{propIdentity, "String {6f3a1b0e-5d2c-4f8a-9b7e-1c2d3e4f5a6b} Name Other", false},
		{"", "Integer 0x1", false},
	} {
		if got := sameProp(c.a, c.b); got != c.same {
			t.Errorf("sameProp(%q, %q) = %v", c.a, c.b, got)
		}
	}
}

func TestAPIErrorsSorted(t *testing.T) {
	c := &Conn{}
	for _, tc := range []struct {
		status int
		code   string
		a      access
		kind   connector.Kind
		hint   string
	}{
		{403, "ErrorAccessDenied", accessWrite, connector.KindPermission, "Mail.ReadWrite"},
		{403, "ErrorAccessDenied", accessRead, connector.KindPermission, "Mail.Read"},
		{403, "ErrorQuotaExceeded", accessWrite, connector.KindQuota, "quota"},
		{507, "", accessWrite, connector.KindQuota, "full"},
		{404, "ErrorInvalidUser", accessRead, connector.KindNoAccount, "mailbox"},
		{404, "MailboxNotEnabledForRESTAPI", accessRead, connector.KindNoAccount, "licence"},
		{404, "ErrorItemNotFound", accessRead, connector.KindMissingFolder, ""},
		{413, "RequestEntityTooLarge", accessWrite, connector.KindItem, "150 MB"},
		{429, "TooManyRequests", accessRead, connector.KindTransient, ""},
		{503, "", accessRead, connector.KindTransient, ""},
		{401, "InvalidAuthenticationToken", accessRead, connector.KindAuth, "token"},
	} {
		err := c.sortError(&apiError{Status: tc.status, Code: tc.code, RetryAfter: 3 * time.Second}, tc.a, connector.KindMissingFolder, connector.KindConfig, "do it")
		if connector.KindOf(err) != tc.kind || !strings.Contains(connector.HintOf(err), tc.hint) {
			t.Errorf("%d %s: kind %v hint %q", tc.status, tc.code, connector.KindOf(err), connector.HintOf(err))
		}
		if connector.RetryAfterOf(err) != 3*time.Second {
			t.Errorf("%d %s: Retry-After lost", tc.status, tc.code)
		}
	}
}

func TestQuotaAndBatchThrottling(t *testing.T) {
	e := newEnv(t, nil)
	id := connector.ID(e.srv.SeedMessage(alice, "inbox", graphserver.Seed{MIME: msg(1, "")}))
	c := e.open(t, connector.RoleDestination, nil)
	inbox := folderByPath(t, c, "INBOX")
	e.srv.InjectFault(graphserver.Fault{Route: graphserver.RouteCreateFolderMessage, Status: 403, Code: "ErrorQuotaExceeded"})
	if _, err := appendErr(c, inbox, msg(2, ""), nil, received); connector.KindOf(err) != connector.KindQuota {
		t.Fatalf("quota: %v (kind %v)", err, connector.KindOf(err))
	}
	// A 429 inside a JSON batch is sent again after its Retry-After.
	e.srv.InjectFault(graphserver.Fault{Route: graphserver.RouteUpdateMessage, Status: 429, RetryAfter: 4 * time.Second})
	if err := c.SetFlags(context.Background(), inbox, []connector.ID{id}, []string{mail.FlagSeen}); err != nil {
		t.Fatal(err)
	}
	if m, _ := e.srv.Message(alice, string(id)); !m.IsRead {
		t.Fatal("flag not set after a throttled batch request")
	}
	if _, _, longest := e.clock.slept(); longest < 4*time.Second {
		t.Fatalf("waited %v, want the batch answer's Retry-After", longest)
	}
}

// The registry opens the connector by its URL, and a Graph-to-Graph copy
// keeps what each path promises.
func TestRegistryCopyRoundTrip(t *testing.T) {
	e := newEnv(t, nil, graphserver.RoleMailReadWrite, graphserver.RoleMailAdvancedWrite)
	e.srv.SetImportMime(tenantID, true)
	const bob = "bob@contoso.onmicrosoft.com"
	e.srv.AddMailbox(tenantID, bob)
	src := e.srv.SeedMessage(alice, "inbox", graphserver.Seed{MIME: msg(1, ""), IsRead: true, Received: received})
	reg, err := connector.NewRegistry(Backend())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ep, _, err := reg.Parse("graph://" + tenantID + "/" + alice)
	if err != nil {
		t.Fatal(err)
	}
	s, err := reg.OpenSource(ctx, ep, e.options(connector.RoleSource))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	dep, _, _ := reg.Parse("graph://" + bob)
	d, err := reg.OpenDestination(ctx, dep, e.options(connector.RoleDestination))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if f := connector.FeaturesOf(d); !f.ByteExact || !f.SetFlags || !f.Delete || !f.Status || !f.ReportsRemovals || f.MaxConnections != 4 {
		t.Fatalf("features %+v", f)
	}
	sf, _ := s.Folders(ctx)
	var inbox connector.Folder
	for _, f := range sf {
		if f.Role == mail.RoleInbox {
			inbox = f
		}
	}
	var listed []connector.Message
	if _, err := s.List(ctx, inbox, connector.ListOptions{}, func(ms []connector.Message) error { listed = append(listed, ms...); return nil }); err != nil {
		t.Fatal(err)
	}
	dst, err := d.CreateFolder(ctx, mail.Path{"INBOX"}, mail.RoleInbox)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Fetch(ctx, inbox, listed, func(b connector.Body, err error) error {
		if err != nil {
			return err
		}
		p, err := d.Append(ctx, dst, connector.AppendRequest{Flags: b.Message.Flags, InternalDate: b.Message.InternalDate, Size: b.Size, Body: b.Reader})
		if err != nil {
			return err
		}
		_, err = p.Wait()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var copied []connector.Message
	if _, err := d.List(ctx, dst, connector.ListOptions{}, func(ms []connector.Message) error { copied = append(copied, ms...); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(copied) != 1 || copied[0].Identity != listed[0].Identity || !copied[0].InternalDate.Equal(received) || sortedFlags(copied[0].Flags) != sortedFlags(listed[0].Flags) {
		t.Fatalf("copy %+v of %+v", copied, listed)
	}
	orig, _ := e.srv.Message(alice, src)
	cp, _ := e.srv.Message(bob, string(copied[0].ID))
	if !bytes.Equal(orig.MIME, cp.MIME) || cp.IsDraft {
		t.Fatal("the copy's bytes differ or it is a draft")
	}
}

func FuzzDecodeCursor(f *testing.F) {
	f.Add(string(cursor{Folder: "F", Created: "https://g/c", Updated: "https://g/u", Deleted: "https://g/d"}.encode()))
	f.Add("graph1:{}")
	f.Add("1.2")
	f.Fuzz(func(t *testing.T, s string) {
		k, ok := decodeCursor(connector.Cursor(s), "F", func(l string) bool { return strings.HasPrefix(l, "https://g/") })
		if ok {
			again, ok2 := decodeCursor(k.encode(), "F", func(l string) bool { return strings.HasPrefix(l, "https://g/") })
			if !ok2 || again != k {
				t.Fatalf("cursor does not survive a round trip: %+v", k)
			}
		}
	})
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"graph://contoso.com/a@contoso.com", "graph://a@b.c", "graph://x:y@z/a@b", "graph://t/%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := Parse(s)
		if err != nil {
			return
		}
		if e.User == "" || e.Scheme != Scheme || strings.ContainsAny(e.User, "/ ") {
			t.Fatalf("Parse(%q) = %+v", s, e)
		}
	})
}

func FuzzParseAPIError(f *testing.F) {
	f.Add(403, []byte(`{"error":{"code":"ErrorAccessDenied","message":"Access is denied.","innerError":{"request-id":"x"}}}`))
	f.Add(500, []byte("<html>"))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		e := parseAPIError(status, body)
		if strings.Contains(e.Error(), "\n") {
			t.Fatal("multi-line error message")
		}
	})
}

func FuzzHeadersFromGraph(f *testing.F) {
	b, _ := json.Marshal([]header{{"Message-ID", "<a@b>"}, {"From", "x@y"}})
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var hs []header
		if json.Unmarshal(data, &hs) != nil {
			return
		}
		headersFromGraph(hs)
	})
}

// The JSON path's MIME reading never panics and always releases what it
// spooled.
func FuzzRebuild(f *testing.F) {
	f.Add(msg(1, ""))
	f.Add(attachmentMIME([]byte("tiny")))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nhi\r\n--x--\r\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, raw []byte) {
		rb, err := rebuild(bytes.NewReader(raw), dir, connector.AppendRequest{Size: int64(len(raw))}, mail.Identity{})
		if err != nil {
			return
		}
		if _, err := json.Marshal(rb.msg); err != nil {
			t.Fatalf("rebuilt message does not marshal: %v", err)
		}
		rb.release()
	})
}
