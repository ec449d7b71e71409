package subscription

import (
	"context"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hookstream/hookstream/signature"
)

func TestCreateValidation(t *testing.T) {
	e := newEnv(t)
	strict := e.store(t, true)
	lax := e.store(t, true, WithAllowPrivate(true))
	acme := e.store(t, true, WithSignatureBrand("Acme"))
	ok := func(in EndpointInput) EndpointInput {
		if in.URL == "" {
			in.URL = "https://93.184.215.14/hook"
		}
		if in.Events == nil {
			in.Events = []string{"agent.created"}
		}
		return in
	}
	longDesc := strings.Repeat("é", MaxDescription)
	tests := []struct {
		name      string
		store     *Store
		in        EndpointInput
		wantField string // "" = accepted
		wantMsg   string // substring of the message
	}{
		{"public IP", strict, ok(EndpointInput{}), "", ""},
		{"public IPv6", strict, ok(EndpointInput{URL: "https://[2606:4700:4700::1111]:8443/h"}), "", ""},
		{"name that does not resolve is accepted", strict, ok(EndpointInput{URL: "https://hooks.example.invalid/x"}), "", ""},
		{"every option", strict, ok(EndpointInput{Signature: SchemeSeed, Ordering: OrderingNone, RateLimit: 5,
			Headers: map[string]string{"X-Api-Key": "k"}, Description: longDesc, Events: []string{"agent.*", "call.started", "*"}}), "", ""},
		{"not a URL", strict, ok(EndpointInput{URL: "://nope"}), "/url", "valid URL"},
		{"empty URL", strict, ok(EndpointInput{URL: " "}), "/url", ""},
		{"relative URL", strict, ok(EndpointInput{URL: "/hook"}), "/url", "http"},
		{"ftp scheme", strict, ok(EndpointInput{URL: "ftp://93.184.215.14/x"}), "/url", "http"},
		{"javascript scheme", strict, ok(EndpointInput{URL: "javascript:alert(1)"}), "/url", "http"},
		{"userinfo", strict, ok(EndpointInput{URL: "https://user:pw@93.184.215.14/"}), "/url", "password"},
		{"no host", strict, ok(EndpointInput{URL: "https:///path"}), "/url", "host"},
		{"bad port", strict, ok(EndpointInput{URL: "https://93.184.215.14:70000/"}), "/url", ""},
		{"decimal IPv4 host", strict, ok(EndpointInput{URL: "http://2130706433/"}), "/url", "neither"},
		{"hex IPv4 host", lax, ok(EndpointInput{URL: "http://0x7f.0x1/"}), "/url", "neither"},
		{"loopback", strict, ok(EndpointInput{URL: "http://127.0.0.1:8080/"}), "/url", "127.0.0.1"},
		{"loopback IPv6", strict, ok(EndpointInput{URL: "http://[::1]/"}), "/url", "::1"},
		{"IPv4-mapped loopback", strict, ok(EndpointInput{URL: "http://[::ffff:127.0.0.1]/"}), "/url", ""},
		{"private", strict, ok(EndpointInput{URL: "http://10.0.0.5/"}), "/url", ""},
		{"private 192.168", strict, ok(EndpointInput{URL: "https://192.168.1.10/"}), "/url", ""},
		{"metadata", strict, ok(EndpointInput{URL: "http://169.254.169.254/latest/meta-data"}), "/url", ""},
		{"AWS IPv6 metadata", strict, ok(EndpointInput{URL: "http://[fd00:ec2::254]/"}), "/url", ""},
		{"CGNAT", strict, ok(EndpointInput{URL: "http://100.64.0.1/"}), "/url", ""},
		{"unspecified", strict, ok(EndpointInput{URL: "http://0.0.0.0:80/"}), "/url", ""},
		{"link-local IPv6", strict, ok(EndpointInput{URL: "http://[fe80::1]/"}), "/url", ""},
		{"localhost resolves to loopback", strict, ok(EndpointInput{URL: "http://localhost:9000/h"}), "/url", "loopback"},
		{"full-width loopback", strict, ok(EndpointInput{URL: "http://１２７.０.０.１/"}), "/url", "127.0.0.1"},
		{"full-width localhost", strict, ok(EndpointInput{URL: "http://ｌｏｃａｌｈｏｓｔ/"}), "/url", "loopback"},
		{"localhost with trailing dot", strict, ok(EndpointInput{URL: "http://localhost./x"}), "/url", "loopback"},
		{"*.localhost with trailing dot", strict, ok(EndpointInput{URL: "http://API.localhost./x"}), "/url", "loopback"},
		{"invalid IDNA host", strict, ok(EndpointInput{URL: "http://a\u00ad\u200d.example/"}), "/url", "not a valid host"},
		{"*.localhost", strict, ok(EndpointInput{URL: "http://api.localhost/h"}), "/url", "loopback"},
		{"loopback allowed when private allowed", lax, ok(EndpointInput{URL: "http://127.0.0.1:8080/"}), "", ""},
		{"localhost allowed when private allowed", lax, ok(EndpointInput{URL: "http://localhost:8080/"}), "", ""},
		{"private allowed when private allowed", lax, ok(EndpointInput{URL: "http://10.0.0.5/"}), "", ""},
		{"no events", strict, ok(EndpointInput{Events: []string{}}), "/events", ""},
		{"unknown event type", strict, ok(EndpointInput{Events: []string{"agent.nope"}}), "/events/0", "agent.nope"},
		{"unknown prefix", strict, ok(EndpointInput{Events: []string{"agent.created", "nope.*"}}), "/events/1", ""},
		{"bad wildcard", strict, ok(EndpointInput{Events: []string{"agent*"}}), "/events/0", ""},
		{"signature", strict, ok(EndpointInput{Signature: "hmac"}), "/signature", ""},
		{"ordering", strict, ok(EndpointInput{Ordering: "fifo"}), "/ordering", ""},
		{"negative rate limit", strict, ok(EndpointInput{RateLimit: -1}), "/rate_limit", ""},
		{"hop-by-hop header", strict, ok(EndpointInput{Headers: map[string]string{"Connection": "close"}}), "/headers/Connection", ""},
		{"transfer-encoding header", strict, ok(EndpointInput{Headers: map[string]string{"transfer-encoding": "chunked"}}), "/headers/transfer-encoding", ""},
		{"host header", strict, ok(EndpointInput{Headers: map[string]string{"Host": "x"}}), "/headers/Host", ""},
		{"signature header", strict, ok(EndpointInput{Headers: map[string]string{"webhook-signature": "v1,x"}}), "/headers/webhook-signature", ""},
		{"seed signature header", strict, ok(EndpointInput{Headers: map[string]string{"X-Hookstream-Signature": "x"}}), "/headers/X-Hookstream-Signature", ""},
		{"two spellings of one header", strict, ok(EndpointInput{Headers: map[string]string{"X-A": "1", "x-a": "2"}}), "/headers/x-a", "same header"},
		{"expect header", strict, ok(EndpointInput{Headers: map[string]string{"Expect": "100-continue"}}), "/headers/Expect", ""},
		{"proxy header", strict, ok(EndpointInput{Headers: map[string]string{"Proxy-Foo": "x"}}), "/headers/Proxy-Foo", ""},
		{"brand's signature header", acme, ok(EndpointInput{Headers: map[string]string{"x-acme-signature": "x"}}), "/headers/x-acme-signature", ""},
		{"default brand's header under another brand", acme, ok(EndpointInput{Headers: map[string]string{"X-Hookstream-Event": "x"}}), "/headers/X-Hookstream-Event", ""},
		{"other brand's header", strict, ok(EndpointInput{Headers: map[string]string{"X-Acme-Signature": "x"}}), "", ""},
		{"bad header name", strict, ok(EndpointInput{Headers: map[string]string{"Bad Name": "x"}}), "/headers/Bad Name", ""},
		{"header name with slash", strict, ok(EndpointInput{Headers: map[string]string{"a/b": "x"}}), "/headers/a~1b", ""},
		{"header value with newline", strict, ok(EndpointInput{Headers: map[string]string{"X-Ok": "a\r\nInjected: 1"}}), "/headers/X-Ok", ""},
		{"description not UTF-8", strict, ok(EndpointInput{Description: "a\xff"}), "/description", "UTF-8"},
		{"URL not UTF-8", strict, ok(EndpointInput{URL: "https://93.184.215.14/\xff"}), "/url", "UTF-8"},
		{"header value not UTF-8", strict, ok(EndpointInput{Headers: map[string]string{"X-Ok": "\xff"}}), "/headers/X-Ok", "UTF-8"},
		{"description too long", strict, ok(EndpointInput{Description: longDesc + "x"}), "/description", ""},
		{"secret without prefix", strict, ok(EndpointInput{Secret: "abc"}), "/secret", ""},
		{"secret too short", strict, ok(EndpointInput{Secret: "whsec_" + strings.Repeat("A", 20)}), "/secret", ""},
		{"secret not base64", strict, ok(EndpointInput{Secret: "whsec_!!!!"}), "/secret", ""},
		{"supplied secret", strict, ok(EndpointInput{Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}), "", ""},
	}
	idRE := regexp.MustCompile(`^ep_[0-9a-f]{24}$`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.store.Create(ctxFor(t, 30*time.Second), "t1", tt.in)
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("Create: %v, want success", err)
				}
				if !idRE.MatchString(got.ID) {
					t.Errorf("id %q does not match %s", got.ID, idRE)
				}
				stored, err := tt.store.Get(ctxFor(t, 10*time.Second), "t1", got.ID)
				if err != nil || stored.URL != tt.in.URL {
					t.Fatalf("Get after Create = %+v, %v", stored, err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Create: %v, want a *FieldError for %s", err, tt.wantField)
			}
			if fe.Field != tt.wantField || !strings.Contains(fe.Message, tt.wantMsg) {
				t.Fatalf("FieldError = %s %q, want %s containing %q", fe.Field, fe.Message, tt.wantField, tt.wantMsg)
			}
		})
	}
}

func TestCreateDefaults(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, true)
	got := create(t, s, "t1", "agent.*")
	if got.Signature != SchemeStandard || got.Ordering != OrderingStrict || got.Version != 1 || got.Disabled {
		t.Errorf("defaults: signature %q ordering %q version %d disabled %v; want standard, strict, 1, false",
			got.Signature, got.Ordering, got.Version, got.Disabled)
	}
	if len(got.Secrets) != 1 {
		t.Fatalf("secrets = %v, want one", got.Secrets)
	}
	key, err := signature.ParseSecret(got.Secrets[0].Value)
	if err != nil || len(key) != 32 {
		t.Errorf("generated secret %q: %d bytes, %v; want whsec_ + base64 of 32 bytes", got.Secrets[0].Value, len(key), err)
	}
	time.Sleep(2 * time.Millisecond) // ids order by millisecond; within one it is random
	other := create(t, s, "t1", "agent.*")
	if other.Secrets[0].Value == got.Secrets[0].Value || other.ID == got.ID {
		t.Error("two endpoints got the same id or secret")
	}
	if other.ID < got.ID {
		t.Errorf("ids do not sort by creation: %s created after %s", other.ID, got.ID)
	}
}

// dropped is a catalog from which an event type was removed after endpoints
// subscribed to it.
type dropped struct {
	Filters
	name string
}

func (d dropped) ValidFilter(f string) bool { return f != d.name && d.Filters.ValidFilter(f) }

// TestWritesValidateOnlyWhatChanged: endpoints accepted once (a private URL
// while private destinations were allowed, a filter of a type the catalog
// has since dropped) stay writable by a strict store: the deliverer's
// Disable, RotateSecret and a PATCH not touching the URL or filters succeed,
// while a change of the URL or the filters is still validated.
func TestWritesValidateOnlyWhatChanged(t *testing.T) {
	e := newEnv(t)
	lax := e.store(t, true, WithAllowPrivate(true))
	strict := NewStore(e.kafka.Client(t), e.redis.Client, dropped{e.catalog, "agent.created"},
		WithTopicPrefix(testPrefix), WithLogger(slog.New(slog.DiscardHandler)))
	desc, url, private, yes := "renamed", "https://93.184.215.14/new", "http://10.0.0.6/hook", true
	tests := []struct {
		name      string
		url       string // of the endpoint the lax store created
		write     func(ctx context.Context, id string) error
		wantField string // "" = accepted
	}{
		{"disable", "http://10.0.0.5/hook", func(ctx context.Context, id string) error {
			return strict.Disable(ctx, id, "failing for 5 days")
		}, ""},
		{"disable, host resolves to loopback", "http://localhost:9000/hook", func(ctx context.Context, id string) error {
			return strict.Disable(ctx, id, "410 Gone")
		}, ""},
		{"rotate secret", "http://127.0.0.1:9/hook", func(ctx context.Context, id string) error {
			_, err := strict.RotateSecret(ctx, "t1", id, time.Hour)
			return err
		}, ""},
		{"patch description", "http://10.0.0.5/hook", func(ctx context.Context, id string) error {
			_, err := strict.Update(ctx, "t1", id, Patch{Description: &desc})
			return err
		}, ""},
		{"patch disabled", "http://localhost:9000/hook", func(ctx context.Context, id string) error {
			_, err := strict.Update(ctx, "t1", id, Patch{Disabled: &yes})
			return err
		}, ""},
		{"patch to a public URL", "http://10.0.0.5/hook", func(ctx context.Context, id string) error {
			_, err := strict.Update(ctx, "t1", id, Patch{URL: &url})
			return err
		}, ""},
		{"patch filters, dropping the removed type", "http://10.0.0.5/hook", func(ctx context.Context, id string) error {
			_, err := strict.Update(ctx, "t1", id, Patch{Events: []string{"call.*"}})
			return err
		}, ""},
		{"patch to a private URL", "http://10.0.0.5/hook", func(ctx context.Context, id string) error {
			_, err := strict.Update(ctx, "t1", id, Patch{URL: &private})
			return err
		}, "/url"},
		{"patch filters, keeping the removed type", "http://10.0.0.5/hook", func(ctx context.Context, id string) error {
			_, err := strict.Update(ctx, "t1", id, Patch{Events: []string{"agent.created", "call.*", "fleet.*"}})
			return err
		}, "/events/0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := ctxFor(t, 30*time.Second)
			ep, err := lax.Create(ctx, "t1", EndpointInput{URL: tt.url, Events: []string{"agent.created", "call.*"}})
			if err != nil {
				t.Fatal(err)
			}
			err = tt.write(ctx, ep.ID)
			got, gerr := strict.Get(ctx, "t1", ep.ID)
			if gerr != nil {
				t.Fatal(gerr)
			}
			if tt.wantField == "" {
				if err != nil || got.Version != 2 {
					t.Fatalf("write: %v, stored version %d; want accepted, version 2", err, got.Version)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.wantField || got.Version != 1 {
				t.Fatalf("write: %v, stored version %d; want a *FieldError for %s, version 1", err, got.Version, tt.wantField)
			}
		})
	}
}

// TestEndpointQuota: a tenant at its maximum of endpoints cannot create
// another until it deletes one; other tenants are not affected.
func TestEndpointQuota(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, true, WithMaxEndpoints(3))
	ctx := ctxFor(t, 60*time.Second)
	in := EndpointInput{URL: "https://93.184.215.14/hook", Events: []string{"*"}}
	var ids []string
	for range 3 {
		ep, err := s.Create(ctx, "t1", in)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ep.ID)
	}
	var fe *FieldError
	if _, err := s.Create(ctx, "t1", in); !errors.As(err, &fe) || !strings.Contains(fe.Message, "at most 3") {
		t.Fatalf("fourth Create: %v, want a *FieldError naming the quota", err)
	}
	if _, err := s.Create(ctx, "t2", in); err != nil {
		t.Fatalf("another tenant's Create: %v", err)
	}
	if err := s.Delete(ctx, "t1", ids[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, "t1", in); err != nil {
		t.Fatalf("Create after a Delete: %v", err)
	}
}

// TestCreateTenantAsPublished: an endpoint's tenant follows the rule of
// events' tenants, or it could never receive an event.
func TestCreateTenantAsPublished(t *testing.T) {
	s := newEnv(t).store(t, true)
	in := EndpointInput{URL: "https://93.184.215.14/hook", Events: []string{"*"}}
	for _, tenant := range []string{"bad tenant!", "*", "tenant/é", strings.Repeat("t", 129)} {
		var fe *FieldError
		if _, err := s.Create(ctxFor(t, 30*time.Second), tenant, in); !errors.As(err, &fe) || fe.Field != "/tenant" {
			t.Errorf("Create for tenant %q: %v, want a /tenant error", tenant, err)
		}
	}
	if _, err := s.Create(ctxFor(t, 30*time.Second), "org_1.eu:prod-2", in); err != nil {
		t.Errorf("Create for a valid tenant: %v", err)
	}
}
