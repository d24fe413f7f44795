package graph_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/connector/conntest"
	"github.com/mailferry/mailferry/internal/connector/graph"
	"github.com/mailferry/mailferry/internal/testenv/graphserver"
)

// The conformance suite against the in-process Graph server, opened
// through the Backend as the registry does, on a tenant that allows
// importMime (byte-exact copies; the JSON path is not byte-exact and is
// covered by write_test.go).
func TestConformanceGraph(t *testing.T) {
	const tenant, domain = "5d1f9a3c-2b4e-4c6d-8e0f-1a2b3c4d5e6f", "contoso.onmicrosoft.com"
	const app, secret = "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d", "conformance~secret"
	srv := graphserver.Start(t, nil)
	srv.AddTenant(tenant, domain)
	srv.AddApp(tenant, app, graphserver.RoleMailReadWrite, graphserver.RoleMailAdvancedWrite)
	srv.SetImportMime(tenant, true)
	srv.AddClientSecret(app, secret, time.Time{})
	b := graph.Backend()
	var n atomic.Int32
	conntest.Run(t, conntest.Harness{
		NewMailbox: func(t *testing.T) connector.Conn {
			user := "user" + strconv.Itoa(int(n.Add(1))) + "@" + domain
			srv.AddMailbox(tenant, user)
			e, err := b.Parse("graph://" + domain + "/" + user)
			if err != nil {
				t.Fatal(err)
			}
			c, err := b.Open(context.Background(), e, connector.OpenOptions{
				Role: connector.RoleDestination,
				Credentials: connector.Credentials{OAuth: &connector.OAuth{
					ClientID: app, ClientSecret: secret, TokenURL: srv.TokenURL("{tenant}")}},
				RootCAs: srv.CertPool, ServiceURL: srv.URL,
			})
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
	})
}
