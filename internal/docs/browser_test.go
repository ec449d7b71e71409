package docs_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hookstream/hookstream/internal/docs"
	"github.com/hookstream/hookstream/internal/testenv"
)

// TestEventsPageInBrowser loads the events page in headless Chromium: every
// catalog type is rendered with its example, the page fits a phone's width,
// and it runs no script. HOOKSTREAM_SCREENSHOTS=DIR keeps screenshots.
func TestEventsPageInBrowser(t *testing.T) {
	cat := catalog(t)
	var page bytes.Buffer
	if err := docs.WritePage(&page, cat, docs.PageOptions{Brand: "Acme", Schedule: []time.Duration{0, 5 * time.Second, 5 * time.Minute}, Tolerance: 5 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page.Bytes())
	}))
	t.Cleanup(srv.Close)

	ctx := testenv.Browser(t)
	for _, vp := range []struct {
		name          string
		width, height int64
	}{{"desktop", 1280, 900}, {"phone", 390, 844}} {
		t.Run(vp.name, func(t *testing.T) {
			if err := chromedp.Do(ctx, chromedp.EmulateViewport(vp.width, vp.height), chromedp.Navigate(srv.URL)); err != nil {
				t.Fatal(err)
			}
			title, err := chromedp.Run(ctx, chromedp.Title())
			if err != nil || title != "Acme Webhook Events" {
				t.Errorf("title = %q, %v", title, err)
			}
			// What the browser rendered, not what the server wrote.
			rendered, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
				`[...document.querySelectorAll("article.event-type")].filter(a => a.offsetHeight > 0 && a.querySelector("pre").innerText.includes('"event"')).map(a => a.id)`))
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, id := range rendered {
				seen[id] = true
			}
			for _, ty := range cat.Types() {
				if !seen["type-"+ty.Name] {
					t.Errorf("%s: not rendered with an example", ty.Name)
				}
			}
			overflow, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`))
			if err != nil || overflow {
				t.Errorf("page wider than the %dpx viewport (%v)", vp.width, err)
			}
			scripts, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.scripts.length`))
			if err != nil || scripts != 0 {
				t.Errorf("%d scripts on a static page (%v)", scripts, err)
			}
			shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()) // the first screen, PNG
			if err != nil || len(shot) == 0 {
				t.Fatalf("screenshot: %v", err)
			}
			if dir := os.Getenv("HOOKSTREAM_SCREENSHOTS"); dir != "" {
				if err := os.WriteFile(filepath.Join(dir, "events-"+vp.name+".png"), shot, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
