package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/hookstream/hookstream/internal/config"
)

const attemptsUsage = `Usage: hookstream attempts list (--endpoint ep_... | --event evt_...) [flags]

  --outcome delivered|failed|gone|refused|deleted   --status-code 500   --code-class 5xx
  --error-class timeout|dns|connection_refused|tls|refused_destination|http_status|...
  --type agent.created   --event-id evt_...   --trigger scheduled|resend|recover|replay|test
  --since/--until RFC 3339   --limit N   --cursor C (the next or prev cursor a list printed)
  --json                     print the API's JSON instead of a table

Every command takes --api-url (HOOKSTREAM_API_URL), --token (HOOKSTREAM_TOKEN) and, for admin tokens, --tenant.
`

// runAttempts lists delivery attempts from the delivery log.
func runAttempts(ctx context.Context, env Env, args []string) error {
	if len(args) == 0 || args[0] != "list" {
		fmt.Fprint(env.Stderr, attemptsUsage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return flag.ErrHelp
		}
		return fmt.Errorf("%w: want `attempts list`", ErrUsage)
	}
	c := &endpointsClient{http: &http.Client{Timeout: 30 * time.Second}, out: env.Stdout}
	fs := flag.NewFlagSet("attempts list", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	c.register(fs)
	endpoint := fs.String("endpoint", "", "list this endpoint's attempts")
	event := fs.String("event", "", "list this event's attempts, all endpoints")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	params := []string{"outcome", "status-code", "code-class", "error-class", "type", "event-id", "trigger", "since", "until", "limit", "cursor"}
	vals := make(map[string]*string, len(params))
	for _, p := range params {
		vals[p] = fs.String(p, "", "filter: "+p+" (see usage)")
	}
	if err := config.Parse(fs, args[1:], env.LookupEnv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if len(fs.Args()) > 0 {
		return fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Args()[0])
	}
	var path string
	switch {
	case (*endpoint == "") == (*event == ""):
		return fmt.Errorf("%w: give exactly one of --endpoint and --event", ErrUsage)
	case *endpoint != "":
		path = "/v1/endpoints/" + url.PathEscape(*endpoint) + "/attempts"
	default:
		path = "/v1/events/" + url.PathEscape(*event) + "/attempts"
	}
	q := url.Values{}
	for _, p := range params {
		if v := *vals[p]; v != "" {
			q.Set(snake(p), v)
		}
	}
	if !*asJSON {
		b, err := c.call(ctx, http.MethodGet, path, q, nil)
		if err != nil {
			return err
		}
		return printAttempts(c, b)
	}
	return c.do(ctx, http.MethodGet, path, q, nil)
}

// snake turns a flag name into its query parameter.
func snake(flagName string) string {
	b := []byte(flagName)
	for i, c := range b {
		if c == '-' {
			b[i] = '_'
		}
	}
	return string(b)
}

// printAttempts prints a page of attempts as a table, then the window it
// covered and the cursors to page on with.
func printAttempts(c *endpointsClient, body []byte) error {
	var page struct {
		Data []struct {
			ID         string    `json:"id"`
			EventID    string    `json:"event_id"`
			EventType  string    `json:"event_type"`
			EndpointID string    `json:"endpoint_id"`
			Attempt    int       `json:"attempt"`
			Trigger    string    `json:"trigger"`
			Outcome    string    `json:"outcome"`
			StatusCode int       `json:"status_code"`
			ErrorClass string    `json:"error_class"`
			LatencyMS  int64     `json:"latency_ms"`
			At         time.Time `json:"at"`
		} `json:"data"`
		Next   *string `json:"next"`
		Prev   *string `json:"prev"`
		Window struct {
			Since time.Time `json:"since"`
			Until time.Time `json:"until"`
		} `json:"window"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return fmt.Errorf("reading the API's answer: %w", err)
	}
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AT\tATTEMPT\tEVENT\tTYPE\tENDPOINT\tTRY\tTRIGGER\tOUTCOME\tCODE\tERROR\tLATENCY")
	for _, a := range page.Data {
		code := "-"
		if a.StatusCode != 0 {
			code = fmt.Sprint(a.StatusCode)
		}
		errClass := a.ErrorClass
		if errClass == "" {
			errClass = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%dms\n", a.At.UTC().Format(time.RFC3339), a.ID, a.EventID,
			a.EventType, a.EndpointID, a.Attempt, a.Trigger, a.Outcome, code, errClass, a.LatencyMS)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "%d attempts, window %s to %s\n", len(page.Data),
		page.Window.Since.UTC().Format(time.RFC3339), page.Window.Until.UTC().Format(time.RFC3339))
	if page.Next != nil {
		fmt.Fprintf(c.out, "older: --cursor %s\n", *page.Next)
	}
	if page.Prev != nil {
		fmt.Fprintf(c.out, "newer: --cursor %s\n", *page.Prev)
	}
	return nil
}
