package ews_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/connector/conntest"
	"github.com/mailferry/mailferry/internal/connector/ews"
	"github.com/mailferry/mailferry/internal/testenv/ewsserver"
)

// The conformance suite against the in-process EWS server, as source and
// destination: once with each mailbox's own login, once with one admin
// account that acts on every mailbox through ApplicationImpersonation
// (Credentials.Mailbox), as the service does for a CSV of addresses.
//
// The server stores MIME as given, so byte-exact round trips prove only
// that the connector passes bytes through unchanged; a real Exchange
// rebuilds the MIME (ewsserver/LIMITS.md), which is why the connector
// says ByteExact false.
func TestConformanceEWS(t *testing.T) {
	for _, mode := range []string{"own login", "impersonation"} {
		t.Run(mode, func(t *testing.T) {
			s := ewsserver.New(&ewsserver.Options{TB: t})
			if err := s.AddUser("admin@example.com", ewsserver.UserOptions{Password: "admin pw", CanImpersonate: true, NoMailbox: true}); err != nil {
				t.Fatal(err)
			}
			if err := s.Start(); err != nil {
				t.Fatal(err)
			}
			e, err := ews.Parse("ews://" + s.Host())
			if err != nil {
				t.Fatal(err)
			}
			var n atomic.Int32
			conntest.Run(t, conntest.Harness{
				// Exchange cannot import a draft (append.go).
				NoDraft: true,
				NewMailbox: func(t *testing.T) connector.Conn {
					user := fmt.Sprintf("user%d@example.com", n.Add(1))
					if err := s.AddUser(user, ewsserver.UserOptions{Password: "pw " + user}); err != nil {
						t.Fatal(err)
					}
					cred := connector.Credentials{Username: user, Password: "pw " + user}
					if mode == "impersonation" {
						cred = connector.Credentials{Username: "admin@example.com", Password: "admin pw", Mailbox: user}
					}
					c, err := ews.Open(context.Background(), e, connector.OpenOptions{Credentials: cred, RootCAs: s.CertPool()})
					if err != nil {
						t.Fatalf("open %s: %v", user, err)
					}
					return c
				},
			})
		})
	}
}
