package graph

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
	"github.com/mailferry/mailferry/internal/pacer"
	"github.com/mailferry/mailferry/internal/testenv/graphserver"
)

const (
	tenantID     = "5d1f9a3c-2b4e-4c6d-8e0f-1a2b3c4d5e6f"
	tenantDomain = "contoso.onmicrosoft.com"
	appID        = "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d"
	appSecret    = "app~Secret.Value_for-tests-0123"
	alice        = "alice@contoso.onmicrosoft.com"
)

// fakeClock is shared by the connector and the server. Sleep moves it on
// at once and records how long was asked for, so that waits are
// asserted without taking time.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 3, 9, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return nil
}

func (c *fakeClock) slept() (n int, total, longest time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range c.sleeps {
		total += d
		longest = max(longest, d)
	}
	return len(c.sleeps), total, longest
}

type env struct {
	srv    *graphserver.Server
	clock  *fakeClock
	shared *sharedLimits
}

// newEnv starts a server with one tenant, an app holding roles (default
// Mail.ReadWrite) and Alice's mailbox.
func newEnv(t *testing.T, opts *graphserver.Options, roles ...string) *env {
	t.Helper()
	clock := newFakeClock()
	if opts == nil {
		opts = &graphserver.Options{}
	}
	opts.Now = clock.Now
	srv := graphserver.Start(t, opts)
	srv.AddTenant(tenantID, tenantDomain)
	if len(roles) == 0 {
		roles = []string{graphserver.RoleMailReadWrite}
	}
	srv.AddApp(tenantID, appID, roles...)
	srv.AddClientSecret(appID, appSecret, time.Time{})
	srv.AddMailbox(tenantID, alice)
	return &env{srv: srv, clock: clock, shared: newSharedLimits()}
}

func (e *env) options(role connector.Role) connector.OpenOptions {
	return connector.OpenOptions{
		Role: role,
		Credentials: connector.Credentials{OAuth: &connector.OAuth{
			ClientID: appID, ClientSecret: appSecret, TokenURL: e.srv.URL + "/{tenant}/oauth2/v2.0/token",
		}},
		RootCAs:    e.srv.CertPool,
		ServiceURL: e.srv.URL,
	}
}

func (e *env) settings() settings {
	s := defaultSettings()
	s.clock = e.clock
	s.backoff = pacer.Backoff{Min: 10 * time.Millisecond, Max: time.Second, Attempts: 6}
	return s
}

func (e *env) openErr(t *testing.T, mailbox string, role connector.Role, change func(*connector.OpenOptions, *settings)) (*Conn, error) {
	t.Helper()
	ep, err := Parse("graph://" + tenantDomain + "/" + mailbox)
	if err != nil {
		t.Fatal(err)
	}
	o, s := e.options(role), e.settings()
	if change != nil {
		change(&o, &s)
	}
	c, err := open(context.Background(), ep, o, e.shared, s)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

func (e *env) open(t *testing.T, role connector.Role, change func(*connector.OpenOptions, *settings)) *Conn {
	t.Helper()
	c, err := e.openErr(t, alice, role, change)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return c
}

func folderByPath(t *testing.T, c *Conn, path string) connector.Folder {
	t.Helper()
	fs, err := c.Folders(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if f.Path.String() == path {
			return f
		}
	}
	t.Fatalf("no folder %q", path)
	return connector.Folder{}
}

// listAll lists f and returns its messages by ID and the listing.
func listAll(t *testing.T, c *Conn, f connector.Folder, opts connector.ListOptions) (map[connector.ID]connector.Message, []connector.Message, connector.Listing) {
	t.Helper()
	byID := map[connector.ID]connector.Message{}
	var all []connector.Message
	l, err := c.List(context.Background(), f, opts, func(ms []connector.Message) error {
		for _, m := range ms {
			if _, dup := byID[m.ID]; dup {
				t.Errorf("message %s listed twice", m.ID)
			}
			byID[m.ID] = m
			all = append(all, m)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("list %q: %v", f.Path.String(), err)
	}
	return byID, all, l
}

func fetchAll(t *testing.T, c *Conn, f connector.Folder, msgs []connector.Message) map[connector.ID][]byte {
	t.Helper()
	out := map[connector.ID][]byte{}
	err := c.Fetch(context.Background(), f, msgs, func(b connector.Body, err error) error {
		if err != nil {
			t.Errorf("fetch %s: %v", b.Message.ID, err)
			return nil
		}
		data, rerr := io.ReadAll(b.Reader)
		if rerr != nil {
			return rerr
		}
		if int64(len(data)) != b.Size {
			t.Errorf("fetch %s: Size %d, read %d", b.Message.ID, b.Size, len(data))
		}
		out[b.Message.ID] = data
		return nil
	})
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	return out
}

func appendMsg(t *testing.T, c *Conn, f connector.Folder, raw []byte, flags []string, date time.Time) connector.AppendResult {
	t.Helper()
	res, err := appendErr(c, f, raw, flags, date)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	return res
}

func appendErr(c *Conn, f connector.Folder, raw []byte, flags []string, date time.Time) (connector.AppendResult, error) {
	p, err := c.Append(context.Background(), f, connector.AppendRequest{Flags: flags, InternalDate: date, Size: int64(len(raw)), Body: bytes.NewReader(raw)})
	if err != nil {
		return connector.AppendResult{}, err
	}
	return p.Wait()
}

// msg builds a small RFC 5322 message.
func msg(n int, extra string) []byte {
	return []byte(fmt.Sprintf("Message-ID: <m%d@example.com>\r\nDate: Mon, 2 Nov 2026 10:%02d:00 +0100\r\nFrom: \"Bob, B.\" <bob@example.com>\r\nTo: alice@contoso.onmicrosoft.com\r\nSubject: message %d\r\n%sContent-Type: text/plain; charset=utf-8\r\n\r\nBody of message %d.\r\n", n, n%60, n, extra, n))
}

func identityOf(raw []byte) mail.Identity {
	return mail.ComputeIdentity(mail.ParseHeaders(headerBlock(bytes.NewReader(raw))), int64(len(raw)))
}

func sortedFlags(f []string) string {
	f = append([]string(nil), f...)
	sort.Strings(f)
	return strings.Join(f, " ")
}
