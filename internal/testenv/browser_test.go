package testenv

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/chromedp/chromedp"
)

func TestBrowser(t *testing.T) {
	ctx := StartBrowser(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`<html><body><h1 id="t">hello</h1><script>document.getElementById("t").textContent += " js"</script></body></html>`))
	}))
	defer srv.Close()
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL)); err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(ctx, chromedp.Text("#t"))
	if err != nil {
		t.Fatal(err)
	}
	if text != "hello js" {
		t.Fatalf("page text %q", text)
	}
	Screenshot(t, ctx, ArtifactsDir(t, "testenv"), "hello")
}
