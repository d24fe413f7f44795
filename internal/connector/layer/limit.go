package layer

import (
	"context"

	"golang.org/x/sync/semaphore"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/mail"
)

// Limit wraps c so that at most n of its calls run at once. With a shared
// sem (sized for several connectors, e.g. every mailbox of one host in
// this process) the cap is per host; sem nil makes one of size n.
// Features().MaxConnections is at most n, so that callers size their
// worker pools to what can run. A listing or fetch holds its slot while
// its callback runs; an append holds it until its bytes are sent, not
// while its answer is awaited.
func Limit(c connector.Conn, n int, sem *semaphore.Weighted) *Limited {
	n = max(n, 1)
	if sem == nil {
		sem = semaphore.NewWeighted(int64(n))
	}
	return &Limited{base: base{c}, n: n, sem: sem}
}

// Limited is a connector wrapped by Limit.
type Limited struct {
	base
	n   int
	sem *semaphore.Weighted
}

func (c *Limited) do(ctx context.Context, op func() error) error {
	if err := c.sem.Acquire(ctx, 1); err != nil {
		return err
	}
	defer c.sem.Release(1)
	return op()
}

func (c *Limited) Features() connector.Features {
	f := c.in.Features()
	if f.MaxConnections <= 0 || f.MaxConnections > c.n {
		f.MaxConnections = c.n
	}
	return f
}

func (c *Limited) Folders(ctx context.Context) (out []connector.Folder, err error) {
	err = c.do(ctx, func() error { out, err = c.in.Folders(ctx); return err })
	return out, err
}

func (c *Limited) FoldersNoted(ctx context.Context) (out []connector.Folder, notes []connector.FolderNote, err error) {
	err = c.do(ctx, func() error { out, notes, err = c.base.FoldersNoted(ctx); return err })
	return out, notes, err
}

func (c *Limited) List(ctx context.Context, f connector.Folder, opts connector.ListOptions, fn func([]connector.Message) error) (lst connector.Listing, err error) {
	err = c.do(ctx, func() error { lst, err = c.in.List(ctx, f, opts, fn); return err })
	return lst, err
}

func (c *Limited) Fetch(ctx context.Context, f connector.Folder, msgs []connector.Message, fn func(connector.Body, error) error) error {
	return c.do(ctx, func() error { return c.base.Fetch(ctx, f, msgs, fn) })
}

func (c *Limited) CreateFolder(ctx context.Context, p mail.Path, role mail.Role) (out connector.Folder, err error) {
	err = c.do(ctx, func() error { out, err = c.base.CreateFolder(ctx, p, role); return err })
	return out, err
}

func (c *Limited) Append(ctx context.Context, f connector.Folder, req connector.AppendRequest) (pa connector.PendingAppend, err error) {
	err = c.do(ctx, func() error { pa, err = c.base.Append(ctx, f, req); return err })
	return pa, err
}

func (c *Limited) SetFlags(ctx context.Context, f connector.Folder, ids []connector.ID, flags []string) error {
	return c.do(ctx, func() error { return c.base.SetFlags(ctx, f, ids, flags) })
}

func (c *Limited) Delete(ctx context.Context, f connector.Folder, ids []connector.ID) error {
	return c.do(ctx, func() error { return c.base.Delete(ctx, f, ids) })
}

func (c *Limited) Quota(ctx context.Context) (q connector.Quota, ok bool, err error) {
	err = c.do(ctx, func() error { q, ok, err = c.base.Quota(ctx); return err })
	return q, ok, err
}

func (c *Limited) Statuses(ctx context.Context, folders []connector.Folder, since []connector.Cursor) ([]connector.FolderStatus, []error) {
	if err := c.sem.Acquire(ctx, 1); err != nil {
		errs := make([]error, len(folders))
		for i := range errs {
			errs[i] = err
		}
		return make([]connector.FolderStatus, len(folders)), errs
	}
	defer c.sem.Release(1)
	return c.base.Statuses(ctx, folders, since)
}
