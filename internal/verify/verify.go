package verify

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/connector/layer"
	"github.com/mailferry/mailferry/internal/mail"
	"github.com/mailferry/mailferry/internal/migrate"
	"github.com/mailferry/mailferry/internal/store"
)

// State is what a verification reads of the sync state, when there is
// one: the folder plan earlier passes recorded (so that folders are
// compared where the copy put them) and the entries of missing messages
// (so that a failure an earlier pass reported is shown with its reason).
// Nothing else is trusted: matching is by what both servers serve.
type State interface {
	FolderPlans(ctx context.Context, pair string) (map[string]store.FolderPlan, error)
	Lookup(ctx context.Context, pair, srcPath string, ids []string) (map[string]store.MessageRecord, error)
}

// Options tune a verification.
type Options struct {
	// Copy holds the filters and rules the copy ran with (Rules, Since,
	// Before, IncludeDeleted); State and Pair, when set, the sync state.
	Copy migrate.Options
	// Settings are echoed in the report.
	Settings            Settings
	Version             string
	Source, Destination string // redacted addresses for the report
	// Batch is the messages per pipelined FETCH (default 64); Streams the
	// fetches in flight per side (default: the connector's connection
	// cap).
	Batch, Streams int
	// Now is the clock (tests); time.Now when nil.
	Now func() time.Time
}

// folderCount is how many destination folders are compared at once,
// like the engine's planners.
const folderCount = 4

// Run verifies dst against src. dst is read only (a Source: it is
// listed and fetched, never written). A folder that cannot be read is
// reported in its row (Folder.Error) and makes the report not exact;
// Run returns an error only when a mailbox cannot be read at all.
func Run(ctx context.Context, src, dst connector.Source, o Options) (*Report, error) {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	rep := &Report{Tool: "mailferry verify", Version: o.Version, Source: o.Source, Destination: o.Destination,
		Settings: o.Settings, Started: now().UTC(), Bytes: "sha256"}
	// Transient faults are retried as in a copy (the engine's layer), so
	// that a dropped connection is not reported as a difference.
	retry := func(side string, c connector.Source) connector.Source {
		return layer.Retry(c, layer.NewRetrier(layer.Policy{Side: side, Backoff: o.Copy.Backoff, Budget: o.Copy.RetryBudget,
			Probe: func(ctx context.Context) error { _, err := c.Folders(ctx); return err }}))
	}
	src, dst = retry("source", src), retry("destination", dst)
	sf, df := connector.FeaturesOf(src), connector.FeaturesOf(dst)
	if !df.ByteExact {
		rep.Bytes = "content-equivalent"
	}
	if o.Batch <= 0 {
		o.Batch = 64
	}
	v := &verifier{o: o, src: src, dst: dst, byteExact: df.ByteExact,
		srcSem: make(chan struct{}, streams(o.Streams, sf)), dstSem: make(chan struct{}, streams(o.Streams, df))}

	srcFolders, err := src.Folders(ctx)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	dstFolders, err := dst.Folders(ctx)
	if err != nil {
		return nil, fmt.Errorf("destination: %w", err)
	}
	var recorded map[string]store.FolderPlan
	if o.Copy.State != nil {
		if recorded, err = o.Copy.State.FolderPlans(ctx, o.Copy.Pair); err != nil {
			return nil, fmt.Errorf("sync state: %w", err)
		}
	}
	rep.Settings.RecordedPlan = len(recorded) > 0
	plans := migrate.PlanMail(srcFolders, dstFolders, df.Folders, o.Copy.Rules, recorded)

	// Folders merged into one destination are compared together: their
	// messages share the destination's copies.
	var groups []*group
	byDest := map[string]*group{}
	for _, p := range plans {
		row := &Folder{Source: p.Source.Path.String(), Dest: p.Dest.Path.String(), Why: p.Why, Plan: p.Origin, DestMissing: p.Create}
		rep.Folders = append(rep.Folders, row)
		key := p.Dest.Path.Canonical().Key()
		g := byDest[key]
		if g == nil {
			g = &group{dest: p.Dest, missing: p.Create}
			byDest[key] = g
			groups = append(groups, g)
		}
		g.plans = append(g.plans, p)
		g.rows = append(g.rows, row)
	}
	for _, f := range srcFolders {
		if !f.IsMail() && !f.NoSelect && o.Copy.Rules.Selected(f.Path) {
			rep.Folders = append(rep.Folders, &Folder{Source: f.Path.String(), Class: f.Class,
				Why: "not a mail folder (" + f.Class + "): not compared; Mailferry copies mail only"})
		}
	}

	eg, gctx := errgroup.WithContext(ctx)
	eg.SetLimit(folderCount)
	for _, g := range groups {
		eg.Go(func() error { return v.compare(gctx, g) })
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	if v.hashed.Load() {
		rep.Bytes = "sha256"
	}
	for _, g := range groups {
		rep.Differences = append(rep.Differences, g.diffs...)
		rep.DifferencesLeft += g.left
	}
	if n := len(rep.Differences); n > MaxDifferences {
		rep.DifferencesLeft += int64(n - MaxDifferences)
		rep.Differences = rep.Differences[:MaxDifferences]
	}
	rep.total()
	rep.Finished = now().UTC()
	rep.Seal()
	return rep, nil
}

func streams(n int, f connector.Features) int {
	if n > 0 {
		return n
	}
	return max(1, f.MaxConnections)
}

type verifier struct {
	o              Options
	src, dst       connector.Source
	byteExact      bool
	srcSem, dstSem chan struct{}
	// hashed: some copies on a destination that rebuilds messages were
	// compared by their bytes, the state saying they kept them.
	hashed atomic.Bool
}

// group is one destination folder and the source folders planned into it.
type group struct {
	dest    connector.Folder
	missing bool // the destination folder does not exist
	plans   []migrate.FolderPlan
	rows    []*Folder
	diffs   []Difference // at most MaxDifferences
	left    int64        // differences beyond those
}

// note keeps a difference, up to MaxDifferences per destination folder.
func (g *group) note(d Difference) {
	if len(g.diffs) >= MaxDifferences {
		g.left++
		return
	}
	g.diffs = append(g.diffs, d)
}

// copyOf is one message as listed, with what the comparison learns.
type copyOf struct {
	m     connector.Message
	row   int   // the source folder's index in group.rows (source side)
	pair  int32 // index of the paired message on the other side; -1 none
	hash  [sha256.Size]byte
	read  bool
	error string
	// compare: the bytes of the pair are compared (source side).
	compare bool
}

// recorded decides, for every pair, whether its bytes are compared: on a
// destination that keeps bytes, unless the sync state says this very
// copy (its destination ID) was rebuilt; on one that rebuilds messages,
// only where the state says this copy kept the source's bytes (Graph's
// importMime). Without an entry the destination's Features decide.
func (v *verifier) recorded(ctx context.Context, g *group, src, dst []*copyOf) error {
	ids := make([][]string, len(g.rows))
	for _, s := range src {
		if s.pair >= 0 {
			s.compare = v.byteExact
			ids[s.row] = append(ids[s.row], string(s.m.ID))
		}
	}
	if v.o.Copy.State == nil {
		return nil
	}
	for i, row := range g.rows {
		if len(ids[i]) == 0 {
			continue
		}
		recs, err := v.o.Copy.State.Lookup(ctx, v.o.Copy.Pair, row.Source, ids[i])
		if err != nil {
			return fmt.Errorf("sync state: %w", err)
		}
		for _, s := range src {
			if s.row != i || s.pair < 0 {
				continue
			}
			rec, ok := recs[string(s.m.ID)]
			if !ok || rec.State != store.StateCopied || rec.DstID == "" || rec.DstID != string(dst[s.pair].m.ID) {
				continue
			}
			switch rec.Bytes {
			case store.BytesRebuilt:
				s.compare = false
			case store.BytesExact:
				s.compare = true
				v.hashed.Store(true)
			}
		}
	}
	return nil
}

// compare lists the destination folder and its source folders, pairs
// them by identity and hashes every pair.
func (v *verifier) compare(ctx context.Context, g *group) error {
	// Both sides are listed at once: a listing is mostly round trips.
	var dst, srcMsgs []*copyOf
	var dstErr error
	listed := make(chan struct{})
	go func() {
		defer close(listed)
		if g.missing {
			return
		}
		_, dstErr = v.dst.List(ctx, g.dest, connector.ListOptions{}, func(ms []connector.Message) error {
			for _, m := range ms {
				m.Headers = mail.Headers{} // the identity is computed; the fields are not needed
				dst = append(dst, &copyOf{m: m, pair: -1})
			}
			return nil
		})
	}()
	for i, p := range g.plans {
		row := g.rows[i]
		_, err := v.src.List(ctx, p.Source, connector.ListOptions{}, func(ms []connector.Message) error {
			for _, m := range ms {
				row.SourceMessages++
				row.SourceBytes += m.Size
				if !v.o.Copy.Wanted(m) {
					row.Skipped++
					continue
				}
				m.Headers = mail.Headers{}
				srcMsgs = append(srcMsgs, &copyOf{m: m, row: i, pair: -1})
			}
			return nil
		})
		if err != nil && ctx.Err() == nil {
			row.Error = "source folder could not be listed: " + errText(err)
		}
	}
	<-listed
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if dstErr != nil {
		for _, r := range g.rows {
			r.Error = "destination folder could not be listed: " + errText(dstErr)
		}
		return nil
	}
	for _, r := range g.rows {
		r.DestMessages = int64(len(dst))
	}
	pairUp(srcMsgs, dst)
	if err := v.recorded(ctx, g, srcMsgs, dst); err != nil {
		return err
	}

	// Hash both sides of every pair while the bytes stream.
	var want, wantDst []*copyOf
	for _, s := range srcMsgs {
		if s.pair >= 0 && s.compare {
			want = append(want, s)
			wantDst = append(wantDst, dst[s.pair])
		}
	}
	if len(want) > 0 {
		eg, ectx := errgroup.WithContext(ctx)
		eg.Go(func() error { return v.hashAll(ectx, false, v.srcSem, g, want) })
		eg.Go(func() error { return v.hashAll(ectx, true, v.dstSem, g, wantDst) })
		if err := eg.Wait(); err != nil {
			return err
		}
	}
	v.tally(ctx, g, srcMsgs, dst)
	return nil
}

// pairUp pairs source messages with destination copies one to one by
// identity, as the engine's ledger does: the same date and flags first,
// then the same date, then any copy left.
func pairUp(src, dst []*copyOf) {
	byID := map[mail.Identity][]int32{}
	for i, d := range dst {
		byID[d.m.Identity] = append(byID[d.m.Identity], int32(i))
	}
	for pass := 0; pass < 3; pass++ {
		for _, s := range src {
			if s.pair >= 0 {
				continue
			}
			date, flags := migrate.DateKey(s.m), migrate.FlagKey(s.m.Flags)
			for _, i := range byID[s.m.Identity] {
				d := dst[i]
				if d.pair >= 0 {
					continue
				}
				sameDate := migrate.DateKey(d.m) == date
				if pass == 0 && (!sameDate || migrate.FlagKey(d.m.Flags) != flags) || pass == 1 && !sameDate {
					continue
				}
				s.pair, d.pair = i, 0 // d.pair is only "taken" on this side
				break
			}
		}
	}
}

// hashAll fetches msgs of one side in batches, up to the side's streams
// at once, and keeps each one's SHA-256. Memory: a hash per message, and
// the connector's read buffers; bodies are never held.
func (v *verifier) hashAll(ctx context.Context, dest bool, sem chan struct{}, g *group, msgs []*copyOf) error {
	c := v.src
	if dest {
		c = v.dst
	}
	// A folder's messages are fetched from the folder they were listed in.
	byFolder := map[string][]*copyOf{}
	var order []string
	for _, m := range msgs {
		f := folderOf(dest, g, m)
		k := f.Path.Key()
		if _, ok := byFolder[k]; !ok {
			order = append(order, k)
		}
		byFolder[k] = append(byFolder[k], m)
	}
	eg, ctx := errgroup.WithContext(ctx)
	for _, k := range order {
		list := byFolder[k]
		f := folderOf(dest, g, list[0])
		for start := 0; start < len(list); start += v.o.Batch {
			batch := list[start:min(start+v.o.Batch, len(list))]
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return errors.Join(ctx.Err(), eg.Wait())
			}
			eg.Go(func() error {
				defer func() { <-sem }()
				return fetchHashes(ctx, c, f, batch)
			})
		}
	}
	return eg.Wait()
}

func folderOf(dest bool, g *group, m *copyOf) connector.Folder {
	if dest {
		return g.dest
	}
	return g.plans[m.row].Source
}

func fetchHashes(ctx context.Context, c connector.Source, f connector.Folder, batch []*copyOf) error {
	byID := make(map[connector.ID]*copyOf, len(batch))
	ms := make([]connector.Message, len(batch))
	for i, b := range batch {
		byID[b.m.ID] = b
		ms[i] = b.m
	}
	var mu sync.Mutex
	err := c.Fetch(ctx, f, ms, func(b connector.Body, err error) error {
		cp := byID[b.Message.ID]
		if cp == nil {
			return nil
		}
		if err != nil {
			mu.Lock()
			cp.error = errText(err)
			mu.Unlock()
			return nil
		}
		h := sha256.New()
		if _, err := io.Copy(&crlfWriter{w: h}, b.Reader); err != nil {
			mu.Lock()
			cp.error = errText(err)
			mu.Unlock()
			return nil
		}
		mu.Lock()
		h.Sum(cp.hash[:0])
		cp.read, cp.error = true, ""
		mu.Unlock()
		return nil
	})
	if err != nil && ctx.Err() == nil {
		// The session failed for the whole batch: its messages are
		// reported unread, the others are still compared.
		for _, b := range batch {
			if !b.read && b.error == "" {
				b.error = errText(err)
			}
		}
		return nil
	}
	return err
}

// crlfWriter writes what it is given with every bare LF as CRLF, the
// form in which the IMAP connector writes a message (RFC 5322 2.3): a
// Maildir file with bare LFs and its IMAP copy hash the same.
type crlfWriter struct {
	w    io.Writer
	last byte // the last byte written, across calls
}

func (c *crlfWriter) Write(p []byte) (int, error) {
	start := 0
	for i, b := range p {
		prev := c.last
		if i > 0 {
			prev = p[i-1]
		}
		if b == '\n' && prev != '\r' {
			if _, err := c.w.Write(p[start:i]); err != nil {
				return start, err
			}
			if _, err := c.w.Write([]byte{'\r'}); err != nil {
				return i, err
			}
			start = i
		}
	}
	if _, err := c.w.Write(p[start:]); err != nil {
		return start, err
	}
	if len(p) > 0 {
		c.last = p[len(p)-1]
	}
	return len(p), nil
}

// tally fills the rows from the pairing and the hashes.
func (v *verifier) tally(ctx context.Context, g *group, src, dst []*copyOf) {
	missing := make([][]*copyOf, len(g.rows))
	for _, s := range src {
		row := g.rows[s.row]
		if s.pair < 0 {
			row.Missing++
			missing[s.row] = append(missing[s.row], s)
			continue
		}
		row.Matched++
		d := dst[s.pair]
		d.pair = 1 // accounted for
		diff := func(kind, detail string) {
			g.note(Difference{Kind: kind, Folder: row.Source, ID: string(s.m.ID), DestID: string(d.m.ID), Detail: detail})
		}
		switch {
		case !s.compare:
			row.Equivalent++
			continue
		case !s.read || !d.read:
			row.Unread++
			diff(KindUnread, firstOf(s.error, d.error))
			continue
		case s.hash != d.hash:
			row.Altered++
			diff(KindAltered, fmt.Sprintf("the destination's bytes differ (source %d bytes, destination %d)", s.m.Size, d.m.Size))
			continue
		}
		sf, df := migrate.FlagKey(s.m.Flags), migrate.FlagKey(d.m.Flags)
		flagsDiffer := sf != df
		dateDiffers := migrate.DateKey(s.m) != migrate.DateKey(d.m)
		if !flagsDiffer && !dateDiffers {
			row.Exact++
			continue
		}
		row.Differs++
		if flagsDiffer {
			row.FlagsDiffer++
			diff(KindFlags, fmt.Sprintf("source %s, destination %s", flagText(sf), flagText(df)))
		}
		if dateDiffers {
			row.DateDiffer++
			diff(KindDate, fmt.Sprintf("source %s, destination %s", dateText(s.m.InternalDate), dateText(d.m.InternalDate)))
		}
	}
	// Missing messages an earlier pass reported as failed say why.
	for i, ms := range missing {
		row := g.rows[i]
		var recs map[string]store.MessageRecord
		if v.o.Copy.State != nil && len(ms) > 0 {
			ids := make([]string, len(ms))
			for j, m := range ms {
				ids[j] = string(m.m.ID)
			}
			recs, _ = v.o.Copy.State.Lookup(ctx, v.o.Copy.Pair, row.Source, ids) // without the state, no reasons
		}
		for _, m := range ms {
			if rec, ok := recs[string(m.m.ID)]; ok && rec.State == store.StateFailed {
				row.FailedEarlier++
				g.note(Difference{Kind: KindFailed, Folder: row.Source, ID: string(m.m.ID), Detail: rec.Reason})
				continue
			}
			g.note(Difference{Kind: KindMissing, Folder: row.Source, ID: string(m.m.ID),
				Detail: fmt.Sprintf("%d bytes, received %s", m.m.Size, dateText(m.m.InternalDate))})
		}
	}
	for _, d := range dst {
		if d.pair < 0 {
			g.rows[0].Extra++
			g.note(Difference{Kind: KindExtra, Folder: g.dest.Path.String(), DestID: string(d.m.ID),
				Detail: fmt.Sprintf("%d bytes, no source message has its identity", d.m.Size)})
		}
	}
	sort.SliceStable(g.diffs, func(i, j int) bool { return g.diffs[i].Folder < g.diffs[j].Folder })
}

func firstOf(a, b string) string {
	if a != "" {
		return "source: " + a
	}
	return "destination: " + b
}

func flagText(k string) string {
	if k == "" {
		return "no flags"
	}
	return k
}

func dateText(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func errText(err error) string {
	if h := connector.HintOf(err); h != "" {
		return err.Error() + " (" + h + ")"
	}
	return err.Error()
}
