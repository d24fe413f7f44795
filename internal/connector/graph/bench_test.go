package graph

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
	"github.com/mailferry/mailferry/internal/testenv/graphserver"
)

// BenchmarkRebuild measures the JSON path's MIME reading for a message
// with an HTML body, an inline image and two attachments.
func BenchmarkRebuild(b *testing.B) {
	raw := attachmentMIME(bytes.Repeat([]byte("0123456789abcdef"), 16<<10)) // 256 KiB attachment
	dir := b.TempDir()
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		rb, err := rebuild(bytes.NewReader(raw), dir, connector.AppendRequest{Size: int64(len(raw))}, mail.Identity{})
		if err != nil {
			b.Fatal(err)
		}
		rb.release()
	}
}

// BenchmarkListAndFetch measures a full listing and fetch of 200 small
// messages from the in-process server, per message.
func BenchmarkListAndFetch(b *testing.B) {
	e := newEnvB(b)
	for i := range 200 {
		e.srv.SeedMessage(alice, "inbox", graphserver.Seed{MIME: msg(i, "")})
	}
	ep, _ := Parse("graph://" + tenantDomain + "/" + alice)
	c, err := open(context.Background(), ep, e.options(connector.RoleSource), e.shared, e.settings())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	fs, _ := c.Folders(context.Background())
	var inbox connector.Folder
	for _, f := range fs {
		if f.Role == mail.RoleInbox {
			inbox = f
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		var all []connector.Message
		if _, err := c.List(context.Background(), inbox, connector.ListOptions{}, func(ms []connector.Message) error {
			all = append(all, ms...)
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		if err := c.Fetch(context.Background(), inbox, all, func(body connector.Body, err error) error {
			if err != nil {
				return err
			}
			_, err = io.Copy(io.Discard, body.Reader)
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/200, "µs/message")
}

func newEnvB(b *testing.B) *env {
	clock := newFakeClock()
	srv := graphserver.Start(b, &graphserver.Options{Now: clock.Now})
	srv.AddTenant(tenantID, tenantDomain)
	srv.AddApp(tenantID, appID, graphserver.RoleMailReadWrite)
	srv.AddClientSecret(appID, appSecret, clock.Now().AddDate(1, 0, 0))
	srv.AddMailbox(tenantID, alice)
	return &env{srv: srv, clock: clock, shared: newSharedLimits()}
}
