package deliverylog

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The indexer works out each attempt's index writes itself (entry id,
// ref, counters, the endpoint's next state) from its copy of the
// endpoint's state, and attemptsScript checks that copy before it writes
// them. Working them out in Lua cost Redis more than the writes.

// errContended: another writer kept moving the endpoints' states.
var errContended = errors.New("deliverylog: endpoint state kept changing under the indexer")

// maxTries bounds how often a tenant's attempts are worked out again when
// the script found a state moved.
const maxTries = 5

// epState is what the index holds of an endpoint: its state (key es) and
// its stream's last id.
type epState struct {
	lid     string          // the state's "lid" field as stored; "" when absent
	ms, seq uint64          // the stream's last id
	off     map[int32]int64 // "o:<partition>": the last attempts offset indexed
	at      int64           // the latest attempt's time (ms)
	fs      string          // failing_since; "" when the endpoint is not failing
}

func (s *epState) clone() *epState {
	c := *s
	c.off = maps.Clone(s.off)
	if c.off == nil {
		c.off = map[int32]int64{}
	}
	return &c
}

// offset is the last offset of partition p indexed; -1 when none.
func (s *epState) offset(p int32) int64 {
	if o, ok := s.off[p]; ok {
		return o
	}
	return -1
}

// pendingAttempt is an attempt waiting for its tenant's script call.
type pendingAttempt struct {
	ep, st, es, evd string // keys: stream, minute counters, state, event hash
	part            int32
	off             int64
	at              int64 // ms
	outcome         string
	bucket          int
	field           any    // the delivery's field in the event hash (a script argument)
	last, value     string // delivery summary (without ref), stream value
	expires         time.Time
}

// load reads the state of every endpoint of groups not yet known. The
// states known are bounded like housekeeping: past housekeepingKeys they
// are forgotten and read again.
func (pl *poll) load(ctx context.Context, groups map[string][]pendingAttempt) error {
	if len(pl.states) >= housekeepingKeys {
		clear(pl.states)
	}
	type pending struct {
		es, ep string
		state  *redis.MapStringStringCmd
		info   *redis.XInfoStreamCmd
	}
	var ps []pending
	seen := map[string]bool{}
	for _, as := range groups {
		for i := range as {
			a := &as[i]
			if pl.states[a.es] != nil || seen[a.es] {
				continue
			}
			seen[a.es] = true
			ps = append(ps, pending{es: a.es, ep: a.ep})
		}
	}
	if len(ps) == 0 {
		return nil
	}
	p := pl.ix.rdb.Pipeline()
	for i := range ps {
		ps[i].state = p.HGetAll(ctx, ps[i].es)
		// The last id XADD has to beat: the stream's, which outlives its
		// entries.
		ps[i].info = p.XInfoStream(ctx, ps[i].ep)
	}
	_, _ = p.Exec(ctx) // each reply is checked below
	for _, x := range ps {
		fields, err := x.state.Result()
		if err != nil {
			return fmt.Errorf("deliverylog: endpoint state: %w", err)
		}
		s := &epState{lid: fields["lid"], off: map[int32]int64{}, fs: fields["failing_since"]}
		s.at, _ = strconv.ParseInt(fields["at"], 10, 64)
		for f, v := range fields {
			if ps, ok := strings.CutPrefix(f, "o:"); ok {
				part, err1 := strconv.ParseInt(ps, 10, 32)
				o, err2 := strconv.ParseInt(v, 10, 64)
				if err1 == nil && err2 == nil {
					s.off[int32(part)] = o
				}
			}
		}
		info, err := x.info.Result()
		switch {
		case err == nil:
			s.ms, s.seq, _ = parseID(info.LastGeneratedID)
		case strings.Contains(err.Error(), "no such key"):
		default:
			return fmt.Errorf("deliverylog: endpoint stream: %w", err)
		}
		pl.states[x.es] = s
	}
	return nil
}

// scriptCall is one attemptsScript call under construction: its keys
// (deduplicated), attempts and counters, and the states it moves.
type scriptCall struct {
	keys     []string
	index    map[string]int // key → its 1-based position in keys
	attempts []any
	n        int
	counts   map[counter]int64
	// touched are the states the call moves, as it found them: what the
	// script checks.
	touched map[string]*touched
}

type touched struct {
	lid   string
	at    int64
	fs    string
	parts []int32
	offs  []string // the offset indexed of each of parts as found; "" none
}

func newScriptCall() *scriptCall {
	return &scriptCall{index: map[string]int{}, counts: map[counter]int64{}, touched: map[string]*touched{}}
}

func (c *scriptCall) reset() {
	c.keys, c.attempts, c.n = c.keys[:0], c.attempts[:0], 0
	clear(c.index)
	clear(c.counts)
	clear(c.touched)
}

// key returns k's position in the call's keys as a script argument.
func (c *scriptCall) key(k string) any {
	i, ok := c.index[k]
	if !ok {
		c.keys = append(c.keys, k)
		i = len(c.keys)
		c.index[k] = i
	}
	if i < len(keyArgs) {
		return keyArgs[i]
	}
	return strconv.Itoa(i)
}

// keyArgs and offsetArgs are script arguments made once: an argument is
// an interface value, and making one of a string allocates.
var (
	keyArgs    [4096]any
	offsetArgs [256]any
)

func init() {
	for i := range keyArgs {
		keyArgs[i] = strconv.Itoa(i)
	}
	for i := range offsetArgs {
		offsetArgs[i] = "o:" + strconv.Itoa(i)
	}
}

// counter is a field of a minute's counters.
type counter struct{ key, field string }

// Counter field names made once: they come up for every attempt.
var (
	counterFields [3][128]string
)

// Counter classes: an attempt counts as delivered, failed (any outcome
// but delivered and deleted) or neither, and in its latency bucket.
const (
	classDelivered = 'd'
	classFailed    = 'f'
	classNeither   = 'n'
)

var classes = [3]byte{classDelivered, classFailed, classNeither}

func init() {
	for c, b := range classes {
		for i := range counterFields[c] {
			counterFields[c][i] = string(b) + strconv.Itoa(i)
		}
	}
}

// counterField is the one field an attempt adds to in its minute's
// counters: its class and latency bucket together, so an attempt is one
// HINCRBY where an outcome field and a latency field made two.
func counterField(outcome string, bucket int) string {
	c := 1
	switch outcome {
	case "delivered":
		c = 0
	case "deleted":
		c = 2
	}
	if bucket >= 0 && bucket < len(counterFields[c]) {
		return counterFields[c][bucket]
	}
	return string(classes[c]) + strconv.Itoa(bucket)
}

// offsetStateArg is the state's field of partition p's offset, as a
// script argument.
func offsetStateArg(p int32) any {
	if p >= 0 && int(p) < len(offsetArgs) {
		return offsetArgs[p]
	}
	return "o:" + strconv.Itoa(int(p))
}

// sentCall is a script call queued on the poll's pipeline.
type sentCall struct {
	tenant string
	cmd    *redis.Cmd
}

// queueAttempts works out the tenant's attempts from the states known and
// queues them on p, a script call per maxScriptAttempts. Attempts at or
// below their endpoint's indexed offset are replays and skipped. The
// states they lead to wait in pl.next until the calls succeed (settle).
func (pl *poll) queueAttempts(ctx context.Context, p redis.Pipeliner, tenant string, as []pendingAttempt) {
	next := pl.next[tenant]
	if next == nil {
		next = map[string]*epState{}
		pl.next[tenant] = next
	}
	c := pl.call
	c.reset()
	for i := range as {
		a := &as[i]
		s := next[a.es]
		if s == nil {
			// Unknown only if load failed to read it: an empty state,
			// which the script's check turns into a retry.
			s = cmp.Or(pl.states[a.es], &epState{}).clone()
			next[a.es] = s
		}
		if a.off <= s.offset(a.part) {
			continue
		}
		if c.n == maxScriptAttempts {
			pl.eval(ctx, p, tenant, c, next)
		}
		t := c.touched[a.es]
		if t == nil {
			t = &touched{lid: s.lid, at: s.at, fs: s.fs}
			c.touched[a.es] = t
		}
		if !slices.Contains(t.parts, a.part) {
			o := ""
			if off := s.offset(a.part); off >= 0 {
				o = strconv.FormatInt(off, 10)
			}
			t.parts, t.offs = append(t.parts, a.part), append(t.offs, o)
		}
		// The entry id: the attempt's millisecond, or past the stream's
		// last id when a clock behind put the attempt earlier.
		ms, seq := uint64(max(a.at, 0)), uint64(0)
		if ms <= s.ms {
			ms, seq = s.ms, s.seq+1
		}
		buf := strconv.AppendUint(pl.buf[:0], ms, 10)
		buf = append(buf, '-')
		id := string(strconv.AppendUint(buf, seq, 10))
		v := a.value
		if d := a.at - int64(ms); d < 0 {
			v += sep + strconv.FormatInt(d, 10)
		}
		// The delivery's field for a first attempt: its ref, then its
		// summary.
		buf = strconv.AppendUint(buf[:0], ms, 16)
		if seq != 0 {
			buf = strconv.AppendUint(append(buf, '-'), seq, 16)
		}
		buf = append(append(append(buf, ','), a.last...), ';')
		pl.buf = buf
		c.attempts = append(c.attempts, c.key(a.ep), id, v, c.key(a.evd), a.field, string(buf))
		c.n++
		s.ms, s.seq, s.lid = ms, seq, id
		s.off[a.part] = a.off
		c.counts[counter{a.st, counterField(a.outcome, a.bucket)}]++
		if a.at >= s.at {
			s.at = a.at
			if a.outcome == "delivered" {
				s.fs = ""
			} else if a.outcome != "deleted" && s.fs == "" {
				s.fs = strconv.FormatInt(a.at, 10)
			}
		}
	}
	if c.n > 0 {
		pl.eval(ctx, p, tenant, c, next)
	}
}

// eval queues c on p with the counters and states it leads to, and
// empties c for more attempts.
func (pl *poll) eval(ctx context.Context, p redis.Pipeliner, tenant string, c *scriptCall, next map[string]*epState) {
	// The command copies its keys and arguments, so both buffers serve
	// the next call.
	args := append(pl.args[:0], len(c.touched))
	for es, t := range c.touched {
		args = append(args, c.key(es), 1+len(t.parts), "lid", t.lid)
		for i, part := range t.parts {
			args = append(args, offsetStateArg(part), t.offs[i])
		}
	}
	args = append(args, c.n)
	args = append(args, c.attempts...)
	args = append(args, len(c.counts))
	for k, n := range c.counts {
		args = append(args, c.key(k.key), k.field, n)
	}
	args = append(args, len(c.touched))
	for es, t := range c.touched {
		s := next[es]
		n := 2 + 2*len(t.parts)
		if s.at != t.at {
			n += 2
		}
		if s.fs != t.fs && s.fs != "" {
			n += 2
		}
		args = append(args, c.key(es), n, "lid", s.lid)
		if s.at != t.at {
			args = append(args, "at", strconv.FormatInt(s.at, 10))
		}
		for _, part := range t.parts {
			args = append(args, offsetStateArg(part), strconv.FormatInt(s.off[part], 10))
		}
		del := ""
		if s.fs != t.fs {
			if s.fs != "" {
				args = append(args, "failing_since", s.fs)
			} else {
				del = "failing_since"
			}
		}
		args = append(args, del)
	}
	pl.sent = append(pl.sent, sentCall{tenant: tenant, cmd: attemptsScript.EvalSha(ctx, p, c.keys, args...)})
	pl.args = args
	c.reset()
}

// settle takes the outcome of the poll's script calls: the states of
// tenants whose calls all wrote become known; a tenant a call of which
// found a state moved has its attempts worked out again from states read
// afresh.
func (pl *poll) settle(ctx context.Context) error {
	var stale []string
	for _, s := range pl.sent {
		n, err := s.cmd.Int64()
		if err != nil {
			return fmt.Errorf("deliverylog: index attempts: %w", err)
		}
		if n < 0 && !slices.Contains(stale, s.tenant) {
			stale = append(stale, s.tenant)
		}
	}
	for tenant, next := range pl.next {
		pl.commit(next, slices.Contains(stale, tenant))
	}
	for _, tenant := range stale {
		if err := pl.retry(ctx, tenant); err != nil {
			return err
		}
	}
	return nil
}

// commit makes states known after their calls wrote them, or forgets
// them when a call did not.
func (pl *poll) commit(next map[string]*epState, failed bool) {
	for k, s := range next {
		if failed {
			delete(pl.states, k)
		} else {
			pl.states[k] = s
		}
	}
}

// retry indexes the tenant's attempts again from states read afresh.
func (pl *poll) retry(ctx context.Context, tenant string) error {
	as := pl.pending[tenant]
	group := map[string][]pendingAttempt{tenant: as}
	for range maxTries {
		pl.sent = pl.sent[:0]
		delete(pl.next, tenant)
		if err := pl.load(ctx, group); err != nil {
			return err
		}
		_, err := pl.ix.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			pl.queueAttempts(ctx, p, tenant, as)
			// The keys this creates came after the poll's expiries.
			for i := range as {
				at := as[i].expires.Add(expiryStep - 1).Truncate(expiryStep)
				for _, k := range []string{as[i].ep, as[i].st, as[i].es, as[i].evd} {
					p.PExpireAt(ctx, k, at)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("deliverylog: index attempts: %w", err)
		}
		failed := false
		for _, s := range pl.sent {
			if n, _ := s.cmd.Int64(); n < 0 {
				failed = true
			}
		}
		pl.commit(pl.next[tenant], failed)
		if !failed {
			return nil
		}
	}
	return errContended
}
