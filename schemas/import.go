package schemas

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/segmentio/encoding/json"
)

// ErrImport reports an OpenAPI document whose webhooks cannot become
// catalog files.
var ErrImport = errors.New("schemas: import")

// File is one catalog schema file: Name is "<type>.json".
type File struct {
	Name string
	JSON []byte
}

var typeName = regexp.MustCompile(`^[a-z0-9_]+(\.[a-z0-9_]+)+$`)

type oaDoc struct {
	OpenAPI  string `json:"openapi"`
	Webhooks map[string]struct {
		Post *struct {
			Summary     string `json:"summary"`
			Description string `json:"description"`
			RequestBody struct {
				Content map[string]struct {
					Schema  map[string]any `json:"schema"`
					Example any            `json:"example"`
				} `json:"content"`
			} `json:"requestBody"`
		} `json:"post"`
	} `json:"webhooks"`
	Components struct {
		Schemas map[string]any `json:"schemas"`
	} `json:"components"`
}

// ImportOpenAPI turns the webhooks of an OpenAPI 3.1 document into catalog
// schema files, as Svix and Convoy import them: each webhook's name is the
// event type, its POST body schema (or, for an envelope, its data property)
// the data schema, its example (the schema's "examples" or the media
// type's "example") the catalog example. Components the schema references
// go into its $defs.
func ImportOpenAPI(raw []byte) ([]File, error) {
	var doc oaDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrImport, err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		return nil, fmt.Errorf("%w: openapi %q, want 3.1.x (webhooks came in 3.1)", ErrImport, doc.OpenAPI)
	}
	if len(doc.Webhooks) == 0 {
		return nil, fmt.Errorf("%w: the document has no webhooks", ErrImport)
	}
	names := make([]string, 0, len(doc.Webhooks))
	for n := range doc.Webhooks {
		names = append(names, n)
	}
	slices.Sort(names)
	var out []File
	for _, name := range names {
		f, err := importWebhook(&doc, name)
		if err != nil {
			return nil, fmt.Errorf("%w: webhooks/%s: %w", ErrImport, name, err)
		}
		out = append(out, f)
	}
	return out, nil
}

func importWebhook(doc *oaDoc, name string) (File, error) {
	if !typeName.MatchString(name) {
		return File{}, fmt.Errorf("name must be an event type such as \"invoice.paid\" (lower-case, dotted)")
	}
	hook := doc.Webhooks[name]
	if hook.Post == nil {
		return File{}, errors.New("no post operation")
	}
	media, ok := hook.Post.RequestBody.Content["application/json"]
	if !ok || media.Schema == nil {
		return File{}, errors.New("no application/json requestBody schema")
	}
	schema := resolve(doc, media.Schema)
	example := media.Example
	if ex, ok := schema["examples"].([]any); ok && len(ex) > 0 && example == nil {
		example = ex[0]
	}
	// An envelope {event, data, ...}: the catalog describes its data.
	if props, ok := schema["properties"].(map[string]any); ok && props["data"] != nil && props["event"] != nil {
		data, _ := props["data"].(map[string]any)
		schema = resolve(doc, data)
		if env, ok := example.(map[string]any); ok {
			example = env["data"]
		}
		if ex, ok := schema["examples"].([]any); ok && len(ex) > 0 && example == nil {
			example = ex[0]
		}
	}
	if example == nil {
		return File{}, errors.New("no example: give the schema \"examples\" or the media type an \"example\"")
	}
	description := hook.Post.Description
	if description == "" {
		description = hook.Post.Summary
	}
	if description == "" {
		description, _ = schema["description"].(string)
	}
	file := map[string]any{}
	for k, v := range schema {
		file[k] = v
	}
	file["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	file["$id"] = "https://hookstream.dev/schemas/" + name + ".json"
	file["title"] = name
	file["description"] = description
	file["examples"] = []any{example}
	file["x-envelope-example"] = map[string]any{
		"id": "evt_000000000000000000000000", "event": name, "timestamp": "2026-01-01T00:00:00+00:00", "data": example,
	}
	b, err := json.MarshalIndent(file, "", "  ")
	if err != nil {
		return File{}, err
	}
	// Components move into $defs, so the file stands alone.
	if strings.Contains(string(b), `"#/components/schemas/`) {
		file["$defs"] = doc.Components.Schemas
		b, err = json.MarshalIndent(file, "", "  ")
		if err != nil {
			return File{}, err
		}
		b = []byte(strings.ReplaceAll(string(b), `"#/components/schemas/`, `"#/$defs/`))
	}
	return File{Name: name + ".json", JSON: append(b, '\n')}, nil
}

// resolve follows a top-level $ref into components/schemas.
func resolve(doc *oaDoc, s map[string]any) map[string]any {
	for range 8 { // bounded: a $ref cycle stops here
		ref, ok := s["$ref"].(string)
		if !ok {
			return s
		}
		target, ok := doc.Components.Schemas[strings.TrimPrefix(ref, "#/components/schemas/")].(map[string]any)
		if !ok {
			return s
		}
		s = target
	}
	return s
}
