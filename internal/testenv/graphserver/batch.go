package graphserver

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
)

// batchInfo marks a request as part of a $batch.
type batchInfo struct{}

const maxBatch = 20

type batchRequest struct {
	ID        string            `json:"id"`
	Method    string            `json:"method"`
	URL       string            `json:"url"`
	Headers   map[string]string `json:"headers"`
	Body      json.RawMessage   `json:"body"`
	DependsOn []string          `json:"dependsOn"`
}

// parseBatch reads and checks a JSON batch body (json-batching): at most
// 20 requests, unique ids, method and relative url present, Content-Type
// with every body, dependsOn naming other requests of the batch.
func parseBatch(body []byte) ([]batchRequest, *graphError) {
	bad := func(format string, args ...any) *graphError {
		return newError(http.StatusBadRequest, "BadRequest", format, args...)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, bad("Invalid batch payload format.")
	}
	for k := range top {
		if k != "requests" {
			return nil, errUnknownProperty(k, "microsoft.graph.batchRequest")
		}
	}
	var reqs []batchRequest
	dec := json.NewDecoder(bytes.NewReader(top["requests"]))
	dec.DisallowUnknownFields()
	if len(top["requests"]) == 0 || dec.Decode(&reqs) != nil {
		return nil, bad("Invalid batch payload format: 'requests' must be an array of requests with id, method, url, and optionally headers, body and dependsOn.")
	}
	if len(reqs) == 0 {
		return nil, bad("Invalid batch payload format: the batch holds no requests.")
	}
	if len(reqs) > maxBatch {
		return nil, bad("Number of batch request steps exceeds the maximum of %d.", maxBatch)
	}
	seen := map[string]bool{}
	for _, r := range reqs {
		if r.ID == "" || r.Method == "" || r.URL == "" {
			return nil, bad("Every request in a batch needs id, method and url.")
		}
		if seen[strings.ToLower(r.ID)] {
			return nil, bad("Batch request id '%s' is not unique.", r.ID)
		}
		seen[strings.ToLower(r.ID)] = true
		if strings.Contains(r.URL, "://") {
			return nil, bad("The url of request '%s' must be relative to the service root, e.g. /users.", r.ID)
		}
		if len(r.Body) > 0 && headerGet(r.Headers, "Content-Type") == "" {
			return nil, bad("Request '%s' has a body but no Content-Type header.", r.ID)
		}
	}
	for _, r := range reqs {
		for _, d := range r.DependsOn {
			if !seen[strings.ToLower(d)] || strings.EqualFold(d, r.ID) {
				return nil, bad("Request '%s' depends on '%s', which is not another request of this batch.", r.ID, d)
			}
		}
	}
	return reqs, nil
}

func headerGet(h map[string]string, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// serveBatch runs a JSON batch: in order one at a time when any request
// has dependsOn, else up to four at a time as Graph dispatches them to
// Outlook (throttling-limits: Outlook service limits for JSON batching).
// Each request goes through the same checks as on its own, so it can get
// 429 inside the batch.
func (s *Server) serveBatch(w http.ResponseWriter, r *http.Request, version, reqID string, p principal) {
	now := s.now()
	if gerr := jsonContent(r); gerr != nil {
		writeError(w, gerr, reqID, now)
		return
	}
	body, gerr := readBody(r, s.opts.MaxRequestBody)
	if gerr != nil {
		writeError(w, gerr, reqID, now)
		return
	}
	reqs, gerr := parseBatch(body)
	if gerr != nil {
		writeError(w, gerr, reqID, now)
		return
	}
	results := make([]obj, len(reqs))
	status := map[string]int{}
	var mu sync.Mutex
	run := func(i int) {
		br := reqs[i]
		mu.Lock()
		failedDep := ""
		for _, d := range br.DependsOn {
			if st, ok := status[strings.ToLower(d)]; ok && st >= 400 {
				failedDep = d
			}
		}
		mu.Unlock()
		var res obj
		if failedDep != "" {
			res = obj{{"id", br.ID}, {"status", http.StatusFailedDependency}, {"headers", map[string]string{"Content-Type": "application/json"}},
				{"body", json.RawMessage(errorBody(newError(http.StatusFailedDependency, "FailedDependency", "Request '%s' failed, so request '%s' that depends on it was not run.", failedDep, br.ID), reqID, now))}}
		} else {
			res = s.runBatchItem(r, version, reqID, br)
		}
		st, _ := res.get("status")
		mu.Lock()
		status[strings.ToLower(br.ID)] = st.(int)
		results[i] = res
		mu.Unlock()
	}
	sequential := false
	for _, br := range reqs {
		if len(br.DependsOn) > 0 {
			sequential = true
		}
	}
	if sequential {
		for _, i := range batchOrder(reqs) {
			run(i)
		}
	} else {
		sem := make(chan struct{}, 4)
		var wg sync.WaitGroup
		for i := range reqs {
			wg.Add(1)
			sem <- struct{}{}
			go func(i int) {
				defer wg.Done()
				defer func() { <-sem }()
				run(i)
			}(i)
		}
		wg.Wait()
	}
	writeJSON(w, http.StatusOK, obj{{"responses", results}})
}

// batchOrder orders requests so that each comes after those it depends on
// (Kahn's algorithm, stable in request order); a cycle keeps request order.
func batchOrder(reqs []batchRequest) []int {
	idx := map[string]int{}
	for i, r := range reqs {
		idx[strings.ToLower(r.ID)] = i
	}
	done := make([]bool, len(reqs))
	var order []int
	for len(order) < len(reqs) {
		progressed := false
		for i, r := range reqs {
			if done[i] {
				continue
			}
			ready := true
			for _, d := range r.DependsOn {
				if !done[idx[strings.ToLower(d)]] {
					ready = false
				}
			}
			if ready {
				done[i] = true
				order = append(order, i)
				progressed = true
			}
		}
		if !progressed {
			for i := range reqs {
				if !done[i] {
					done[i] = true
					order = append(order, i)
				}
			}
		}
	}
	return order
}

// runBatchItem runs one request of a batch through serveGraph and turns
// the recorded response into a batch response item. A JSON body is passed
// as is; any other body is the base64 of the bytes (json-batching).
func (s *Server) runBatchItem(outer *http.Request, version, reqID string, br batchRequest) obj {
	u := br.URL
	if !strings.HasPrefix(u, "/") {
		u = "/" + u
	}
	var body []byte
	ct := headerGet(br.Headers, "Content-Type")
	if len(br.Body) > 0 {
		mt, _, _ := mime.ParseMediaType(ct)
		if mt == "application/json" {
			body = br.Body
		} else {
			var enc string
			if err := json.Unmarshal(br.Body, &enc); err != nil {
				return batchError(br.ID, newError(http.StatusBadRequest, "BadRequest", "The body of request '%s' must be base64 for Content-Type '%s'.", br.ID, ct), reqID, s)
			}
			b, err := base64.StdEncoding.DecodeString(enc)
			if err != nil {
				if b, err = base64.URLEncoding.DecodeString(enc); err != nil {
					return batchError(br.ID, newError(http.StatusBadRequest, "BadRequest", "The body of request '%s' is not valid base64.", br.ID), reqID, s)
				}
			}
			body = b
		}
	}
	sub, err := http.NewRequestWithContext(outer.Context(), strings.ToUpper(br.Method), s.URL+"/"+version+u, bytes.NewReader(body))
	if err != nil {
		return batchError(br.ID, newError(http.StatusBadRequest, "BadRequest", "Invalid url '%s': %v", br.URL, err), reqID, s)
	}
	for k, v := range br.Headers {
		sub.Header.Set(k, v)
	}
	sub.Header.Set("Authorization", outer.Header.Get("Authorization"))
	rec := httptest.NewRecorder()
	s.serveGraph(rec, sub, reqID, &batchInfo{})
	res := rec.Result()
	hdrs := map[string]string{}
	for k := range res.Header {
		switch k {
		case "Request-Id", "Client-Request-Id":
			continue
		}
		hdrs[k] = res.Header.Get(k)
	}
	o := obj{{"id", br.ID}, {"status", res.StatusCode}, {"headers", hdrs}}
	rb := rec.Body.Bytes()
	if len(rb) > 0 {
		mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type"))
		if mt == "application/json" && json.Valid(rb) {
			o.set("body", json.RawMessage(rb))
		} else {
			o.set("body", base64.StdEncoding.EncodeToString(rb))
		}
	}
	return o
}

func batchError(id string, e *graphError, reqID string, s *Server) obj {
	return obj{{"id", id}, {"status", e.Status}, {"headers", map[string]string{"Content-Type": "application/json"}}, {"body", json.RawMessage(errorBody(e, reqID, s.now()))}}
}
