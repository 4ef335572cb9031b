package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/tasks"
)

// kind is what an execution decided.
type kind int

const (
	// kindFinish: a terminal state (sent, skipped, failed, expired, needs_review): ledger.Finish.
	kindFinish kind = iota + 1
	// kindWait: the send waits until a time (window, limits, account, provider backoff):
	// ledger.Defer; a new release comes then. Never a failure.
	kindWait
	// kindRetry: asynq runs this task again after a delay; the ledger is untouched (an attempt
	// in flight, an outcome to reconcile, Redis unavailable). Never a failure.
	kindRetry
	// kindDone: nothing to record (already final, held, opted out by the ledger, stale task).
	kindDone
	// kindInvalid: the task itself is malformed: archived, never retried.
	kindInvalid
)

// outcome is the one value every stage returns. apply turns it into ledger calls and the
// asynq return value, in one switch.
type outcome struct {
	kind   kind
	state  tasks.State
	reason tasks.Reason
	detail string // for records and logs: never message text, tokens or keys

	until time.Time     // kindWait
	delay time.Duration // kindRetry

	messageID, chatID string
	dryRun            bool
	// claimed is what a sent new message becomes when the ledger refuses its message id as
	// another send's (ledger.ErrMessageClaimed, nothing changed): the id is not this send's.
	// nil: the task is retried.
	claimed func(ctx context.Context) outcome

	record *tasks.Record // kindDone: a record whose result should be written to the task
	err    error         // kindInvalid, kindRetry after an error
}

func sent(messageID, chatID string) outcome {
	return outcome{kind: kindFinish, state: tasks.StateSent, messageID: messageID, chatID: chatID}
}

func skipped(reason tasks.Reason, detail string) outcome {
	return outcome{kind: kindFinish, state: tasks.StateSkipped, reason: reason, detail: detail}
}

func failed(reason tasks.Reason, detail string) outcome {
	return outcome{kind: kindFinish, state: tasks.StateFailed, reason: reason, detail: detail}
}

func expired(reason tasks.Reason, detail string) outcome {
	return outcome{kind: kindFinish, state: tasks.StateExpired, reason: reason, detail: detail}
}

func needsReview(reason tasks.Reason, detail string) outcome {
	return outcome{kind: kindFinish, state: tasks.StateNeedsReview, reason: reason, detail: detail}
}

func wait(until time.Time, reason tasks.Reason, detail string) outcome {
	return outcome{kind: kindWait, until: until, reason: reason, detail: detail}
}

func retryAfter(d time.Duration, detail string) outcome {
	return outcome{kind: kindRetry, delay: d, detail: detail}
}

// infraError retries the task after a short delay: Redis (the ledger) is unavailable or
// answered something unexpected. Nothing was decided, so nothing is lost.
func infraError(err error) outcome {
	return outcome{kind: kindRetry, delay: 5 * time.Second, detail: "ledger unavailable", err: err}
}

func done(detail string, rec *tasks.Record) outcome {
	return outcome{kind: kindDone, detail: detail, record: rec}
}

// retryError asks asynq to run the task again after delay without counting a failure.
type retryError struct {
	delay time.Duration
	why   string
}

func (e *retryError) Error() string { return fmt.Sprintf("retry in %s: %s", e.delay, e.why) }

// isFailure is asynq's Config.IsFailure: nothing the worker returns on purpose is a failure.
// Waits go through the ledger, retries are typed, and asynq's own crash recovery
// (ErrLeaseExpired) and shutdown cancellations are not the send's fault either. Only an
// unexpected error (a bug) spends the task's retry budget.
func isFailure(err error) bool {
	var re *retryError
	switch {
	case errors.As(err, &re):
		return false
	case errors.Is(err, asynq.ErrLeaseExpired), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	}
	return true
}

// retryDelay is asynq's Config.RetryDelayFunc. asynq keeps retry times in whole seconds, so
// the delay is rounded up and one second added: a task asked to come back after a lease ends
// never comes back just before.
func retryDelay(n int, err error, _ *asynq.Task) time.Duration {
	var re *retryError
	switch {
	case errors.As(err, &re):
		return re.delay.Round(time.Second) + time.Second
	case errors.Is(err, asynq.ErrLeaseExpired), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// A crashed or stopped execution: the ledger lease says what to do next.
		return time.Second
	}
	return min(time.Duration(1)<<min(n, 6)*time.Second, time.Minute)
}

// backoff is the n-th wait after a repeated problem: base·2^n capped at max, plus up to half a
// base of jitter so that many sends of one account do not come back at the same instant.
func (w *Worker) backoff(n int) time.Duration {
	d := w.opts.BackoffMax
	if n < 20 {
		d = min(w.opts.BackoffBase<<n, w.opts.BackoffMax)
	}
	return d + rand.N(w.opts.BackoffBase/2+1)
}

// apply is the one place where an outcome becomes ledger calls and an asynq answer.
func (x *execution) apply(ctx context.Context, o outcome) error {
	// The ledger write that records a decision must not be lost to a cancelled handler (Stop,
	// task timeout): it runs on a context detached from the handler's, with its own bound.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	log := x.logger()
	switch o.kind {
	case kindFinish:
		// End, not Finish: the ledger applies exactly the state and reason asked for, so the
		// record need not be read back.
		ended, err := x.w.l.End(wctx, x.p.SendID, x.token, ledger.Outcome{
			State: o.state, Reason: o.reason, Detail: o.detail,
			MessageID: o.messageID, ChatID: o.chatID, DryRun: o.dryRun,
		})
		if errors.Is(err, ledger.ErrMessageClaimed) && o.claimed != nil {
			log.Warn("message id already attributed to another send", zap.String("message_id", o.messageID),
				zap.String("chat_id", o.chatID))
			return x.apply(ctx, o.claimed(ctx))
		}
		if err != nil {
			return x.ledgerRefused(log, "finish", o, err)
		}
		log.Info("send finished", zap.String("state", string(o.state)), zap.String("reason", string(o.reason)),
			zap.Int("attempts", ended.Attempts), zap.String("detail", o.detail), zap.Bool("dry_run", o.dryRun))
		x.w.opts.Metrics.SendFinished(x.op, o.state, o.reason)
		x.writeResult(ended.Result)
		return nil

	case kindWait:
		rec, err := x.w.l.Defer(wctx, x.p.SendID, x.token, o.until, o.reason)
		if err != nil {
			return x.ledgerRefused(log, "defer", o, err)
		}
		if rec.State.Terminal() {
			// A Reject or Cancel arrived while the send was sending, and the attempt did not go
			// out: the ledger ended the send as requested instead of parking it. Nothing to send.
			log.Info("send finished: stop requested while sending", zap.String("state", string(rec.State)),
				zap.String("reason", string(rec.Reason)), zap.Int("attempts", rec.Attempts), zap.String("detail", o.detail))
			x.w.opts.Metrics.SendFinished(x.op, rec.State, rec.Reason)
			x.writeRecordResult(rec)
			return nil
		}
		log.Info("send waits", zap.String("state", string(rec.State)), zap.String("reason", string(o.reason)),
			zap.Int("attempts", rec.Attempts), zap.Time("until", o.until), zap.String("detail", o.detail))
		x.w.opts.Metrics.Deferred(o.reason, o.until.Sub(x.w.opts.Now()))
		return nil

	case kindRetry:
		fields := []zap.Field{zap.Duration("delay", o.delay), zap.String("detail", o.detail)}
		if o.err != nil {
			log.Warn("send retries later", append(fields, zap.Error(o.err))...)
		} else {
			log.Info("send retries later", fields...)
		}
		return &retryError{delay: o.delay, why: o.detail}

	case kindDone:
		log.Debug("nothing to do", zap.String("detail", o.detail))
		if o.record != nil {
			x.writeRecordResult(o.record)
		}
		return nil

	case kindInvalid:
		log.Warn("invalid task archived", zap.Error(o.err))
		return fmt.Errorf("%w: %v", asynq.SkipRetry, o.err)
	}
	return fmt.Errorf("worker: unknown outcome kind %d", o.kind)
}

// ledgerRefused handles a Finish or Defer the ledger did not apply. A final send or a lost
// attempt token means another execution decided: this one has nothing left to do. Anything
// else (Redis down) retries the task: if the attempt was sending, its lease runs out and the
// next execution reconciles, so a delivery is never forgotten.
func (x *execution) ledgerRefused(log *zap.Logger, what string, o outcome, err error) error {
	switch {
	case errors.Is(err, ledger.ErrFinal), errors.Is(err, ledger.ErrStaleAttempt), errors.Is(err, ledger.ErrNotFound):
		log.Info("ledger refused "+what+": decided elsewhere", zap.String("wanted_state", string(o.state)),
			zap.String("reason", string(o.reason)), zap.Error(err))
		return nil
	}
	log.Error("ledger "+what+" failed; task retried", zap.String("wanted_state", string(o.state)),
		zap.String("reason", string(o.reason)), zap.Error(err))
	return &retryError{delay: 5 * time.Second, why: "ledger " + what + " failed"}
}

// writeRecordResult writes a final record's result as the asynq task result.
func (x *execution) writeRecordResult(rec *tasks.Record) {
	if rec == nil || rec.Result == nil {
		return
	}
	b, err := json.Marshal(rec.Result)
	if err != nil {
		x.logger().Debug("task result not written", zap.Error(err))
		return
	}
	x.writeResult(b)
}

// writeResult writes the send's result (tasks.Result JSON) as the asynq task result. Best
// effort: the ledger already holds it, with the results stream.
func (x *execution) writeResult(result []byte) {
	if len(result) == 0 || x.task == nil || x.task.ResultWriter() == nil {
		return
	}
	if _, err := x.task.ResultWriter().Write(result); err != nil {
		x.logger().Debug("task result not written", zap.Error(err))
	}
}
