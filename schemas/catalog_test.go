package schemas_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookstream/hookstream/schemas"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/segmentio/encoding/json"
)

// baseTypes must always be in the catalog: the 21 types of seed 000, the 6 of
// seed 004 (agent.status_changed is in both) and Hookstream's own
// endpoint.disabled. New types are new files; this list need not change.
var baseTypes = []string{
	"agent.created", "agent.deployed", "agent.error", "agent.status_changed",
	"call.started", "call.ended", "call.transferred", "call.recorded",
	"fleet.deployed", "fleet.alert", "fleet.agent_joined", "fleet.agent_left",
	"tool.executed", "tool.error", "tool.rate_limited",
	"marketplace.published", "marketplace.purchased", "marketplace.review",
	"billing.payment_succeeded", "billing.payment_failed", "billing.usage_alert",
	"cron.completed", "cron.delivered", "cron.failed",
	"agent.budget_alert", "agent.budget_exhausted",
	"endpoint.disabled",
}

func load(t testing.TB) *schemas.Catalog {
	t.Helper()
	c, err := schemas.Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

type schemaFile struct {
	name     string // event type, from the file name
	raw      []byte
	Title    string            `json:"title"`
	Examples []json.RawMessage `json:"examples"`
	Envelope json.RawMessage   `json:"x-envelope-example"`
}

// schemaFiles reads the package directory, the same files Load embeds.
func schemaFiles(t *testing.T) []schemaFile {
	t.Helper()
	paths, err := filepath.Glob("*.json")
	if err != nil {
		t.Fatal(err)
	}
	var out []schemaFile
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		f := schemaFile{name: strings.TrimSuffix(p, ".json"), raw: raw}
		if err := json.Unmarshal(raw, &f); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out = append(out, f)
	}
	if len(out) == 0 {
		t.Fatal("no schema files")
	}
	return out
}

func compactJSON(t *testing.T, raw []byte) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		t.Fatalf("compact %s: %v", raw, err)
	}
	return buf.String()
}

func TestCatalogTypes(t *testing.T) {
	c := load(t)
	files := schemaFiles(t)
	types := c.Types()
	if len(types) != len(files) {
		t.Fatalf("Types() has %d entries, want one per file (%d)", len(types), len(files))
	}
	if len(baseTypes) != 27 {
		t.Fatalf("baseTypes has %d entries, want 27", len(baseTypes))
	}
	for _, name := range baseTypes {
		if !c.Has(name) {
			t.Errorf("catalog lacks %s", name)
		}
	}
	if !slices.IsSortedFunc(types, func(a, b schemas.Type) int { return strings.Compare(a.Name, b.Name) }) {
		t.Error("Types() not sorted by name")
	}
	for i, f := range files {
		ty := types[i] // both sorted by name
		if ty.Name != f.name {
			t.Fatalf("Types()[%d].Name = %q, want %q", i, ty.Name, f.name)
		}
		if !c.Has(f.name) {
			t.Errorf("Has(%q) = false", f.name)
		}
		if ty.Description == "" {
			t.Errorf("%s: empty description", f.name)
		}
		if !bytes.Equal(ty.Schema, f.raw) {
			t.Errorf("%s: Schema is not the file", f.name)
		}
		if got, want := string(ty.Example), compactJSON(t, f.Examples[0]); got != want {
			t.Errorf("%s: Example = %s, want %s", f.name, got, want)
		}
		if got, want := string(ty.Envelope), compactJSON(t, f.Envelope); got != want {
			t.Errorf("%s: Envelope = %s, want %s", f.name, got, want)
		}
	}
	types[0].Name = "mutated"
	if c.Types()[0].Name == "mutated" {
		t.Error("Types() exposes the catalog's own slice")
	}
	if c.Has("agent") || c.Has("") || c.Has("agent.*") {
		t.Error("Has accepts a name that is not a type")
	}
}

func TestSchemaFiles(t *testing.T) {
	c := load(t)
	for _, f := range schemaFiles(t) {
		t.Run(f.name, func(t *testing.T) {
			// Each file must stand alone: no references to other files.
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(f.raw))
			if err != nil {
				t.Fatal(err)
			}
			comp := jsonschema.NewCompiler()
			if err := comp.AddResource(f.name+".json", doc); err != nil {
				t.Fatal(err)
			}
			if _, err := comp.Compile(f.name + ".json"); err != nil {
				t.Fatalf("compile: %v", err)
			}
			if f.Title != f.name {
				t.Errorf("title %q, want %q", f.Title, f.name)
			}
			if len(f.Examples) == 0 {
				t.Fatal("no examples")
			}
			for i, ex := range f.Examples {
				if err := c.Validate(f.name, ex); err != nil {
					t.Errorf("examples[%d]: %v", i, err)
				}
			}
		})
	}
}

var eventID = regexp.MustCompile(`^evt_[0-9a-f]{24}$`)

func TestEnvelopeExamples(t *testing.T) {
	c := load(t)
	for _, f := range schemaFiles(t) {
		t.Run(f.name, func(t *testing.T) {
			var env struct {
				ID        string          `json:"id"`
				Event     string          `json:"event"`
				Timestamp string          `json:"timestamp"`
				Data      json.RawMessage `json:"data"`
			}
			if err := json.Unmarshal(f.Envelope, &env); err != nil {
				t.Fatalf("x-envelope-example: %v", err)
			}
			if env.Event != f.name {
				t.Errorf("event %q, want %q", env.Event, f.name)
			}
			if !eventID.MatchString(env.ID) {
				t.Errorf("id %q is not evt_ + 24 hex", env.ID)
			}
			if _, err := time.Parse(time.RFC3339, env.Timestamp); err != nil {
				t.Errorf("timestamp: %v", err)
			}
			if err := c.Validate(f.name, env.Data); err != nil {
				t.Errorf("data: %v", err)
			}
			if got, want := compactJSON(t, env.Data), compactJSON(t, f.Examples[0]); got != want {
				t.Errorf("envelope data %s differs from examples[0] %s", got, want)
			}
		})
	}
}

// The seed documents are vendored in testdata/seeds so that the seed tests
// always run; sharedSeeds is where the originals live beside the
// repository, checked against the copies when present.
var (
	vendoredSeeds = filepath.Join("testdata", "seeds")
	sharedSeeds   = filepath.Join("..", "..", "shared", "seeds")
)

// sharedType is in both seeds: its description carries both sentences.
const sharedType = "agent.status_changed"

func readSeed(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vendoredSeeds, name))
	if err != nil {
		t.Fatal(err)
	}
	shared, err := os.ReadFile(filepath.Join(sharedSeeds, name))
	switch {
	case errors.Is(err, os.ErrNotExist):
		// Outside the workspace (CI): the vendored copy is all there is.
	case err != nil:
		t.Fatal(err)
	case !bytes.Equal(shared, b):
		t.Fatalf("%s differs from %s; copy the seed again", filepath.Join(vendoredSeeds, name), filepath.Join(sharedSeeds, name))
	}
	return string(b)
}

// describes reports whether got is the seed's description of typ: the
// sentence itself, or for the shared type a description containing it.
func describes(typ, got, sentence string) bool {
	if typ == sharedType {
		return strings.Contains(got, sentence)
	}
	return got == sentence
}

// TestSeedPayloads proves the catalog carries seed 000's types, descriptions
// and example payloads unchanged.
func TestSeedPayloads(t *testing.T) {
	seed := readSeed(t, "000_78a8247fb9e0d761.txt")
	c := load(t)
	byName := map[string]schemas.Type{}
	for _, ty := range c.Types() {
		byName[ty.Name] = ty
	}

	// Each event is: type line, description line, "Example Payload", envelope JSON.
	lines := strings.Split(seed, "\n")
	var n int
	for i, line := range lines {
		if line != "Example Payload" || i < 2 {
			continue
		}
		n++
		name, desc := lines[i-2], lines[i-1]
		dec := json.NewDecoder(strings.NewReader(strings.Join(lines[i+1:], "\n")))
		var envelope json.RawMessage
		if err := dec.Decode(&envelope); err != nil {
			t.Fatalf("%s: seed payload: %v", name, err)
		}
		var env struct {
			Event string          `json:"event"`
			Data  json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(envelope, &env); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Run(name, func(t *testing.T) {
			ty, ok := byName[name]
			if !ok {
				t.Fatal("not in catalog")
			}
			if env.Event != name {
				t.Errorf("seed envelope event %q", env.Event)
			}
			if !describes(name, ty.Description, desc) {
				t.Errorf("description %q, seed says %q", ty.Description, desc)
			}
			if err := c.Validate(name, env.Data); err != nil {
				t.Errorf("seed data: %v", err)
			}
			if got, want := string(ty.Example), compactJSON(t, env.Data); got != want {
				t.Errorf("example %s, seed %s", got, want)
			}
			if got, want := string(ty.Envelope), compactJSON(t, envelope); got != want {
				t.Errorf("envelope %s, seed %s", got, want)
			}
		})
	}
	if n != 21 {
		t.Errorf("parsed %d seed payloads, want 21", n)
	}
}

// TestSeedPlannedTypes checks seed 004's table: every planned type is in the
// catalog, described with the seed's sentence (plus a full stop).
func TestSeedPlannedTypes(t *testing.T) {
	seed := readSeed(t, "004_f011e890b7a4afce.txt")
	c := load(t)
	desc := map[string]string{}
	for _, ty := range c.Types() {
		desc[ty.Name] = ty.Description
	}
	row := regexp.MustCompile(`(?m)^([a-z_]+\.[a-z_]+) \| (.+?) \|\s*$`)
	rows := row.FindAllStringSubmatch(seed, -1)
	if len(rows) != 6 {
		t.Fatalf("parsed %d planned types, want 6", len(rows))
	}
	for _, r := range rows {
		name, when := r[1], strings.TrimSpace(r[2])
		got, ok := desc[name]
		if !ok {
			t.Errorf("%s: not in catalog", name)
			continue
		}
		if !describes(name, got, when+".") {
			t.Errorf("%s: description %q, seed says %q", name, got, when)
		}
	}
}

func TestStatusVocabularies(t *testing.T) {
	c := load(t)
	tests := []struct {
		old, new string
		ok       bool
	}{
		{"online", "maintenance", true},
		{"maintenance", "offline", true},
		{"online", "degraded", true},
		{"degraded", "offline", true},
		{"online", "rebooting", false},
		{"Online", "offline", false},
	}
	for _, tt := range tests {
		data := `{"agent_id":"agt_1","old_status":"` + tt.old + `","new_status":"` + tt.new + `"}`
		err := c.Validate("agent.status_changed", []byte(data))
		if tt.ok && err != nil {
			t.Errorf("%s -> %s: %v", tt.old, tt.new, err)
		}
		if !tt.ok && err == nil {
			t.Errorf("%s -> %s: accepted", tt.old, tt.new)
		}
	}
}

func TestValidate(t *testing.T) {
	c := load(t)
	tests := []struct {
		name, typ, data string
		wantPtr         string // "-" for valid
	}{
		{"valid", "billing.payment_succeeded", `{"invoice_id":"inv_1","amount":49,"currency":"USD"}`, "-"},
		{"extra fields tolerated", "billing.payment_succeeded", `{"invoice_id":"inv_1","amount":49.5,"currency":"EUR","memo":{"x":1}}`, "-"},
		{"optional field absent", "marketplace.review", `{"extension_id":"ext_1","rating":4}`, "-"},
		{"transfer to agent", "call.transferred", `{"call_id":"c","from_agent":"a","to_agent":"b","reason":"escalation"}`, "-"},
		{"missing required", "billing.payment_succeeded", `{"invoice_id":"inv_1","currency":"USD"}`, "/amount"},
		{"wrong type", "billing.payment_succeeded", `{"invoice_id":"inv_1","amount":"49","currency":"USD"}`, "/amount"},
		{"below minimum", "billing.payment_succeeded", `{"invoice_id":"inv_1","amount":-1,"currency":"USD"}`, "/amount"},
		{"bad currency", "billing.payment_succeeded", `{"invoice_id":"inv_1","amount":1,"currency":"usd"}`, "/currency"},
		{"fraction for integer", "agent.created", `{"agent_id":"a","name":"n","model":"m","created_by":4.2}`, "/created_by"},
		{"big integer", "agent.created", `{"agent_id":"a","name":"n","model":"m","created_by":123456789012345678901}`, "-"},
		{"empty id", "agent.created", `{"agent_id":"","name":"n","model":"m","created_by":1}`, "/agent_id"},
		{"enum", "call.started", `{"call_id":"c","agent_id":"a","from":"+1","to":"+2","direction":"sideways"}`, "/direction"},
		{"severity enum", "fleet.alert", `{"fleet_id":"f","alert_type":"x","message":"m","severity":"meh"}`, "/severity"},
		{"rating range", "marketplace.review", `{"extension_id":"ext_1","rating":6}`, "/rating"},
		{"no transfer target", "call.transferred", `{"call_id":"c","from_agent":"a","reason":"r"}`, "/to_number"},
		{"date-time format", "endpoint.disabled", `{"endpoint_id":"ep_1","tenant":"t","url":"https://x.example/","reason":"r","failing_since":"yesterday","disabled_at":"2026-03-20T09:15:00Z"}`, "/failing_since"},
		{"uri format", "call.recorded", `{"call_id":"c","recording_url":"not a url","duration_s":1}`, "/recording_url"},
		{"nested enum", "cron.delivered", `{"cron_id":"c","name":"n","destination":{"channel":"pigeon","target":"x"},"delivered_at":"2026-03-17T08:00:46Z"}`, "/destination/channel"},
		{"nested missing", "cron.delivered", `{"cron_id":"c","name":"n","destination":{"channel":"slack"},"delivered_at":"2026-03-17T08:00:46Z"}`, "/destination/target"},
		{"deepest of several", "cron.delivered", `{"cron_id":"c","name":"n","destination":{"channel":"pigeon","target":"x"}}`, "/destination/channel"},
		{"nested wrong type", "cron.failed", `{"cron_id":"c","name":"n","destination":"slack","attempts":3,"error":"e","failed_at":"2026-03-17T08:00:46Z"}`, "/destination"},
		{"data null", "agent.created", `null`, ""},
		{"data array", "agent.created", `[]`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.Validate(tt.typ, []byte(tt.data))
			if tt.wantPtr == "-" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			var ve *schemas.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want *ValidationError, got %T %v", err, err)
			}
			if ve.Pointer != tt.wantPtr {
				t.Errorf("Pointer = %q (%s), want %q", ve.Pointer, ve.Message, tt.wantPtr)
			}
			if ve.Message == "" {
				t.Error("empty Message")
			}
			if errors.Is(err, schemas.ErrUnknownType) || errors.Is(err, schemas.ErrInvalidJSON) {
				t.Errorf("violation reported as %v", err)
			}
		})
	}
}

func TestValidateUnknownType(t *testing.T) {
	c := load(t)
	for _, typ := range []string{"nope", "", "agent.*", "agent.created.v2"} {
		err := c.Validate(typ, []byte(`{}`))
		if !errors.Is(err, schemas.ErrUnknownType) {
			t.Errorf("Validate(%q) = %v, want ErrUnknownType", typ, err)
		}
	}
}

func TestValidateInvalidJSON(t *testing.T) {
	c := load(t)
	for _, data := range []string{``, `{`, `{"agent_id":}`, `{"a":1} x`, `{}{}`, `nul`} {
		err := c.Validate("agent.created", []byte(data))
		if !errors.Is(err, schemas.ErrInvalidJSON) {
			t.Errorf("Validate(%q) = %v, want ErrInvalidJSON", data, err)
		}
	}
}

func TestValidateConcurrent(t *testing.T) {
	c := load(t)
	good := []byte(`{"invoice_id":"inv_1","amount":49,"currency":"USD"}`)
	bad := []byte(`{"invoice_id":"inv_1","currency":"USD"}`)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for range 200 {
				if err := c.Validate("billing.payment_succeeded", good); err != nil {
					errs <- err
					return
				}
				var ve *schemas.ValidationError
				if err := c.Validate("billing.payment_succeeded", bad); !errors.As(err, &ve) || ve.Pointer != "/amount" {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestValidFilter(t *testing.T) {
	c := load(t)
	tests := []struct {
		filter string
		want   bool
	}{
		{"*", true},
		{"agent.created", true},
		{"endpoint.disabled", true},
		{"agent.*", true},
		{"cron.*", true},
		{"endpoint.*", true},
		{"nope.*", false},
		{"agent.cre*", false},
		{"agent*", false},
		{"agent.", false},
		{"agent", false},
		{"agent.nope", false},
		{".*", false},
		{"*.*", false},
		{"**", false},
		{"*.created", false},
		{"agent.*.*", false},
		{" agent.*", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := c.ValidFilter(tt.filter); got != tt.want {
			t.Errorf("ValidFilter(%q) = %v, want %v", tt.filter, got, tt.want)
		}
	}
}

func TestMatchFilter(t *testing.T) {
	tests := []struct {
		filter, typ string
		want        bool
	}{
		{"*", "agent.created", true},
		{"*", "endpoint.disabled", true},
		{"agent.*", "agent.created", true},
		{"agent.*", "agent.budget_alert", true},
		{"agent.*", "agents.created", false},
		{"agent.*", "fleet.agent_joined", false},
		{"agent.*", "agent", false},
		{"agent.created", "agent.created", true},
		{"agent.created", "agent.created_v2", false},
		{"agent.created", "agent.deployed", false},
		{"agent.cre*", "agent.created", false},
		{"", "agent.created", false},
	}
	for _, tt := range tests {
		if got := schemas.MatchFilter(tt.filter, tt.typ); got != tt.want {
			t.Errorf("MatchFilter(%q, %q) = %v, want %v", tt.filter, tt.typ, got, tt.want)
		}
	}
}

func BenchmarkValidate(b *testing.B) {
	c := load(b)
	benches := []struct{ name, typ, data string }{
		{"billing.payment_succeeded", "billing.payment_succeeded", `{"invoice_id":"inv_12345","amount":49,"currency":"USD"}`},
		{"cron.failed", "cron.failed", `{"cron_id":"cron_7f3a9c","name":"Daily sales digest","destination":{"channel":"url","target":"https://hooks.example.com/sales"},"attempts":5,"error":"POST https://hooks.example.com/sales: 503 Service Unavailable","failed_at":"2026-03-17T08:31:02Z"}`},
		{"invalid", "billing.payment_succeeded", `{"invoice_id":"inv_12345","amount":"49","currency":"USD"}`},
	}
	for _, bb := range benches {
		data := []byte(bb.data)
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				_ = c.Validate(bb.typ, data)
			}
		})
	}
}
