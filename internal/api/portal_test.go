package api_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookstream/hookstream/internal/api"
	"github.com/hookstream/hookstream/internal/portal"
)

// lazySessions lets the test build the sessions on the stack's Redis after
// the stack started.
type lazySessions struct{ *portal.Sessions }

type portalLink struct {
	URL, Token, Tenant string
	Capabilities       []string
	ExpiresAt          time.Time `json:"expires_at"`
}

func portalStack(t *testing.T, publicURL string) (base string, s *portal.Sessions) {
	t.Helper()
	lazy := &lazySessions{}
	st := startEndpointsAPI(t, api.WithPortal(lazy, publicURL))
	s, err := portal.NewSessions([]byte("test key, long enough"), st.redis.Client)
	if err != nil {
		t.Fatal(err)
	}
	lazy.Sessions = s
	return st.base, s
}

func TestPortalSessionsCreate(t *testing.T) {
	base, sessions := portalStack(t, "")
	create := func(token, body string) (epReply, portalLink) {
		t.Helper()
		r := epDo(t, "POST", base+"/v1/portal/sessions", token, body)
		var l portalLink
		if r.status == http.StatusCreated {
			r.decode(t, &l)
		}
		return r, l
	}

	r, l := create("tok-acme", "")
	if r.status != http.StatusCreated {
		t.Fatalf("default: %d %s", r.status, r.body)
	}
	if d := time.Until(l.ExpiresAt); d < 59*time.Minute || d > time.Hour {
		t.Errorf("default expires in %s, want 1h", d)
	}
	if l.Tenant != "acme" || !slices.Equal(l.Capabilities, []string{"view"}) {
		t.Errorf("default link %+v, want tenant acme, view only", l)
	}
	u, err := url.Parse(l.URL)
	if err != nil || "http://"+u.Host != base || u.Path != portal.StartPath || u.Query().Get("token") != l.Token {
		t.Errorf("url %q, want %s%s?token=<token>", l.URL, base, portal.StartPath)
	}
	sess, _, err := sessions.Exchange(context.Background(), l.Token)
	if err != nil || sess.Tenant != "acme" || sess.Can(portal.ManageEndpoints) {
		t.Errorf("exchange of the answered token: %+v, %v", sess, err)
	}

	for _, tt := range []struct {
		name, token, body string
		status            int
		field             string
		expiresIn         time.Duration
	}{
		{"shortest", "tok-acme", `{"expires_in":"1m"}`, 201, "", time.Minute},
		{"longest", "tok-acme", `{"expires_in":"168h"}`, 201, "", 7 * 24 * time.Hour},
		{"too short", "tok-acme", `{"expires_in":"59s"}`, 422, "/expires_in", 0},
		{"too long", "tok-acme", `{"expires_in":"168h1s"}`, 422, "/expires_in", 0},
		{"not a duration", "tok-acme", `{"expires_in":"soon"}`, 422, "/expires_in", 0},
		{"not a string", "tok-acme", `{"expires_in":3600}`, 422, "/expires_in", 0},
		{"unknown capability", "tok-acme", `{"capabilities":["recover","admin"]}`, 422, "/capabilities/1", 0},
		{"unknown field", "tok-acme", `{"ttl":"1h"}`, 422, "/ttl", 0},
		{"not an object", "tok-acme", `[]`, 400, "", 0},
		{"another tenant", "tok-acme", `{"tenant":"other"}`, 403, "/tenant", 0},
		{"admin without tenant", "tok-admin", `{}`, 400, "/tenant", 0},
		{"no token", "", `{}`, 401, "", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, l := create(tt.token, tt.body)
			if r.status != tt.status {
				t.Fatalf("%d %s, want %d", r.status, r.body, tt.status)
			}
			if tt.status != 201 {
				if _, field := r.errorField(t); field != tt.field {
					t.Errorf("field %q, want %q", field, tt.field)
				}
				return
			}
			if d := time.Until(l.ExpiresAt); d < tt.expiresIn-2*time.Second || d > tt.expiresIn {
				t.Errorf("expires in %s, want %s", d, tt.expiresIn)
			}
		})
	}

	r, l = create("tok-admin", `{"tenant":"other","capabilities":["manage_endpoints","view_secrets","recover"]}`)
	if r.status != 201 || l.Tenant != "other" || !slices.Equal(l.Capabilities, []string{"view", "manage_endpoints", "view_secrets", "recover"}) {
		t.Errorf("admin link for other: %d %s", r.status, r.body)
	}
}

func TestPortalSessionsRevoke(t *testing.T) {
	base, sessions := portalStack(t, "https://hooks.example.com/")
	var acme, other portalLink
	epDo(t, "POST", base+"/v1/portal/sessions", "tok-acme", `{}`).decode(t, &acme)
	epDo(t, "POST", base+"/v1/portal/sessions", "tok-other", `{}`).decode(t, &other)
	if !strings.HasPrefix(acme.URL, "https://hooks.example.com"+portal.StartPath+"?token=") {
		t.Errorf("url %q, want it on the configured public URL", acme.URL)
	}
	ctx := context.Background()
	_, cookie, err := sessions.Exchange(ctx, acme.Token)
	if err != nil {
		t.Fatal(err)
	}

	if r := epDo(t, "POST", base+"/v1/portal/sessions/revoke", "tok-acme", `{"tenant":"other"}`); r.status != http.StatusForbidden {
		t.Errorf("revoke another tenant's: %d, want 403", r.status)
	}
	if r := epDo(t, "POST", base+"/v1/portal/sessions/revoke", "tok-acme", ""); r.status != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	if _, err := sessions.Check(ctx, cookie); !errors.Is(err, portal.ErrRevoked) {
		t.Errorf("acme's session after revoke: %v, want ErrRevoked", err)
	}
	if _, _, err := sessions.Exchange(ctx, other.Token); err != nil {
		t.Errorf("other's link after acme's revoke: %v", err)
	}
	if r := epDo(t, "POST", base+"/v1/portal/sessions/revoke", "tok-admin", `{"tenant":"other"}`); r.status != http.StatusNoContent {
		t.Errorf("admin revokes other: %d %s", r.status, r.body)
	}
}

func TestPortalSessionsNotConfigured(t *testing.T) {
	srv := httptest.NewServer(api.New(api.WithTokens(epTokens)).Handler())
	t.Cleanup(srv.Close)
	for _, path := range []string{"/v1/portal/sessions", "/v1/portal/sessions/revoke"} {
		if r := epDo(t, "POST", srv.URL+path, "tok-acme", `{}`); r.status != http.StatusServiceUnavailable {
			t.Errorf("%s without a portal key: %d, want 503", path, r.status)
		}
	}
}
