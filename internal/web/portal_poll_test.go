package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/service"
)

// poller is one open trial or migrate page polling status.json. It keeps
// the hashes of the regions it has and sends them, as the page's script
// does, so the server leaves those regions out.
type poller struct {
	c     *http.Client
	url   string            // the page's status.json, without known
	known map[string]string // region key → hash the page shows
}

// pollResult is one answer of status.json and its size on the wire.
type pollResult struct {
	body  statusBody
	bytes int
}

func (p *poller) poll() (pollResult, error) {
	hashes := make([]string, 0, len(p.known))
	for _, h := range p.known {
		hashes = append(hashes, h)
	}
	resp, err := p.c.Get(p.url + "&known=" + strings.Join(hashes, ","))
	if err != nil {
		return pollResult{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return pollResult{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return pollResult{}, fmt.Errorf("GET %s: %d %s", p.url, resp.StatusCode, raw)
	}
	var r pollResult
	if err := json.Unmarshal(raw, &r.body); err != nil {
		return r, fmt.Errorf("GET %s: %w", p.url, err)
	}
	r.bytes = len(raw)
	for k, rg := range r.body.Regions {
		p.known[k] = rg.Hash
	}
	return r, nil
}

// pollAll polls with every poller at once and returns their answers in
// the pollers' order.
func pollAll(tb testing.TB, ps []*poller) []pollResult {
	tb.Helper()
	out := make([]pollResult, len(ps))
	errs := make([]error, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Go(func() { out[i], errs[i] = p.poll() })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			tb.Fatal(err)
		}
	}
	return out
}

// queuedPass records a running full pass over every mailbox of the
// project, each still queued (as the pass leaves them before a worker
// picks them up), without a job queue: nothing changes them but the test.
func queuedPass(tb testing.TB, e *portalEnv, projectID string) string {
	tb.Helper()
	pass := "cccccccccccccccccccccccc"
	now := time.Now()
	if _, err := e.db.Exec(`INSERT INTO passes (id, project_id, kind, state, created_at, created_ns) VALUES ($1, $2, 'full', 'running', $3, $4)`,
		pass, projectID, now.Unix(), now.UnixNano()); err != nil {
		tb.Fatal(err)
	}
	if _, err := e.db.Exec(`INSERT INTO mailbox_passes (pass_id, mailbox_id, status) SELECT $1, id, 'queued' FROM mailboxes WHERE project_id = $2`,
		pass, projectID); err != nil {
		tb.Fatal(err)
	}
	if _, err := e.db.Exec(`UPDATE mailboxes SET status = 'queued' WHERE project_id = $1`, projectID); err != nil {
		tb.Fatal(err)
	}
	return pass
}

// Twenty migrate pages of one 2,000-mailbox project, open at once, each
// on its own page of 50 rows: the first poll sends each page everything;
// after a few mailboxes finish, each poll sends only the rows of those
// mailboxes on its page; with nothing changed, no row at all.
func TestStatusPollingManyPages(t *testing.T) {
	const pages = 20
	e := newPortalEnv(t)
	ctx := context.Background()
	id := e.manyMailboxes(t, "owner@example.com", 2000)
	pass := queuedPass(t, e, id)
	br := e.newBrowser()
	br.login("owner@example.com")
	ps := make([]*poller, pages)
	for i := range ps {
		ps[i] = &poller{c: br.c, url: fmt.Sprintf("%s/projects/%s/status.json?view=migrate&page=%d", e.base, id, i+1), known: map[string]string{}}
	}

	first := pollAll(t, ps)
	for i, r := range first {
		if r.body.Page != i+1 || r.body.Total != 2000 || len(r.body.Rows) != 50 || len(r.body.Mailboxes) != 50 || len(r.body.Regions) != 53 {
			t.Fatalf("page %d, first poll: page %d of %d mailboxes, %d rows, %d mailboxes, %d regions; want every row and region",
				i+1, r.body.Page, r.body.Total, len(r.body.Rows), len(r.body.Mailboxes), len(r.body.Regions))
		}
	}

	// On page n, n%3+1 mailboxes finish (1 to 3), as workers report them.
	changed := make([]map[string]bool, pages)
	for i, r := range first {
		changed[i] = map[string]bool{}
		for _, key := range r.body.Rows[:i%3+1] {
			mb := strings.TrimPrefix(key, "row-")
			must(t, e.svc.FinishMailboxPass(ctx, pass, mb, service.Outcome{Status: service.StatusCompleted,
				Progress: &service.Progress{TotalMsgs: 120, Copied: 120}}))
			changed[i][mb] = true
		}
	}
	second := pollAll(t, ps)
	var full, delta int
	for i, r := range second {
		full += first[i].bytes
		delta += r.bytes
		if len(r.body.Rows) != 50 {
			t.Errorf("page %d: %d row keys, want the page's 50 in order", i+1, len(r.body.Rows))
		}
		if len(r.body.Mailboxes) != len(changed[i]) {
			t.Errorf("page %d after %d mailboxes finished: %d mailboxes sent", i+1, len(changed[i]), len(r.body.Mailboxes))
		}
		for _, m := range r.body.Mailboxes {
			if !changed[i][m.ID] || m.Status != service.StatusCompleted {
				t.Errorf("page %d: sent mailbox %s (%s), which did not change", i+1, m.ID, m.Status)
			}
		}
		for k := range r.body.Regions {
			if mb, ok := strings.CutPrefix(k, "row-"); ok && !changed[i][mb] {
				t.Errorf("page %d: sent the row of %s, which did not change", i+1, mb)
			}
		}
		if r.bytes*5 > first[i].bytes {
			t.Errorf("page %d: %d bytes after %d changes, %d the first time; want a fifth at most", i+1, r.bytes, len(changed[i]), first[i].bytes)
		}
	}
	t.Logf("%d pages: first poll %d bytes, after 1-3 changes a page %d bytes", pages, full, delta)

	third := pollAll(t, ps)
	var idle int
	for i, r := range third {
		idle += r.bytes
		if len(r.body.Mailboxes) != 0 || len(r.body.Regions) != 0 {
			t.Errorf("page %d, nothing changed: %d mailboxes, regions %v sent", i+1, len(r.body.Mailboxes), keys(r.body.Regions))
		}
	}
	t.Logf("%d pages, nothing changed: %d bytes", pages, idle)
}
