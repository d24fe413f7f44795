package mbox_test

import (
	"context"
	"testing"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/connector/conntest"
	"github.com/mailferry/mailferry/internal/connector/mbox"
)

// The suite against a tree of mbox files and against one file (a store
// without folders: every test uses its INBOX).
func TestConformance(t *testing.T) {
	for name, path := range map[string]string{"tree": "/Mail", "file": "/backup.mbox"} {
		t.Run(name, func(t *testing.T) {
			conntest.Run(t, conntest.Harness{NewMailbox: func(t *testing.T) connector.Conn {
				e, err := mbox.Parse("mbox:" + t.TempDir() + path)
				if err != nil {
					t.Fatal(err)
				}
				c, err := mbox.Open(context.Background(), e, connector.OpenOptions{Role: connector.RoleDestination})
				if err != nil {
					t.Fatal(err)
				}
				return c
			}})
		})
	}
}
