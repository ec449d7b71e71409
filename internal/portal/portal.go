package portal

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hookstream/hookstream/internal/api"
	"github.com/hookstream/hookstream/internal/deliverylog"
	"github.com/hookstream/hookstream/schemas"
	"github.com/hookstream/hookstream/signature"
	"github.com/hookstream/hookstream/subscription"
)

// Endpoints is the endpoint store the pages use; *subscription.Store is one.
type Endpoints interface {
	Create(ctx context.Context, tenant string, in subscription.EndpointInput) (*subscription.Endpoint, error)
	Get(ctx context.Context, tenant, id string) (*subscription.Endpoint, error)
	List(ctx context.Context, tenant, cursor string, limit int) ([]*subscription.Endpoint, string, error)
	Update(ctx context.Context, tenant, id string, p subscription.Patch) (*subscription.Endpoint, error)
	Delete(ctx context.Context, tenant, id string) error
	RotateSecret(ctx context.Context, tenant, id string, grace time.Duration) (*subscription.Endpoint, error)
}

// DeliveryLog is the delivery log the pages read; *deliverylog.Index is one.
type DeliveryLog interface {
	Attempt(ctx context.Context, tenant, id string) (deliverylog.Entry, error)
	EndpointAttempts(ctx context.Context, tenant, endpointID string, q deliverylog.Query) (deliverylog.Page, error)
	EventAttempts(ctx context.Context, tenant, eventID string, q deliverylog.Query) (deliverylog.Page, error)
	Event(ctx context.Context, tenant, id string) (deliverylog.Event, error)
}

// API is the HTTP API's Go side that pages share with it, so that the
// portal and the API answer alike; *api.Server is one.
type API interface {
	ListEvents(ctx context.Context, tenant string, q deliverylog.EventQuery) (api.EventList, error)
	GetEvent(ctx context.Context, tenant, id string) (api.EventDetail, error)
	EndpointStats(ctx context.Context, tenant, endpointID string, window time.Duration) (api.StatsView, error)
}

// Branding is how the portal presents itself to a platform's customers.
type Branding struct {
	Name    string // shown in the header and titles; default "Webhooks"
	Accent  string // #rgb or #rrggbb; default a blue
	LogoURL string // http(s) or a path; the CSP allows its origin for images
}

// DefaultAccent is the accent colour when none is configured.
const DefaultAccent = "#1a56db"

var colour = regexp.MustCompile(`^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$`)

// ErrBranding is wrapped by Check for a bad accent colour or logo URL.
var ErrBranding = errors.New("portal: bad branding")

// Check validates b.
func (b Branding) Check() error {
	if b.Accent != "" && !colour.MatchString(b.Accent) {
		return fmt.Errorf("%w: accent %q is not a colour such as #1a56db", ErrBranding, b.Accent)
	}
	if b.LogoURL != "" {
		u, err := url.Parse(b.LogoURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http" && !(u.Scheme == "" && u.Host == "" && strings.HasPrefix(u.Path, "/"))) {
			return fmt.Errorf("%w: logo URL %q must be an http(s) URL or an absolute path", ErrBranding, b.LogoURL)
		}
	}
	return nil
}

// Deps are what the portal is built on.
type Deps struct {
	Sessions  *Sessions
	Endpoints Endpoints
	Log       DeliveryLog
	API       API
	// Jobs and Failing run resend, recover, replay and test events; nil:
	// those pages answer 503.
	Jobs    Jobs
	Failing Failing
	// RecoverLimit lowers how many events one recover may go through
	// (0: recovery.MaxRecoverEvents).
	RecoverLimit int
	Catalog      *schemas.Catalog
	Logger       *slog.Logger
	Branding     Branding
	// SignatureBrand is <Brand> of the seed scheme's X-<Brand>-* headers,
	// as the deliverers sign (default signature.DefaultBrand).
	SignatureBrand string
	// Timeout bounds each store or log call of a page (default 10s).
	Timeout time.Duration
}

// Portal serves the customer portal's pages.
type Portal struct {
	Deps
	pages map[string]*template.Template
	csp   string
}

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// New returns the portal; b must have passed Check.
func New(d Deps) (*Portal, error) {
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.SignatureBrand == "" {
		d.SignatureBrand = signature.DefaultBrand
	}
	if d.Branding.Name == "" {
		d.Branding.Name = "Webhooks"
	}
	if d.Branding.Accent == "" {
		d.Branding.Accent = DefaultAccent
	}
	if d.Timeout <= 0 {
		d.Timeout = 10 * time.Second
	}
	if err := d.Branding.Check(); err != nil {
		return nil, err
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	img := "'self'"
	if u, err := url.Parse(d.Branding.LogoURL); err == nil && u.Host != "" {
		img += " " + u.Scheme + "://" + u.Host
	}
	csp := "default-src 'none'; script-src 'self'; style-src 'self'; img-src " + img +
		"; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
	return &Portal{Deps: d, pages: pages, csp: csp}, nil
}

var funcs = template.FuncMap{
	"since": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"list": func(s ...string) []string { return s },
	"add":  func(a, b int64) int64 { return a + b },
	"val": func(p *int) int {
		if p == nil {
			return 0
		}
		return *p
	},
	"pct": func(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) + " %" },
}

func parsePages() (map[string]*template.Template, error) {
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFiles, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("portal: templates: %w", err)
	}
	names, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("portal: templates: %w", err)
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(templateFiles, n)
		if err != nil {
			return nil, fmt.Errorf("portal: template %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// CookieName is the session cookie's name.
const CookieName = "hookstream_portal"

// route is one page or action and the capability it needs.
type route struct {
	pattern string
	need    Capability
	handle  func(w http.ResponseWriter, r *http.Request, rq *request)
}

// request is a signed-in request: its session and its CSRF token.
type request struct {
	sess *Session
	csrf string
}

// routes lists every route a session reaches; each is checked for its
// capability before it runs (TestCapabilitiesEnforced walks this list).
func (p *Portal) routes() []route {
	return []route{
		{"GET /portal/{$}", View, p.endpointsPage},
		{"GET /portal/endpoints/new", ManageEndpoints, p.newEndpointPage},
		{"POST /portal/endpoints", ManageEndpoints, p.createEndpoint},
		{"GET /portal/endpoints/{id}", View, p.endpointPage},
		{"GET /portal/endpoints/{id}/edit", ManageEndpoints, p.editEndpointPage},
		{"POST /portal/endpoints/{id}", ManageEndpoints, p.updateEndpoint},
		{"POST /portal/endpoints/{id}/disable", ManageEndpoints, p.setDisabled(true)},
		{"POST /portal/endpoints/{id}/enable", ManageEndpoints, p.setDisabled(false)},
		{"POST /portal/endpoints/{id}/delete", ManageEndpoints, p.deleteEndpoint},
		{"POST /portal/endpoints/{id}/secret", ViewSecrets, p.revealSecret},
		{"POST /portal/endpoints/{id}/rotate-secret", ManageEndpoints, p.rotateSecret},
		{"GET /portal/endpoints/{id}/verify", View, p.verifyPage},
		{"GET /portal/event-types", View, p.catalogPage},
		{"GET /portal/events", View, p.eventsPage},
		{"GET /portal/events/{id}", View, p.eventPage},
		{"GET /portal/attempts/{id}", View, p.attemptPage},
		{"POST /portal/endpoints/{id}/test", ManageEndpoints, p.testEvent},
		{"POST /portal/endpoints/{id}/recover", Recover, p.recoverEndpoint},
		{"POST /portal/endpoints/{id}/replay", Recover, p.replay},
		{"POST /portal/events/{id}/resend", Recover, p.resend},
		{"GET /portal/jobs/{id}", View, p.jobPage},
		{"POST /portal/logout", View, p.logout},
	}
}

// Routes lists the portal's patterns and handlers, to mount beside the API.
func (p *Portal) Routes() map[string]http.Handler {
	out := map[string]http.Handler{
		"GET " + StartPath:          p.headers(http.HandlerFunc(p.start)),
		"GET /portal/static/{name}": http.HandlerFunc(p.static),
		"GET /portal/":              p.headers(http.HandlerFunc(p.notFound)),
	}
	for _, rt := range p.routes() {
		out[rt.pattern] = p.headers(p.guard(rt))
	}
	return out
}

// Handler serves the portal alone (tests).
func (p *Portal) Handler() http.Handler {
	mux := http.NewServeMux()
	for pat, h := range p.Routes() {
		mux.Handle(pat, h)
	}
	return mux
}

// headers sets the security headers of every page.
func (p *Portal) headers(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", p.csp)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer") // a link's token must not leak
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

// maxForm caps a form body: the endpoint form is the largest.
const maxForm = 64 << 10

// guard admits a request with a valid session cookie, a valid CSRF token
// when it changes state, and the route's capability.
func (p *Portal) guard(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, err := p.session(r)
		if err != nil {
			p.signedOut(w, r, err)
			return
		}
		rq := &request{sess: sess, csrf: p.Sessions.CSRF(sess)}
		if r.Method != http.MethodGet {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
			tok := r.Header.Get("X-CSRF-Token")
			if tok == "" {
				tok = r.PostFormValue("csrf")
			}
			if !p.Sessions.ValidCSRF(sess, tok) {
				p.fail(w, r, rq, http.StatusForbidden, "This form has expired. Go back, reload the page and try again.")
				return
			}
		}
		if !sess.Can(rt.need) {
			p.fail(w, r, rq, http.StatusForbidden, "Your access to this portal does not allow this. Ask for a link with more access.")
			return
		}
		rt.handle(w, r, rq)
	})
}

func (p *Portal) session(r *http.Request) (*Session, error) {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return nil, ErrInvalid
	}
	ctx, cancel := context.WithTimeout(r.Context(), p.Timeout)
	defer cancel()
	return p.Sessions.Check(ctx, c.Value)
}

// start exchanges a link's token for the session cookie. It answers a
// page that moves on to the portal rather than a redirect: the cookie is
// SameSite=Strict, and a browser does not send it on a redirect that a
// click in another site (a mail, a dashboard) started, while it does on a
// navigation this page starts. The moved-on URL no longer has the token.
func (p *Portal) start(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), p.Timeout)
	defer cancel()
	sess, cookie, err := p.Sessions.Exchange(ctx, r.URL.Query().Get("token"))
	if errors.Is(err, ErrUsed) {
		// A reload of the link by the browser it signed in.
		if _, err2 := p.session(r); err2 == nil {
			p.render(w, r, http.StatusOK, "start", nil, "Signing in", nil)
			return
		}
	}
	if err != nil {
		p.signedOut(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: cookie, Path: "/portal/",
		Expires: sess.Expires(), MaxAge: int(time.Until(sess.Expires()).Seconds()),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secure(r),
	})
	p.render(w, r, http.StatusOK, "start", nil, "Signing in", nil)
}

// secure: the cookie is Secure when the visitor came over HTTPS, also
// through a TLS-terminating proxy.
func secure(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func (p *Portal) logout(w http.ResponseWriter, r *http.Request, _ *request) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/portal/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secure(r)})
	p.render(w, r, http.StatusOK, "signedout", nil, "Signed out", map[string]any{"Expired": false})
}

// signedOut answers a request without a valid session: the sign-in-expired
// page, 401, and nothing of any tenant's data.
func (p *Portal) signedOut(w http.ResponseWriter, r *http.Request, err error) {
	if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrExpired) && !errors.Is(err, ErrRevoked) && !errors.Is(err, ErrUsed) {
		p.Logger.Warn("portal session check failed", "err", err)
		p.fail(w, r, nil, http.StatusServiceUnavailable, "The portal is unavailable right now. Try again in a minute.")
		return
	}
	p.render(w, r, http.StatusUnauthorized, "signedout", nil, "Sign-in expired", map[string]any{"Expired": true})
}

func (p *Portal) notFound(w http.ResponseWriter, r *http.Request) {
	p.fail(w, r, nil, http.StatusNotFound, "There is no such page.")
}

func (p *Portal) fail(w http.ResponseWriter, r *http.Request, rq *request, status int, msg string) {
	p.render(w, r, status, "error", rq, http.StatusText(status), map[string]any{"Message": msg})
}

// view is what every page's template gets.
type view struct {
	Brand    Branding
	Title    string
	Nav      string // the active navigation entry
	Session  *Session
	CSRF     string
	Notice   string
	Data     any
	CanEdit  bool
	CanRead  bool // view_secrets
	CanRecov bool
}

func (p *Portal) render(w http.ResponseWriter, r *http.Request, status int, page string, rq *request, title string, data any) {
	v := view{Brand: p.Branding, Title: title, Data: data, Notice: notices[r.URL.Query().Get("done")]}
	if rq != nil {
		v.Session, v.CSRF = rq.sess, rq.csrf
		v.CanEdit, v.CanRead, v.CanRecov = rq.sess.Can(ManageEndpoints), rq.sess.Can(ViewSecrets), rq.sess.Can(Recover)
	}
	v.Nav, _, _ = strings.Cut(strings.TrimPrefix(r.URL.Path, "/portal/"), "/")
	t, ok := p.pages[page]
	if !ok {
		http.Error(w, "no page "+page, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := t.ExecuteTemplate(w, "layout.html", v); err != nil {
		p.Logger.Error("portal page", "page", page, "err", err)
	}
}

// notices are the messages a redirect after an action may show (?done=):
// fixed texts, so that a crafted link cannot put words on the page.
var notices = map[string]string{
	"created":  "Endpoint created.",
	"updated":  "Endpoint saved.",
	"deleted":  "Endpoint deleted.",
	"disabled": "Endpoint disabled: nothing is sent to it until you enable it.",
	"enabled":  "Endpoint enabled.",
	"test":     "Test event sent: it shows in the log below within seconds.",
}

// static serves the embedded assets, and brand.css, made from the
// branding so that no page needs an inline style.
func (p *Portal) static(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "public, max-age=300")
	if name == "brand.css" {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		fmt.Fprintf(w, ":root{--accent:%s;--accent-text:%s}\n", p.Branding.Accent, textOn(p.Branding.Accent))
		return
	}
	b, err := staticFiles.ReadFile("static/" + name)
	if err != nil || strings.Contains(name, "/") {
		http.NotFound(w, r)
		return
	}
	switch {
	case strings.HasSuffix(name, ".js"):
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	case strings.HasSuffix(name, ".css"):
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
	default:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	_, _ = w.Write(b)
}

// textOn picks black or white text for the accent background, whichever
// contrasts more (WCAG relative luminance).
func textOn(accent string) string {
	h := strings.TrimPrefix(accent, "#")
	if len(h) == 3 {
		h = string([]byte{h[0], h[0], h[1], h[1], h[2], h[2]})
	}
	var lum float64
	for i, w := range []float64{0.2126, 0.7152, 0.0722} {
		v, _ := strconv.ParseUint(h[2*i:2*i+2], 16, 8)
		c := float64(v) / 255
		if c <= 0.03928 {
			c /= 12.92
		} else {
			c = math.Pow((c+0.055)/1.055, 2.4)
		}
		lum += w * c
	}
	// Contrast with white is 1.05/(lum+0.05), with black (lum+0.05)/0.05.
	if 1.05/(lum+0.05) >= (lum+0.05)/0.05 {
		return "#ffffff"
	}
	return "#000000"
}
