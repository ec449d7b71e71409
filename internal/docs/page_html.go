package docs

import (
	"bytes"
	"io"

	"github.com/segmentio/encoding/json"
)

func indentJSON(w io.Writer, raw []byte) error {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return err
	}
	_, err := w.Write(b.Bytes())
	return err
}

const catalogHTML = `<section class="catalog">
{{range .}}<h2 id="{{.Name}}">{{.Name}}</h2>
{{range .Types}}<article class="event-type" id="type-{{.Name}}">
<h3><code>{{.Name}}</code></h3>
<p>{{.Description}}</p>
<pre class="example"><code>{{.Example}}</code></pre>
</article>
{{end}}{{end}}</section>`

const pageHTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Brand}} Webhook Events</title>
<style>
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#1b1f24}
pre{background:#f4f6f8;padding:.75rem;overflow:auto;border-radius:4px}
code{font-family:ui-monospace,monospace}
table{border-collapse:collapse}td,th{border:1px solid #d0d7de;padding:.3rem .6rem;text-align:left}
h2{border-bottom:1px solid #d0d7de;margin-top:2.5rem}
</style></head>
<body>
<h1>{{.Brand}} Webhook Events</h1>
<p>{{.Count}} event types. Each delivery is an HTTPS <code>POST</code> to your endpoint whose body is the event envelope.</p>
<h2 id="envelope">The envelope</h2>
<pre><code>{
  "id": "evt_...",          // the event id: the same on every retry; deduplicate on it
  "event": "agent.created", // the event type
  "timestamp": "...",       // when it happened, RFC 3339
  "data": { ... }           // the type's payload, below
}</code></pre>
<h2 id="headers">Headers</h2>
<table>
<tr><th>Header</th><th>Value</th></tr>
<tr><td><code>content-type</code></td><td><code>application/json</code></td></tr>
<tr><td><code>user-agent</code></td><td><code>Hookstream/&lt;version&gt;</code></td></tr>
<tr><td><code>traceparent</code></td><td>W3C trace context</td></tr>
</table>
<p>Standard Webhooks endpoints also get <code>webhook-id</code> (the event id), <code>webhook-timestamp</code> (unix seconds) and
<code>webhook-signature</code> (<code>v1,&lt;base64 HMAC-SHA256(key, id + "." + timestamp + "." + body)&gt;</code>, space-separated, one per active secret; the key is the base64 after <code>whsec_</code>).</p>
<p>Endpoints on the {{.Brand}} scheme get <code>{{.SeedPrefix}}Signature</code> (<code>sha256=&lt;hex HMAC-SHA256(secret, body)&gt;</code>, the key being the secret string exactly as shown),
<code>{{.SeedPrefix}}Timestamp</code>, <code>{{.SeedPrefix}}Event</code> and <code>{{.SeedPrefix}}Delivery</code>.</p>
<h2 id="verify">Verifying signatures</h2>
<p>Each program verifies both schemes: the request's headers in <code>WEBHOOK_HEADERS</code> (JSON, lower-case names), the raw body on stdin, the endpoint's secret in <code>WEBHOOK_SECRET</code>. Verify the raw bytes, before any JSON parsing.</p>
{{range .Snippets}}<h3>{{.Language}}</h3>
<pre class="snippet" data-file="{{.File}}"><code>{{.Code}}</code></pre>
{{end}}<h2 id="delivery">Retries and timestamps</h2>
<p>Answer 2xx to acknowledge. Otherwise the delivery is retried after: <span id="schedule">{{.Schedule}}</span>.
Reject a request whose timestamp is more than <span id="tolerance">{{.Tolerance}}</span> from your clock, either way.</p>
<h2 id="types">Event types</h2>
{{template "catalog" .Families}}
</body></html>
`
