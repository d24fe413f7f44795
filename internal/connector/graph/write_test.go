package graph

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
	"github.com/mailferry/mailferry/internal/testenv/graphserver"
)

var received = time.Date(2019, 6, 7, 8, 9, 10, 0, time.UTC)

func TestImportMimePath(t *testing.T) {
	e := newEnv(t, nil, graphserver.RoleMailReadWrite, graphserver.RoleMailAdvancedWrite)
	e.srv.SetImportMime(tenantID, true)
	c := e.open(t, connector.RoleDestination, nil)
	if !c.Features().ByteExact {
		t.Fatal("importMime available but ByteExact false")
	}
	inbox := folderByPath(t, c, "INBOX")
	raw := msg(1, "Received: from mx.example.com by mx.contoso.com; Fri, 7 Jun 2019 08:09:10 +0000\r\n")
	res := appendMsg(t, c, inbox, raw, []string{mail.FlagSeen, mail.FlagFlagged, mail.FlagAnswered}, received)
	if res.ID == "" || res.Rebuilt {
		t.Fatalf("result %+v", res)
	}
	m, ok := e.srv.Message(alice, string(res.ID))
	if !ok {
		t.Fatal("no message with the returned id")
	}
	if m.WritePath != graphserver.WriteImportMIME || m.IsDraft {
		t.Fatalf("written by %q, draft %v", m.WritePath, m.IsDraft)
	}
	if !bytes.Equal(m.MIME, raw) {
		t.Fatal("imported bytes differ")
	}
	if !m.IsRead || m.FlagStatus != "flagged" || !m.ReceivedDateTime.Equal(received) {
		t.Fatalf("read %v, flag %q, received %v (want %v)", m.IsRead, m.FlagStatus, m.ReceivedDateTime, received)
	}
	if m.SentDateTime.IsZero() || !m.SentDateTime.Equal(time.Date(2026, 11, 2, 9, 1, 0, 0, time.UTC)) {
		t.Errorf("sent %v", m.SentDateTime)
	}
	// Listed back: same identity, flags, date.
	byID, _, _ := listAll(t, c, inbox, connector.ListOptions{})
	got := byID[res.ID]
	if got.Identity != identityOf(raw) || sortedFlags(got.Flags) != sortedFlags([]string{mail.FlagAnswered, mail.FlagFlagged, mail.FlagSeen}) || !got.InternalDate.Equal(received) {
		t.Fatalf("listed back as %+v", got)
	}
	if bodies := fetchAll(t, c, inbox, []connector.Message{got}); !bytes.Equal(bodies[res.ID], raw) {
		t.Fatal("fetched bytes differ")
	}
	if n := e.srv.RequestCount(graphserver.RouteCreateFolderMessage); n != 0 {
		t.Errorf("%d JSON creations on an importMime tenant", n)
	}
}

// attachmentMIME is a message with an HTML body (and its plain
// alternative), an inline image, a small attachment and one over 3 MB.
func attachmentMIME(big []byte) []byte {
	var b strings.Builder
	b.WriteString("Message-ID: <att@example.com>\r\nDate: Tue, 3 Nov 2026 07:30:00 -0500\r\nFrom: =?utf-8?q?J=C3=BCrgen?= <juergen@example.de>\r\nTo: Alice <alice@contoso.onmicrosoft.com>, carol@example.com\r\nCc: dave@example.com\r\nReply-To: list@example.com\r\nSubject: =?utf-8?q?Bericht_f=C3=BCr_Q3?=\r\nX-Mailer: Mailferry test\r\nX-Spam-Score: 0.1\r\nList-Id: <q3.example.com>\r\nImportance: high\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n")
	b.WriteString("--outer\r\nContent-Type: multipart/related; boundary=rel\r\n\r\n")
	b.WriteString("--rel\r\nContent-Type: multipart/alternative; boundary=alt\r\n\r\n")
	b.WriteString("--alt\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGr=FC=DFe\r\n")
	b.WriteString("--alt\r\nContent-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p>Gr=FC=DFe <img src=3D\"cid:logo@x\"></p>\r\n--alt--\r\n")
	b.WriteString("--rel\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\nContent-Disposition: inline\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--rel--\r\n")
	b.WriteString("--outer\r\nContent-Type: text/csv; name=\"numbers.csv\"\r\nContent-Disposition: attachment; filename=\"numbers.csv\"\r\n\r\na,b\r\n1,2\r\n")
	b.WriteString("--outer\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"big.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString(big)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--outer--\r\n")
	return []byte(b.String())
}

func TestJSONPathWhenImportMimeIsNotAllowed(t *testing.T) {
	for _, tc := range []struct {
		name     string
		roles    []string
		tenantOn bool
	}{
		{"tenant without the action", []string{graphserver.RoleMailReadWrite, graphserver.RoleMailAdvancedWrite}, false},
		{"app without Mail-Advanced.ReadWrite.All", []string{graphserver.RoleMailReadWrite}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil, tc.roles...)
			e.srv.SetImportMime(tenantID, tc.tenantOn)
			c := e.open(t, connector.RoleDestination, nil)
			if c.Features().ByteExact {
				t.Fatal("ByteExact on the JSON path")
			}
			inbox := folderByPath(t, c, "INBOX")
			res := appendMsg(t, c, inbox, msg(9, ""), nil, received)
			if !res.Rebuilt {
				t.Fatal("JSON path not reported as rebuilt")
			}
			m, _ := e.srv.Message(alice, string(res.ID))
			if m.WritePath != graphserver.WriteJSON || m.IsDraft {
				t.Fatalf("written by %q, draft %v", m.WritePath, m.IsDraft)
			}
			if n := e.srv.RequestCount(graphserver.RouteImportMime); n != 1 {
				t.Errorf("importMime requests %d, want the one probe", n)
			}
		})
	}
}

func TestJSONPathKeepsContent(t *testing.T) {
	e := newEnv(t, nil)
	c := e.open(t, connector.RoleDestination, nil)
	work, err := c.CreateFolder(context.Background(), mail.Path{"Reports"}, mail.RoleNone)
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 3<<20+12345)
	rand.Read(big)
	raw := attachmentMIME(big)
	res := appendMsg(t, c, work, raw, []string{mail.FlagFlagged}, received)
	if !res.Rebuilt || res.ID == "" {
		t.Fatalf("result %+v", res)
	}
	m, _ := e.srv.Message(alice, string(res.ID))
	switch {
	case m.WritePath != graphserver.WriteJSON || m.IsDraft:
		t.Fatalf("written by %q, draft %v", m.WritePath, m.IsDraft)
	case m.FolderName != "Reports":
		t.Errorf("folder %q", m.FolderName)
	case !m.ReceivedDateTime.Equal(received):
		t.Errorf("received %v, want %v (0x0E06)", m.ReceivedDateTime, received)
	case !m.SentDateTime.Equal(time.Date(2026, 11, 3, 12, 30, 0, 0, time.UTC)):
		t.Errorf("sent %v, want the Date header (0x0039)", m.SentDateTime)
	case m.IsRead:
		t.Error("unread message stored as read")
	case m.FlagStatus != "flagged":
		t.Errorf("flag %q", m.FlagStatus)
	case m.Subject != "Bericht für Q3":
		t.Errorf("subject %q", m.Subject)
	case m.InternetMessageID != "<att@example.com>":
		t.Errorf("internetMessageId %q", m.InternetMessageID)
	case m.InternetMessageHeaders["X-Mailer"] != "Mailferry test" || m.InternetMessageHeaders["X-Spam-Score"] != "0.1":
		t.Errorf("custom headers %v", m.InternetMessageHeaders)
	}
	if _, ok := m.InternetMessageHeaders["List-Id"]; ok {
		t.Error("a non-X- header was sent as internetMessageHeaders")
	}
	atts := map[string]graphserver.AttachmentInfo{}
	for _, a := range m.Attachments {
		atts[a.Name] = a
	}
	if a := atts["big.bin"]; !bytes.Equal(a.Content, big) || a.Via != "uploadSession" {
		t.Errorf("big attachment: %d bytes via %q", len(a.Content), a.Via)
	}
	if a := atts["numbers.csv"]; string(a.Content) != "a,b\r\n1,2" || a.ContentType != "text/csv" || a.Via == "uploadSession" {
		t.Errorf("csv attachment: %+v", a)
	}
	var img graphserver.AttachmentInfo
	for _, a := range m.Attachments {
		if a.ContentID == "logo@x" {
			img = a
		}
	}
	if !img.IsInline || img.ContentType != "image/png" || len(img.Content) != 8 {
		t.Errorf("inline image: %+v", img)
	}
	if len(m.Attachments) != 3 {
		t.Errorf("%d attachments, want 3 (the plain alternative is not one)", len(m.Attachments))
	}
	if bytes.Equal(m.MIME, raw) {
		t.Error("the JSON path claims to be byte-exact?")
	}
	// The body: the HTML part, decoded from ISO-8859-1 quoted-printable
	// (the server rebuilds MIME from the JSON body, base64-encoded).
	wantBody := base64.StdEncoding.EncodeToString([]byte(`<p>Grüße <img src="cid:logo@x"></p>`))
	if !bytes.Contains(m.MIME, []byte(wantBody)) {
		t.Errorf("rebuilt MIME lacks the HTML body")
	}
	if img.Name != "image001.png" {
		t.Errorf("inline image named %q", img.Name)
	}
	// Listing gives back the source's identity.
	byID, _, _ := listAll(t, c, work, connector.ListOptions{})
	if got := byID[res.ID]; got.Identity != identityOf(raw) || !got.InternalDate.Equal(received) {
		t.Fatalf("listed back %+v", got)
	}
	if n := e.srv.RequestCount(graphserver.RouteCreateUploadSession); n != 1 {
		t.Errorf("upload sessions %d", n)
	}
}

func TestDraftStaysADraftAndOthersNever(t *testing.T) {
	e := newEnv(t, nil)
	c := e.open(t, connector.RoleDestination, nil)
	drafts := folderByPath(t, c, "Drafts")
	inbox := folderByPath(t, c, "INBOX")
	d := appendMsg(t, c, drafts, msg(1, ""), []string{mail.FlagDraft, mail.FlagSeen}, received)
	n := appendMsg(t, c, inbox, msg(2, ""), []string{mail.FlagSeen}, received)
	dm, _ := e.srv.Message(alice, string(d.ID))
	nm, _ := e.srv.Message(alice, string(n.ID))
	if !dm.IsDraft || dm.WritePath != graphserver.WriteMIMEDraft || !bytes.Equal(dm.MIME, msg(1, "")) || d.Rebuilt {
		t.Errorf("draft: draft %v via %q, rebuilt %v", dm.IsDraft, dm.WritePath, d.Rebuilt)
	}
	if nm.IsDraft || !nm.IsRead {
		t.Errorf("non-draft: draft %v read %v", nm.IsDraft, nm.IsRead)
	}
	for _, m := range e.srv.AllMessages(alice) {
		if m.IsDraft && m.ID != string(d.ID) {
			t.Errorf("message %s in %s is a draft", m.ID, m.FolderName)
		}
	}
}

// A message too large for one importMime request takes the JSON path,
// and says so.
func TestLargeMessageOnImportTenantIsRebuilt(t *testing.T) {
	e := newEnv(t, nil, graphserver.RoleMailReadWrite, graphserver.RoleMailAdvancedWrite)
	e.srv.SetImportMime(tenantID, true)
	c := e.open(t, connector.RoleDestination, nil)
	inbox := folderByPath(t, c, "INBOX")
	big := make([]byte, 3<<20+100)
	rand.Read(big)
	raw := attachmentMIME(big)
	res := appendMsg(t, c, inbox, raw, nil, received)
	m, _ := e.srv.Message(alice, string(res.ID))
	if !res.Rebuilt || m.WritePath != graphserver.WriteJSON || m.IsDraft {
		t.Fatalf("rebuilt %v, path %q, draft %v", res.Rebuilt, m.WritePath, m.IsDraft)
	}
	small := appendMsg(t, c, inbox, msg(3, ""), nil, received)
	if small.Rebuilt {
		t.Fatal("a small message after a large one was rebuilt")
	}
}

func TestWriteErrors(t *testing.T) {
	e := newEnv(t, nil)
	c := e.open(t, connector.RoleDestination, nil)
	inbox := folderByPath(t, c, "INBOX")

	// 413: this message, not the mailbox.
	e.srv.InjectFault(graphserver.Fault{Route: graphserver.RouteCreateFolderMessage, Status: 413})
	_, err := appendErr(c, inbox, msg(1, ""), nil, received)
	if connector.KindOf(err) != connector.KindItem || connector.IsUncertain(err) || !strings.Contains(connector.HintOf(err), "150 MB") {
		t.Fatalf("413: %v (kind %v, hint %q)", err, connector.KindOf(err), connector.HintOf(err))
	}
	// 503 on a creating POST: it may have been stored.
	e.srv.InjectFault(graphserver.Fault{Route: graphserver.RouteCreateFolderMessage, Status: 503})
	_, err = appendErr(c, inbox, msg(2, ""), nil, received)
	if connector.KindOf(err) != connector.KindTransient || !connector.IsUncertain(err) {
		t.Fatalf("503 on create: %v (kind %v, uncertain %v)", err, connector.KindOf(err), connector.IsUncertain(err))
	}
	// 429 on a creating POST: refused before anything was done, so it
	// is sent again after Retry-After.
	e.srv.InjectFault(graphserver.Fault{Route: graphserver.RouteCreateFolderMessage, Status: 429, RetryAfter: 9 * time.Second})
	if _, err := appendErr(c, inbox, msg(3, ""), nil, received); err != nil {
		t.Fatalf("429 on create: %v", err)
	}
	if _, _, longest := e.clock.slept(); longest < 9*time.Second {
		t.Fatalf("longest wait %v, want the 9 s Retry-After", longest)
	}
	// Mail.ReadWrite withdrawn: permission error naming the grant.
	e.srv.SetAppRoles(appID, graphserver.RoleMailRead)
	e.srv.ExpireAccessTokens()
	_, err = appendErr(c, inbox, msg(4, ""), nil, received)
	if connector.KindOf(err) != connector.KindPermission || !strings.Contains(connector.HintOf(err), "grant the application permission Mail.ReadWrite") {
		t.Fatalf("403: %v (kind %v, hint %q)", err, connector.KindOf(err), connector.HintOf(err))
	}
	// Not MIME at all.
	_, err = appendErr(c, inbox, []byte("\x00\x01 not a message"), nil, received)
	if connector.KindOf(err) == connector.KindTransient {
		t.Fatalf("garbage: %v", err)
	}
	// A large attachment whose upload fails leaves no message behind.
	e.srv.SetAppRoles(appID, graphserver.RoleMailReadWrite)
	e.srv.ExpireAccessTokens()
	before := len(e.srv.Messages(alice, "Inbox"))
	big := make([]byte, 3<<20+1)
	e.srv.InjectFault(graphserver.Fault{Route: graphserver.RouteUploadChunk, Status: 400, Count: 1})
	_, err = appendErr(c, inbox, attachmentMIME(big), nil, received)
	if err == nil || connector.IsUncertain(err) {
		t.Fatalf("failed upload: %v (uncertain %v)", err, connector.IsUncertain(err))
	}
	if after := len(e.srv.Messages(alice, "Inbox")); after != before {
		t.Fatalf("a half-written message stayed: %d → %d", before, after)
	}
}

func TestSetFlagsAndDeleteInBatches(t *testing.T) {
	e := newEnv(t, nil)
	var ids []connector.ID
	for i := range 25 {
		ids = append(ids, connector.ID(e.srv.SeedMessage(alice, "inbox", graphserver.Seed{MIME: msg(i, "")})))
	}
	c := e.open(t, connector.RoleDestination, nil)
	inbox := folderByPath(t, c, "INBOX")
	ctx := context.Background()
	stale := connector.ID(e.srv.SeedMessage(alice, "inbox", graphserver.Seed{MIME: msg(99, "")}))
	e.srv.DeleteMessage(alice, string(stale))
	batches := e.srv.RequestCount(graphserver.RouteBatch)
	if err := c.SetFlags(ctx, inbox, append(ids, stale), []string{mail.FlagSeen, mail.FlagFlagged, mail.FlagAnswered}); err != nil {
		t.Fatal(err)
	}
	if n := e.srv.RequestCount(graphserver.RouteBatch) - batches; n != 2 {
		t.Errorf("batches %d, want 2 for 26 updates", n)
	}
	for _, id := range ids {
		m, _ := e.srv.Message(alice, string(id))
		if !m.IsRead || m.FlagStatus != "flagged" || m.ExtendedProperties["Integer 0x1081"] != "102" {
			t.Fatalf("flags not set: read %v flag %q props %v", m.IsRead, m.FlagStatus, m.ExtendedProperties)
		}
	}
	byID, _, _ := listAll(t, c, inbox, connector.ListOptions{})
	if f := byID[ids[0]].Flags; sortedFlags(f) != sortedFlags([]string{mail.FlagSeen, mail.FlagFlagged, mail.FlagAnswered}) {
		t.Errorf("listed flags %v", f)
	}
	if err := c.SetFlags(ctx, inbox, ids[:1], nil); err != nil {
		t.Fatal(err)
	}
	if m, _ := e.srv.Message(alice, string(ids[0])); m.IsRead || m.FlagStatus != "notFlagged" {
		t.Errorf("flags not cleared: %+v", m)
	}
	if err := c.Delete(ctx, inbox, append(ids[:10], stale)); err != nil {
		t.Fatal(err)
	}
	if n := len(e.srv.Messages(alice, "Inbox")); n != 15 {
		t.Errorf("%d left in the inbox, want 15", n)
	}
	sts, errs := c.Statuses(ctx, []connector.Folder{inbox, folderByPath(t, c, "Deleted Items"), {Path: mail.Path{"Gone"}, Name: "AAMkAGgone"}}, nil)
	if errs[0] != nil || sts[0].Messages != 15 || errs[1] != nil || sts[1].Messages != 10 {
		t.Errorf("statuses %+v %v", sts, errs)
	}
	if connector.KindOf(errs[2]) != connector.KindMissingFolder {
		t.Errorf("missing folder status: %v", errs[2])
	}
}

var _ = fmt.Sprint
