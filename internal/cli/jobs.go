package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/hookstream/hookstream/internal/recovery"
	"github.com/hookstream/hookstream/internal/supervisor"
)

// newJobs builds the recovery jobs service of the api role: every api
// process answers the jobs routes; the one the jobs group gives the jobs
// topic runs them. pub publishes job.completed.
//
// Why the api role: it already holds what a job needs (the endpoint store,
// the delivery log's index, a Kafka client) and is always deployed; a
// job's work is a paced stream of Kafka writes, small beside serving
// HTTP, and runs on one replica at a time.
// defaultJobRetention is --job-retention's default.
const defaultJobRetention = recovery.DefaultRetention

// retention is how long a finished job stays listed.
func newJobs(d *roleDeps, group groupFlags, pub recovery.Publisher, retention time.Duration) (*recovery.Service, supervisor.Named, error) {
	svc, err := recovery.New(recovery.Config{
		Topics:     d.topics(),
		ClientOpts: d.kafkaOpts(),
		GroupOpts:  group.opts(),
		Endpoints:  d.store,
		Publisher:  pub,
		Logger:     d.log,
		MaxLead:    recovery.DefaultMaxLead,
		Retention:  retention,
	})
	if err != nil {
		return nil, supervisor.Named{}, err
	}
	return svc, supervisor.Named{Name: "jobs", Worker: supervisor.Func(func(ctx context.Context) error {
		defer svc.Close()
		return svc.Run(ctx)
	})}, nil
}

const jobsUsage = `Usage: hookstream jobs <list|get|cancel> [flags] [id]

  list                        [--limit N] [--cursor C]: the tenant's jobs, newest first
  get ID                      [--wait]: follow a running job to its end (a progress bar on a terminal)
  cancel ID
  --json                      print the API's JSON instead of a table

Jobs come from:
  hookstream events resend EVENT_ID [--endpoints ep_1,ep_2] [--rate N] [--wait]
  hookstream endpoints recover EP_ID --since T [--until T] [--enable] [--rate N] [--wait]
  hookstream endpoints replay EP_ID --since T [--until T] [--types a,b] [--dry-run] [--rate N] [--wait]
  hookstream endpoints test EP_ID [--event TYPE] [--data JSON] [--wait 10s]

Every command takes --api-url (HOOKSTREAM_API_URL), --token (HOOKSTREAM_TOKEN) and, for admin tokens, --tenant.
`

// runJobs lists, shows and cancels recovery jobs through the HTTP API.
func runJobs(ctx context.Context, env Env, args []string) error {
	sub, args, err := subcommand(env, jobsUsage, args)
	if err != nil {
		return err
	}
	c, fs := newAPICommand(env, "jobs "+sub, 30*time.Second)
	var wait bool
	var page func() url.Values
	asJSON := fs.Bool("json", false, "print the API's JSON")
	switch sub {
	case "list":
		page = pageFlags(fs)
	case "get":
		fs.BoolVar(&wait, "wait", false, "follow the job until it ends")
	case "cancel":
	default:
		fmt.Fprint(env.Stderr, jobsUsage)
		return fmt.Errorf("%w: unknown subcommand %q", ErrUsage, sub)
	}
	id, err := parseJobID(fs, env, args, sub != "list")
	if err != nil {
		return err
	}
	if err := c.needToken(); err != nil {
		return err
	}
	switch sub {
	case "list":
		return c.show(ctx, http.MethodGet, "/v1/jobs", page(), *asJSON, printJobs)
	case "get":
		if wait {
			return followJob(ctx, c, env, id, *asJSON)
		}
		return c.show(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(id), nil, *asJSON, printJob)
	default:
		return c.show(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(id)+"/cancel", nil, *asJSON, printJob)
	}
}

// show calls the API and prints its answer: as JSON, or with print.
func (c *endpointsClient) show(ctx context.Context, method, path string, q url.Values, asJSON bool, print func(io.Writer, []byte) error) error {
	if asJSON {
		return c.do(ctx, method, path, q, nil)
	}
	b, err := c.call(ctx, method, path, q, nil)
	if err != nil {
		return err
	}
	return print(c.out, b)
}

// jobRow is a job as the tables show it.
type jobRow struct {
	jobState
	EndpointID string     `json:"endpoint_id"`
	EventID    string     `json:"event_id"`
	Rate       int        `json:"rate"`
	Since      *time.Time `json:"since"`
	Until      *time.Time `json:"until"`
	Types      []string   `json:"types"`
	CreatedAt  *time.Time `json:"created_at"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
}

// target is what the job sends to or from: an endpoint, or an event.
func (j *jobRow) target() string {
	if j.EndpointID != "" {
		return j.EndpointID
	}
	return j.EventID
}

func printJobs(w io.Writer, body []byte) error {
	var page struct {
		Data []jobRow `json:"data"`
		Next *string  `json:"next"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return fmt.Errorf("reading the API's answer: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CREATED\tJOB\tKIND\tTARGET\tSTATE\tPROCESSED\tSENT\tFAILED")
	for _, j := range page.Data {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%d\t%d\n", timeOr(j.CreatedAt), j.ID, j.Kind, j.target(), j.State, j.Processed, j.Total, j.Sent, j.Failed)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "%d jobs\n", len(page.Data))
	if page.Next != nil {
		fmt.Fprintf(w, "older: --cursor %s\n", *page.Next)
	}
	return nil
}

func printJob(w io.Writer, body []byte) error {
	var j jobRow
	if err := json.Unmarshal(body, &j); err != nil {
		return fmt.Errorf("reading the API's answer: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "job\t%s\n", j.ID)
	fmt.Fprintf(tw, "kind\t%s\n", j.Kind)
	if j.EndpointID != "" {
		fmt.Fprintf(tw, "endpoint\t%s\n", j.EndpointID)
	}
	if j.EventID != "" {
		fmt.Fprintf(tw, "event\t%s\n", j.EventID)
	}
	if j.Since != nil {
		fmt.Fprintf(tw, "window\t%s to %s\n", timeOr(j.Since), timeOr(j.Until))
	}
	if len(j.Types) > 0 {
		fmt.Fprintf(tw, "types\t%s\n", strings.Join(j.Types, ", "))
	}
	fmt.Fprintf(tw, "state\t%s\n", j.State)
	fmt.Fprintf(tw, "processed\t%d of %d\n", j.Processed, j.Total)
	fmt.Fprintf(tw, "sent\t%d\n", j.Sent)
	fmt.Fprintf(tw, "failed\t%d\n", j.Failed)
	fmt.Fprintf(tw, "rate\t%d/s\n", j.Rate)
	fmt.Fprintf(tw, "created\t%s\n", timeOr(j.CreatedAt))
	fmt.Fprintf(tw, "started\t%s\n", timeOr(j.StartedAt))
	fmt.Fprintf(tw, "finished\t%s\n", timeOr(j.FinishedAt))
	if j.Error != "" {
		fmt.Fprintf(tw, "error\t%s\n", j.Error)
	}
	return tw.Flush()
}

func parseJobID(fs *flag.FlagSet, env Env, args []string, needsID bool) (string, error) {
	id, err := parseWithID(fs, env, args, needsID)
	if err != nil && strings.Contains(err.Error(), "missing the endpoint id") {
		return "", fmt.Errorf("%w: missing the job id (job_...)", ErrUsage)
	}
	return id, err
}

// jobState is what followJob reads of a job.
type jobState struct {
	ID        string `json:"id"`
	Kind      string `json:"kind"`
	State     string `json:"state"`
	Total     int64  `json:"total"`
	Processed int64  `json:"processed"`
	Sent      int64  `json:"sent"`
	Failed    int64  `json:"failed"`
	Error     string `json:"error"`
}

func (j *jobState) finished() bool {
	return j.State == recovery.StateDone || j.State == recovery.StateCanceled || j.State == recovery.StateFailed
}

// followJob polls the job until it ends, drawing a progress bar on a
// terminal (a line per change otherwise), then prints the job: its JSON,
// or with asJSON false its table. A job that ends failed or canceled is an
// error (exit code 1).
func followJob(ctx context.Context, c *endpointsClient, env Env, id string, asJSON bool) error {
	tty := isTerminal(env.Stderr)
	last := ""
	var j jobState
	for {
		b, err := c.call(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(id), nil, nil)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &j); err != nil {
			return fmt.Errorf("reading the API's answer: %w", err)
		}
		line := progressLine(&j, tty)
		if line != last {
			if tty {
				fmt.Fprint(env.Stderr, "\r"+line)
			} else {
				fmt.Fprintln(env.Stderr, line)
			}
			last = line
		}
		if j.finished() {
			if tty {
				fmt.Fprintln(env.Stderr)
			}
			if err := c.show(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(id), nil, asJSON, printJob); err != nil {
				return err
			}
			if j.State != recovery.StateDone {
				return fmt.Errorf("job %s ended %s: %s", j.ID, j.State, j.Error)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// progressLine renders a job's progress: a bar on a terminal.
func progressLine(j *jobState, bar bool) string {
	pct := 0.0
	if j.Total > 0 {
		pct = float64(j.Processed) / float64(j.Total)
	}
	counts := fmt.Sprintf("%s %s %d/%d sent %d failed %d", j.ID, j.State, j.Processed, j.Total, j.Sent, j.Failed)
	if !bar {
		return counts
	}
	const width = 30
	n := int(pct * width)
	return fmt.Sprintf("[%s%s] %3.0f%% %s", strings.Repeat("#", n), strings.Repeat(".", width-n), 100*pct, counts)
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// runJobCommand starts a job (or a test event) through the API for
// `events resend` and `endpoints recover|replay|test`, prints the answer,
// and with --wait follows the job to its end.
func runJobCommand(ctx context.Context, env Env, sub string, args []string) error {
	c, fs := newAPICommand(env, sub, 2*time.Minute)
	var since, until, types, endpoints, event, data, key, testWait string
	var rate int
	var enable, dryRun, wait bool
	body := map[string]any{}
	switch sub {
	case "resend":
		fs.StringVar(&endpoints, "endpoints", "", "comma-separated endpoint ids (default: every endpoint the event matched)")
	case "recover", "replay":
		fs.StringVar(&since, "since", "", "start of the window (RFC 3339), required")
		fs.StringVar(&until, "until", "", "end of the window (RFC 3339; default: now)")
		if sub == "recover" {
			fs.BoolVar(&enable, "enable", false, "enable the endpoint first if it is disabled")
		} else {
			fs.StringVar(&types, "types", "", "comma-separated event types (default: every type the endpoint subscribes to)")
			fs.BoolVar(&dryRun, "dry-run", false, "print how many events would be sent, and a sample, without sending")
		}
	case "test":
		fs.StringVar(&event, "event", "", "event type (default: the first catalog type the endpoint subscribes to)")
		fs.StringVar(&data, "data", "", "event data JSON (default: the type's catalog example)")
		fs.StringVar(&testWait, "wait", "", `wait this long for the first attempt, e.g. "10s"`)
	}
	if sub != "test" {
		fs.IntVar(&rate, "rate", 0, "deliveries per second (default: the API's, 500)")
		fs.StringVar(&key, "idempotency-key", "", "a repeated request with the same key returns the same job")
		fs.BoolVar(&wait, "wait", false, "follow the job until it ends (a progress bar on a terminal)")
	}
	id, err := parseWithID(fs, env, args, true)
	if err != nil {
		if sub == "resend" && strings.Contains(err.Error(), "missing the endpoint id") {
			return fmt.Errorf("%w: missing the event id", ErrUsage)
		}
		return err
	}
	if err := c.needToken(); err != nil {
		return err
	}
	putGiven(fs, body, map[string]bodyField{
		"since": {"since", since}, "until": {"until", until}, "endpoints": {"endpoints", splitList(endpoints)},
		"types": {"types", splitList(types)}, "enable": {"enable", enable}, "dry-run": {"dry_run", dryRun},
		"rate": {"rate", rate}, "event": {"event", event},
	})
	if data != "" {
		if !json.Valid([]byte(data)) {
			return fmt.Errorf("%w: --data is not JSON", ErrUsage)
		}
		body["data"] = json.RawMessage(data)
	}
	path := "/v1/endpoints/" + url.PathEscape(id) + "/" + sub
	if sub == "resend" {
		path = "/v1/events/" + url.PathEscape(id) + "/resend"
	}
	var q url.Values
	if testWait != "" {
		q = url.Values{"wait": {testWait}}
	}
	if key != "" {
		c.idempotencyKey = key
	}
	if !wait || dryRun {
		return c.do(ctx, http.MethodPost, path, q, body)
	}
	b, err := c.call(ctx, http.MethodPost, path, q, body)
	if err != nil {
		return err
	}
	var out struct{ Job jobState }
	if err := json.Unmarshal(b, &out); err != nil || out.Job.ID == "" {
		return errors.Join(fmt.Errorf("reading the API's answer: no job"), err)
	}
	// Starting a job prints JSON, like creating an endpoint.
	return followJob(ctx, c, env, out.Job.ID, true)
}
