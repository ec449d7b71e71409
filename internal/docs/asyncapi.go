package docs

import (
	"fmt"
	"strings"

	"github.com/segmentio/encoding/json"

	"github.com/hookstream/hookstream/schemas"
)

// Version is the version of the webhook contract the documents describe.
const Version = "1"

// AsyncAPI describes what receivers get as an AsyncAPI 3.0 document: one
// message per catalog type, its payload the envelope with the type's data
// schema inside, its examples, and the headers of both signature schemes,
// the seed scheme's named for brand.
func AsyncAPI(cat *schemas.Catalog, brand string) ([]byte, error) {
	types := cat.Types()
	messages := make(map[string]any, len(types))
	dataSchemas := make(map[string]any, len(types))
	chanMessages := make(map[string]any, len(types))
	opMessages := make([]any, 0, len(types))
	for _, t := range types {
		data, err := componentSchema(t)
		if err != nil {
			return nil, err
		}
		dataSchemas[t.Name] = data
		messages[t.Name] = message(t, brand)
		chanMessages[t.Name] = ref("#/components/messages/" + t.Name)
		opMessages = append(opMessages, ref("#/channels/endpoint/messages/"+t.Name))
	}
	dataSchemas["Envelope"] = envelopeSchema()
	doc := map[string]any{
		"asyncapi": "3.0.0",
		"info": map[string]any{
			"title":   "Hookstream webhooks",
			"version": Version,
			"description": "What a receiver's endpoint gets: a POST whose body is the event envelope, " +
				"signed with Standard Webhooks or the X-" + brand + "-Signature scheme.",
		},
		"defaultContentType": "application/json",
		"channels": map[string]any{
			"endpoint": map[string]any{
				"address":     nil, // each receiver registers its own URL
				"title":       "A receiver's endpoint",
				"description": "The HTTPS URL a receiver registered; every delivery is a POST to it.",
				"messages":    chanMessages,
				"bindings":    map[string]any{"http": map[string]any{}},
			},
		},
		"operations": map[string]any{
			"deliverEvent": map[string]any{
				"action":   "send",
				"title":    "Deliver an event",
				"summary":  "Hookstream POSTs the event to the endpoint, retrying until it answers 2xx.",
				"channel":  ref("#/channels/endpoint"),
				"messages": opMessages,
				"bindings": map[string]any{"http": map[string]any{"method": "POST"}},
			},
		},
		"components": map[string]any{
			"schemas":  dataSchemas,
			"messages": messages,
		},
	}
	return json.MarshalIndent(doc, "", "  ")
}

func ref(to string) map[string]any { return map[string]any{"$ref": to} }

// componentSchema is a type's data schema as an AsyncAPI schema: $schema and
// $id go (the document is the schema's home now) and local references are
// rebased onto components/schemas/<type>.
func componentSchema(t schemas.Type) (map[string]any, error) {
	raw := strings.ReplaceAll(string(t.Schema), `"#/`, `"#/components/schemas/`+t.Name+`/`)
	var s map[string]any
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return nil, fmt.Errorf("docs: schema of %s: %w", t.Name, err)
	}
	delete(s, "$schema")
	delete(s, "$id")
	delete(s, "x-envelope-example")
	return s, nil
}

func envelopeSchema() map[string]any {
	return map[string]any{
		"type":     "object",
		"required": []string{"id", "event", "timestamp", "data"},
		"properties": map[string]any{
			"id":        map[string]any{"type": "string", "description": "The event id (evt_...); the same on every retry, so receivers deduplicate on it."},
			"event":     map[string]any{"type": "string", "description": "The event type."},
			"timestamp": map[string]any{"type": "string", "format": "date-time", "description": "When the event happened (RFC 3339)."},
			"data":      map[string]any{"type": "object", "description": "The type's payload."},
		},
	}
}

func message(t schemas.Type, brand string) map[string]any {
	var envelope map[string]any
	_ = json.Unmarshal(t.Envelope, &envelope)
	m := map[string]any{
		"name":        t.Name,
		"title":       t.Name,
		"summary":     t.Description,
		"contentType": "application/json",
		"headers":     headersSchema(brand),
		"payload": map[string]any{
			"allOf": []any{
				ref("#/components/schemas/Envelope"),
				map[string]any{"properties": map[string]any{
					"event": map[string]any{"const": t.Name},
					"data":  ref("#/components/schemas/" + t.Name),
				}},
			},
		},
	}
	if envelope != nil {
		m["examples"] = []any{map[string]any{"name": "example", "summary": "An example " + t.Name + " delivery", "payload": envelope}}
	}
	return m
}

// headersSchema lists the headers of a delivery: the common ones and those
// of either signature scheme, whichever the endpoint chose.
func headersSchema(brand string) map[string]any {
	str := func(desc string) map[string]any { return map[string]any{"type": "string", "description": desc} }
	seed := "X-" + brand + "-"
	return map[string]any{
		"type": "object",
		"properties": map[string]any{
			"content-type": str("application/json"),
			"user-agent":   str("Hookstream/<version>"),
			"traceparent":  str("W3C trace context of the event"),
		},
		"oneOf": []any{
			map[string]any{
				"title":    "Standard Webhooks",
				"required": []string{"webhook-id", "webhook-timestamp", "webhook-signature"},
				"properties": map[string]any{
					"webhook-id":        str("The event id."),
					"webhook-timestamp": str("Unix seconds when this attempt was signed."),
					"webhook-signature": str("Space-separated v1,<base64 HMAC-SHA256(key, id.timestamp.body)>, one per active secret; the key is the base64-decoded part of whsec_..."),
				},
			},
			map[string]any{
				"title":    "Seed scheme",
				"required": []string{seed + "Signature", seed + "Timestamp", seed + "Event", seed + "Delivery"},
				"properties": map[string]any{
					seed + "Signature": str("sha256=<hex HMAC-SHA256(secret, body)>; the key is the secret string exactly as shown."),
					seed + "Timestamp": str("Unix seconds when this attempt was signed."),
					seed + "Event":     str("The event type."),
					seed + "Delivery":  str("The event id."),
				},
			},
		},
	}
}
