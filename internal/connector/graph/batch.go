package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/mailferry/mailferry/internal/oauth"
)

// maxBatch is the number of requests one JSON batch may hold
// (learn.microsoft.com/graph/json-batching).
const maxBatch = 20

// batchItem is one request of a JSON batch. URL is relative to the
// version root ("/users/..."), as the page requires. Only idempotent
// requests (GET, PATCH, DELETE) are batched, so that a batch whose
// answer is lost can be resent.
type batchItem struct {
	Method string
	URL    string
	Body   any // JSON, or nil
}

type batchResult struct {
	Status int
	Body   json.RawMessage
	Err    *apiError // set for a status >= 400
}

// batch runs items in JSON batches of up to 20 and returns one result per
// item. Requests Graph throttled inside a batch (429) are sent again in
// a later batch after their Retry-After; other failures are results. The
// error is for the batch requests themselves.
func (c *Conn) batch(ctx context.Context, items []batchItem) ([]batchResult, error) {
	results := make([]batchResult, len(items))
	pending := make([]int, len(items))
	for i := range pending {
		pending[i] = i
	}
	attempts := c.api.backoff.MaxAttempts()
	for attempt := 1; len(pending) > 0; attempt++ {
		var again []int
		var wait time.Duration // the longest Retry-After
		for start := 0; start < len(pending); start += maxBatch {
			chunk := pending[start:min(start+maxBatch, len(pending))]
			throttled, ra, err := c.batchOnce(ctx, items, chunk, results)
			if err != nil {
				return nil, err
			}
			again = append(again, throttled...)
			wait = max(wait, ra)
		}
		if len(again) == 0 {
			break
		}
		if attempt >= attempts {
			break // the 429 results stay as they are
		}
		if err := c.api.clock.Sleep(ctx, c.api.backoff.Delay(attempt, wait)); err != nil {
			return nil, ctxError(err)
		}
		pending = again
	}
	return results, nil
}

func (c *Conn) batchOnce(ctx context.Context, items []batchItem, chunk []int, results []batchResult) (throttled []int, retryAfter time.Duration, err error) {
	type subRequest struct {
		ID      string            `json:"id"`
		Method  string            `json:"method"`
		URL     string            `json:"url"`
		Headers map[string]string `json:"headers,omitempty"`
		Body    any               `json:"body,omitempty"`
	}
	var doc struct {
		Requests []subRequest `json:"requests"`
	}
	for _, i := range chunk {
		r := subRequest{ID: strconv.Itoa(i), Method: items[i].Method, URL: items[i].URL}
		if items[i].Body != nil {
			r.Body = items[i].Body
			r.Headers = map[string]string{"Content-Type": "application/json"}
		}
		doc.Requests = append(doc.Requests, r)
	}
	payload, err := json.Marshal(doc)
	if err != nil {
		return nil, 0, err
	}
	body, n := bytesBody(payload)
	resp, err := c.api.do(ctx, request{
		method: http.MethodPost, url: "/v1.0/$batch", contentType: "application/json",
		body: body, bodyLen: n, idempotent: true,
		slots: int64(len(chunk)), cost: float64(len(chunk)),
	})
	if err != nil {
		return nil, 0, c.sortError(err, accessRead, 0, 0, "send a JSON batch of %d requests", len(chunk))
	}
	defer resp.Close()
	var answer struct {
		Responses []struct {
			ID      string            `json:"id"`
			Status  int               `json:"status"`
			Headers map[string]string `json:"headers"`
			Body    json.RawMessage   `json:"body"`
		} `json:"responses"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&answer); err != nil {
		return nil, 0, fmt.Errorf("read a JSON batch answer: %w", err)
	}
	seen := 0
	for _, r := range answer.Responses {
		i, err := strconv.Atoi(r.ID)
		if err != nil || i < 0 || i >= len(results) {
			continue
		}
		seen++
		results[i] = batchResult{Status: r.Status, Body: r.Body}
		if r.Status >= 400 {
			ra := oauth.ParseRetryAfter(headerValue(r.Headers, "Retry-After"), c.api.clock.Now())
			ae := parseAPIError(r.Status, r.Body)
			ae.RetryAfter = ra
			results[i].Err = ae
			if r.Status == http.StatusTooManyRequests {
				throttled = append(throttled, i)
				retryAfter = max(retryAfter, ra)
			}
		}
	}
	if seen != len(chunk) {
		return nil, 0, fmt.Errorf("a JSON batch of %d requests answered %d of them", len(chunk), seen)
	}
	return throttled, retryAfter, nil
}

func headerValue(h map[string]string, name string) string {
	for k, v := range h {
		if http.CanonicalHeaderKey(k) == http.CanonicalHeaderKey(name) {
			return v
		}
	}
	return ""
}
