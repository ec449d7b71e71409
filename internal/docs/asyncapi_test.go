package docs_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/segmentio/encoding/json"

	"github.com/hookstream/hookstream/internal/docs"
	"github.com/hookstream/hookstream/schemas"
)

func catalog(t *testing.T) *schemas.Catalog {
	t.Helper()
	cat, err := schemas.Load()
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// officialAsyncAPI compiles the vendored AsyncAPI 3.0.0 JSON Schema.
func officialAsyncAPI(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open("testdata/asyncapi-3.0.0.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	const id = "http://asyncapi.com/definitions/3.0.0/asyncapi.json"
	if err := c.AddResource(id, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func validate(t *testing.T, s *jsonschema.Schema, b []byte) error {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return s.Validate(v)
}

// TestAsyncAPIValid: the document validates against the official schema,
// and the official schema does catch a broken document.
func TestAsyncAPIValid(t *testing.T) {
	official := officialAsyncAPI(t)
	b, err := docs.AsyncAPI(catalog(t), "Acme")
	if err != nil {
		t.Fatal(err)
	}
	if err := validate(t, official, b); err != nil {
		t.Fatalf("AsyncAPI document is invalid: %v", err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	doc["operations"].(map[string]any)["deliverEvent"].(map[string]any)["action"] = "post"
	broken, _ := json.Marshal(doc)
	if validate(t, official, broken) == nil {
		t.Fatal("the official schema accepted an operation with action \"post\"")
	}
}

// TestAsyncAPIMessages: one message per catalog type, with the type's
// description, its data schema, its example envelope and both schemes'
// signature headers (the seed scheme's named for the brand).
func TestAsyncAPIMessages(t *testing.T) {
	cat := catalog(t)
	b, err := docs.AsyncAPI(cat, "Acme")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Schemas  map[string]json.RawMessage
			Messages map[string]struct {
				Summary  string
				Headers  json.RawMessage
				Payload  json.RawMessage
				Examples []struct{ Payload json.RawMessage }
			}
		}
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	types := cat.Types()
	if len(doc.Components.Messages) != len(types) {
		t.Errorf("%d messages for %d catalog types", len(doc.Components.Messages), len(types))
	}
	for _, ty := range types {
		m, ok := doc.Components.Messages[ty.Name]
		if !ok {
			t.Errorf("no message for %s", ty.Name)
			continue
		}
		if m.Summary != ty.Description {
			t.Errorf("%s: summary %q, want %q", ty.Name, m.Summary, ty.Description)
		}
		if !bytes.Contains(m.Payload, []byte(`"#/components/schemas/`+ty.Name+`"`)) {
			t.Errorf("%s: payload %s does not use its data schema", ty.Name, m.Payload)
		}
		if _, ok := doc.Components.Schemas[ty.Name]; !ok {
			t.Errorf("%s: no data schema", ty.Name)
		}
		if len(m.Examples) != 1 || !jsonEqual(t, m.Examples[0].Payload, ty.Envelope) {
			t.Errorf("%s: examples %+v, want the catalog's envelope %s", ty.Name, m.Examples, ty.Envelope)
		}
		for _, h := range []string{"webhook-id", "webhook-timestamp", "webhook-signature", "X-Acme-Signature", "X-Acme-Timestamp", "X-Acme-Event", "X-Acme-Delivery"} {
			if !bytes.Contains(m.Headers, []byte(`"`+h+`"`)) {
				t.Errorf("%s: headers lack %s", ty.Name, h)
			}
		}
	}
}

// TestAsyncAPIDataSchemas: each embedded data schema, compiled from the
// document itself (so rebased references must resolve), accepts the
// catalog's example and rejects a value of the wrong type.
func TestAsyncAPIDataSchemas(t *testing.T) {
	cat := catalog(t)
	b, err := docs.AsyncAPI(cat, "Acme")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("asyncapi.json", doc); err != nil {
		t.Fatal(err)
	}
	for _, ty := range cat.Types() {
		s, err := c.Compile("asyncapi.json#/components/schemas/" + ty.Name)
		if err != nil {
			t.Fatalf("%s: %v", ty.Name, err)
		}
		if err := validate(t, s, ty.Example); err != nil {
			t.Errorf("%s: its example fails its schema in the document: %v", ty.Name, err)
		}
		if validate(t, s, []byte(`"not an object"`)) == nil {
			t.Errorf("%s: the schema accepts a string", ty.Name)
		}
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return bytes.Equal(ja, jb)
}

func jsonIndent(b *bytes.Buffer, raw []byte) error { return json.Indent(b, raw, "", "  ") }
