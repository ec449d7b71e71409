package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/hookstream/hookstream/internal/config"
)

// errAPI is wrapped by the endpoints command when the API answered with an
// error body (exit code 1).
var errAPI = errors.New("api error")

// endpointsClient is the endpoints command's view of the HTTP API.
type endpointsClient struct {
	apiURL string
	token  string
	tenant string
	http   *http.Client
	out    io.Writer
	// idempotencyKey, when set, is sent as Idempotency-Key (jobs.go).
	idempotencyKey string
}

func (c *endpointsClient) register(fs *flag.FlagSet) {
	fs.StringVar(&c.apiURL, "api-url", "http://127.0.0.1:8080", "base URL of the Hookstream API")
	fs.StringVar(&c.token, "token", "", "API bearer token")
	fs.StringVar(&c.tenant, "tenant", "", "tenant to act for (admin tokens only)")
}

// newAPICommand is the client and flag set of one API command (name),
// with the client's flags registered.
func newAPICommand(env Env, name string, timeout time.Duration) (*endpointsClient, *flag.FlagSet) {
	c := &endpointsClient{http: &http.Client{Timeout: timeout}, out: env.Stdout}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	c.register(fs)
	return c, fs
}

// needToken refuses a command run without a token, after its flags were
// parsed.
func (c *endpointsClient) needToken() error {
	if c.token == "" {
		return fmt.Errorf("%w: --token (or HOOKSTREAM_TOKEN) is required", ErrUsage)
	}
	return nil
}

// subcommand splits a command's arguments into its subcommand and the
// rest, printing usage when there is none or help is asked for.
func subcommand(env Env, usage string, args []string) (string, []string, error) {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(env.Stderr, usage)
		if len(args) == 0 {
			return "", nil, fmt.Errorf("%w: missing subcommand", ErrUsage)
		}
		return "", nil, flag.ErrHelp
	}
	return args[0], args[1:], nil
}

// bodyField is where a flag goes in a request body, with its value.
type bodyField struct {
	name  string
	value any
}

// putGiven puts each flag given on the command line that fields names
// (by flag name) into body: flags left out keep the API's defaults.
func putGiven(fs *flag.FlagSet, body map[string]any, fields map[string]bodyField) {
	fs.Visit(func(f *flag.Flag) {
		if b, ok := fields[f.Name]; ok {
			body[b.name] = b.value
		}
	})
}

// pageFlags adds --limit and --cursor to fs; the function it returns
// gives those set as a list's query parameters.
func pageFlags(fs *flag.FlagSet) func() url.Values {
	limit := fs.Int("limit", 0, "page size, 1 to 250 (default: the API's, 50)")
	cursor := fs.String("cursor", "", `"next" of the previous page`)
	return func() url.Values {
		q := url.Values{}
		if *limit != 0 {
			q.Set("limit", fmt.Sprint(*limit))
		}
		if *cursor != "" {
			q.Set("cursor", *cursor)
		}
		return q
	}
}

// headerFlag collects repeated --header name=value flags.
type headerFlag map[string]string

func (h headerFlag) String() string {
	parts := make([]string, 0, len(h))
	for k, v := range h {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}

func (h headerFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || strings.TrimSpace(k) == "" {
		return fmt.Errorf("want name=value, got %q", v)
	}
	h[strings.TrimSpace(k)] = val
	return nil
}

const endpointsUsage = `Usage: hookstream endpoints <create|list|get|update|delete|rotate-secret> [flags] [id]

  create                      --url URL --events agent.*,call.started [--signature standard|seed]
                              [--ordering strict|none] [--rate-limit N] [--timeout 30s] [--header k=v]... [--description D] [--secret whsec_...]
  list                        [--limit N] [--cursor C] [--json]
  get ID
  update ID                   any create flag except --secret, or --disabled=true|false; only the flags given change
  delete ID
  rotate-secret ID            [--grace 24h]
  stats ID                    [--window 1h] [--json]: outcomes, success rate, latency, state (delivery log)
  dead ID                     [--type T] [--since/--until RFC 3339] [--limit N] [--cursor C] [--json]: dead-lettered deliveries
  recover|replay|test ID      recovery jobs and test events: see hookstream jobs --help

Every command takes --api-url (HOOKSTREAM_API_URL), --token (HOOKSTREAM_TOKEN) and, for admin tokens, --tenant.
`

// runEndpoints manages endpoints through the HTTP API and prints its JSON
// answers.
func runEndpoints(ctx context.Context, env Env, args []string) error {
	sub, args, err := subcommand(env, endpointsUsage, args)
	if err != nil {
		return err
	}
	switch sub {
	case "recover", "replay", "test":
		return runJobCommand(ctx, env, sub, args) // jobs.go
	case "stats", "dead":
		return runEndpointLog(ctx, env, sub, args) // logcmds.go
	}
	c, fs := newAPICommand(env, "endpoints "+sub, 30*time.Second)

	var (
		body   = map[string]any{}
		set    func() error // fills body from the flags given
		needs  = true       // takes an id argument
		page   func() url.Values
		asJSON *bool
	)
	switch sub {
	case "create", "update":
		var (
			u, events, sig, ordering, desc, secret, timeout string
			rate                                            int
			disabled                                        bool
			headers                                         = headerFlag{}
		)
		fs.StringVar(&u, "url", "", "endpoint URL (http or https)")
		fs.StringVar(&events, "events", "", `comma-separated event filters, e.g. "agent.*,call.started" or "*"`)
		fs.StringVar(&sig, "signature", "", "signing scheme: standard (default) or seed")
		fs.StringVar(&ordering, "ordering", "", "strict (default: one at a time, in order) or none")
		fs.IntVar(&rate, "rate-limit", 0, "requests per second; 0 = unlimited")
		fs.Var(headers, "header", "custom header name=value sent with every delivery (repeatable)")
		fs.StringVar(&timeout, "timeout", "", `request timeout for this endpoint, e.g. "30s" (1s to 1m; "0s": the deliverer's)`)
		fs.StringVar(&desc, "description", "", "free text")
		if sub == "create" {
			needs = false
			fs.StringVar(&secret, "secret", "", "signing secret whsec_... (default: generated)")
		} else {
			fs.BoolVar(&disabled, "disabled", false, "disable (true) or re-enable (false) deliveries")
		}
		set = func() error {
			putGiven(fs, body, map[string]bodyField{
				"url": {"url", u}, "events": {"events", splitList(events)}, "signature": {"signature", sig},
				"ordering": {"ordering", ordering}, "rate-limit": {"rate_limit", rate}, "header": {"headers", map[string]string(headers)},
				"description": {"description", desc}, "timeout": {"timeout", timeout}, "secret": {"secret", secret}, "disabled": {"disabled", disabled},
			})
			if sub == "create" && (body["url"] == nil || body["events"] == nil) {
				return fmt.Errorf("%w: create needs --url and --events", ErrUsage)
			}
			return nil
		}
	case "list":
		needs = false
		page = pageFlags(fs)
		asJSON = fs.Bool("json", false, "print the API's JSON instead of a table")
	case "get", "delete":
	case "rotate-secret":
		var grace string
		fs.StringVar(&grace, "grace", "", "how long the old secret keeps signing (default: the API's, 24h)")
		set = func() error {
			if grace != "" {
				body["grace"] = grace
			}
			return nil
		}
	default:
		fmt.Fprint(env.Stderr, endpointsUsage)
		return fmt.Errorf("%w: unknown subcommand %q", ErrUsage, sub)
	}

	id, err := parseWithID(fs, env, args, needs)
	if err != nil {
		return err
	}
	if set != nil {
		if err := set(); err != nil {
			return err
		}
	}
	if err := c.needToken(); err != nil {
		return err
	}
	path := "/v1/endpoints"
	if id != "" {
		path += "/" + url.PathEscape(id)
	}
	switch sub {
	case "create":
		return c.do(ctx, http.MethodPost, path, nil, body)
	case "list":
		return c.show(ctx, http.MethodGet, path, page(), *asJSON, printEndpoints)
	case "get":
		return c.do(ctx, http.MethodGet, path, nil, nil)
	case "update":
		return c.do(ctx, http.MethodPatch, path, nil, body)
	case "delete":
		return c.do(ctx, http.MethodDelete, path, nil, nil)
	default: // rotate-secret
		return c.do(ctx, http.MethodPost, path+"/rotate-secret", nil, body)
	}
}

// printEndpoints prints a page of endpoints as a table.
func printEndpoints(w io.Writer, body []byte) error {
	var page struct {
		Data []struct {
			ID          string   `json:"id"`
			URL         string   `json:"url"`
			Events      []string `json:"events"`
			Disabled    bool     `json:"disabled"`
			Ordering    string   `json:"ordering"`
			Description string   `json:"description"`
		} `json:"data"`
		Next *string `json:"next"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return fmt.Errorf("reading the API's answer: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tURL\tEVENTS\tSTATE\tORDERING\tDESCRIPTION")
	for _, ep := range page.Data {
		state := "enabled"
		if ep.Disabled {
			state = "disabled"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", ep.ID, ep.URL, strings.Join(ep.Events, ","), state, ep.Ordering, ep.Description)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "%d endpoints\n", len(page.Data))
	if page.Next != nil {
		fmt.Fprintf(w, "more: --cursor %s\n", *page.Next)
	}
	return nil
}

// parseWithID parses flags and the endpoint id, which may come before or
// after the flags.
func parseWithID(fs *flag.FlagSet, env Env, args []string, needsID bool) (string, error) {
	var id string
	if needsID && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		id, args = args[0], args[1:]
	}
	fs.SetOutput(env.Stderr)
	if err := config.Parse(fs, args, env.LookupEnv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return "", err
		}
		return "", fmt.Errorf("%w: %w", ErrUsage, err)
	}
	rest := fs.Args()
	if needsID && id == "" && len(rest) > 0 {
		id, rest = rest[0], rest[1:]
	}
	if len(rest) > 0 {
		return "", fmt.Errorf("%w: unexpected argument %q", ErrUsage, rest[0])
	}
	if needsID && id == "" {
		return "", fmt.Errorf("%w: missing the endpoint id (ep_...)", ErrUsage)
	}
	return id, nil
}

func splitList(s string) []string {
	out := []string{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// do sends one request and prints the JSON answer, indented; an error
// answer becomes an error naming the status, code, message and field.
func (c *endpointsClient) do(ctx context.Context, method, path string, q url.Values, body map[string]any) error {
	b, err := c.call(ctx, method, path, q, body)
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		return err // or a 204
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		_, err = c.out.Write(b)
		return err
	}
	out.WriteByte('\n')
	_, err = c.out.Write(out.Bytes())
	return err
}

// call sends one request and returns the answer's body; an error answer
// becomes an error naming the status, code, message and field.
func (c *endpointsClient) call(ctx context.Context, method, path string, q url.Values, body map[string]any) ([]byte, error) {
	if c.tenant != "" {
		if q == nil {
			q = url.Values{}
		}
		q.Set("tenant", c.tenant)
	}
	u := strings.TrimSuffix(c.apiURL, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("%w: --api-url: %w", ErrUsage, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if c.idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", c.idempotencyKey)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("calling the API: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the API's answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message, Field string }
		}
		if json.Unmarshal(b, &e) != nil || e.Error.Code == "" {
			return nil, fmt.Errorf("%w: %s: %s", errAPI, resp.Status, bytes.TrimSpace(b))
		}
		field := ""
		if e.Error.Field != "" {
			field = " (field " + e.Error.Field + ")"
		}
		return nil, fmt.Errorf("%w: %d %s: %s%s", errAPI, resp.StatusCode, e.Error.Code, e.Error.Message, field)
	}
	return b, nil
}
