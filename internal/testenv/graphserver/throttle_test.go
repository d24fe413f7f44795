package graphserver_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testenv/graphserver"
)

// holdFour starts four GETs to mailbox that block inside the server and
// returns once all four are in flight.
func holdFour(t *testing.T, e *env, mailbox string) (release func(), wait func()) {
	t.Helper()
	rel := e.srv.BlockRequests()
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, b := e.do(t, "GET", "/v1.0/users/"+mailbox+"/mailFolders/inbox", "", nil)
			if resp.StatusCode != 200 {
				t.Errorf("held request: %d %s", resp.StatusCode, b)
			}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.srv.InFlight(mailbox) < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d requests in flight", e.srv.InFlight(mailbox))
		}
		time.Sleep(time.Millisecond)
	}
	return rel, wg.Wait
}

func TestFifthConcurrentRequestIsThrottled(t *testing.T) {
	e := setup(t, nil)
	release, wait := holdFour(t, e, alice)
	resp, b := e.do(t, "GET", "/v1.0/users/"+alice+"/mailFolders", "", nil)
	if er := wantError(t, resp, b, 429, "ApplicationThrottled"); !strings.Contains(er["message"].(string), "MailboxConcurrency") {
		t.Fatalf("message: %v", er)
	}
	if resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
	// The default is the stricter per-app reading: another mailbox of the
	// same app is throttled too.
	resp, b = e.do(t, "GET", "/v1.0/users/"+bob+"/mailFolders", "", nil)
	wantError(t, resp, b, 429, "ApplicationThrottled")
	// Inside a batch, the request is throttled on its own; the batch is 200.
	resp, b = e.do(t, "POST", "/v1.0/$batch", "application/json", []byte(fmt.Sprintf(`{"requests":[{"id":"1","method":"GET","url":"/users/%s/mailFolders"}]}`, bob)))
	mustStatus(t, resp, b, 200)
	if !strings.Contains(string(b), `"status":429`) || !strings.Contains(string(b), `"Retry-After":"1"`) {
		t.Fatalf("batch: %s", b)
	}
	release()
	wait()
	if p := e.srv.PeakConcurrency(alice); p != 4 {
		t.Fatalf("PeakConcurrency = %d, want 4", p)
	}
	if p := e.srv.PeakAppConcurrency(clientID); p != 4 {
		t.Fatalf("PeakAppConcurrency = %d, want 4", p)
	}
	if n := e.srv.ThrottledCount(); n != 3 {
		t.Fatalf("ThrottledCount = %d, want 3", n)
	}
	resp, b = e.do(t, "GET", "/v1.0/users/"+alice+"/mailFolders", "", nil)
	mustStatus(t, resp, b, 200)
}

func TestConcurrencyPerMailboxOption(t *testing.T) {
	e := setup(t, &graphserver.Options{ConcurrencyPerMailbox: true})
	release, wait := holdFour(t, e, alice)
	defer func() { release(); wait() }()
	resp, b := e.do(t, "GET", "/v1.0/users/"+alice+"/mailFolders", "", nil)
	wantError(t, resp, b, 429, "ApplicationThrottled")
	// bob is another mailbox: admitted (it then waits on the gate too, so
	// check admission through InFlight in a goroutine).
	done := make(chan int)
	go func() {
		resp, _ := e.do(t, "GET", "/v1.0/users/"+bob+"/mailFolders", "", nil)
		done <- resp.StatusCode
	}()
	deadline := time.Now().Add(10 * time.Second)
	for e.srv.InFlight(bob) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("bob's request was not admitted")
		}
		time.Sleep(time.Millisecond)
	}
	release()
	if st := <-done; st != 200 {
		t.Fatalf("bob: %d", st)
	}
}

func TestRequestAndUploadBudgets(t *testing.T) {
	c := newClock()
	e := setup(t, &graphserver.Options{Now: c.Now, TokenLifetime: time.Hour, RequestBudget: 3, RequestWindow: time.Minute, UploadBudget: 3000, UploadWindow: 5 * time.Minute})
	for i := 0; i < 3; i++ {
		resp, b := e.do(t, "GET", "/v1.0/users/"+alice+"/mailFolders", "", nil)
		mustStatus(t, resp, b, 200)
		c.Advance(time.Second)
	}
	resp, b := e.do(t, "GET", "/v1.0/users/"+alice+"/mailFolders", "", nil)
	wantError(t, resp, b, 429, "TooManyRequests")
	if ra := resp.Header.Get("Retry-After"); ra != "57" {
		t.Fatalf("Retry-After %q, want 57 (window of 60 s opened 3 s ago)", ra)
	}
	// Another mailbox has its own budget.
	resp, b = e.do(t, "GET", "/v1.0/users/"+bob+"/mailFolders", "", nil)
	mustStatus(t, resp, b, 200)
	c.Advance(time.Minute)
	resp, b = e.do(t, "GET", "/v1.0/users/"+alice+"/mailFolders", "", nil)
	mustStatus(t, resp, b, 200)

	// Upload bytes: 2 x 1,400 fit, the third does not.
	body := []byte(`{"subject":"` + strings.Repeat("x", 1380) + `"}`)
	for i := 0; i < 2; i++ {
		resp, b = e.do(t, "POST", "/v1.0/users/"+bob+"/messages", "application/json", body)
		mustStatus(t, resp, b, 201)
	}
	resp, b = e.do(t, "POST", "/v1.0/users/"+bob+"/messages", "application/json", body)
	if er := wantError(t, resp, b, 429, "ApplicationThrottled"); !strings.Contains(er["message"].(string), "IncomingBytes") {
		t.Fatalf("upload throttle message: %v", er)
	}
	c.Advance(5 * time.Minute)
	resp, b = e.do(t, "POST", "/v1.0/users/"+bob+"/messages", "application/json", body)
	mustStatus(t, resp, b, 201)
}

func TestInjectedFaults(t *testing.T) {
	e := setup(t, nil)
	id := e.srv.SeedMessage(alice, "inbox", graphserver.Seed{MIME: []byte(sampleMIME)})
	e.srv.InjectFault(graphserver.Fault{Route: graphserver.RouteGetMIME, Status: 429, RetryAfter: 7 * time.Second, Count: 2})
	e.srv.InjectFault(graphserver.Fault{Route: graphserver.RouteGetMIME, Status: 503, RetryAfter: 3 * time.Second})
	e.srv.InjectFault(graphserver.Fault{Route: graphserver.RouteGetMIME, Status: 401})
	e.srv.InjectFault(graphserver.Fault{Route: graphserver.RouteGetMIME, Status: 413})
	path := "/v1.0/users/" + alice + "/messages/" + id + "/$value"
	for i, want := range []struct {
		status int
		code   string
		retry  string
	}{{429, "TooManyRequests", "7"}, {429, "TooManyRequests", "7"}, {503, "serviceNotAvailable", "3"}, {401, "InvalidAuthenticationToken", ""}, {413, "RequestEntityTooLarge", ""}} {
		resp, b := e.do(t, "GET", path, "", nil)
		wantError(t, resp, b, want.status, want.code)
		if got := resp.Header.Get("Retry-After"); got != want.retry {
			t.Fatalf("request %d: Retry-After %q, want %q", i, got, want.retry)
		}
	}
	// Other routes were not affected, and the faults are used up.
	resp, b := e.do(t, "GET", "/v1.0/users/"+alice+"/messages/"+id, "", nil)
	mustStatus(t, resp, b, 200)
	resp, b = e.do(t, "GET", path, "", nil)
	mustStatus(t, resp, b, 200)
	if n := e.srv.RequestCount(graphserver.RouteGetMIME); n != 6 {
		t.Fatalf("RequestCount($value) = %d, want 6", n)
	}
	// The token endpoint only fails when named.
	e.srv.InjectFault(graphserver.Fault{Route: graphserver.RouteMicrosoftToken, Status: 503})
	resp, b = e.do(t, "POST", "/"+tenantID+"/oauth2/v2.0/token", "application/x-www-form-urlencoded", []byte("grant_type=client_credentials"))
	if resp.StatusCode != 503 {
		t.Fatalf("token fault: %d %s", resp.StatusCode, b)
	}
}
