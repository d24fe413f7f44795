package ews

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
	"github.com/mailferry/mailferry/internal/testenv/ewsserver"
)

// schemes returns the authentication schemes of the server's requests.
func schemes(s *ewsserver.Server) map[string]int {
	out := map[string]int{}
	for _, r := range s.Requests() {
		if r.Op != "" {
			out[r.AuthScheme]++
		}
	}
	return out
}

// NTLM is used when the server offers it, Basic when it offers only
// that, and either can be forced; DOMAIN\user and the SMTP address both
// log in.
func TestAuthSchemes(t *testing.T) {
	for _, tc := range []struct {
		name        string
		opts        ewsserver.Options
		query, user string
		want        string
	}{
		{"auto prefers NTLM", ewsserver.Options{}, "", alice, "NTLM"},
		{"auto falls back to Basic", ewsserver.Options{DisableNTLM: true}, "", alice, "Basic"},
		{"auto with NTLM only", ewsserver.Options{DisableBasic: true}, "", alice, "NTLM"},
		{"forced Basic", ewsserver.Options{}, "auth=basic", alice, "Basic"},
		{"forced NTLM", ewsserver.Options{}, "auth=ntlm", alice, "NTLM"},
		{"NTLM with DOMAIN\\user", ewsserver.Options{}, "auth=ntlm", `EXAMPLE\alice`, "NTLM"},
		{"Basic with DOMAIN\\user", ewsserver.Options{}, "auth=basic", `EXAMPLE\alice`, "Basic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opts
			s := server(t, &o)
			c, err := Open(context.Background(), endpoint(t, s, tc.query), options(s, tc.user, pw))
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			defer c.Close()
			if _, err := c.Folders(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := schemes(s)
			if len(got) != 1 || got[tc.want] == 0 {
				t.Errorf("requests authenticated with %v, want only %s", got, tc.want)
			}
		})
	}
}

// A wrong password is KindAuth with a hint about the login's forms, and
// the error never holds the password.
func TestWrongPassword(t *testing.T) {
	for _, query := range []string{"", "auth=basic", "auth=ntlm"} {
		t.Run(query, func(t *testing.T) {
			s := server(t, nil)
			const wrong = "Tr0ub4dor&3-secret"
			_, err := Open(context.Background(), endpoint(t, s, query), options(s, alice, wrong))
			if connector.KindOf(err) != connector.KindAuth {
				t.Fatalf("wrong password: %v (kind %v), want KindAuth", err, connector.KindOf(err))
			}
			hint := connector.HintOf(err)
			if !strings.Contains(hint, `DOMAIN\user`) || !strings.Contains(hint, "auth=basic") {
				t.Errorf("hint does not name the login forms and auth choices: %q", hint)
			}
			if strings.Contains(err.Error(), wrong) || strings.Contains(hint, wrong) {
				t.Errorf("the error holds the password: %v", err)
			}
		})
	}
}

// NTLM forced on a server that offers only Basic says so.
func TestNoNTLM(t *testing.T) {
	s := server(t, &ewsserver.Options{DisableNTLM: true})
	_, err := Open(context.Background(), endpoint(t, s, "auth=ntlm"), options(s, alice, pw))
	if connector.KindOf(err) != connector.KindAuth || !strings.Contains(connector.HintOf(err), "auth=basic") {
		t.Fatalf("NTLM on a Basic-only server: %v (hint %q)", err, connector.HintOf(err))
	}
}

// One admin account with ApplicationImpersonation works on another
// mailbox: the ExchangeImpersonation header and X-AnchorMailbox name it,
// and what is written lands in that mailbox.
func TestImpersonation(t *testing.T) {
	s := server(t, nil, func(s *ewsserver.Server) {
		if err := s.AddUser("admin@example.com", ewsserver.UserOptions{Password: "adminpw", CanImpersonate: true, NoMailbox: true}); err != nil {
			t.Fatal(err)
		}
		if err := s.AddUser("clerk@example.com", ewsserver.UserOptions{Password: "clerkpw"}); err != nil {
			t.Fatal(err)
		}
	})
	for _, how := range []string{"credentials", "address"} {
		t.Run(how, func(t *testing.T) {
			o := options(s, "admin@example.com", "adminpw")
			query := "impersonate=alice%40example.com"
			if how == "credentials" {
				o.Credentials.Mailbox, query = alice, ""
			}
			c, err := Open(context.Background(), endpoint(t, s, query), o)
			if err != nil {
				t.Fatalf("open as admin for alice: %v", err)
			}
			defer c.Close()
			f, err := c.CreateFolder(context.Background(), mail.Path{"From admin " + how}, "")
			if err != nil {
				t.Fatal(err)
			}
			appendMsg(t, c, f, msg(1, ""), nil, time.Time{})
			if _, ok := s.Mailbox(alice).FolderID("From admin " + how); !ok {
				t.Errorf("the folder was not made in alice's mailbox")
			}
			for _, r := range s.Requests() {
				if r.Op == "" || r.Account != "admin@example.com" {
					continue
				}
				if !strings.EqualFold(r.Impersonated, alice) || !strings.EqualFold(r.AnchorMailbox, alice) {
					t.Errorf("%s: impersonated %q, X-AnchorMailbox %q; want %s for both", r.Op, r.Impersonated, r.AnchorMailbox, alice)
				}
			}
		})
	}

	t.Run("denied", func(t *testing.T) {
		o := options(s, "clerk@example.com", "clerkpw")
		o.Credentials.Mailbox = alice
		_, err := Open(context.Background(), endpoint(t, s, ""), o)
		if connector.KindOf(err) != connector.KindPermission {
			t.Fatalf("impersonation without the role: %v (kind %v), want KindPermission", err, connector.KindOf(err))
		}
		if h := connector.HintOf(err); !strings.Contains(h, "New-ManagementRoleAssignment") || !strings.Contains(h, "ApplicationImpersonation") {
			t.Errorf("hint does not say how to grant the role: %q", h)
		}
	})
	t.Run("no such mailbox", func(t *testing.T) {
		o := options(s, "admin@example.com", "adminpw")
		o.Credentials.Mailbox = "nobody@example.com"
		_, err := Open(context.Background(), endpoint(t, s, ""), o)
		if connector.KindOf(err) != connector.KindNoAccount {
			t.Fatalf("impersonating a missing mailbox: %v (kind %v), want KindNoAccount", err, connector.KindOf(err))
		}
		if !strings.Contains(connector.HintOf(err), "does not exist") {
			t.Errorf("hint %q", connector.HintOf(err))
		}
	})
	t.Run("admin without mailbox, not impersonating", func(t *testing.T) {
		_, err := Open(context.Background(), endpoint(t, s, ""), options(s, "admin@example.com", "adminpw"))
		if connector.KindOf(err) != connector.KindNoAccount || !strings.Contains(connector.HintOf(err), "impersonation") {
			t.Fatalf("admin's own (missing) mailbox: %v (hint %q)", err, connector.HintOf(err))
		}
	})
	t.Run("two mailboxes named", func(t *testing.T) {
		o := options(s, "admin@example.com", "adminpw")
		o.Credentials.Mailbox = "clerk@example.com"
		_, err := Open(context.Background(), endpoint(t, s, "impersonate=alice%40example.com"), o)
		if connector.KindOf(err) != connector.KindConfig {
			t.Fatalf("conflicting mailboxes: %v", err)
		}
	})
}

// Every connection goes through OpenOptions.Dial.
func TestDialIsUsed(t *testing.T) {
	s := server(t, nil)
	var dials atomic.Int32
	c := open(t, s, "", func(o *connector.OpenOptions) {
		o.MaxConnections = 3
		o.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
	})
	release := s.Block("FindFolder")
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := c.Folders(context.Background())
			errs <- err
		}()
	}
	waitFor(t, func() bool { return s.InFlight(alice) == 3 })
	release()
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := dials.Load(); n != 3 {
		t.Errorf("%d dials for 3 parallel requests", n)
	}
}

// A refusing outbound policy reads like an unreachable server.
func TestDialRefused(t *testing.T) {
	s := server(t, nil)
	o := options(s, alice, pw)
	o.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return nil, errors.New("outbound connection refused by policy")
	}
	_, err := Open(context.Background(), endpoint(t, s, ""), o)
	if connector.KindOf(err) != connector.KindConnect || strings.Contains(err.Error(), "policy") {
		t.Fatalf("refused dial: %v (kind %v)", err, connector.KindOf(err))
	}
}

// The certificate is checked unless the user opts out.
func TestTLS(t *testing.T) {
	s := server(t, nil)
	o := options(s, alice, pw)
	o.RootCAs = nil
	_, err := Open(context.Background(), endpoint(t, s, ""), o)
	if connector.KindOf(err) != connector.KindTLS {
		t.Fatalf("untrusted certificate: %v (kind %v)", err, connector.KindOf(err))
	}
	o.InsecureSkipVerify = true
	c, err := Open(context.Background(), endpoint(t, s, ""), o)
	if err != nil {
		t.Fatalf("with InsecureSkipVerify: %v", err)
	}
	c.Close()
}

// The OWA address the server's users know leads to its EWS endpoint.
func TestOWAAddressOpens(t *testing.T) {
	s := server(t, nil)
	addr, err := EndpointFromUserInput(s.OWAURL())
	if err != nil {
		t.Fatal(err)
	}
	e, err := Parse(addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Open(context.Background(), e, options(s, alice, pw))
	if err != nil {
		t.Fatalf("open %s (from %s): %v", addr, s.OWAURL(), err)
	}
	c.Close()
}

// A server that asks an authenticated connection to log in again (a
// dropped NTLM context) is answered by logging in again on a new
// connection and sending the request once more.
func TestReauthenticates(t *testing.T) {
	s := server(t, nil)
	c := open(t, s, "")
	s.Inject(ewsserver.Fault{Op: "FindFolder", HTTPStatus: 401, Count: 1})
	if _, err := c.Folders(context.Background()); err != nil {
		t.Fatalf("after one 401: %v", err)
	}
	// A server that keeps refusing one operation while the login works
	// is a transient problem, not a wrong password.
	s.Inject(ewsserver.Fault{Op: "FindFolder", HTTPStatus: 401})
	_, err := c.Folders(context.Background())
	if connector.KindOf(err) != connector.KindTransient {
		t.Fatalf("401 on one operation only: %v (kind %v)", err, connector.KindOf(err))
	}
}

// A connection on which the server stops answering is dropped after the
// stall timeout, as a transient error.
func TestStall(t *testing.T) {
	s := server(t, nil)
	c := open(t, s, "", func(o *connector.OpenOptions) { o.StallTimeout = 300 * time.Millisecond })
	release := s.Block("FindFolder")
	defer release()
	start := time.Now()
	_, err := c.Folders(context.Background())
	if connector.KindOf(err) != connector.KindTransient || !strings.Contains(err.Error(), "no data from the server") {
		t.Fatalf("stalled server: %v (kind %v)", err, connector.KindOf(err))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v to notice a stall of 300ms", d)
	}
}

// Cancelling the context stops a request at once.
func TestCancel(t *testing.T) {
	s := server(t, nil)
	c := open(t, s, "")
	release := s.Block("FindFolder")
	defer release()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		waitFor(t, func() bool { return s.InFlight(alice) == 1 })
		cancel()
	}()
	if _, err := c.Folders(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled request: %v", err)
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}
