package docs_test

import (
	"bytes"
	"html"
	"strings"
	"testing"
	"time"

	"github.com/hookstream/hookstream/internal/docs"
)

// TestPageHasCatalog: the page names every catalog type with its
// description and example envelope, the brand's headers, the schedule and
// the tolerance.
func TestPageHasCatalog(t *testing.T) {
	cat := catalog(t)
	var b bytes.Buffer
	err := docs.WritePage(&b, cat, docs.PageOptions{Brand: "Acme", Schedule: []time.Duration{0, 5 * time.Second, 5 * time.Minute}, Tolerance: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	page := html.UnescapeString(b.String())
	for _, ty := range cat.Types() {
		var ex bytes.Buffer
		if err := jsonIndent(&ex, ty.Envelope); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`id="type-` + ty.Name + `"`, ty.Description, ex.String()} {
			if !strings.Contains(page, want) {
				t.Errorf("page lacks %s's %.80q", ty.Name, want)
			}
		}
	}
	for _, want := range []string{"X-Acme-Signature", "webhook-signature", "0s, 5s, 5m0s", ">5m0s<", "Acme Webhook Events"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}
