package api

import (
	"bytes"
	"net/http"

	"github.com/hookstream/hookstream/deliverer"
	"github.com/hookstream/hookstream/internal/docs"
	"github.com/hookstream/hookstream/signature"
)

// WithBrand sets <Brand> of the seed scheme's X-<Brand>-* headers in the
// documents the API serves (default signature.DefaultBrand); give it the
// deliverers' --signature-brand.
func WithBrand(brand string) Option { return func(c *cfg) { c.brand = brand } }

func (s *Server) docsBrand() string {
	if s.brand == "" {
		return signature.DefaultBrand
	}
	return s.brand
}

// serveAsyncAPI is public like the catalog it describes.
func (s *Server) serveAsyncAPI(w http.ResponseWriter, r *http.Request) {
	if s.catalog == nil {
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "", "no event catalog configured")
		return
	}
	b, err := docs.AsyncAPI(s.catalog, s.docsBrand())
	if err != nil {
		s.log.ErrorContext(r.Context(), "asyncapi", "err", err)
		writeError(w, http.StatusInternalServerError, CodeRejected, "", "the catalog could not be described")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// serveEventsPage serves the events page, public: it is what a platform
// links its customers to. It states the deliverer's default schedule and
// tolerance.
func (s *Server) serveEventsPage(w http.ResponseWriter, r *http.Request) {
	if s.catalog == nil {
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "", "no event catalog configured")
		return
	}
	var b bytes.Buffer
	err := docs.WritePage(&b, s.catalog, docs.PageOptions{
		Brand: s.docsBrand(), Schedule: deliverer.DefaultSchedule, Tolerance: signature.DefaultTolerance,
	})
	if err != nil {
		s.log.ErrorContext(r.Context(), "events page", "err", err)
		writeError(w, http.StatusInternalServerError, CodeRejected, "", "the events page could not be rendered")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = b.WriteTo(w)
}
