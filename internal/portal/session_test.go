package portal

import (
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookstream/hookstream/internal/api"
	"github.com/hookstream/hookstream/internal/testenv"
)

func TestSessionsLifecycle(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedis(t)
	s, err := NewSessions([]byte("0123456789abcdef0123"), r.Client)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(tenant string) string {
		t.Helper()
		tok, exp, err := s.Issue(ctx, tenant, []string{"manage_endpoints"}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Until(exp); d < 59*time.Minute || d > time.Hour {
			t.Errorf("expires in %s, want 1h", d)
		}
		return tok
	}

	link := issue("acme")
	sess, cookie, err := s.Exchange(ctx, link)
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if sess.Tenant != "acme" || !sess.Can(ManageEndpoints) || sess.Can(Recover) {
		t.Errorf("session %+v", sess)
	}
	if _, _, err := s.Exchange(ctx, link); !errors.Is(err, ErrUsed) {
		t.Errorf("second exchange of one link: %v, want ErrUsed", err)
	}
	if got, err := s.Check(ctx, cookie); err != nil || got.Tenant != "acme" {
		t.Errorf("check cookie: %+v, %v", got, err)
	}
	// A link is not a cookie, nor a cookie a link.
	if _, err := s.Check(ctx, link); !errors.Is(err, ErrInvalid) {
		t.Errorf("link used as cookie: %v, want ErrInvalid", err)
	}
	if _, _, err := s.Exchange(ctx, cookie); !errors.Is(err, ErrInvalid) {
		t.Errorf("cookie used as link: %v, want ErrInvalid", err)
	}

	csrf := s.CSRF(sess)
	other, _, _ := s.Exchange(ctx, issue("acme"))
	if !s.ValidCSRF(sess, csrf) || s.ValidCSRF(other, csrf) || s.ValidCSRF(sess, "") {
		t.Error("a CSRF token must be valid for its own session only")
	}

	// Forged: payload changed (another tenant, more capabilities) under
	// the old signature, or signed with another key.
	payload, sig, _ := strings.Cut(cookie, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(payload)
	raw = []byte(strings.Replace(string(raw), `"acme"`, `"globex"`, 1))
	forged := base64.RawURLEncoding.EncodeToString(raw) + "." + sig
	if _, err := s.Check(ctx, forged); !errors.Is(err, ErrInvalid) {
		t.Errorf("forged cookie: %v, want ErrInvalid", err)
	}
	s2, _ := NewSessions([]byte("another key, also long enough"), r.Client)
	if _, err := s2.Check(ctx, cookie); !errors.Is(err, ErrInvalid) {
		t.Errorf("cookie under another key: %v, want ErrInvalid", err)
	}
	for _, junk := range []string{"", ".", "a.b", "e30.", cookie + "x"} {
		if _, err := s.Check(ctx, junk); !errors.Is(err, ErrInvalid) {
			t.Errorf("Check(%q) = %v, want ErrInvalid", junk, err)
		}
	}

	// Expired: the clock passes the expiry.
	s.now = func() time.Time { return time.Now().Add(time.Hour + time.Second) }
	if _, err := s.Check(ctx, cookie); !errors.Is(err, ErrExpired) {
		t.Errorf("check after expiry: %v, want ErrExpired", err)
	}
	s.now = time.Now

	// Revoked: every link and session of the tenant, none of another's.
	unused := issue("acme")
	otherTenant := issue("globex")
	if err := s.Revoke(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Check(ctx, cookie); !errors.Is(err, ErrRevoked) {
		t.Errorf("session after revoke: %v, want ErrRevoked", err)
	}
	if _, _, err := s.Exchange(ctx, unused); !errors.Is(err, ErrRevoked) {
		t.Errorf("unused link after revoke: %v, want ErrRevoked", err)
	}
	if _, _, err := s.Exchange(ctx, otherTenant); err != nil {
		t.Errorf("another tenant's link after revoke: %v", err)
	}
	if _, _, err := s.Exchange(ctx, issue("acme")); err != nil {
		t.Errorf("a link issued after revoke: %v", err)
	}
}

func TestParseCapabilities(t *testing.T) {
	for _, tt := range []struct {
		in      []string
		want    []Capability
		badIdx  int
		wantErr bool
	}{
		{nil, []Capability{View}, 0, false},
		{[]string{"recover", "view", "recover"}, []Capability{View, Recover}, 0, false},
		{[]string{"view_secrets", "admin"}, nil, 1, true},
	} {
		got, err := ParseCapabilities(tt.in)
		var ue *UnknownCapabilityError
		switch {
		case tt.wantErr && (!errors.As(err, &ue) || ue.Index != tt.badIdx):
			t.Errorf("%v: err %v, want unknown capability at %d", tt.in, err, tt.badIdx)
		case !tt.wantErr && (err != nil || !slices.Equal(got, tt.want)):
			t.Errorf("%v = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	if _, err := NewSessions([]byte("short"), nil); !errors.Is(err, ErrShortKey) {
		t.Errorf("short key: %v", err)
	}
}

// TestCapabilitiesMatchTheAPI: the API checks links against its list;
// the portal enforces its own; they must be one list.
func TestCapabilitiesMatchTheAPI(t *testing.T) {
	var names []string
	for _, c := range Capabilities {
		names = append(names, string(c))
	}
	if !slices.Equal(names, api.PortalCapabilities) {
		t.Errorf("portal %v, api %v", names, api.PortalCapabilities)
	}
}
