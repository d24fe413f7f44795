package graph

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/mailferry/mailferry/internal/pacer"
)

// Graph's Outlook limits (learn.microsoft.com/graph/throttling-limits,
// "Outlook service limits"). The page applies them "to each app ID and
// mailbox combination"; a later change to it says the concurrency limit
// is per application, so concurrency is shared by every mailbox an app
// reaches through one Backend (the stricter reading).
const (
	maxConcurrent   = 4
	requestBudget   = 10000
	requestWindow   = 10 * time.Minute
	uploadBudget    = 150_000_000 // "150 MB": decimal, the smaller reading
	uploadWindow    = 5 * time.Minute
	budgetBurstPart = 10 // a tenth of a budget may go at once
)

// clock is time as the connector sees it; tests replace it.
type clock interface {
	Now() time.Time
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time                                   { return time.Now() }
func (realClock) Sleep(ctx context.Context, d time.Duration) error { return pacer.Sleep(ctx, d) }

// bucket is a token bucket that keeps a client under budget per window
// in every window, not only on average: it holds at most burst tokens
// and refills at (budget-burst)/window, so that any window sees at most
// burst + (budget-burst) = budget. A request waits until the bucket holds
// its whole cost, so burst is at least the largest request (a tenth of
// the budget otherwise). Only a request larger than half the budget (a
// budget shrunk for tests) waits for a full bucket and runs it into
// debt, which later requests wait out.
type bucket struct {
	clock  clock
	burst  float64
	rate   float64 // tokens per second
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func newBucket(c clock, budget float64, window time.Duration, largest float64) *bucket {
	burst := min(max(budget/budgetBurstPart, largest), budget/2)
	return &bucket{clock: c, burst: burst, rate: (budget - burst) / window.Seconds(), tokens: burst, last: c.Now()}
}

// take waits until n tokens may be spent and spends them.
func (b *bucket) take(ctx context.Context, n float64) error {
	b.mu.Lock()
	now := b.clock.Now()
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = min(b.burst, b.tokens+el*b.rate)
	}
	b.last = now
	need := min(n, b.burst) // a large request needs a full bucket, then goes into debt
	wait := time.Duration(0)
	if b.tokens < need {
		wait = time.Duration((need - b.tokens) / b.rate * float64(time.Second))
	}
	// Reserve now, so that later callers queue behind this one.
	b.tokens -= n
	b.mu.Unlock()
	if wait <= 0 {
		return nil
	}
	if err := b.clock.Sleep(ctx, wait); err != nil {
		b.mu.Lock()
		b.tokens += n // not spent after all
		b.mu.Unlock()
		return err
	}
	return nil
}

// appLimits are shared by every Conn of one app (client id) opened
// through one Backend; mailboxLimits by every Conn of that app and
// mailbox, and the upload budget by every Conn of the mailbox (the
// upload limit is reported to apply per mailbox across apps).
type appLimits struct {
	gate *semaphore.Weighted
	refs int
}

type mailboxLimits struct {
	requests *bucket
	refs     int
}

type uploadLimits struct {
	bytes *bucket
	refs  int
}

// sharedLimits lives in a Backend value (built by Backend()), never in
// package state, so that two registries do not share it.
type sharedLimits struct {
	mu        sync.Mutex
	apps      map[string]*appLimits
	mailboxes map[string]*mailboxLimits
	uploads   map[string]*uploadLimits
}

func newSharedLimits() *sharedLimits {
	return &sharedLimits{apps: map[string]*appLimits{}, mailboxes: map[string]*mailboxLimits{}, uploads: map[string]*uploadLimits{}}
}

// limits is what one Conn uses.
type limits struct {
	app      *semaphore.Weighted // per app, maxConcurrent
	conn     *semaphore.Weighted // per Conn, OpenOptions.MaxConnections
	connCap  int64
	requests *bucket
	upload   *bucket
	release  func()
}

type budgets struct {
	requests float64
	reqWin   time.Duration
	upload   float64
	upWin    time.Duration
	// largestUpload is the largest request body sent.
	largestUpload float64
}

func (s *sharedLimits) acquire(c clock, appKey, mailbox string, connCap int, b budgets) *limits {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.apps[appKey]
	if a == nil {
		a = &appLimits{gate: semaphore.NewWeighted(maxConcurrent)}
		s.apps[appKey] = a
	}
	a.refs++
	mk := appKey + "\x00" + mailbox
	m := s.mailboxes[mk]
	if m == nil {
		m = &mailboxLimits{requests: newBucket(c, b.requests, b.reqWin, maxBatch)}
		s.mailboxes[mk] = m
	}
	m.refs++
	u := s.uploads[mailbox]
	if u == nil {
		u = &uploadLimits{bytes: newBucket(c, b.upload, b.upWin, b.largestUpload)}
		s.uploads[mailbox] = u
	}
	u.refs++
	if connCap <= 0 || connCap > maxConcurrent {
		connCap = maxConcurrent
	}
	var once sync.Once
	return &limits{
		app: a.gate, conn: semaphore.NewWeighted(int64(connCap)), connCap: int64(connCap),
		requests: m.requests, upload: u.bytes,
		release: func() {
			once.Do(func() {
				s.mu.Lock()
				defer s.mu.Unlock()
				if a.refs--; a.refs == 0 {
					delete(s.apps, appKey)
				}
				if m.refs--; m.refs == 0 {
					delete(s.mailboxes, mk)
				}
				if u.refs--; u.refs == 0 {
					delete(s.uploads, mailbox)
				}
			})
		},
	}
}

// enter takes n concurrency slots (a JSON batch runs up to four of its
// requests at once on the server) of the Conn and of the app.
func (l *limits) enter(ctx context.Context, n int64) (leave func(), err error) {
	n = max(1, min(n, l.connCap))
	if err := l.conn.Acquire(ctx, n); err != nil {
		return nil, err
	}
	appN := min(n, maxConcurrent)
	if err := l.app.Acquire(ctx, appN); err != nil {
		l.conn.Release(n)
		return nil, err
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			l.app.Release(appN)
			l.conn.Release(n)
		})
	}, nil
}
