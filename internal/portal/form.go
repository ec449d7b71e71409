package portal

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/hookstream/hookstream/subscription"
)

// endpointForm is the create and edit form as the visitor filled it in,
// kept to show it again with the errors.
type endpointForm struct {
	URL, Description, Signature, Ordering, RateLimit, Headers string
	Events                                                    []string
}

// formErrors maps a form field's name to its message.
type formErrors map[string]string

func formOf(e *subscription.Endpoint) endpointForm {
	f := endpointForm{URL: e.URL, Description: e.Description, Signature: e.Signature, Ordering: e.Ordering, Events: e.Events}
	if e.RateLimit > 0 {
		f.RateLimit = strconv.Itoa(e.RateLimit)
	}
	masked := subscription.MaskedHeaders(e.Headers)
	for _, k := range slices.Sorted(maps.Keys(masked)) {
		f.Headers += k + ": " + masked[k] + "\n"
	}
	return f
}

// parseForm reads the endpoint form. Checks the store makes anyway (URL,
// filters, header names) are left to it, so the messages are the API's.
func parseForm(r *http.Request) (endpointForm, subscription.EndpointInput, formErrors) {
	f := endpointForm{
		URL: strings.TrimSpace(r.PostFormValue("url")), Description: strings.TrimSpace(r.PostFormValue("description")),
		Signature: r.PostFormValue("signature"), Ordering: r.PostFormValue("ordering"),
		RateLimit: strings.TrimSpace(r.PostFormValue("rate_limit")), Headers: r.PostFormValue("headers"),
		Events: r.PostForm["events"],
	}
	for _, ev := range strings.Split(r.PostFormValue("events_other"), ",") {
		if ev = strings.TrimSpace(ev); ev != "" && !slices.Contains(f.Events, ev) {
			f.Events = append(f.Events, ev)
		}
	}
	in := subscription.EndpointInput{URL: f.URL, Description: f.Description, Signature: f.Signature, Ordering: f.Ordering, Events: f.Events}
	errs := formErrors{}
	if len(f.Events) == 0 {
		errs["events"] = "Choose at least one event type."
	}
	if f.RateLimit != "" {
		n, err := strconv.Atoi(f.RateLimit)
		if err != nil || n < 0 {
			errs["rate_limit"] = "The rate limit is a whole number of requests per second (empty: no limit)."
		}
		in.RateLimit = n
	}
	for i, line := range strings.Split(f.Headers, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(k) == "" {
			errs["headers"] = "Line " + strconv.Itoa(i+1) + ": write each header as Name: value."
			break
		}
		if in.Headers == nil {
			in.Headers = map[string]string{}
		}
		in.Headers[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return f, in, errs
}

// fieldError turns the store's field error (a JSON pointer such as
// /events/0) into the form field's message; nil for other errors.
func fieldError(err error) formErrors {
	var fe *subscription.FieldError
	if !errors.As(err, &fe) {
		return nil
	}
	name, _, _ := strings.Cut(strings.TrimPrefix(fe.Field, "/"), "/")
	switch name {
	case "url", "events", "description", "signature", "ordering", "rate_limit", "headers":
	default:
		name = "form"
	}
	return formErrors{name: fe.Message}
}

// pickerFamily is one family of the event-type picker.
type pickerFamily struct {
	Name  string
	Types []pickerType
}

type pickerType struct{ Name, Description string }

// pathEndpoint returns the tenant's {id} endpoint, or answers why not (ok
// false).
func (p *Portal) pathEndpoint(ctx context.Context, w http.ResponseWriter, r *http.Request, rq *request) (*subscription.Endpoint, bool) {
	e, err := p.Endpoints.Get(ctx, rq.sess.Tenant, r.PathValue("id"))
	if err != nil {
		p.storeError(w, r, rq, err)
		return nil, false
	}
	return e, true
}

// saved ends a create or update form: the form again (over shown: nil
// when creating) with what the store refused, the error page for another
// failure, else the saved endpoint's page saying done.
func (p *Portal) saved(w http.ResponseWriter, r *http.Request, rq *request, shown *subscription.Endpoint, f endpointForm, e *subscription.Endpoint, err error, done string) {
	if fe := fieldError(err); fe != nil {
		p.renderForm(w, r, rq, http.StatusUnprocessableEntity, shown, f, fe)
		return
	}
	if err != nil {
		p.storeError(w, r, rq, err)
		return
	}
	http.Redirect(w, r, "/portal/endpoints/"+e.ID+"?done="+done, http.StatusSeeOther)
}

func (p *Portal) renderForm(w http.ResponseWriter, r *http.Request, rq *request, status int, e *subscription.Endpoint, f endpointForm, errs formErrors) {
	var fams []pickerFamily
	for _, t := range p.Catalog.Types() {
		fam, _, _ := strings.Cut(t.Name, ".")
		if len(fams) == 0 || fams[len(fams)-1].Name != fam {
			fams = append(fams, pickerFamily{Name: fam})
		}
		last := &fams[len(fams)-1]
		last.Types = append(last.Types, pickerType{t.Name, t.Description})
	}
	// Filters the picker has no box for (an older wildcard, say) stay in
	// the free-text field rather than being dropped on save.
	known := map[string]bool{"*": true}
	for _, fam := range fams {
		known[fam.Name+".*"] = true
		for _, t := range fam.Types {
			known[t.Name] = true
		}
	}
	checked := map[string]bool{}
	var other []string
	for _, ev := range f.Events {
		checked[ev] = true
		if !known[ev] {
			other = append(other, ev)
		}
	}
	title := "New endpoint"
	if e != nil {
		title = "Edit endpoint"
	}
	if len(errs) > 0 && status == http.StatusOK {
		status = http.StatusUnprocessableEntity
	}
	p.render(w, r, status, "form", rq, title, map[string]any{
		"Endpoint": e, "Form": f, "Errors": errs, "Families": fams, "Checked": checked, "Other": strings.Join(other, ", "), "Brand": p.SignatureBrand,
	})
}
