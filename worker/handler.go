package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/tasks"
	"github.com/sendworker/sendworker/worker/attachments"
)

// execution is one run of one task.
type execution struct {
	w    *Worker
	task *asynq.Task
	op   tasks.Operation
	p    tasks.Payload

	rec     *tasks.Record // the record as read by Get (again after BeginAttempt's rare final or reconcile answers)
	token   string        // the attempt token this execution owns ("" before BeginAttempt)
	attempt int

	// Resolved by the guards, used by the sending call and reconciliation.
	chat       *provider.Chat    // the chat the send goes into (or the message's chat)
	msg        *provider.Message // the target of a reaction, edit or delete
	contacts   []string          // ids checked against the opt-out list
	identities []ledger.Identity // the recipients as WhatsApp persons, checked with them
	files      attachments.Set
	// watermark is the chat's newest message as the guards read it, before the sending call
	// of a new message: stored with the attempt, it is what reconciliation calls "before".
	watermark *tasks.Watermark

	// trial is set (to the account's status) when this send is the trial of a half-open
	// account breaker: its delivery closes the breaker.
	trial string

	// breaker is the account's breaker as read with the record (the task named the record's
	// account); nil when it was not read then.
	breaker *bool

	// log is logger()'s logger for the fields it was built with.
	log        *zap.Logger
	logAccount string
	logAttempt int
}

func (x *execution) logger() *zap.Logger {
	account := ""
	if x.rec != nil {
		account = x.rec.Request.AccountID
	}
	// Built once per set of fields: a send logs a few lines, each with the same fields.
	if x.log != nil && x.logAccount == account && x.logAttempt == x.attempt {
		return x.log
	}
	fields := []zap.Field{zap.String("send_id", x.p.SendID), zap.String("operation", string(x.op))}
	if account != "" {
		fields = append(fields, zap.String("account_id", account))
	}
	if x.attempt > 0 {
		fields = append(fields, zap.Int("attempt", x.attempt))
	}
	x.log, x.logAccount, x.logAttempt = x.w.log.With(fields...), account, x.attempt
	return x.log
}

// processTask is the asynq handler of every send task type.
func (w *Worker) processTask(ctx context.Context, task *asynq.Task) error {
	w.running.Add(1)
	defer w.running.Add(-1)
	x := &execution{w: w, task: task}
	defer func() { x.files.Release() }()
	if w.err != nil {
		return &retryError{delay: time.Minute, why: "worker misconfigured: " + w.err.Error()}
	}
	op, err := tasks.ParseTaskType(task.Type())
	if err != nil {
		return x.apply(ctx, outcome{kind: kindInvalid, err: err})
	}
	x.op = op
	p, err := tasks.DecodePayload(task.Payload())
	if err != nil {
		return x.apply(ctx, outcome{kind: kindInvalid, err: err})
	}
	x.p = p
	return x.apply(ctx, x.run(ctx))
}

// maxRounds bounds the reconcile → resend loop of one execution: reconciliation that finds the
// message clearly absent gives the attempt back and starts over from the guards.
const maxRounds = 3

func (x *execution) run(ctx context.Context) outcome {
	for round := 0; round < maxRounds; round++ {
		o, again := x.round(ctx)
		if !again {
			return o
		}
	}
	return retryAfter(time.Second, "reconciled twice in one execution")
}

// round runs the stages once. again reports that reconciliation gave the attempt back and the
// send must go through the guards again.
func (x *execution) round(ctx context.Context) (o outcome, again bool) {
	x.token, x.attempt, x.chat, x.msg, x.contacts, x.trial, x.watermark = "", 0, nil, nil, nil, "", nil
	x.identities = nil
	x.files.Release()
	x.files = nil

	rec, err := x.load(ctx)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return done("no such send", nil), false
	case err != nil:
		return infraError(err), false
	}
	x.rec = rec
	if o, stop := x.precheck(); stop {
		return o, false
	}
	if rec.State == tasks.StateSending {
		// Straight to the ledger: a live lease means another execution is sending, an expired
		// one means this execution reconciles. The guards ran before that attempt; running
		// them again now could skip a message that was in fact delivered. If the send is no
		// longer sending by then, this execution skipped the guards and must not begin.
		return x.begin(ctx, true)
	}
	if o, stop := x.integrity(); stop {
		return o, false
	}
	// Checks that need no provider read come first: the send window, the maximum delay after
	// approval, then the account breaker (an unhealthy account's sends wait without taking a
	// slot).
	if o, stop := x.window(); stop {
		return o, false
	}
	if o, stop := x.maxDelay(); stop {
		return o, false
	}
	if o, stop := x.accountBreaker(ctx); stop {
		return o, false
	}
	// The rate-limit slot before any other provider read: a send deferred for its slot costs
	// one limiter call, and its guards run when its slot has come, right before sending.
	slot, o, stop := x.reserve(ctx)
	if stop {
		return o, false
	}
	if o, stop := x.guards(ctx); stop {
		// Nothing was sent with the slot: give it back, consumed or not, so a skip does not
		// count against the account's caps.
		x.refundSlot(ctx)
		return o, false
	}
	if slot.held {
		if o, stop := x.awaitSlot(ctx, slot); stop {
			return o, false
		}
	}
	if o, stop := x.waitGlobal(ctx); stop {
		return o, false
	}
	return x.begin(ctx, false)
}

// load reads the record. When the task names the send's account (tasks released since the
// payload carries it), the account's breaker is read in the same round trip; the hint is used
// only if it is the record's account.
func (x *execution) load(ctx context.Context) (*tasks.Record, error) {
	x.breaker = nil
	if x.p.AccountID == "" {
		return x.w.l.Get(ctx, x.p.SendID)
	}
	rec, open, err := x.w.l.GetWithBreaker(ctx, x.p.SendID, x.p.AccountID)
	if err == nil && rec.Request.AccountID == x.p.AccountID {
		x.breaker = &open
	}
	return rec, err
}

// precheck drops tasks that cannot be the current release of an approved send, before any
// provider call. BeginAttempt re-checks all of it atomically; this only saves work and keeps a
// stale or forged task from acting on the record (deferring it, for example).
func (x *execution) precheck() (outcome, bool) {
	rec := x.rec
	switch {
	case rec.Request.Operation != x.op:
		return done("task type does not match the send's operation", nil), true
	case rec.Digest != x.p.Digest:
		return done("task digest is not the send's digest", nil), true
	case rec.State.Terminal():
		// A send that ended (canceled, expired) while it held a future rate-limit slot frees it.
		x.releaseSlot(context.Background())
		return done("already final", rec), true
	case rec.State == tasks.StatePendingApproval:
		return done("not approved", nil), true
	case rec.Gen != x.p.Gen:
		// An older release (asynq retry, replay, a task the watchdog replaced) of a send that
		// has been rescheduled since: only the current generation may act.
		return done("stale task", nil), true
	case rec.State == tasks.StateWaiting && rec.Wait != nil && rec.Wait.Reason == tasks.ReasonWaitPaused && rec.Wait.Until.IsZero():
		// Held (no time): only a resume releases it, with a new generation and a time.
		return done("held by a pause", nil), true
	case rec.State != tasks.StateApproved && rec.State != tasks.StateWaiting && rec.State != tasks.StateSending:
		return done("not sendable in state "+string(rec.State), nil), true
	}
	return outcome{}, false
}

// maxDelay ends a send that waited too long after its approval (a pause forgotten, a breaker
// open for days): without window.not_after it may go out at most Options.MaxDelay after
// it could first go out, its approval or its window.not_before if later (a send scheduled on
// purpose days ahead is not late when its window opens). A send's own not_after wins (window()
// judges it). No provider call.
func (x *execution) maxDelay() (outcome, bool) {
	rec := x.rec
	w := rec.Request.Window
	if (w != nil && w.NotAfter != nil) || rec.Approval == nil {
		return outcome{}, false
	}
	from, what := rec.Approval.At, "approved at"
	if w != nil && w.NotBefore != nil && w.NotBefore.After(from) {
		from, what = *w.NotBefore, "window.not_before"
	}
	if x.w.opts.Now().After(from.Add(x.w.opts.MaxDelay)) {
		return expired(tasks.ReasonMaxDelay, fmt.Sprintf("%s %s, not sent within %s (SENDWORKER_MAX_DELAY_AFTER_APPROVAL)",
			what, from.UTC().Format(time.RFC3339), x.w.opts.MaxDelay)), true
	}
	return outcome{}, false
}

// integrity checks that the stored request is the approved one and well formed. These cannot
// fail for a record the ledger wrote; they fail for a record edited behind its back.
func (x *execution) integrity() (outcome, bool) {
	rec := x.rec
	if rec.Approval == nil {
		return failed(tasks.ReasonApprovalMissing, "approved send without an approval record"), true
	}
	if rec.Approval.Digest != rec.Digest || rec.Request.Digest() != rec.Digest {
		return failed(tasks.ReasonDigestMismatch, "the stored content is not the approved content"), true
	}
	if rec.Request.SendID != x.p.SendID || rec.Request.Operation != x.op {
		return failed(tasks.ReasonInvalidPayload, "stored request does not match its send"), true
	}
	// Validate as of creation: the time-dependent rules (deadline and not_after in the
	// future) held then; the window and deadlines are judged now by the guards.
	if err := rec.Request.Validate(tasks.ValidateOptions{Now: rec.CreatedAt}); err != nil {
		var ve *tasks.ValidationError
		detail := "stored request is invalid"
		if errors.As(err, &ve) && len(ve.Fields) > 0 {
			for _, f := range ve.Fields {
				if f.Code == string(tasks.ReasonColdRecipient) {
					// A raw phone number as attendee: the warm-only refusal, named as such.
					return skipped(tasks.ReasonColdRecipient, f.Field+" is a raw phone number"), true
				}
			}
			detail = fmt.Sprintf("stored request is invalid: %s %s", ve.Fields[0].Field, ve.Fields[0].Code)
		}
		return failed(tasks.ReasonInvalidPayload, detail), true
	}
	if msg := rec.Request.Window.Problem(); msg != "" {
		return failed(tasks.ReasonInvalidPayload, msg), true
	}
	return outcome{}, false
}

// begin asks the ledger for the attempt and acts on its answer. skippedGuards: this round saw
// the send sending and went straight here; it must not start a new attempt.
func (x *execution) begin(ctx context.Context, skippedGuards bool) (outcome, bool) {
	token := newToken()
	// Taken before the script runs: the lease is counted from no later than
	// this, so a call cut at started+lease-margin never outlives its lease,
	// however long the round trip to Redis takes.
	started := time.Now()
	res, err := x.w.l.BeginAttempt(ctx, ledger.BeginRequest{
		SendID: x.p.SendID, Digest: x.p.Digest, Gen: x.p.Gen,
		Token: token, Lease: x.w.opts.Lease, ContactIDs: x.contacts, Identities: x.identities,
		ExpectSending: skippedGuards,
		Watermark:     x.watermark,
		// What goes out is x.rec (read by Get): the script checks that the send is still
		// approved with x.rec's digest, so the record need not be read back.
		NoRecord: true,
	})
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return done("no such send", nil), false
	case errors.Is(err, ledger.ErrNotReplicated) && res.Outcome == ledger.BeginOK:
		// A new attempt, this execution's, but a Redis failover could lose its start and let
		// the send go out again: no call. The attempt ends here (Defer: nothing was sent), the
		// send waits.
		x.token, x.attempt = token, res.Attempt
		n := waitsFor(x.rec, tasks.ReasonWaitReplication)
		return wait(x.w.opts.Now().Add(x.w.backoff(n)), tasks.ReasonWaitReplication, "redis: "+err.Error()), false
	case err != nil:
		return infraError(err), false
	}
	if res.Record != nil {
		x.rec = res.Record
	}
	x.attempt = res.Attempt
	switch res.Outcome {
	case ledger.BeginOK:
		x.token = token
		x.logger().Info("send attempt started", zap.String("state", string(tasks.StateSending)))
		if res.Attempt == 1 && x.rec.Approval != nil {
			x.w.opts.Metrics.ApprovalWait(x.rec.Approval.At.Sub(x.rec.CreatedAt))
		}
		return x.send(ctx, started), false
	case ledger.BeginReconcile:
		x.token = token
		x.logger().Info("reconciling an attempt whose outcome is unknown", zap.String("state", string(tasks.StateSending)),
			zap.Time("attempt_started_at", res.AttemptStartedAt))
		return x.reconcile(ctx, res, started)
	case ledger.BeginInFlight:
		// Another execution holds a live lease: come back when it has ended (not a failure).
		return retryAfter(max(time.Until(res.LeaseUntil), time.Second), "attempt in flight"), false
	case ledger.BeginFinal:
		return done("already final", res.Record), false
	case ledger.BeginOptedOut:
		// The ledger ended the send (skipped opted_out) in the same script.
		x.logger().Info("send finished", zap.String("state", string(tasks.StateSkipped)), zap.String("reason", string(tasks.ReasonOptedOut)))
		x.w.opts.Metrics.SendFinished(x.op, tasks.StateSkipped, tasks.ReasonOptedOut)
		return done("opted out", res.Record), false
	case ledger.BeginIdentityUnresolved:
		// Nothing was sent with the slot (as when a guard stops the send).
		x.refundSlot(ctx)
		return x.unresolved(res), false
	case ledger.BeginHeld:
		x.logger().Info("send held by a pause", zap.String("state", string(tasks.StateWaiting)), zap.String("reason", string(tasks.ReasonWaitPaused)))
		x.w.opts.Metrics.Deferred(tasks.ReasonWaitPaused, 0)
		return done("held", nil), false
	case ledger.BeginStale:
		return done("stale task", nil), false
	}
	return infraError(fmt.Errorf("unknown begin outcome %v", res.Outcome)), false
}

// countEvents counts history events matching fn.
func countEvents(rec *tasks.Record, fn func(tasks.Event) bool) int {
	n := 0
	if rec == nil {
		return 0
	}
	for _, ev := range rec.History {
		if fn(ev) {
			n++
		}
	}
	return n
}

func waitsFor(rec *tasks.Record, reason tasks.Reason) int {
	return countEvents(rec, func(ev tasks.Event) bool { return ev.State == tasks.StateWaiting && ev.Reason == reason })
}
