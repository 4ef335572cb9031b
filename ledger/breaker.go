package ledger

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
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
// KEYS, ARGV and reply: lua/breaker_check.lua.
var breakerCheckScript = script("breaker_check")

// breakerOpenScript opens an account's breaker (an unhealthy status was seen). Already open: the
// status is updated, nothing announced.
//
// KEYS, ARGV and reply: lua/breaker_open.lua.
var breakerOpenScript = script("breaker_open")

// breakerRefusedScript counts an account-level refusal of a sending call and opens the
// breaker at the ARGV[7]-th within ARGV[6] ms (status ARGV[2], the slug of that last one).
//
// KEYS, ARGV and reply: lua/breaker_refused.lua.
var breakerRefusedScript = script("breaker_refused")

// breakerCloseScript closes an account's breaker (a probe found it healthy).
//
// KEYS, ARGV and reply: lua/breaker_close.lua.
var breakerCloseScript = script("breaker_close")

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
	v, err := l.lua.Run(ctx, breakerCheckScript, []string{l.keys.Breaker(account)},
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
	n, err := l.lua.Run(ctx, breakerOpenScript, []string{l.keys.Breaker(account), l.opts.ResultsStream},
		breakerOpenArgs(now, status, account, p)...).Int()
	return n == 1, err
}

// BreakerRefused counts an account-level refusal (slug) of a sending call at now; p.Trips of
// them within p.Window open the breaker. opened is true for the call that opened it.
func (l *Ledger) BreakerRefused(ctx context.Context, account, slug string, now time.Time, p BreakerPolicy) (opened bool, err error) {
	args := append(breakerOpenArgs(now, slug, account, p), p.Window.Milliseconds(), p.Trips)
	n, err := l.lua.Run(ctx, breakerRefusedScript, []string{l.keys.Breaker(account), l.opts.ResultsStream}, args...).Int()
	return n == 1, err
}

// CloseBreaker closes the account's breaker (a probe found it healthy, status). closed is true
// for the one call that closed it, which announces it.
func (l *Ledger) CloseBreaker(ctx context.Context, account, status string, now time.Time) (closed bool, err error) {
	n, err := l.lua.Run(ctx, breakerCloseScript, []string{l.keys.Breaker(account), l.opts.ResultsStream},
		status, account, breakerISO(now)).Int()
	return n == 1, err
}

func breakerOpenArgs(now time.Time, status, account string, p BreakerPolicy) []any {
	return []any{now.UnixMilli(), status, account, breakerISO(now), p.TTL.Milliseconds()}
}

func breakerISO(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
