package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/hookstream/hookstream/internal/config"
)

const eventsUsage = `Usage: hookstream events <list|get|resend> [flags]

  list      [--type T] [--status no_endpoints|pending|delivered|failing|dead] [--endpoint ep_...]
            [--since/--until RFC 3339] [--limit N] [--cursor C]: the tenant's events, newest first
  get ID    the event as delivered and its deliveries: each endpoint it matched, with status,
            attempts, last status code and next attempt
  resend ID [--endpoints ep_1,ep_2] [--wait]: the same event again (a job; see hookstream jobs --help)
  --json    print the API's JSON instead of a table

Every command takes --api-url (HOOKSTREAM_API_URL), --token (HOOKSTREAM_TOKEN) and, for admin tokens, --tenant.
`

// runEvents lists events and shows one from the delivery log.
func runEvents(ctx context.Context, env Env, args []string) error {
	if len(args) > 0 && args[0] == "resend" {
		return runJobCommand(ctx, env, "resend", args[1:]) // jobs.go
	}
	if len(args) == 0 || args[0] != "get" && args[0] != "list" {
		fmt.Fprint(env.Stderr, eventsUsage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return flag.ErrHelp
		}
		return fmt.Errorf("%w: want `events list` or `events get ID`", ErrUsage)
	}
	if args[0] == "list" {
		return runLogList(ctx, env, "events list", "/v1/events", args[1:],
			[]string{"type", "status", "endpoint", "since", "until", "limit", "cursor"}, printEvents)
	}
	c := &endpointsClient{http: &http.Client{Timeout: 30 * time.Second}, out: env.Stdout}
	fs := flag.NewFlagSet("events get", flag.ContinueOnError)
	c.register(fs)
	asJSON := fs.Bool("json", false, "print the API's JSON")
	id, err := parseWithID(fs, env, args[1:], true)
	if err != nil {
		return err
	}
	path := "/v1/events/" + url.PathEscape(id)
	if *asJSON {
		return c.do(ctx, http.MethodGet, path, nil, nil)
	}
	b, err := c.call(ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		return err
	}
	return printEvent(c.out, b)
}

// runEndpointLog runs `endpoints stats ID` and `endpoints dead ID`.
func runEndpointLog(ctx context.Context, env Env, sub string, args []string) error {
	if sub == "dead" {
		id, rest := "", args
		if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
			id, rest = args[0], args[1:]
		}
		if id == "" {
			return fmt.Errorf("%w: missing the endpoint id (ep_...)", ErrUsage)
		}
		return runLogList(ctx, env, "endpoints dead", "/v1/endpoints/"+url.PathEscape(id)+"/dead", rest,
			[]string{"type", "since", "until", "limit", "cursor"}, printDead)
	}
	c := &endpointsClient{http: &http.Client{Timeout: 30 * time.Second}, out: env.Stdout}
	fs := flag.NewFlagSet("endpoints stats", flag.ContinueOnError)
	c.register(fs)
	window := fs.String("window", "1h", "how far back to sum, e.g. 15m, 1h, 24h")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	id, err := parseWithID(fs, env, args, true)
	if err != nil {
		return err
	}
	path := "/v1/endpoints/" + url.PathEscape(id) + "/stats"
	q := url.Values{"window": {*window}}
	if *asJSON {
		return c.do(ctx, http.MethodGet, path, q, nil)
	}
	b, err := c.call(ctx, http.MethodGet, path, q, nil)
	if err != nil {
		return err
	}
	return printStats(c.out, id, b)
}

// runLogList runs a list command: params are its filter flags (query
// parameters in snake case), print its table.
func runLogList(ctx context.Context, env Env, name, path string, args, params []string, print func(io.Writer, []byte) error) error {
	c := &endpointsClient{http: &http.Client{Timeout: 30 * time.Second}, out: env.Stdout}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	c.register(fs)
	asJSON := fs.Bool("json", false, "print the API's JSON")
	vals := make(map[string]*string, len(params))
	for _, p := range params {
		vals[p] = fs.String(p, "", "filter: "+p)
	}
	if err := config.Parse(fs, args, env.LookupEnv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if len(fs.Args()) > 0 {
		return fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Args()[0])
	}
	q := url.Values{}
	for _, p := range params {
		if v := *vals[p]; v != "" {
			q.Set(snake(p), v)
		}
	}
	if *asJSON {
		return c.do(ctx, http.MethodGet, path, q, nil)
	}
	b, err := c.call(ctx, http.MethodGet, path, q, nil)
	if err != nil {
		return err
	}
	return print(c.out, b)
}

// listTail is what every list answer ends with.
type listTail struct {
	Next   *string `json:"next"`
	Prev   *string `json:"prev"`
	Window struct {
		Since time.Time `json:"since"`
		Until time.Time `json:"until"`
	} `json:"window"`
}

func (l listTail) print(w io.Writer, n int, what string) {
	fmt.Fprintf(w, "%d %s, window %s to %s\n", n, what, l.Window.Since.UTC().Format(time.RFC3339), l.Window.Until.UTC().Format(time.RFC3339))
	if l.Next != nil {
		fmt.Fprintf(w, "older: --cursor %s\n", *l.Next)
	}
	if l.Prev != nil {
		fmt.Fprintf(w, "newer: --cursor %s\n", *l.Prev)
	}
}

func timeOr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func printEvents(w io.Writer, body []byte) error {
	var page struct {
		Data []struct {
			ID        string         `json:"id"`
			Event     string         `json:"event"`
			Timestamp *time.Time     `json:"timestamp"`
			Status    string         `json:"status"`
			Endpoints map[string]int `json:"endpoints"`
		} `json:"data"`
		listTail
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return fmt.Errorf("reading the API's answer: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIMESTAMP\tEVENT\tTYPE\tSTATUS\tENDPOINTS")
	for _, e := range page.Data {
		n := 0
		for _, c := range e.Endpoints {
			n += c
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", timeOr(e.Timestamp), e.ID, e.Event, e.Status, n)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	page.listTail.print(w, len(page.Data), "events")
	return nil
}

type deliveryRow struct {
	EndpointID     string     `json:"endpoint_id"`
	Status         string     `json:"status"`
	Attempts       int        `json:"attempts"`
	LastStatusCode *int       `json:"last_status_code"`
	LastAttemptAt  *time.Time `json:"last_attempt_at"`
	NextAttemptAt  *time.Time `json:"next_attempt_at"`
	Error          string     `json:"error"`
}

func (d deliveryRow) code() string {
	if d.LastStatusCode == nil || *d.LastStatusCode == 0 {
		return "-"
	}
	return fmt.Sprint(*d.LastStatusCode)
}

func printEvent(w io.Writer, body []byte) error {
	var ev struct {
		Event struct {
			ID    string `json:"id"`
			Event string `json:"event"`
		} `json:"event"`
		Status           string        `json:"status"`
		Timestamp        *time.Time    `json:"timestamp"`
		Deliveries       []deliveryRow `json:"deliveries"`
		EventUnavailable string        `json:"event_unavailable"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		return fmt.Errorf("reading the API's answer: %w", err)
	}
	fmt.Fprintf(w, "%s %s: %s (published %s)\n", ev.Event.ID, ev.Event.Event, ev.Status, timeOr(ev.Timestamp))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ENDPOINT\tSTATUS\tATTEMPTS\tLAST CODE\tLAST ATTEMPT\tNEXT ATTEMPT\tERROR")
	for _, d := range ev.Deliveries {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", d.EndpointID, d.Status, d.Attempts, d.code(), timeOr(d.LastAttemptAt), timeOr(d.NextAttemptAt), d.Error)
	}
	return tw.Flush()
}

func printDead(w io.Writer, body []byte) error {
	var page struct {
		Data []struct {
			EventID   string     `json:"event_id"`
			EventType string     `json:"event_type"`
			Timestamp *time.Time `json:"timestamp"`
			deliveryRow
		} `json:"data"`
		listTail
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return fmt.Errorf("reading the API's answer: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIMESTAMP\tEVENT\tTYPE\tATTEMPTS\tLAST CODE\tLAST ATTEMPT\tERROR")
	for _, d := range page.Data {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", timeOr(d.Timestamp), d.EventID, d.EventType, d.Attempts, d.code(), timeOr(d.LastAttemptAt), d.Error)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	page.listTail.print(w, len(page.Data), "dead deliveries")
	return nil
}

func printStats(w io.Writer, id string, body []byte) error {
	var st struct {
		Window  string `json:"window"`
		Covered struct {
			Since time.Time `json:"since"`
			Until time.Time `json:"until"`
		} `json:"covered"`
		Delivered    int64                    `json:"delivered"`
		Failed       int64                    `json:"failed"`
		Dead         int64                    `json:"dead"`
		SuccessRate  *float64                 `json:"success_rate"`
		LatencyMS    struct{ P50, P99 int64 } `json:"latency_ms"`
		State        string                   `json:"state"`
		FailingSince *time.Time               `json:"failing_since"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("reading the API's answer: %w", err)
	}
	rate := "-"
	if st.SuccessRate != nil {
		rate = fmt.Sprintf("%.1f%%", *st.SuccessRate*100)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "endpoint\t%s\n", id)
	fmt.Fprintf(tw, "state\t%s\n", st.State)
	if st.FailingSince != nil {
		fmt.Fprintf(tw, "failing since\t%s\n", timeOr(st.FailingSince))
	}
	fmt.Fprintf(tw, "window\t%s (%s to %s)\n", st.Window, st.Covered.Since.UTC().Format(time.RFC3339), st.Covered.Until.UTC().Format(time.RFC3339))
	fmt.Fprintf(tw, "delivered\t%d\n", st.Delivered)
	fmt.Fprintf(tw, "failed attempts\t%d\n", st.Failed)
	fmt.Fprintf(tw, "dead\t%d\n", st.Dead)
	fmt.Fprintf(tw, "success rate\t%s\n", rate)
	fmt.Fprintf(tw, "latency p50/p99\t%dms / %dms\n", st.LatencyMS.P50, st.LatencyMS.P99)
	return tw.Flush()
}
