package worker

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/metrics"
	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/tasks"
)

// The account breaker.
//
// An account that turns unhealthy (provider status CREDENTIALS, ERROR, STOPPED... anything but
// OK/CONNECTED, or DisconnectTrips account-level refusals of sending calls within
// DisconnectWindow: 401 disconnected_account, expired_credentials, disconnected_feature,
// wrong_account, multiple_sessions, 503 no_client_session, no_channel... every type of
// provider.ScopeAccount) trips its breaker. The breaker's state is kept by the ledger (one
// small hash per account, shared by every replica: see ledger.Breaker); every transition also
// appends the event entry to the results stream (event=account_breaker_open|
// account_breaker_closed, account_id, status, at), so exactly one replica announces each
// transition (WARN/INFO log, metric) and the stream gets one entry.
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

// breaker is this process's handle on the shared account breakers.
type breaker struct {
	l          *ledger.Ledger
	policy     ledger.BreakerPolicy
	probeEvery time.Duration
	now        func() time.Time
	m          *metrics.Metrics
	log        *zap.Logger

	mu     sync.Mutex
	marked map[string]bool // accounts this process shows as open in its metrics
}

func newBreaker(l *ledger.Ledger, probeEvery time.Duration, now func() time.Time, m *metrics.Metrics, log *zap.Logger) *breaker {
	policy := ledger.BreakerPolicy{ProbeEvery: probeEvery, TTL: breakerTTL, Window: DisconnectWindow, Trips: DisconnectTrips}
	return &breaker{l: l, policy: policy, probeEvery: probeEvery, now: now, m: m, log: log, marked: map[string]bool{}}
}

// breakerState is an account's breaker as read by check.
type breakerState struct {
	open   bool
	probe  bool // the caller won this probe interval's probe
	status string
	since  time.Time
}

// check reads the account's breaker, claiming the probe when one is due. read is its open flag
// when the caller already read it (with the record), nil otherwise.
func (b *breaker) check(ctx context.Context, account string, read *bool) (breakerState, error) {
	// Almost always closed: a plain read answers that, and costs Redis far less than the script.
	var open bool
	if read != nil {
		open = *read
	} else {
		var err error
		if open, err = b.l.BreakerOpen(ctx, account); err != nil {
			return breakerState{}, fmt.Errorf("account breaker: %w", err)
		}
	}
	if !open {
		b.mark(account, false)
		return breakerState{}, nil
	}
	v, err := b.l.CheckBreaker(ctx, account, b.now(), b.policy)
	if err != nil {
		return breakerState{}, fmt.Errorf("account breaker: %w", err)
	}
	if !v.Open {
		b.mark(account, false)
		return breakerState{}, nil
	}
	b.mark(account, true)
	return breakerState{open: true, probe: v.Probe, status: v.Status, since: v.Since}, nil
}

// open opens the account's breaker for status; the replica that opens it announces it.
func (b *breaker) open(ctx context.Context, account, status string) error {
	opened, err := b.l.OpenBreaker(ctx, account, status, b.now(), b.policy)
	if err != nil {
		return fmt.Errorf("account breaker: %w", err)
	}
	if opened {
		b.announceOpen(account, status)
	}
	b.mark(account, true)
	return nil
}

// refused counts an account-level refusal (slug, of provider.ScopeAccount) of a sending call;
// DisconnectTrips of them, of any such types, within DisconnectWindow open the breaker.
func (b *breaker) refused(ctx context.Context, account, slug string) error {
	opened, err := b.l.BreakerRefused(ctx, account, slug, b.now(), b.policy)
	if err != nil {
		return fmt.Errorf("account breaker: %w", err)
	}
	if opened {
		b.announceOpen(account, slug)
		b.mark(account, true)
	}
	return nil
}

// close closes the account's breaker: a probe found it healthy (status).
func (b *breaker) close(ctx context.Context, account, status string) error {
	closed, err := b.l.CloseBreaker(ctx, account, status, b.now())
	if err != nil {
		return fmt.Errorf("account breaker: %w", err)
	}
	if closed {
		b.log.Info("account breaker closed: the account is healthy again; its sends go on",
			zap.String("account_id", account), zap.String("status", status))
	}
	b.mark(account, false)
	return nil
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
	open, err := b.l.BreakersOpen(ctx, accounts)
	if err != nil {
		return fmt.Errorf("account breaker: %w", err)
	}
	for i, a := range accounts {
		if !open[i] {
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

// accountBreaker is the stage between the record's own checks and the rate limit: while the
// account's breaker is open its sends wait, and one execution per probe interval probes the
// account, closing the breaker when it is healthy again.
func (x *execution) accountBreaker(ctx context.Context) (outcome, bool) {
	account := x.rec.Request.AccountID
	st, err := x.w.breaker.check(ctx, account, x.breaker)
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
			return x.failedRead(ctx, phaseAccount, err), true
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
