package worker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/metrics"
	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/results"
	"github.com/sendworker/sendworker/tasks"
)

// The account breaker.
//
// An account that turns unhealthy (provider status CREDENTIALS, ERROR, STOPPED... anything but
// OK/CONNECTED, or DisconnectTrips account-level refusals of sending calls within
// DisconnectWindow: 401 disconnected_account, expired_credentials, disconnected_feature,
// wrong_account, multiple_sessions, 503 no_client_session, no_channel... every type of
// provider.ScopeAccount) trips its breaker. The breaker is one small Redis hash per account,
// "{prefix}:breaker:<account>" next to the ledger's keys, shared by every replica:
//
//	open      "1" while open
//	status    the unhealthy status last seen (a provider status, or the account-level slug)
//	since_ms  when it opened
//	probe_ms  when the account was last probed (accounts_get) while open
//	d401_ms, d401_n  the current window of account-level refusals of sending calls
//
// Every transition is one Lua script that also appends the event entry to the results stream
// (event=account_breaker_open|account_breaker_closed, account_id, status, at), so exactly one
// replica announces each transition (WARN/INFO log, metric) and the stream gets one entry.
//
// While the breaker is open, the account's sends wait (reason account_unhealthy, backoff capped
// at BackoffMax) before any rate-limit slot or provider read; one execution per probe interval
// (AccountHealthTTL, at least a second), across replicas, probes the account with accounts_get.
// When the account is healthy again the prober closes the breaker and its send goes on; the
// others go on when their wait ends. A breaker opened by 401s is only half-opened by a healthy
// status (the status said healthy all along): the prober's send is a trial, and only its
// delivery closes the breaker. So an unhealthy account costs one provider read (and at most one
// refused sending call) per probe interval, never a storm of failed attempts.
const (
	// DisconnectTrips account-level refusals (provider.ScopeAccount: 401 disconnected_account,
	// expired_credentials, 503 no_client_session...) of sending calls of one account within
	// DisconnectWindow open its breaker, whichever types they are.
	DisconnectTrips  = 2
	DisconnectWindow = time.Minute

	// minProbeInterval is the least probe interval (AccountHealthTTL 0 means no cache, not
	// "probe at every send").
	minProbeInterval = time.Second
	// breakerTTL is how long an open breaker's key lives without a probe: an account nobody
	// sends from any more does not keep a key forever.
	breakerTTL = 7 * 24 * time.Hour
)

// breakerKey is the key of an account's breaker.
func breakerKey(l *ledger.Ledger, account string) string {
	return l.Keys().Tag() + "breaker:" + account
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

// breakerDisconnectScript counts an account-level refusal of a sending call and opens the
// breaker at the ARGV[7]-th within ARGV[6] ms (status ARGV[2], the slug of that last one).
//
//	KEYS[1] breaker   KEYS[2] results stream   ARGV[1..5]: see luaBreakerOpen
//	ARGV[6] window (ms)   ARGV[7] trips
//
// Reply 1 opened, 0 not (counted, or already open).
var breakerDisconnectScript = redis.NewScript(luaBreakerOpen + `
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

// breaker is this process's handle on the shared account breakers.
type breaker struct {
	l          *ledger.Ledger
	rdb        redis.UniversalClient
	stream     string
	probeEvery time.Duration
	now        func() time.Time
	m          *metrics.Metrics
	log        *zap.Logger

	mu     sync.Mutex
	marked map[string]bool // accounts this process shows as open in its metrics
}

func newBreaker(l *ledger.Ledger, probeEvery time.Duration, now func() time.Time, m *metrics.Metrics, log *zap.Logger) *breaker {
	return &breaker{l: l, rdb: l.Client(), stream: l.ResultsStream(), probeEvery: probeEvery, now: now, m: m,
		log: log, marked: map[string]bool{}}
}

// breakerState is an account's breaker as read by check.
type breakerState struct {
	open   bool
	probe  bool // the caller won this probe interval's probe
	status string
	since  time.Time
}

// check reads the account's breaker, claiming the probe when one is due.
func (b *breaker) check(ctx context.Context, account string) (breakerState, error) {
	// Almost always closed: a plain read answers that, and costs Redis far less than the script.
	open, err := b.rdb.HGet(ctx, breakerKey(b.l, account), "open").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return breakerState{}, fmt.Errorf("account breaker: %w", err)
	}
	if open != "1" {
		b.mark(account, false)
		return breakerState{}, nil
	}
	v, err := breakerCheckScript.Run(ctx, b.rdb, []string{breakerKey(b.l, account)},
		b.now().UnixMilli(), b.probeEvery.Milliseconds(), breakerTTL.Milliseconds()).Slice()
	if err != nil {
		return breakerState{}, fmt.Errorf("account breaker: %w", err)
	}
	if len(v) == 0 {
		return breakerState{}, fmt.Errorf("account breaker: empty reply")
	}
	code, _ := v[0].(int64)
	if code == 0 {
		b.mark(account, false)
		return breakerState{}, nil
	}
	st := breakerState{open: true, probe: code == 2}
	if len(v) >= 3 {
		st.status, _ = v[1].(string)
		if s, _ := v[2].(string); s != "" {
			if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
				st.since = time.UnixMilli(ms)
			}
		}
	}
	b.mark(account, true)
	return st, nil
}

// open opens the account's breaker for status; the replica that opens it announces it.
func (b *breaker) open(ctx context.Context, account, status string) error {
	now := b.now()
	opened, err := breakerOpenScript.Run(ctx, b.rdb, []string{breakerKey(b.l, account), b.stream},
		b.openArgs(now, status, account)...).Int()
	if err != nil {
		return fmt.Errorf("account breaker: %w", err)
	}
	if opened == 1 {
		b.announceOpen(account, status)
	}
	b.mark(account, true)
	return nil
}

// refused counts an account-level refusal (slug, of provider.ScopeAccount) of a sending call;
// DisconnectTrips of them, of any such types, within DisconnectWindow open the breaker.
func (b *breaker) refused(ctx context.Context, account, slug string) error {
	now := b.now()
	args := append(b.openArgs(now, slug, account), DisconnectWindow.Milliseconds(), DisconnectTrips)
	opened, err := breakerDisconnectScript.Run(ctx, b.rdb, []string{breakerKey(b.l, account), b.stream}, args...).Int()
	if err != nil {
		return fmt.Errorf("account breaker: %w", err)
	}
	if opened == 1 {
		b.announceOpen(account, slug)
		b.mark(account, true)
	}
	return nil
}

// close closes the account's breaker: a probe found it healthy (status).
func (b *breaker) close(ctx context.Context, account, status string) error {
	closed, err := breakerCloseScript.Run(ctx, b.rdb, []string{breakerKey(b.l, account), b.stream},
		status, account, isoTime(b.now())).Int()
	if err != nil {
		return fmt.Errorf("account breaker: %w", err)
	}
	if closed == 1 {
		b.log.Info("account breaker closed: the account is healthy again; its sends go on",
			zap.String("account_id", account), zap.String("status", status))
	}
	b.mark(account, false)
	return nil
}

func (b *breaker) openArgs(now time.Time, status, account string) []any {
	return []any{now.UnixMilli(), status, account, isoTime(now), breakerTTL.Milliseconds()}
}

func (b *breaker) announceOpen(account, status string) {
	b.log.Warn("account breaker open: the account is unhealthy; its sends wait until it is healthy again",
		zap.String("account_id", account), zap.String("status", status))
}

// mark keeps this process's account_breaker_open gauge in step with what it saw: every replica
// that meets an open breaker shows it, and clears it when it sees it closed.
func (b *breaker) mark(account string, open bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.marked[account] == open {
		return
	}
	if open {
		b.marked[account] = true
	} else {
		delete(b.marked, account)
	}
	b.m.SetBreaker(account, open)
}

// syncMarks clears the gauge of the accounts this process shows as open whose breaker another
// replica closed meanwhile (this one may see no send of them for a long time).
func (b *breaker) syncMarks(ctx context.Context) error {
	b.mu.Lock()
	accounts := make([]string, 0, len(b.marked))
	for a := range b.marked {
		accounts = append(accounts, a)
	}
	b.mu.Unlock()
	if len(accounts) == 0 {
		return nil
	}
	pipe := b.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(accounts))
	for i, a := range accounts {
		cmds[i] = pipe.HGet(ctx, breakerKey(b.l, a), "open")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("account breaker: %w", err)
	}
	for i, a := range accounts {
		if v, err := cmds[i].Result(); errors.Is(err, redis.Nil) || (err == nil && v != "1") {
			b.mark(a, false)
		}
	}
	return nil
}

// runSync calls syncMarks every probe interval until ctx ends.
func (b *breaker) runSync(ctx context.Context) {
	t := time.NewTicker(b.probeEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := b.syncMarks(ctx); err != nil && ctx.Err() == nil {
			b.log.Debug("account breaker gauges not refreshed", zap.Error(err))
		}
	}
}

func isoTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// accountBreaker is the stage between the record's own checks and the rate limit: while the
// account's breaker is open its sends wait, and one execution per probe interval probes the
// account, closing the breaker when it is healthy again.
func (x *execution) accountBreaker(ctx context.Context) (outcome, bool) {
	account := x.rec.Request.AccountID
	st, err := x.w.breaker.check(ctx, account)
	if err != nil {
		return infraError(err), true
	}
	if !st.open {
		return outcome{}, false
	}
	status := st.status
	if st.probe {
		acct, err := x.w.health.refresh(ctx, x.w.p, account)
		if err != nil {
			return x.accountError(err), true
		}
		if acct.Healthy() && provider.IsAccountLevel(st.status) {
			// Opened by sending calls refused while the account looked healthy: its status
			// proves nothing. Half-open: this send is the trial; its delivery closes the
			// breaker, another 401 keeps it open (one refused call per probe interval).
			x.trial = acct.Status()
			x.logger().Info("account breaker half-open: this send tries the account", zap.String("status", acct.Status()))
			return outcome{}, false
		}
		if acct.Healthy() {
			if err := x.w.breaker.close(ctx, account, acct.Status()); err != nil {
				return infraError(err), true
			}
			return outcome{}, false
		}
		status = acct.Status()
		if err := x.w.breaker.open(ctx, account, status); err != nil {
			x.logger().Warn("account breaker status not updated", zap.Error(err))
		}
	}
	return x.accountDown(status), true
}

// accountDown is the wait of a send whose account is unhealthy: backoff (capped at BackoffMax)
// by the number of such waits it already had.
func (x *execution) accountDown(status string) outcome {
	n := waitsFor(x.rec, tasks.ReasonWaitAccountDown)
	return wait(x.w.opts.Now().Add(x.w.backoff(n)), tasks.ReasonWaitAccountDown, "account status "+status)
}
