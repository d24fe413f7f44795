package layer

import (
	"context"
	"errors"
	"fmt"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
)

// base passes every call to in. Layers embed it and override what they
// change.
type base struct{ in connector.Conn }

var (
	_ connector.Source       = base{}
	_ connector.Destination  = base{}
	_ connector.FlagSetter   = base{}
	_ connector.Deleter      = base{}
	_ connector.QuotaReader  = base{}
	_ connector.StatusReader = base{}
	_ connector.Warmer       = base{}
	_ connector.FolderNoter  = base{}
	_ connector.Wrapper      = base{}
)

// errNotSupported is what a layer answers for an ability the connector
// underneath lacks; callers that check Features never see it.
func errNotSupported(what string) error {
	return &connector.Error{Kind: connector.KindConfig, Op: what, Err: errors.New("the connector cannot do this")}
}

func (b base) Unwrap() connector.Conn                                  { return b.in }
func (b base) Features() connector.Features                            { return b.in.Features() }
func (b base) Close() error                                            { return b.in.Close() }
func (b base) Folders(ctx context.Context) ([]connector.Folder, error) { return b.in.Folders(ctx) }

func (b base) List(ctx context.Context, f connector.Folder, opts connector.ListOptions, fn func([]connector.Message) error) (connector.Listing, error) {
	return b.in.List(ctx, f, opts, fn)
}

func (b base) Fetch(ctx context.Context, f connector.Folder, msgs []connector.Message, fn func(connector.Body, error) error) error {
	s, ok := b.in.(connector.Source)
	if !ok {
		return errNotSupported("fetch messages")
	}
	return s.Fetch(ctx, f, msgs, fn)
}

func (b base) CreateFolder(ctx context.Context, p mail.Path, role mail.Role) (connector.Folder, error) {
	d, ok := b.in.(connector.Destination)
	if !ok {
		return connector.Folder{}, errNotSupported(fmt.Sprintf("create folder %q", p))
	}
	return d.CreateFolder(ctx, p, role)
}

func (b base) Append(ctx context.Context, f connector.Folder, req connector.AppendRequest) (connector.PendingAppend, error) {
	d, ok := b.in.(connector.Destination)
	if !ok {
		return nil, errNotSupported("append")
	}
	return d.Append(ctx, f, req)
}

func (b base) SetFlags(ctx context.Context, f connector.Folder, ids []connector.ID, flags []string) error {
	s, ok := b.in.(connector.FlagSetter)
	if !ok {
		return errNotSupported("set flags")
	}
	return s.SetFlags(ctx, f, ids, flags)
}

func (b base) Delete(ctx context.Context, f connector.Folder, ids []connector.ID) error {
	d, ok := b.in.(connector.Deleter)
	if !ok {
		return errNotSupported("delete messages")
	}
	return d.Delete(ctx, f, ids)
}

func (b base) Quota(ctx context.Context) (connector.Quota, bool, error) {
	q, ok := b.in.(connector.QuotaReader)
	if !ok {
		return connector.Quota{}, false, nil
	}
	return q.Quota(ctx)
}

func (b base) Statuses(ctx context.Context, folders []connector.Folder, since []connector.Cursor) ([]connector.FolderStatus, []error) {
	s, ok := b.in.(connector.StatusReader)
	if !ok {
		errs := make([]error, len(folders))
		for i := range errs {
			errs[i] = errNotSupported("read folder status")
		}
		return make([]connector.FolderStatus, len(folders)), errs
	}
	return s.Statuses(ctx, folders, since)
}

func (b base) Warm(n int, appends bool) {
	if w, ok := b.in.(connector.Warmer); ok {
		w.Warm(n, appends)
	}
}

func (b base) FoldersNoted(ctx context.Context) ([]connector.Folder, []connector.FolderNote, error) {
	if n, ok := b.in.(connector.FolderNoter); ok {
		return n.FoldersNoted(ctx)
	}
	fs, err := b.in.Folders(ctx)
	return fs, nil, err
}
