package docs

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"

	"github.com/hookstream/hookstream/schemas"
)

// PageOptions brand the events page and state the delivery policy it
// documents; the caller passes what its deliverers run with.
type PageOptions struct {
	// Brand names the product on the page and the seed scheme's headers.
	Brand string
	// Schedule is the retry schedule, first attempt first.
	Schedule []time.Duration
	// Tolerance is how far a signed timestamp may be from the receiver's clock.
	Tolerance time.Duration
}

// Family is the catalog types sharing a name prefix ("agent" of
// "agent.created"), as the page groups them.
type Family struct {
	Name  string
	Types []PageType
}

// PageType is one type as the page shows it.
type PageType struct {
	Name, Description string
	// Example is the type's example envelope, indented.
	Example string
}

// Families groups the catalog by family, in catalog (name) order.
func Families(cat *schemas.Catalog) []Family {
	var out []Family
	for _, t := range cat.Types() {
		fam, _, _ := strings.Cut(t.Name, ".")
		if len(out) == 0 || out[len(out)-1].Name != fam {
			out = append(out, Family{Name: fam})
		}
		var ex bytes.Buffer
		if err := indentJSON(&ex, t.Envelope); err != nil {
			ex.Reset()
			ex.Write(t.Envelope)
		}
		f := &out[len(out)-1]
		f.Types = append(f.Types, PageType{Name: t.Name, Description: t.Description, Example: ex.String()})
	}
	return out
}

// CatalogTemplate renders the "catalog" template: the families and their
// types with examples. The portal's catalog page executes it with
// Families(cat) as its data, inside its own layout.
var CatalogTemplate = template.Must(template.New("catalog").Parse(catalogHTML))

var pageTemplate = template.Must(template.Must(CatalogTemplate.Clone()).New("page").Parse(pageHTML))

// WritePage writes the events page: every catalog type with its description
// and example, grouped by family; the envelope; the headers of both
// signature schemes; the retry schedule and the timestamp tolerance.
func WritePage(w io.Writer, cat *schemas.Catalog, o PageOptions) error {
	snippets, err := Snippets()
	if err != nil {
		return err
	}
	sched := make([]string, len(o.Schedule))
	for i, d := range o.Schedule {
		sched[i] = d.String()
	}
	data := struct {
		Brand, SeedPrefix string
		Families          []Family
		Count             int
		Schedule          string
		Tolerance         string
		Snippets          []Snippet
	}{o.Brand, "X-" + o.Brand + "-", Families(cat), len(cat.Types()), strings.Join(sched, ", "), o.Tolerance.String(), snippets}
	if err := pageTemplate.ExecuteTemplate(w, "page", data); err != nil {
		return fmt.Errorf("docs: events page: %w", err)
	}
	return nil
}
