package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/sendworker/sendworker/ledger"
)

// BreakerReader returns a read-only view of the account breakers of l's key
// space (for the review console's accounts page): whether an account's
// breaker is open, the status that opened it, and since when. It changes
// nothing and claims no probe.
func BreakerReader(l *ledger.Ledger) func(ctx context.Context, accountID string) (bool, string, time.Time, error) {
	return func(ctx context.Context, accountID string) (bool, string, time.Time, error) {
		b, err := l.ReadBreaker(ctx, accountID)
		if err != nil {
			return false, "", time.Time{}, fmt.Errorf("breaker %s: %w", accountID, err)
		}
		return b.Open, b.Status, b.Since, nil
	}
}
