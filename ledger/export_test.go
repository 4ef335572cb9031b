package ledger

import (
	"context"
	"fmt"

	"github.com/sendworker/sendworker/tasks"
)

// Test-only helpers: no production code calls them.

// Finish is End that reads the record back (in the same MULTI), for tests that check it.
func (l *Ledger) Finish(ctx context.Context, sendID, token string, out Outcome) (*tasks.Record, error) {
	if !out.State.Terminal() {
		return nil, fmt.Errorf("ledger: finish: %q is not a final state", out.State)
	}
	r, err := l.runRecord(ctx, finishScript, sendID, []string{l.opts.ResultsStream, l.keys.Send(sendID)},
		finishArgs(sendID, token, out)...)
	return recordOrError(r, err, sendID)
}

// MarkReleased removes a send's outbox entry if gen is still its current
// release generation (a rescheduled send keeps its newer entry), and starts
// the watchdog's clock: RecoverStuck recovers the send if its task has not
// moved it a grace after now.
func (l *Ledger) MarkReleased(ctx context.Context, sendID string, gen int64) error {
	return l.MarkAllReleased(ctx, []Release{{SendID: sendID, Gen: gen}})
}

// IsClaimed reports whether a provider message id is already attributed to a
// send (of a new message).
func (l *Ledger) IsClaimed(ctx context.Context, messageID string) (bool, error) {
	claimed, err := l.Claimed(ctx, []string{messageID})
	return claimed[messageID], err
}

// UnlinkedOptOuts counts the opted-out ids of form f (tasks.FormPhone or
// tasks.FormLID) whose other form is not known (production checks them in
// BeginAttempt, through the marker of each form).
func (l *Ledger) UnlinkedOptOuts(ctx context.Context, f tasks.IDForm) (int64, error) {
	if f == tasks.FormOther {
		return 0, nil
	}
	n, err := l.rdb.SCard(ctx, l.keys.OptOutUnlinked(f.String())).Result()
	if err != nil {
		return 0, fmt.Errorf("ledger: opt-out: %w", err)
	}
	return n, nil
}
