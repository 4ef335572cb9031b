package ledger

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/sendworker/sendworker/tasks"
)

// Release is an outbox entry due for release to asynq: the releaser enqueues
// task Operation.TaskType() with TaskID SendID+"/r"+Gen, then MarkReleased.
type Release struct {
	SendID    string
	Gen       int64
	Digest    string
	Operation tasks.Operation
	AccountID string
	At        time.Time // when it became due
}

// DueForRelease returns up to limit (default 100, at most 1000) outbox
// entries due now, oldest first. Entries of sends no longer approved,
// waiting or sending are dropped on the way (a sending send is in the outbox
// only after RecoverStuck; its task reconciles). It reads the generation in
// the same script as the entry, so a release always carries the generation
// of its entry.
func (l *Ledger) DueForRelease(ctx context.Context, limit int) ([]Release, error) {
	v, err := l.run(ctx, dueScript, l.nowMs(), []string{l.keys.Outbox()}, clampLimit(limit))
	if err != nil {
		return nil, err
	}
	flat, err := stringList(v)
	if err != nil {
		return nil, err
	}
	if len(flat)%6 != 0 {
		return nil, fmt.Errorf("ledger: due for release: reply of %d items", len(flat))
	}
	out := make([]Release, 0, len(flat)/6)
	for i := 0; i < len(flat); i += 6 {
		gen, err := strconv.ParseInt(flat[i+1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("ledger: send %s: bad gen %q", flat[i], flat[i+1])
		}
		at, err := strconv.ParseFloat(flat[i+5], 64)
		if err != nil {
			return nil, fmt.Errorf("ledger: send %s: bad outbox score %q", flat[i], flat[i+5])
		}
		out = append(out, Release{
			SendID: flat[i], Gen: gen, Digest: flat[i+2], Operation: tasks.Operation(flat[i+3]),
			AccountID: flat[i+4], At: msTime(int64(at)),
		})
	}
	return out, nil
}

// maxMarkBatch bounds the entries of one MarkAllReleased script, so that one
// script never holds Redis for long.
const maxMarkBatch = 500

// MarkAllReleased is MarkReleased for many entries (SendID and Gen of each
// are used), in one script per maxMarkBatch entries.
func (l *Ledger) MarkAllReleased(ctx context.Context, rs []Release) error {
	for len(rs) > 0 {
		batch := rs[:min(len(rs), maxMarkBatch)]
		rs = rs[len(batch):]
		keys := make([]string, 0, 1+len(batch))
		args := make([]any, 0, 2*len(batch))
		keys = append(keys, l.keys.Outbox())
		for _, r := range batch {
			keys = append(keys, l.keys.Send(r.SendID))
			args = append(args, r.SendID, r.Gen)
		}
		if _, err := l.run(ctx, markReleasedScript, l.nowMs(), keys, args...); err != nil {
			return err
		}
	}
	return nil
}

// OutboxSize is the number of outbox entries (due or not).
func (l *Ledger) OutboxSize(ctx context.Context) (int64, error) {
	n, err := l.rdb.ZCard(ctx, l.keys.Outbox()).Result()
	if err != nil {
		return 0, fmt.Errorf("ledger: outbox size: %w", err)
	}
	return n, nil
}
