package autoconfig

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
	"syscall"
	"time"
)

var (
	// errBudget: the lookup's own time ran out while the request was
	// under way (as opposed to the request's timeout).
	errBudget            = errors.New("the lookup's time limit was reached")
	errTooLarge          = errors.New("answer too large")
	errInsecureRedirect  = errors.New("redirect to a plain http address")
	errTooManyRedirects  = errors.New("too many redirects")
	errRedirectNoAddress = errors.New("redirect without a Location")
)

// fetcher makes the lookup's HTTP requests. Every connection, redirects
// included, is opened by its Transport's DialContext, the Finder's Dial
// hook; there is no proxy, since a proxy would be dialled instead of the
// real host and the policy would check the wrong address.
type fetcher struct {
	client       *http.Client
	transport    *http.Transport
	timeout      time.Duration
	maxBody      int64
	maxRedirects int
	userAgent    string
}

func newFetcher(dial DialFunc, roots *x509.CertPool, timeout time.Duration, maxBody int64, maxRedirects int, userAgent string) *fetcher {
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            dial,
		TLSClientConfig:        &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    timeout,
		ResponseHeaderTimeout:  timeout,
		MaxResponseHeaderBytes: 32 << 10,
		MaxIdleConnsPerHost:    2,
		IdleConnTimeout:        timeout,
	}
	return &fetcher{
		client: &http.Client{
			Transport: tr,
			// Redirects are followed by fetch itself, to check each
			// Location and to POST again where Autodiscover asks for it.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		transport:    tr,
		timeout:      timeout,
		maxBody:      maxBody,
		maxRedirects: maxRedirects,
		userAgent:    userAgent,
	}
}

func (f *fetcher) close() { f.transport.CloseIdleConnections() }

// fetched is an HTTP answer that is not a redirect.
type fetched struct {
	Status int
	Header http.Header
	Body   []byte
	// URL is the address that answered, after redirects.
	URL string
	// Plaintext is set when any hop went over http.
	Plaintext bool
}

// fetch sends method to rawURL with body (nil for none) and returns the
// first answer that is not a redirect. It follows at most maxRedirects
// redirects, and only to https; a 301, 302, 307 or 308 repeats the
// method and body (Autodiscover expects its POST to be sent again,
// [MS-OXDSCLI] section 3.1.5.2), a 303 turns into a GET. The whole
// exchange, redirects included, must finish within the fetcher's timeout,
// and a body longer than maxBody is refused with errTooLarge.
func (f *fetcher) fetch(parent context.Context, method, rawURL string, body []byte, contentType string) (*fetched, error) {
	ctx, cancel := context.WithTimeout(parent, f.timeout)
	defer cancel()
	target, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("bad URL %q: %w", rawURL, err)
	}
	plaintext := target.Scheme == "http"
	for hop := 0; ; hop++ {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, target.String(), rd)
		if err != nil {
			return nil, err
		}
		req.Header.Set("User-Agent", f.userAgent)
		req.Header.Set("Accept", "text/xml, application/xml;q=0.9, */*;q=0.1")
		if body != nil && contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := f.client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, timeoutError(parent)
			}
			return nil, err
		}
		switch resp.StatusCode {
		case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			loc := resp.Header.Get("Location")
			drain(resp.Body)
			if loc == "" {
				return nil, errRedirectNoAddress
			}
			if hop >= f.maxRedirects {
				return nil, errTooManyRedirects
			}
			next, err := target.Parse(loc)
			if err != nil {
				return nil, fmt.Errorf("redirect to a bad address: %w", err)
			}
			if next.Scheme != "https" {
				return nil, fmt.Errorf("%w (%s)", errInsecureRedirect, truncate(next.Redacted(), 200))
			}
			if resp.StatusCode == http.StatusSeeOther {
				method, body = http.MethodGet, nil
			}
			target = next
			continue
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, f.maxBody+1))
		resp.Body.Close()
		if err != nil {
			if ctx.Err() != nil {
				return nil, timeoutError(parent)
			}
			return nil, fmt.Errorf("reading the answer: %w", err)
		}
		if int64(len(data)) > f.maxBody {
			return nil, errTooLarge
		}
		return &fetched{Status: resp.StatusCode, Header: resp.Header, Body: data, URL: target.String(), Plaintext: plaintext}, nil
	}
}

// timeoutError says whose time ran out: the lookup's (parent is done) or
// the request's own.
func timeoutError(parent context.Context) error {
	if parent.Err() != nil {
		return errBudget
	}
	return context.DeadlineExceeded
}

// drain reads a little of a body so the connection can be reused, then
// closes it.
func drain(rc io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, rc, 4<<10)
	rc.Close()
}

// describe turns a fetch or DNS error into a note: what the user reads,
// what the operator's log gets, and whether it is worth a warning. A name
// that does not exist and a closed port are the common "nothing
// published here" and only informational.
func describe(err error, opts *Options) (text string, level Level, detail string) {
	detail = err.Error()
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var hostErr x509.HostnameError
	var unknownCA x509.UnknownAuthorityError
	var invalidCert x509.CertificateInvalidError
	switch {
	case errors.Is(err, errBudget):
		return fmt.Sprintf("no complete answer within the lookup's time limit (%s)", opts.Timeout), LevelWarning, detail
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("no answer within %s", opts.RequestTimeout), LevelWarning, detail
	case errors.Is(err, context.Canceled):
		return "the lookup was cancelled", LevelInfo, detail
	case errors.Is(err, errNoSuchName), errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return "not published (the name does not exist)", LevelInfo, detail
	case errors.Is(err, errNoAddress):
		return "not published (the name has no address)", LevelInfo, detail
	case errors.Is(err, syscall.ECONNREFUSED):
		return "not published (nothing answers there)", LevelInfo, detail
	case errors.Is(err, errTooLarge):
		return fmt.Sprintf("the answer is larger than %d KiB and was not read", opts.MaxBody>>10), LevelWarning, detail
	case errors.Is(err, errInsecureRedirect):
		return "it redirects to a plain http:// address, which is not followed", LevelWarning, detail
	case errors.Is(err, errTooManyRedirects):
		return "it redirects too many times", LevelWarning, detail
	case errors.Is(err, errRedirectNoAddress):
		return "it redirects without saying where to", LevelWarning, detail
	case errors.As(err, &certErr), errors.As(err, &hostErr), errors.As(err, &unknownCA), errors.As(err, &invalidCert):
		return "its TLS certificate is not valid for this name, so the answer was not read", LevelWarning, detail
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		// This includes connections the outbound policy refused; why it
		// refused is for the operator's log only.
		return "could not connect", LevelWarning, detail
	}
	return "could not be fetched", LevelWarning, detail
}
