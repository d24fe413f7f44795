package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// outboxFrom is the sender written into outbox files. Nothing is delivered,
// but RFC 5322 requires a From and mail clients opening the file expect one.
const outboxFrom = "Mailferry <mailferry@localhost>"

type outbox struct {
	dir string
	log *slog.Logger
}

// NewOutbox returns a Sender for installs without SMTP. Each message is
// written as an RFC 5322 .eml file into dir (created 0700; files 0600,
// named so that they sort by time) and logged at Info level with its
// recipient, subject and full text, so a local admin can follow a login
// link straight from the log. A nil log discards the log lines.
func NewOutbox(dir string, log *slog.Logger) Sender {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &outbox{dir: dir, log: log}
}

func (o *outbox) Send(ctx context.Context, m Message) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("write email to outbox: %w", err)
	}
	now := time.Now()
	env, err := compose(outboxFrom, m, now)
	if err != nil {
		return fmt.Errorf("write email to outbox: %w", err)
	}
	path, err := o.write(env.data, now)
	if err != nil {
		return fmt.Errorf("write email to outbox %s: %w", o.dir, err)
	}
	o.log.InfoContext(ctx, "email written to outbox (no SMTP server configured)",
		slog.String("to", m.To),
		slog.String("subject", m.Subject),
		slog.String("file", path),
		slog.String("body", m.Text),
	)
	return nil
}

// write puts data into place under its final name only once complete, so
// whoever watches the directory never picks up half a message.
func (o *outbox) write(data []byte, now time.Time) (string, error) {
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return "", err
	}
	var r [6]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("generate file name: %w", err)
	}
	// UTC with fixed-width fields, so names sort in the order written;
	// the random part separates messages within one nanosecond.
	name := now.UTC().Format("20060102T150405.000000000") + "-" + hex.EncodeToString(r[:]) + ".eml"
	path := filepath.Join(o.dir, name)

	tmp, err := os.CreateTemp(o.dir, ".outbox-*.tmp") // mode 0600
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	return path, nil
}
