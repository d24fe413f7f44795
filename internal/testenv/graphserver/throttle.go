package graphserver

import (
	"net/http"
	"strings"
	"time"
)

// throttleState implements the Outlook service limits of the
// throttling-limits page: concurrent requests, requests per window, and
// upload bytes per window. The real algorithms are not published; these
// are sliding windows (LIMITS.md).
type throttleState struct {
	inflight    map[string]int // concurrency key -> requests in flight
	mailboxIn   map[string]int // mailbox -> in flight (any app)
	peakMailbox map[string]int
	peakApp     map[string]int
	requests    map[string][]time.Time  // app|mailbox -> request times
	uploads     map[string][]sizedEvent // mailbox -> upload sizes
}

type sizedEvent struct {
	at time.Time
	n  int64
}

func (t *throttleState) init() {
	t.inflight = map[string]int{}
	t.mailboxIn = map[string]int{}
	t.peakMailbox = map[string]int{}
	t.peakApp = map[string]int{}
	t.requests = map[string][]time.Time{}
	t.uploads = map[string][]sizedEvent{}
}

// admit checks the limits for one request of app to mailbox carrying
// upload bytes (POST, PATCH and PUT bodies) and, if admitted, takes a
// concurrency slot; release gives it back.
func (s *Server) admit(appID, mailbox string, upload int64) (release func(), gerr *graphError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	mailbox = strings.ToLower(mailbox)
	ckey := appID
	if s.opts.ConcurrencyPerMailbox {
		ckey = appID + "|" + mailbox
	}
	throttled := func(code, msg string, after time.Duration) *graphError {
		s.throttle++
		e := newError(http.StatusTooManyRequests, code, "%s", msg)
		e.RetryAfter = after
		return e
	}
	if s.thr.inflight[ckey] >= s.opts.ConcurrencyLimit {
		return nil, throttled("ApplicationThrottled", "Application is over its MailboxConcurrency limit.", s.opts.ConcurrencyRetryAfter)
	}
	rkey := appID + "|" + mailbox
	times := prune(s.thr.requests[rkey], now.Add(-s.opts.RequestWindow))
	if len(times) >= s.opts.RequestBudget {
		s.thr.requests[rkey] = times
		return nil, throttled("TooManyRequests", "Please retry again later.", times[0].Add(s.opts.RequestWindow).Sub(now))
	}
	ups := pruneSized(s.thr.uploads[mailbox], now.Add(-s.opts.UploadWindow))
	if upload > 0 {
		var sum int64
		for _, e := range ups {
			sum += e.n
		}
		if sum+upload > s.opts.UploadBudget && len(ups) > 0 {
			s.thr.uploads[mailbox] = ups
			return nil, throttled("ApplicationThrottled", "Application is over its IncomingBytes limit.", ups[0].at.Add(s.opts.UploadWindow).Sub(now))
		}
		ups = append(ups, sizedEvent{now, upload})
	}
	s.thr.uploads[mailbox] = ups
	s.thr.requests[rkey] = append(times, now)
	s.thr.inflight[ckey]++
	s.thr.mailboxIn[mailbox]++
	if n := s.thr.mailboxIn[mailbox]; n > s.thr.peakMailbox[mailbox] {
		s.thr.peakMailbox[mailbox] = n
	}
	appIn := 0
	for k, n := range s.thr.inflight {
		if k == appID || strings.HasPrefix(k, appID+"|") {
			appIn += n
		}
	}
	if appIn > s.thr.peakApp[appID] {
		s.thr.peakApp[appID] = appIn
	}
	return func() {
		s.mu.Lock()
		s.thr.inflight[ckey]--
		s.thr.mailboxIn[mailbox]--
		s.mu.Unlock()
	}, nil
}

func prune(ts []time.Time, since time.Time) []time.Time {
	i := 0
	for i < len(ts) && !ts[i].After(since) {
		i++
	}
	return ts[i:]
}

func pruneSized(es []sizedEvent, since time.Time) []sizedEvent {
	i := 0
	for i < len(es) && !es[i].at.After(since) {
		i++
	}
	return es[i:]
}

// PeakConcurrency is the largest number of requests to a mailbox that were
// in flight at once (any app).
func (s *Server) PeakConcurrency(upn string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.thr.peakMailbox[strings.ToLower(upn)]
}

// PeakAppConcurrency is the largest number of an app's mailbox requests in
// flight at once, across mailboxes.
func (s *Server) PeakAppConcurrency(clientID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.thr.peakApp[clientID]
}

// InFlight is the number of requests to a mailbox in flight now.
func (s *Server) InFlight(upn string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.thr.mailboxIn[strings.ToLower(upn)]
}
