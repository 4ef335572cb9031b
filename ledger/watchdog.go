package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The watchdog closes the gap asynq leaves in guarantee 5 ("nothing lost").
// Once released, a send moves only when its asynq task runs. If that task is
// lost (archived after its retries were burnt, e.g. by repeated kill -9;
// deleted from asynqmon; the asynq keys lost), the send would stay approved,
// waiting or sending forever. The scripts therefore keep {prefix}:watch
// (Keys.Watch): every send that is approved, waiting or sending and not held
// by a pause, scored by the time by which its next step must have begun.
//
//	transition                                   watch
//	Approve, resume, Defer, ResolveReconciled    the new outbox time
//	MarkReleased (entry removed)                 now (the release)
//	BeginAttempt ok / reconcile                  the end of the lease
//	EndCall (not in the outbox)                  the new, earlier end of the lease
//	BeginAttempt held                            removed (resume puts it back)
//	any final state                              removed
//	RecoverStuck, recovered                      now (its new outbox time)
//	RecoverExpiredLeases, recovered              now (its new outbox time)
//	RecoverStuck, not stuck                      now (still in the outbox), the
//	                                             lease end (sending), or removed
//
// RecoverStuck reads the entries more than a grace late; each one it reads
// leaves that range, so a batch of late-but-not-stuck entries never hides
// the stuck ones behind it.
//
// RecoverStuck's grace must cover asynq's slowest path (minutes). A crashed
// attempt need not wait that long: RecoverExpiredLeases recovers, seconds
// after its lease ended, a send whose attempt lease expired, from
// {prefix}:leases (Keys.Leases), which holds only sending sends.

// RecoveredBy is the "by" of the history events of a recovery (RecoverStuck,
// RecoverExpiredLeases).
const RecoveredBy = "watchdog"

// RecoverStuck re-schedules up to limit (default 100, at most 1000) watched
// sends on which nothing happened for grace after the time they were due to
// make progress, and returns their ids. Call it periodically from one or
// several replicas (concurrent calls are safe: each send is recovered once).
//
// One script reads the late entries of the watch. A send still in the outbox
// is not stuck (the releaser has yet to hand it over); nor is a held send
// (resume releases it), nor a sending send whose lease has not been over for
// grace yet. Any other late send has no task that will move it: it is put in
// the outbox at now with a new release generation, its state unchanged
// (approved and waiting stay; sending stays sending with its expired lease,
// so the next execution gets BeginReconcile and reconciles before any new
// send), with a history event by "watchdog" ("recovered: no progress since
// …"). Its watch entry moves to now, so it is not recovered again before it
// has been released and been late for another grace.
//
// The new generation is what makes this safe against an old task that was
// only slow, not lost (waiting in asynq's retry set, behind a backlog, or
// run again from asynqmon): when it runs, BeginAttempt finds its generation
// stale and it drops itself without touching the record, so the old and the
// new task can never both send. An old execution still inside its attempt
// keeps its token until the new one takes the attempt over by reconciling;
// its End or Defer before that is a normal end of that attempt (the new
// task then finds the send final, or stale), and after it fails with
// ErrStaleAttempt — the same guarantees as an asynq redelivery.
//
// grace must exceed the longest time a live task can take to reach
// BeginAttempt after its release or lease end (asynq queue wait, retry
// delays, the recoverer's 60–85 s after a crash): a grace shorter than the
// queue's backlog makes every send in it be recovered again and again, each
// time to the back of the queue. A few minutes is a sound value.
func (l *Ledger) RecoverStuck(ctx context.Context, grace time.Duration, limit int) ([]string, error) {
	if grace < time.Millisecond {
		return nil, errors.New("ledger: recover stuck: grace must be at least 1ms")
	}
	v, err := l.run(ctx, l.lease(recoverScript), l.nowMs(), []string{l.keys.Watch(), l.keys.Outbox()},
		grace.Milliseconds(), clampLimit(limit))
	if err != nil {
		return nil, err
	}
	return stringList(v)
}

// RecoverExpiredLeases recovers up to limit (default 100, at most 1000) sends
// in state sending whose attempt lease ended more than grace ago, and returns
// their ids. It touches no send in any other state. Call it every few seconds
// from one or several replicas (concurrent calls are safe: each send is
// recovered once).
//
// A lease always outlives the sending call (the worker cuts the call at the
// lease end minus a margin), so an expired lease means the execution holding
// it is dead or done; grace (typically a few seconds) only covers its last
// ledger write. A recovered send gets what RecoverStuck gives it: the outbox
// at now with a new release generation, its state unchanged (sending, with
// its expired lease, so the next execution gets BeginReconcile and reconciles
// before any new send), the watch at now and a history event by RecoveredBy
// ("recovered: lease expired at …"). The new generation makes every older
// task of the send stale (BeginStale), and an old execution still finishing
// keeps its token only until the new one takes the attempt over.
//
// It reads {prefix}:leases, not the watch, so sends of other states (a
// releaser backlog of approved sends, for example) cost it nothing. A
// recovered send leaves {prefix}:leases until BeginAttempt grants a lease
// again, so neither recovery takes it twice.
func (l *Ledger) RecoverExpiredLeases(ctx context.Context, grace time.Duration, limit int) ([]string, error) {
	if grace < time.Millisecond {
		return nil, errors.New("ledger: recover expired leases: grace must be at least 1ms")
	}
	v, err := l.run(ctx, l.lease(expiredLeasesScript), l.nowMs(), []string{l.keys.Leases(), l.keys.Outbox()},
		grace.Milliseconds(), clampLimit(limit))
	if err != nil {
		return nil, err
	}
	return stringList(v)
}

// Watching is the number of sends the watchdog guards: approved, waiting or
// sending and not held (a gauge for metrics).
func (l *Ledger) Watching(ctx context.Context) (int64, error) {
	n, err := l.rdb.ZCard(ctx, l.keys.Watch()).Result()
	if err != nil {
		return 0, fmt.Errorf("ledger: watching: %w", err)
	}
	return n, nil
}
