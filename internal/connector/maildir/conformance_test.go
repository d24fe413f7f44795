package maildir_test

import (
	"context"
	"testing"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/connector/conntest"
	"github.com/mailferry/mailferry/internal/connector/maildir"
)

// The suite against a Maildir++ tree and an fs-layout one.
func TestConformance(t *testing.T) {
	for _, layout := range []string{"maildir++", "fs"} {
		t.Run(layout, func(t *testing.T) {
			conntest.Run(t, conntest.Harness{NewMailbox: func(t *testing.T) connector.Conn {
				e, err := maildir.Parse("maildir:" + t.TempDir() + "/Maildir?layout=" + layout)
				if err != nil {
					t.Fatal(err)
				}
				c, err := maildir.Open(context.Background(), e, connector.OpenOptions{Role: connector.RoleDestination})
				if err != nil {
					t.Fatal(err)
				}
				return c
			}})
		})
	}
}
