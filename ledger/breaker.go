package ledger

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/results"
)

// The account breakers' state: one small hash per account, "{prefix}:breaker:<account>",
// shared by every replica. The worker decides when a breaker opens and closes; the ledger
// keeps the hash and announces each transition on the results stream, in the same script, so
// exactly one replica announces it and the stream gets one entry.
//
//	open      "1" while open
//	status    the unhealthy status last seen (a provider status, or the account-level slug)
//	since_ms  when it opened
//	probe_ms  when the account was last probed while open
//	d401_ms, d401_n  the current window of account-level refusals of sending calls

// Breaker is an account's breaker as read by CheckBreaker.
type Breaker struct {
	Open   bool
	Probe  bool // the caller won this probe interval's probe
	Status string
	Since  time.Time
}

// BreakerPolicy is what the worker decides about its breakers.
type BreakerPolicy struct {
	ProbeEvery time.Duration // one probe per account per this interval, across replicas
	TTL        time.Duration // an open breaker's key lives this long without a probe
	Window     time.Duration // refusals within Window count towards Trips
	Trips      int           // account-level refusals that open the breaker
}

// breakerCheckScript reads an account's breaker and, when it is open and the last probe is
// older than the probe interval, claims the probe for the caller.
//
//	KEYS[1] breaker   ARGV[1] now (ms)   ARGV[2] probe interval (ms)   ARGV[3] key TTL (ms)
//
// Reply {0} closed; {1, status, since_ms} open; {2, status, since_ms} open and the caller probes.
var breakerCheckScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'open') ~= '1' then return {0} end
local h = redis.call('HMGET', KEYS[1], 'status', 'since_ms', 'probe_ms')
local now = tonumber(ARGV[1])
local probe = tonumber(h[3]) or 0
if now - probe >= tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'probe_ms', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {2, h[1] or '', h[2] or '0'}
end
return {1, h[1] or '', h[2] or '0'}
`)

// luaBreakerOpen opens the breaker of KEYS[1] and appends the event to KEYS[2].
// ARGV[1] now (ms), ARGV[2] status, ARGV[3] account, ARGV[4] now (RFC 3339), ARGV[5] TTL (ms).
const luaBreakerOpen = `
local function open_breaker()
  redis.call('HSET', KEYS[1], 'open', '1', 'status', ARGV[2], 'since_ms', ARGV[1], 'probe_ms', ARGV[1])
  redis.call('HDEL', KEYS[1], 'd401_ms', 'd401_n')
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  redis.call('XADD', KEYS[2], '*', '` + results.FieldEvent + `', '` + results.EventAccountBreakerOpen + `',
    '` + results.FieldAccountID + `', ARGV[3], '` + results.FieldStatus + `', ARGV[2], '` + results.FieldAt + `', ARGV[4])
end
`

// breakerOpenScript opens an account's breaker (an unhealthy status was seen). Already open: the
// status is updated, nothing announced.
//
//	KEYS[1] breaker   KEYS[2] results stream   ARGV: see luaBreakerOpen
//
// Reply 1 opened (the caller announces), 0 already open.
var breakerOpenScript = redis.NewScript(luaBreakerOpen + `
if redis.call('HGET', KEYS[1], 'open') == '1' then
  redis.call('HSET', KEYS[1], 'status', ARGV[2])
  return 0
end
open_breaker()
return 1
`)

// breakerRefusedScript counts an account-level refusal of a sending call and opens the
// breaker at the ARGV[7]-th within ARGV[6] ms (status ARGV[2], the slug of that last one).
//
//	KEYS[1] breaker   KEYS[2] results stream   ARGV[1..5]: see luaBreakerOpen
//	ARGV[6] window (ms)   ARGV[7] trips
//
// Reply 1 opened, 0 not (counted, or already open).
var breakerRefusedScript = redis.NewScript(luaBreakerOpen + `
if redis.call('HGET', KEYS[1], 'open') == '1' then return 0 end
local now = tonumber(ARGV[1])
local start = tonumber(redis.call('HGET', KEYS[1], 'd401_ms'))
local n = 1
if start and now - start <= tonumber(ARGV[6]) then
  n = redis.call('HINCRBY', KEYS[1], 'd401_n', 1)
else
  redis.call('HSET', KEYS[1], 'd401_ms', ARGV[1], 'd401_n', 1)
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
end
if n < tonumber(ARGV[7]) then return 0 end
open_breaker()
return 1
`)

// breakerCloseScript closes an account's breaker (a probe found it healthy).
//
//	KEYS[1] breaker   KEYS[2] results stream
//	ARGV[1] status   ARGV[2] account   ARGV[3] now (RFC 3339)
//
// Reply 1 closed (the caller announces), 0 was not open.
var breakerCloseScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'open') ~= '1' then return 0 end
redis.call('DEL', KEYS[1])
redis.call('XADD', KEYS[2], '*', '` + results.FieldEvent + `', '` + results.EventAccountBreakerClosed + `',
  '` + results.FieldAccountID + `', ARGV[2], '` + results.FieldStatus + `', ARGV[1], '` + results.FieldAt + `', ARGV[3])
return 1
`)

// BreakerOpen reports whether the account's breaker is open: one plain read, far cheaper for
// Redis than CheckBreaker's script, for the usual case of a closed breaker.
func (l *Ledger) BreakerOpen(ctx context.Context, account string) (bool, error) {
	open, err := l.rdb.HGet(ctx, l.keys.Breaker(account), "open").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, err
	}
	return open == "1", nil
}

// BreakerState reports whether the account's breaker is open, and with which status. It never
// claims a probe.
func (l *Ledger) BreakerState(ctx context.Context, account string) (open bool, status string, err error) {
	v, err := l.rdb.HMGet(ctx, l.keys.Breaker(account), "open", "status").Result()
	if err != nil {
		return false, "", err
	}
	o, _ := v[0].(string)
	s, _ := v[1].(string)
	return o == "1", s, nil
}

// ReadBreaker reads the account's breaker (open, status, since) without claiming a probe.
func (l *Ledger) ReadBreaker(ctx context.Context, account string) (Breaker, error) {
	h, err := l.rdb.HMGet(ctx, l.keys.Breaker(account), "open", "status", "since_ms").Result()
	if err != nil {
		return Breaker{}, err
	}
	str := func(v any) string { s, _ := v.(string); return s }
	if str(h[0]) != "1" {
		return Breaker{}, nil
	}
	ms, _ := strconv.ParseInt(str(h[2]), 10, 64)
	return Breaker{Open: true, Status: str(h[1]), Since: time.UnixMilli(ms)}, nil
}

// BreakersOpen reports, for each account, whether its breaker is open, in one round trip.
func (l *Ledger) BreakersOpen(ctx context.Context, accounts []string) ([]bool, error) {
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(accounts))
	for i, a := range accounts {
		cmds[i] = pipe.HGet(ctx, l.keys.Breaker(a), "open")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	open := make([]bool, len(accounts))
	for i := range accounts {
		v, err := cmds[i].Result()
		open[i] = err == nil && v == "1"
	}
	return open, nil
}

// CheckBreaker reads the account's breaker at now, claiming the probe for the caller when the
// breaker is open and its last probe is older than p.ProbeEvery.
func (l *Ledger) CheckBreaker(ctx context.Context, account string, now time.Time, p BreakerPolicy) (Breaker, error) {
	v, err := breakerCheckScript.Run(ctx, l.rdb, []string{l.keys.Breaker(account)},
		now.UnixMilli(), p.ProbeEvery.Milliseconds(), p.TTL.Milliseconds()).Slice()
	if err != nil {
		return Breaker{}, err
	}
	if len(v) == 0 {
		return Breaker{}, fmt.Errorf("empty reply")
	}
	code, _ := v[0].(int64)
	if code == 0 {
		return Breaker{}, nil
	}
	b := Breaker{Open: true, Probe: code == 2}
	if len(v) >= 3 {
		b.Status, _ = v[1].(string)
		if s, _ := v[2].(string); s != "" {
			if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
				b.Since = time.UnixMilli(ms)
			}
		}
	}
	return b, nil
}

// OpenBreaker opens the account's breaker at now for status (already open: the status is
// updated). opened is true for the one call that opened it, which announces it.
func (l *Ledger) OpenBreaker(ctx context.Context, account, status string, now time.Time, p BreakerPolicy) (opened bool, err error) {
	n, err := breakerOpenScript.Run(ctx, l.rdb, []string{l.keys.Breaker(account), l.opts.ResultsStream},
		breakerOpenArgs(now, status, account, p)...).Int()
	return n == 1, err
}

// BreakerRefused counts an account-level refusal (slug) of a sending call at now; p.Trips of
// them within p.Window open the breaker. opened is true for the call that opened it.
func (l *Ledger) BreakerRefused(ctx context.Context, account, slug string, now time.Time, p BreakerPolicy) (opened bool, err error) {
	args := append(breakerOpenArgs(now, slug, account, p), p.Window.Milliseconds(), p.Trips)
	n, err := breakerRefusedScript.Run(ctx, l.rdb, []string{l.keys.Breaker(account), l.opts.ResultsStream}, args...).Int()
	return n == 1, err
}

// CloseBreaker closes the account's breaker (a probe found it healthy, status). closed is true
// for the one call that closed it, which announces it.
func (l *Ledger) CloseBreaker(ctx context.Context, account, status string, now time.Time) (closed bool, err error) {
	n, err := breakerCloseScript.Run(ctx, l.rdb, []string{l.keys.Breaker(account), l.opts.ResultsStream},
		status, account, breakerISO(now)).Int()
	return n == 1, err
}

func breakerOpenArgs(now time.Time, status, account string, p BreakerPolicy) []any {
	return []any{now.UnixMilli(), status, account, breakerISO(now), p.TTL.Milliseconds()}
}

func breakerISO(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
