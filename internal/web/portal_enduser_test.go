package web

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/service"
)

var passwordLinkRe = regexp.MustCompile(`http://\S+/password\?token=[A-Za-z0-9_%-]+`)

func (e *portalEnv) mailsTo(to string) []sentMail {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []sentMail
	for _, m := range e.mail {
		if m.to == to {
			out = append(out, m)
		}
	}
	return out
}

// The admin adds mailboxes by address only and asks their users; each
// user's single-use link opens a page without a session that names the
// project and the admin and takes their two passwords. Used, unknown,
// retired and bogus links all get the same page; the form needs the
// pre-session CSRF token; resending is limited; another user cannot ask.
func TestPortalEndUserPasswords(t *testing.T) {
	e := newPortalEnv(t)
	ctx := context.Background()
	admin := e.newBrowser()
	admin.login("admin@example.com")
	_, body := admin.post("/migrations/new", url.Values{"name": {"Office move"}, "type": {"imap"}, "host": {"mail.old.example"}, "security": {"tls"}, "preset": {"new-mail"}})
	id := projectRe.FindStringSubmatch(body)[1]
	pp := "/projects/" + id
	// Without the box ticked, the passwords are required.
	if code, _ := admin.post(pp+"/mailboxes", url.Values{"source_email": {"ann@old.example"}, "destination_email": {"ann@new.example"}}); code != 400 {
		t.Errorf("no passwords, box not ticked: %d", code)
	}
	code, body := admin.post(pp+"/mailboxes", url.Values{"ask_users": {"yes"}, "source_email": {"ann@old.example", "bob@old.example"},
		"destination_email": {"ann@new.example", "bob@new.example"}})
	if code != 200 || !strings.Contains(body, "2 mailboxes have no passwords yet") || !strings.Contains(body, `id="ask-passwords"`) {
		t.Fatalf("add without passwords: %d\n%s", code, body)
	}
	owner := ownerID(t, e, "admin@example.com")
	if _, err := e.svc.StartPass(ctx, owner, id, service.PassInput{Kind: service.PassTrial}); err == nil || !strings.Contains(err.Error(), "no stored passwords") {
		t.Errorf("a trial without passwords: %v", err)
	}
	code, body = admin.post(pp+"/ask-passwords", nil)
	if code != 200 || !strings.Contains(body, "sent to the users of 2 mailboxes") || strings.Count(body, "Waiting for end user") < 2 ||
		strings.Contains(body, `id="ask-passwords"`) {
		t.Fatalf("ask: %d\n%s", code, body)
	}
	if _, err := e.svc.StartPass(ctx, owner, id, service.PassInput{Kind: service.PassTrial}); err == nil || !strings.Contains(err.Error(), "waiting for its user") {
		t.Errorf("a trial while waiting: %v", err)
	}
	annMail := e.mailsTo("ann@old.example")
	if len(annMail) != 1 || !strings.Contains(annMail[0].text, "admin@example.com is moving your email from ann@old.example to ann@new.example") {
		t.Fatalf("mail to ann: %+v", annMail)
	}
	link := passwordLinkRe.FindString(annMail[0].text)
	if link == "" {
		t.Fatal("no link in the mail")
	}
	u, _ := url.Parse(link)
	token := u.Query().Get("token")

	// Ann, without a session.
	ann := e.newBrowser()
	code, page := ann.get(u.RequestURI())
	if code != 200 || !strings.Contains(page, "admin@example.com") || !strings.Contains(page, "Office move") || !strings.Contains(page, "ann@new.example") {
		t.Fatalf("the end user's page: %d\n%s", code, page)
	}
	for _, leak := range []string{"bob@old.example", "mail.old.example", "My Migrations", "/projects/"} {
		if strings.Contains(page, leak) {
			t.Errorf("the end user's page shows %q", leak)
		}
	}
	checkLabels(t, "enduser", page)
	// A forged form without the pre-session cookie.
	if code, _ := e.newBrowser().post("/password", url.Values{"token": {token}, "csrf": {"forged-forged-forged-forged-forged-forged"},
		"source_password": {"a"}, "destination_password": {"b"}}); code != 403 {
		t.Errorf("POST without the pre-session token: %d", code)
	}
	if code, body := ann.post("/password", url.Values{"token": {token}, "source_password": {"Secret-old"}}); code != 400 || !strings.Contains(body, "Enter the password of your new mailbox ann@new.example") ||
		strings.Contains(body, "Secret-old") {
		t.Errorf("one password missing: %d", code)
	}
	if code, body := ann.post("/password", url.Values{"token": {token}, "source_password": {"Secret-old"}, "destination_password": {"Secret-new"}}); code != 200 ||
		!strings.Contains(body, "Your passwords are saved") {
		t.Errorf("save: %d\n%s", code, body)
	}
	// Used: the same page as a link that never existed.
	_, used := ann.get(u.RequestURI())
	_, bogus := ann.get("/password?token=" + strings.Repeat("x", 43))
	_, empty := ann.get("/password")
	if !strings.Contains(used, "This link no longer works") || used != bogus || used != empty {
		t.Error("a used link's page differs from an unknown one's")
	}
	if code, _ := ann.post("/password", url.Values{"token": {token}, "source_password": {"x"}, "destination_password": {"y"}}); code != http.StatusGone {
		t.Errorf("reusing the link: %d", code)
	}
	page2, err := e.svc.MailboxPage(ctx, owner, id, service.MailboxQuery{Search: "ann@"})
	must(t, err)
	if m := page2.Mailboxes[0]; !m.HasPasswords || m.Status != service.StatusNotStarted {
		t.Errorf("after ann saved: %+v", m)
	}

	// Bob: resend retires the old link; the third link within an hour is
	// the last.
	pg, err := e.svc.MailboxPage(ctx, owner, id, service.MailboxQuery{Search: "bob@"})
	must(t, err)
	bobID := pg.Mailboxes[0].ID
	first := passwordLinkRe.FindString(e.mailsTo("bob@old.example")[0].text)
	admin.get(pp + "/mailboxes")
	for i := 2; i <= 4; i++ {
		code, _ := admin.post(pp+"/ask-passwords", url.Values{"mailbox_id": {bobID}})
		if want := 200; i == 4 {
			if code != http.StatusTooManyRequests {
				t.Errorf("link %d within the hour: %d, want 429", i, code)
			}
		} else if code != want {
			t.Errorf("resend %d: %d", i, code)
		}
	}
	if n := len(e.mailsTo("bob@old.example")); n != 3 {
		t.Errorf("bob got %d mails, want 3", n)
	}
	fu, _ := url.Parse(first)
	if _, body := e.newBrowser().get(fu.RequestURI()); !strings.Contains(body, "This link no longer works") {
		t.Error("an older link still works after a resend")
	}
	// Everyone was asked: asking all again is refused with what to do.
	if code, body := admin.post(pp+"/ask-passwords", nil); code != 400 || !strings.Contains(body, "click Resend on the mailbox") {
		t.Errorf("ask again with everyone asked: %d", code)
	}
	// Another user cannot ask for passwords in this project.
	other := e.newBrowser()
	other.login("other@example.com")
	if code, _ := other.post(pp+"/ask-passwords", nil); code != 404 {
		t.Errorf("another user asks: %d", code)
	}
}
