package eml_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/connector/conntest"
	"github.com/mailferry/mailferry/internal/connector/eml"
	"github.com/mailferry/mailferry/internal/mail"
)

// The suite against a directory of .eml files, written as a mail client
// exports them.
func TestConformance(t *testing.T) {
	dirs := map[connector.Conn]string{}
	var n atomic.Int32
	conntest.Run(t, conntest.Harness{NoFlags: true, DateFromHeader: true,
		NewMailbox: func(t *testing.T) connector.Conn {
			dir := t.TempDir()
			e, err := eml.Parse("eml:" + dir)
			if err != nil {
				t.Fatal(err)
			}
			c, err := eml.Open(context.Background(), e, connector.OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			dirs[c] = dir
			return c
		},
		Seed: func(t *testing.T, c connector.Conn, p mail.Path, raw []byte, _ []string, _ time.Time) {
			dir := dirs[c]
			if !p.IsInbox() {
				dir = filepath.Join(append([]string{dir}, p...)...)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%04d.eml", n.Add(1))), raw, 0o644); err != nil {
				t.Fatal(err)
			}
		}})
}
