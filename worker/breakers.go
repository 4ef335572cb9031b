package worker

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/metrics"
)

// AccountBreakers opens and closes the account breakers for callers outside the worker (the
// provider's account status events, package inbound): the same shared breaker, scripts and
// announcements (log line, gauge, results stream event) as the worker's own probe, so a status
// event and a probe can never disagree on what a transition looks like.
type AccountBreakers struct{ b *breaker }

// NewAccountBreakers returns the breakers of l's accounts. m may be nil.
func NewAccountBreakers(l *ledger.Ledger, m *metrics.Metrics, now func() time.Time, log *zap.Logger) *AccountBreakers {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &AccountBreakers{b: newBreaker(l, minProbeInterval, now, m, log)}
}

// Open opens the account's breaker with status (announced once, by whichever replica opens it);
// already open, only its status changes.
func (a *AccountBreakers) Open(ctx context.Context, account, status string) error {
	return a.b.open(ctx, account, status)
}

// Close closes the account's breaker (announced when it was open).
func (a *AccountBreakers) Close(ctx context.Context, account, status string) error {
	return a.b.close(ctx, account, status)
}

// State reports whether the account's breaker is open, and with which status. It never claims a
// probe.
func (a *AccountBreakers) State(ctx context.Context, account string) (open bool, status string, err error) {
	return a.b.l.BreakerState(ctx, account)
}
