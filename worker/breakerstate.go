package worker

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/sendworker/sendworker/ledger"
)

// BreakerReader returns a read-only view of the account breakers of l's key
// space (for the review console's accounts page): whether an account's
// breaker is open, the status that opened it, and since when. It changes
// nothing and claims no probe.
func BreakerReader(l *ledger.Ledger) func(ctx context.Context, accountID string) (bool, string, time.Time, error) {
	return func(ctx context.Context, accountID string) (bool, string, time.Time, error) {
		h, err := l.Client().HMGet(ctx, breakerKey(l, accountID), "open", "status", "since_ms").Result()
		if err != nil {
			return false, "", time.Time{}, fmt.Errorf("breaker %s: %w", accountID, err)
		}
		str := func(v any) string { s, _ := v.(string); return s }
		if str(h[0]) != "1" {
			return false, "", time.Time{}, nil
		}
		ms, _ := strconv.ParseInt(str(h[2]), 10, 64)
		return true, str(h[1]), time.UnixMilli(ms), nil
	}
}
