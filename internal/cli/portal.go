package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/hookstream/hookstream/internal/api"
	"github.com/hookstream/hookstream/internal/deliverylog"
	"github.com/hookstream/hookstream/internal/ops"
	"github.com/hookstream/hookstream/internal/portal"
	"github.com/hookstream/hookstream/internal/recovery"
)

// portalFlags configure the customer portal of the api role and dev.
type portalFlags struct {
	key       string
	publicURL string
	brand     portal.Branding
}

func (f *portalFlags) register(fs *flag.FlagSet, keyUsage string) {
	fs.StringVar(&f.key, "portal-key", "", keyUsage)
	fs.StringVar(&f.publicURL, "portal-url", "", "the portal's origin as customers reach it, for links (https://hooks.example.com); default: the Host of the request asking for the link")
	fs.StringVar(&f.brand.Name, "portal-name", "", "the platform's name the portal shows (default \"Webhooks\")")
	fs.StringVar(&f.brand.Accent, "portal-accent", portal.DefaultAccent, "the portal's accent colour, #rgb or #rrggbb")
	fs.StringVar(&f.brand.LogoURL, "portal-logo-url", "", "URL of a logo the portal shows in its header (its origin is allowed for images)")
}

func (f *portalFlags) validate() error {
	if f.key != "" && len(f.key) < portal.MinKeyLength {
		return fmt.Errorf("%w: --portal-key must be at least %d bytes", ErrUsage, portal.MinKeyLength)
	}
	if f.publicURL != "" {
		u, err := url.Parse(f.publicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return fmt.Errorf("%w: --portal-url must be an origin such as https://hooks.example.com", ErrUsage)
		}
	}
	if err := f.brand.Check(); err != nil {
		return fmt.Errorf("%w: --portal-accent or --portal-logo-url: %w", ErrUsage, err)
	}
	return nil
}

// build returns the portal's sessions and pages over d, or nils when no
// key is set (no portal).
func (f *portalFlags) build(d *roleDeps) (*portal.Sessions, error) {
	if f.key == "" {
		return nil, nil
	}
	return portal.NewSessions([]byte(f.key), d.rdb)
}

// pages builds the portal's pages on the sessions and the API server, whose
// Go methods they share; nil without sessions.
func (f *portalFlags) pages(d *roleDeps, s *portal.Sessions, server *api.Server, jobs *recovery.Service, signatureBrand string, logRetention time.Duration) (*portal.Portal, error) {
	if s == nil {
		return nil, nil
	}
	// The attempt page shows an attempt in full: its heavy fields are
	// read back from the attempts topic.
	index := deliverylog.NewIndex(d.rdb, logRetention,
		deliverylog.WithRecords(deliverylog.NewReader(d.kafkaOpts()...), d.topics().Attempts))
	deps := portal.Deps{Sessions: s, Endpoints: d.store, Log: index, API: server,
		Catalog: d.catalog, Logger: d.log, Branding: f.brand, SignatureBrand: signatureBrand}
	if jobs != nil {
		deps.Jobs, deps.Failing = jobs, index
	}
	return portal.New(deps)
}

// portalRoutes mounts the portal's pages on an ops server; none for nil.
func portalRoutes(p *portal.Portal) []ops.Option {
	if p == nil {
		return nil
	}
	var opts []ops.Option
	for pattern, h := range p.Routes() {
		opts = append(opts, ops.WithHandler(pattern, h))
	}
	return opts
}

// devPortalKey returns the fixed key, else the one kept in dataDir, else a
// new one (kept in dataDir unless it is ""), as devToken does for the token.
func devPortalKey(dataDir, fixed string) (string, error) {
	if fixed != "" {
		return fixed, nil
	}
	path := filepath.Join(dataDir, "portal-key")
	if dataDir != "" {
		b, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("portal key: %w", err)
		}
		if k := strings.TrimSpace(string(b)); len(k) >= portal.MinKeyLength {
			return k, nil
		}
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("portal key: %w", err)
	}
	k := hex.EncodeToString(b[:])
	if dataDir != "" {
		if err := os.WriteFile(path, []byte(k+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("portal key: %w", err)
		}
	}
	return k, nil
}

// devPortalLink is the link `hookstream dev` prints: every capability,
// for a day.
func devPortalLink(ctx context.Context, s *portal.Sessions, apiURL, tenant string) (string, error) {
	tok, _, err := s.Issue(ctx, tenant, api.PortalCapabilities, 24*time.Hour)
	if err != nil {
		return "", err
	}
	return apiURL + portal.StartPath + "?token=" + url.QueryEscape(tok), nil
}

// runPortalLink asks the API for a portal link and prints it.
func runPortalLink(ctx context.Context, env Env, args []string) error {
	c := &endpointsClient{http: &http.Client{Timeout: 30 * time.Second}, out: env.Stdout}
	fs := flag.NewFlagSet("portal-link", flag.ContinueOnError)
	c.register(fs)
	caps := fs.String("capabilities", "", "what the customer may do besides view, comma-separated: manage_endpoints, view_secrets, recover")
	expires := fs.Duration("expires-in", portal.DefaultExpiry, "how long the link and its session last, 1m to 168h")
	revoke := fs.Bool("revoke", false, "instead, end every link and session of the tenant")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	if err := parse(fs, env, args); err != nil {
		return err
	}
	if *revoke {
		if _, err := c.call(ctx, http.MethodPost, "/v1/portal/sessions/revoke", nil, map[string]any{}); err != nil {
			return err
		}
		fmt.Fprintln(env.Stdout, "revoked every portal link and session of the tenant")
		return nil
	}
	body := map[string]any{"expires_in": expires.String()}
	if list := splitList(*caps); len(list) > 0 {
		body["capabilities"] = list
	}
	if *asJSON {
		return c.do(ctx, http.MethodPost, "/v1/portal/sessions", nil, body)
	}
	b, err := c.call(ctx, http.MethodPost, "/v1/portal/sessions", nil, body)
	if err != nil {
		return err
	}
	var link struct {
		URL       string    `json:"url"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal(b, &link); err != nil {
		return fmt.Errorf("reading the API's answer: %w", err)
	}
	fmt.Fprintln(env.Stdout, link.URL)
	fmt.Fprintf(env.Stderr, "one-time link, valid until %s\n", link.ExpiresAt.UTC().Format(time.RFC3339))
	return nil
}
