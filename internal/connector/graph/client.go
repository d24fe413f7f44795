package graph

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/netpolicy"
	"github.com/mailferry/mailferry/internal/oauth"
	"github.com/mailferry/mailferry/internal/pacer"
)

// tokenSource is what the client needs of *oauth.Source.
type tokenSource interface {
	Token(ctx context.Context) (string, error)
	Invalidate(token string)
}

// client sends every Graph request: it adds the token, takes a
// concurrency slot and request and upload budget, retries what Graph
// throttled (429, and 503/504 where resending is safe) after Retry-After,
// and replaces a refused token once.
type client struct {
	http    *http.Client
	root    string // service root without version, e.g. https://graph.microsoft.com
	tokens  tokenSource
	lim     *limits
	clock   clock
	backoff pacer.Backoff

	mu        sync.Mutex
	throttled int // answers 429/503 seen, for tests and logs
}

// request is one HTTP request. Its body is produced by body() for every
// try, so that it can be resent.
type request struct {
	method      string
	url         string // absolute, or relative to root ("/v1.0/users/...")
	contentType string
	header      map[string]string
	body        func() io.Reader
	bodyLen     int64
	// idempotent: resending after a lost answer or a 5xx does no harm
	// (GET, PATCH, DELETE, an upload chunk). A POST that creates
	// something is not: its 5xx and lost answers are returned as
	// uncertain errors.
	idempotent bool
	// anonymous requests carry no Authorization (pre-authenticated
	// upload URLs, where the page says not to send one).
	anonymous bool
	// slots is the concurrency it takes (a $batch: up to 4), and cost
	// the requests it counts as against the budget.
	slots int64
	cost  float64
}

func bytesBody(b []byte) (func() io.Reader, int64) {
	return func() io.Reader { return bytes.NewReader(b) }, int64(len(b))
}

// response is a successful answer. Close releases the concurrency slot;
// the body must be read or closed promptly.
type response struct {
	*http.Response
	leave func()
}

func (r *response) Close() error {
	err := r.Body.Close()
	r.leave()
	return err
}

// do sends req and returns a 2xx answer, or an error: an *apiError for
// an error answer (after retries), a connector.Error for token and
// transport failures.
func (c *client) do(ctx context.Context, req request) (*response, error) {
	if req.slots == 0 {
		req.slots = 1
	}
	if req.cost == 0 {
		req.cost = 1
	}
	target := req.url
	if strings.HasPrefix(target, "/") {
		target = c.root + target
	}
	refreshed := false
	attempts := c.backoff.MaxAttempts()
	for attempt := 1; ; attempt++ {
		if err := c.lim.requests.take(ctx, req.cost); err != nil {
			return nil, ctxError(err)
		}
		if req.bodyLen > 0 && req.method != http.MethodGet {
			if err := c.lim.upload.take(ctx, float64(req.bodyLen)); err != nil {
				return nil, ctxError(err)
			}
		}
		leave, err := c.lim.enter(ctx, req.slots)
		if err != nil {
			return nil, ctxError(err)
		}
		token := ""
		if !req.anonymous {
			if token, err = c.tokens.Token(ctx); err != nil {
				leave()
				// A token endpoint that is briefly unavailable is
				// waited out like Graph itself; a refused login is not.
				if connector.KindOf(err) != connector.KindTransient || attempt >= attempts || ctx.Err() != nil {
					return nil, err
				}
				if err := c.clock.Sleep(ctx, c.backoff.Delay(attempt, connector.RetryAfterOf(err))); err != nil {
					return nil, ctxError(err)
				}
				continue
			}
		}
		resp, err := c.send(ctx, req, target, token)
		if err != nil {
			leave()
			if ctx.Err() != nil {
				return nil, ctxError(ctx.Err())
			}
			kind, sent := transportKind(err)
			terr := &connector.Error{Kind: kind, Op: "reach Microsoft Graph", Err: err, Uncertain: sent && !req.idempotent}
			if errors.Is(err, netpolicy.ErrRefused) {
				// The policy's reason is for the operator's log.
				terr.Err = errors.New("the connection was refused by the outbound policy")
				terr.Hint = "the operator's outbound policy does not allow this host"
			}
			if kind != connector.KindTransient || terr.Uncertain || attempt >= attempts {
				return nil, terr
			}
			if err := c.clock.Sleep(ctx, c.backoff.Delay(attempt, 0)); err != nil {
				return nil, ctxError(err)
			}
			continue
		}
		if resp.StatusCode < 300 {
			return &response{Response: resp, leave: leave}, nil
		}
		retryAfter := oauth.ParseRetryAfter(resp.Header.Get("Retry-After"), c.clock.Now())
		ae := readAPIError(resp, retryAfter)
		leave()
		switch {
		case resp.StatusCode == http.StatusUnauthorized && !req.anonymous && !refreshed:
			// Expired or revoked before its time: one new token.
			c.tokens.Invalidate(token)
			refreshed = true
			attempt--
			continue
		case resp.StatusCode == http.StatusTooManyRequests,
			(resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusGatewayTimeout || resp.StatusCode == http.StatusBadGateway) && req.idempotent:
			// 429 is refused before anything is done; a 5xx only
			// where a resend is harmless.
			c.mu.Lock()
			c.throttled++
			c.mu.Unlock()
			if attempt >= attempts {
				return nil, ae
			}
			if err := c.clock.Sleep(ctx, c.backoff.Delay(attempt, retryAfter)); err != nil {
				return nil, ctxError(err)
			}
			continue
		case resp.StatusCode >= 500 && !req.idempotent:
			return nil, &connector.Error{Kind: connector.KindTransient, Op: "create an item", Err: ae, Uncertain: true, RetryAfter: retryAfter}
		}
		return nil, ae
	}
}

func (c *client) send(ctx context.Context, req request, target, token string) (*http.Response, error) {
	var body io.Reader
	if req.body != nil {
		body = req.body()
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, target, body)
	if err != nil {
		return nil, errors.New("bad request URL")
	}
	if req.body != nil {
		hr.ContentLength = req.bodyLen
		b := req.body
		hr.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(b()), nil }
	}
	if token != "" {
		hr.Header.Set("Authorization", "Bearer "+token)
	}
	if req.contentType != "" {
		hr.Header.Set("Content-Type", req.contentType)
	}
	for k, v := range req.header {
		hr.Header.Set(k, v)
	}
	resp, err := c.http.Do(hr)
	if err != nil {
		// url.Error quotes the URL, and upload URLs carry their
		// authentication in it: keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s %s: %w", req.method, redactURL(target), err)
	}
	return resp, nil
}

// redactURL keeps scheme, host and path, which name no secret (user
// principal names and ids only), and drops the query, where upload
// sessions and delta links keep their tokens.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(URL)"
	}
	u.RawQuery, u.Fragment, u.User = "", "", nil
	if strings.Contains(strings.ToLower(u.Path), "attachmentsessions") {
		u.Path = "/(upload session)"
		u.RawPath = ""
	}
	return u.String()
}

func ctxError(err error) error {
	return &connector.Error{Kind: connector.KindTransient, Op: "wait for Microsoft Graph", Err: err}
}

func (c *client) throttledCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.throttled
}

// transportKind sorts a failure that came before any answer, and says
// whether the request may have reached the server (a dial failure did
// not send it).
func transportKind(err error) (kind connector.Kind, sent bool) {
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var opErr *net.OpError
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return connector.KindHost, false
	case errors.As(err, &certErr), errors.As(err, &unknownAuth), errors.As(err, &hostErr):
		return connector.KindTLS, false
	case errors.Is(err, netpolicy.ErrRefused):
		return connector.KindConnect, false
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return connector.KindTransient, false
	}
	return connector.KindTransient, true
}
