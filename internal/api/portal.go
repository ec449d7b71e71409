package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// The customer portal's contract, which the portal package follows.
const (
	// PortalStartPath is where a link lands: ?token= is exchanged there.
	PortalStartPath = "/portal/start"
	// Bounds and default of a link's lifetime.
	PortalMinExpiry     = time.Minute
	PortalMaxExpiry     = 7 * 24 * time.Hour
	PortalDefaultExpiry = time.Hour
)

// PortalCapabilities are what a portal link may grant; "view" always is.
var PortalCapabilities = []string{"view", "manage_endpoints", "view_secrets", "recover"}

// PortalSessions issues and revokes customer portal links;
// *portal.Sessions is one. Issue gets capabilities already checked, "view"
// first.
type PortalSessions interface {
	Issue(ctx context.Context, tenant string, caps []string, ttl time.Duration) (string, time.Time, error)
	Revoke(ctx context.Context, tenant string) error
}

// WithPortal serves POST /v1/portal/sessions from p. publicURL is the
// portal's origin as customers reach it ("https://hooks.example.com");
// "" builds links from the request's own Host.
func WithPortal(p PortalSessions, publicURL string) Option {
	return func(c *cfg) {
		c.portal = p
		c.portalURL = strings.TrimSuffix(publicURL, "/")
	}
}

// portalReady authenticates a portal route and checks the portal is
// configured.
func (s *Server) portalReady(w http.ResponseWriter, r *http.Request) (string, bool) {
	tok, ok := s.authenticate(w, r)
	if !ok {
		return "", false
	}
	if s.portal == nil {
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "", "the portal is not configured on this server (set --portal-key)")
		return "", false
	}
	return tok, true
}

func (s *Server) createPortalSession(w http.ResponseWriter, r *http.Request) {
	tok, ok := s.portalReady(w, r)
	if !ok {
		return
	}
	var tenant string
	var names []string
	expiresIn := PortalDefaultExpiry.String()
	if !s.decodeObject(w, r, true, map[string]any{"tenant": &tenant, "capabilities": &names, "expires_in": &expiresIn}) {
		return
	}
	ttl, err := time.ParseDuration(expiresIn)
	if err != nil || ttl < PortalMinExpiry || ttl > PortalMaxExpiry {
		writeError(w, http.StatusUnprocessableEntity, CodeInvalid, "/expires_in", "expires_in must be a duration from 1m to 168h (7 days), such as \"1h\"")
		return
	}
	caps := []string{"view"}
	for i, c := range names {
		if !slices.Contains(PortalCapabilities, c) {
			writeError(w, http.StatusUnprocessableEntity, CodeInvalid, fmt.Sprintf("/capabilities/%d", i),
				"unknown capability %q; known: %s", c, strings.Join(PortalCapabilities, ", "))
			return
		}
		if !slices.Contains(caps, c) {
			caps = append(caps, c)
		}
	}
	if tenant, ok = s.tenantFor(w, r, tok, tenant); !ok {
		return
	}
	ctx, cancel := s.storeContext(r)
	defer cancel()
	token, expires, err := s.portal.Issue(ctx, tenant, caps, ttl)
	if err != nil {
		s.portalError(w, r, err)
		return
	}
	base := s.portalURL
	if base == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	writeJSON(w, http.StatusCreated, map[string]any{
		"url":          base + PortalStartPath + "?token=" + url.QueryEscape(token),
		"token":        token,
		"tenant":       tenant,
		"capabilities": caps,
		"expires_at":   expires.UTC(),
	})
}

func (s *Server) revokePortalSessions(w http.ResponseWriter, r *http.Request) {
	tok, ok := s.portalReady(w, r)
	if !ok {
		return
	}
	var tenant string
	if !s.decodeObject(w, r, true, map[string]any{"tenant": &tenant}) {
		return
	}
	if tenant, ok = s.tenantFor(w, r, tok, tenant); !ok {
		return
	}
	ctx, cancel := s.storeContext(r)
	defer cancel()
	if err := s.portal.Revoke(ctx, tenant); err != nil {
		s.portalError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// portalError answers a failure of Redis, the only thing sessions use.
func (s *Server) portalError(w http.ResponseWriter, r *http.Request, err error) {
	s.log.Warn("portal session request failed", "path", r.URL.Path, "err", err)
	writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "", "Redis is unavailable; retry later")
}
