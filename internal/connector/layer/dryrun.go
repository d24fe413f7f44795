package layer

import (
	"context"
	"io"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
)

// DryRun wraps a destination so that it reads but never writes: Folders,
// List, Statuses and Quota pass through; CreateFolder returns the folder
// if it exists, else a folder that exists only in the dry run (empty
// Name, listed as empty); Append reads the body and stores nothing;
// SetFlags and Delete change nothing. `mailferry copy --dry-run` wraps
// its destination in it, so that whatever the engine does, a dry run
// cannot change the destination.
func DryRun(d connector.Destination) *DryRunning { return &DryRunning{base: base{d}} }

// DryRunning is a destination wrapped by DryRun.
type DryRunning struct{ base }

func (d *DryRunning) CreateFolder(ctx context.Context, p mail.Path, role mail.Role) (connector.Folder, error) {
	fs, err := d.in.Folders(ctx)
	if err != nil {
		return connector.Folder{}, err
	}
	for _, f := range fs {
		if f.Path.Canonical().Equal(p.Canonical()) {
			return f, nil
		}
	}
	return connector.Folder{Path: p.Canonical(), Role: role}, nil
}

func (d *DryRunning) List(ctx context.Context, f connector.Folder, opts connector.ListOptions, fn func([]connector.Message) error) (connector.Listing, error) {
	if f.Name == "" {
		return connector.Listing{}, nil // made by this dry run: empty
	}
	return d.in.List(ctx, f, opts, fn)
}

func (d *DryRunning) Append(ctx context.Context, f connector.Folder, req connector.AppendRequest) (connector.PendingAppend, error) {
	if _, err := io.Copy(io.Discard, io.LimitReader(req.Body, req.Size)); err != nil {
		return nil, &connector.Error{Kind: connector.KindTransient, Op: "read message", Err: err}
	}
	return dryAppend{}, nil
}

type dryAppend struct{}

func (dryAppend) Wait() (connector.AppendResult, error) { return connector.AppendResult{}, nil }

func (d *DryRunning) SetFlags(context.Context, connector.Folder, []connector.ID, []string) error {
	return nil
}
func (d *DryRunning) Delete(context.Context, connector.Folder, []connector.ID) error { return nil }
