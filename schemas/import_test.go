package schemas_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/segmentio/encoding/json"

	"github.com/hookstream/hookstream/schemas"
)

const importDoc = `{
  "openapi": "3.1.0",
  "info": {"title": "Acme", "version": "1"},
  "webhooks": {
    "invoice.paid": {"post": {"summary": "An invoice was paid.", "requestBody": {"content": {"application/json": {
      "schema": {"$ref": "#/components/schemas/InvoicePaid"}}}}}},
    "user.created": {"post": {"description": "A user signed up.", "requestBody": {"content": {"application/json": {
      "schema": {"type": "object", "required": ["user_id"], "properties": {"user_id": {"type": "integer"}}},
      "example": {"user_id": 7}}}}}}
  },
  "components": {"schemas": {
    "InvoicePaid": {"type": "object", "properties": {"event": {"type": "string"}, "data": {"$ref": "#/components/schemas/Invoice"}}},
    "Invoice": {"type": "object", "required": ["amount", "currency"], "examples": [{"amount": 1200, "currency": "EUR"}],
      "properties": {"amount": {"type": "integer"}, "currency": {"$ref": "#/components/schemas/Currency"}}},
    "Currency": {"type": "string", "pattern": "^[A-Z]{3}$"}
  }}
}`

// TestImportOpenAPI: each webhook becomes a file the catalog's rules
// accept (title, $id, examples, x-envelope-example), whose schema accepts
// its example and rejects bad data, references included.
func TestImportOpenAPI(t *testing.T) {
	files, err := schemas.ImportOpenAPI([]byte(importDoc))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		file, description, bad string
	}{
		{"invoice.paid.json", "An invoice was paid.", `{"amount": 1, "currency": "eur"}`},
		{"user.created.json", "A user signed up.", `{"user_id": "7"}`},
	}
	if len(files) != len(tests) {
		t.Fatalf("%d files, want %d", len(files), len(tests))
	}
	for i, tt := range tests {
		f := files[i]
		if f.Name != tt.file {
			t.Fatalf("file %d is %s, want %s", i, f.Name, tt.file)
		}
		var meta struct {
			Examples []json.RawMessage
			Envelope struct{ Event string } `json:"x-envelope-example"`
		}
		var m map[string]any
		if err := json.Unmarshal(f.JSON, &m); err != nil {
			t.Fatal(err)
		}
		_ = json.Unmarshal(f.JSON, &meta)
		name := tt.file[:len(tt.file)-len(".json")]
		if m["title"] != name || m["description"] != tt.description || meta.Envelope.Event != name || len(meta.Examples) != 1 {
			t.Errorf("%s: title %v, description %v, envelope event %q, %d examples", f.Name, m["title"], m["description"], meta.Envelope.Event, len(meta.Examples))
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(f.JSON))
		if err != nil {
			t.Fatal(err)
		}
		c := jsonschema.NewCompiler()
		if err := c.AddResource("x.json", doc); err != nil {
			t.Fatal(err)
		}
		s, err := c.Compile("x.json")
		if err != nil {
			t.Fatalf("%s: %v\n%s", f.Name, err, f.JSON)
		}
		for _, c := range []struct {
			data string
			ok   bool
		}{{string(meta.Examples[0]), true}, {tt.bad, false}} {
			v, _ := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(c.data)))
			if err := s.Validate(v); (err == nil) != c.ok {
				t.Errorf("%s: %s valid %v, want %v", f.Name, c.data, err == nil, c.ok)
			}
		}
	}
}

func TestImportOpenAPIRejects(t *testing.T) {
	tests := map[string]string{
		"openapi 3.0":  `{"openapi":"3.0.3","webhooks":{"a.b":{}}}`,
		"no webhooks":  `{"openapi":"3.1.0"}`,
		"bad name":     `{"openapi":"3.1.0","webhooks":{"Invoice Paid":{"post":{"requestBody":{"content":{"application/json":{"schema":{"type":"object"},"example":{}}}}}}}}`,
		"no example":   `{"openapi":"3.1.0","webhooks":{"a.b":{"post":{"requestBody":{"content":{"application/json":{"schema":{"type":"object"}}}}}}}}`,
		"not json":     `{`,
		"no json body": `{"openapi":"3.1.0","webhooks":{"a.b":{"post":{"requestBody":{"content":{"text/plain":{}}}}}}}`,
	}
	for name, doc := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := schemas.ImportOpenAPI([]byte(doc)); !errors.Is(err, schemas.ErrImport) {
				t.Fatalf("err %v, want ErrImport", err)
			}
		})
	}
}
