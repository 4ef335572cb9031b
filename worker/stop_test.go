package worker

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/provider/wasim"
	"github.com/sendworker/sendworker/tasks"
)

// TestCancelWhileSendingTakesEffect: a send canceled while it is sending (the cancel is
// answered too_late, stop pending) whose call then fails transiently (503, certainly not
// delivered) ends canceled: it is never sent again.
func TestCancelWhileSendingTakesEffect(t *testing.T) {
	t.Parallel()
	var (
		once      sync.Once
		cancelErr error
		l         *ledger.Ledger
	)
	id := newID("cancel-sending")
	e := newEnv(t, func(c *envConfig) {
		c.provider = func(cl *provider.Client, s *wasim.Sim) Provider {
			f := &faultyProvider{Client: cl, sim: s, faults: wasim.Faults{Error503Rate: 1}, left: 1}
			f.before = func() {
				once.Do(func() { _, cancelErr = l.Cancel(context.Background(), id, "admin", "stop it") })
			}
			return f
		}
	})
	l = e.ledger
	e.submit(message(id, accA, chatA1))
	rec := e.waitTerminal(id, 20*time.Second)
	if !errors.Is(cancelErr, ledger.ErrTooLate) || !errors.Is(cancelErr, ledger.ErrStopPending) {
		t.Fatalf("cancel while sending: %v", cancelErr)
	}
	// Give a wrongly re-released send the time to go out.
	time.Sleep(500 * time.Millisecond)
	rec = e.get(id)
	ds := e.deliveries(id)
	if rec.State != tasks.StateCanceled || rec.Reason != tasks.ReasonCanceled || applied(ds) != 0 || len(ds) > 1 {
		t.Fatalf("state %s %s, %d deliveries (%d applied); %s", rec.State, rec.Reason, len(ds), applied(ds), historyString(rec))
	}
	// Ended by the Defer of the failed call, not by a later execution.
	if rec.Detail != "stop requested while sending; not delivered" || rec.Decision == nil || rec.Decision.By != "admin" {
		t.Fatalf("detail %q, decision %+v", rec.Detail, rec.Decision)
	}
	e.expectResult(rec)
}
