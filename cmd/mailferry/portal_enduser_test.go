package main

import (
	"bytes"
	"io"
	"mime/quotedprintable"
	"net/mail"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mailferry/mailferry/internal/testenv"
)

var passwordLinkRe = regexp.MustCompile(`https?://[^\s"<>]+/password\?token=[A-Za-z0-9_%-]+`)

// passwordLink waits for password mail number n (1-based) to the address
// and returns the link in it.
func (p *portalServer) passwordLink(t *testing.T, to string, n int) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		var mine []testenv.ReceivedMail
		for _, m := range p.smtp.Messages() {
			if strings.EqualFold(strings.Join(m.To, ","), to) && bytes.Contains(m.Data, []byte("Enter your passwords")) {
				mine = append(mine, m)
			}
		}
		if len(mine) >= n {
			msg, err := mail.ReadMessage(bytes.NewReader(mine[n-1].Data))
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
			if err != nil {
				t.Fatal(err)
			}
			link := passwordLinkRe.FindString(string(body))
			if link == "" || !strings.HasPrefix(link, p.url+"/password?token=") {
				t.Fatalf("no password link in the mail:\n%s", body)
			}
			return link
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no password mail number %d for %s", n, to)
	return ""
}

// TestPortalEndUserEntersPasswords: in Chromium against `mailferry serve`
// and two Dovecot servers, the admin adds a mailbox by address only and
// clicks "Ask users for their passwords"; the user's link, read from the
// mail the in-process SMTP server received, opens a page in another
// browser that names the project and the admin; the user saves both
// passwords; the link then no longer works; and the admin's trial logs
// in with them (the mailbox becomes Ready).
func TestPortalEndUserEntersPasswords(t *testing.T) {
	src := testenv.StartDovecot(t, testenv.DovecotOptions{})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{})
	src.AddUser(t, "ann", pw)
	dst.AddUser(t, "ann", pw)
	seedUser(t, src, "ann", 0, 3)
	p := startPortalServer(t, "imap://"+dst.Addr()+"?allow_plaintext=1")
	token, _ := p.userAdd(t, "--email", "admin@acme.example")
	var proj struct{ ID string }
	if code := api(t, p.url, token, "POST", "/api/projects", "application/json", jsonBody(map[string]any{"name": "Acme office move",
		"destination_preset": "test-destination", "source": map[string]any{"host": "127.0.0.1", "port": src.Port, "security": "none", "allow_plaintext": true}}), &proj); code != 201 {
		t.Fatalf("create project: %d", code)
	}
	admin := newTab(t, p.url, pw)
	admin.login(p, "admin@acme.example", 1)
	pp := "/projects/" + proj.ID
	admin.open(pp + "/mailboxes")
	admin.typeIn("#r0-source_email", "ann@old.example")
	admin.typeIn("#r0-source_login", "ann")
	admin.typeIn("#r0-destination_email", "ann@new.example")
	admin.typeIn("#r0-destination_login", "ann")
	admin.do(chromedp.Click(chromedp.CSS("#ask_users")))
	if code := admin.submit("#save-mailboxes"); code != 200 {
		t.Fatalf("add by address only: %d", code)
	}
	if !strings.Contains(admin.text("#ask-users"), "1 mailbox has no passwords yet") {
		t.Errorf("ask box: %q", admin.text("#ask-users"))
	}
	admin.shot("enduser-01-added-without-passwords")
	admin.submit("#ask-passwords")
	if !strings.Contains(admin.text("#notice"), "sent to the users of 1 mailbox") || !strings.Contains(admin.text("#mailbox-list"), "Waiting for end user") {
		t.Errorf("after asking: %q / %q", admin.text("#notice"), admin.text("#mailbox-list"))
	}
	admin.shot("enduser-02-waiting-for-end-user")

	link := p.passwordLink(t, "ann@old.example", 1)
	user := newTab(t, p.url, pw)
	if code := user.open(link); code != 200 {
		t.Fatalf("the user's page: %d", code)
	}
	who := user.text("#enduser-who")
	for _, want := range []string{"admin@acme.example", "ann@old.example", "ann@new.example", "Acme office move", "Test Destination"} {
		if !strings.Contains(who, want) {
			t.Errorf("the user's page does not name %q: %q", want, who)
		}
	}
	if user.shown("#logout") || strings.Contains(user.html(), "/projects/") {
		t.Error("the user's page shows more of the project than the request")
	}
	user.shot("enduser-03-enter-passwords")
	user.typeIn("#source_password", pw)
	user.typeIn("#destination_password", pw)
	user.submit("#save-passwords")
	if !strings.Contains(user.text("#enduser-saved"), "Your passwords are saved") {
		t.Errorf("after saving: %q", user.text("main"))
	}
	user.shot("enduser-04-saved")
	if code := user.open(link); code != 410 || user.text("h1") != "This link no longer works" {
		t.Errorf("the used link: %d %q", code, user.text("h1"))
	}
	user.shot("enduser-05-link-used")
	user.checkConsole()

	// The admin's trial logs in with the user's passwords.
	admin.open(pp + "/trial")
	admin.submit("#start-trial")
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && !strings.Contains(admin.text("#trial-table"), "Ready for migration") {
		time.Sleep(300 * time.Millisecond)
	}
	if !strings.Contains(admin.text("#trial-table"), "Ready for migration") {
		t.Errorf("the trial with the user's passwords: %q", admin.text("#trial-table"))
	}
	admin.checkConsole()
}
