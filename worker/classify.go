package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/tasks"
	"github.com/sendworker/sendworker/worker/attachments"
)

// phase is the call of an execution that failed. classify decides by phase, the operation and
// the error; nothing else.
type phase int

const (
	// phaseAccount: accounts_get (the guards' account health, the breaker's probe).
	phaseAccount phase = iota + 1
	// phaseChat: chats_get of the send's chat, or of the chat of a reaction's, edit's or
	// delete's message.
	phaseChat
	// phaseChats: the chats of an attendee of chats_create (the warm-recipient lookup).
	phaseChats
	// phaseMessages: a chat's messages (the target message, stop_if_replied_since).
	phaseMessages
	// phaseAttachments: the fetch of the send's attachments.
	phaseAttachments
	// phaseSend: the one sending call of an attempt.
	phaseSend
)

// what names a read phase in details ("chat: rate limited").
func (ph phase) what() string {
	switch ph {
	case phaseAccount:
		return "account"
	case phaseChat:
		return "chat"
	case phaseChats:
		return "chats"
	case phaseMessages:
		return "messages"
	case phaseAttachments:
		return "attachments"
	case phaseSend:
		return "send"
	}
	return fmt.Sprintf("phase(%d)", int(ph))
}

// decision is what a failed call makes of the send: an outcome to build and the side effects
// to apply first. classify returns it; decided applies it. It holds no time: the waits are
// durations, or backoffs counted from the send's history.
type decision struct {
	kind   kind        // kindFinish, kindWait or kindRetry
	state  tasks.State // kindFinish
	reason tasks.Reason
	detail string

	// after is kindWait's wait when the provider named it (Retry-After; 0: the backoff for the
	// send's earlier waits with the same reason), and kindRetry's delay.
	after time.Duration
	// exhausted, when set, fails a kindWait send with this reason and exhaustedDetail instead
	// once this wait would be its MaxTransientAttempts-th with the same reason.
	exhausted       tasks.Reason
	exhaustedDetail string

	// penalize slows the whole account (every replica) until the wait ends: a 429.
	penalize bool
	// refusedSlug, when refused: an account-level refusal; the cached account status is dropped
	// and the refusal counts toward the account's breaker.
	refused     bool
	refusedSlug string
	// reconcile: the sending call's outcome is unknown. The call's lease is cut to
	// ReconcileDelay (ledger.EndCall) and the task retried then, to reconcile against the chat.
	// Only classify(phaseSend, ...) sets it.
	reconcile bool
}

func finishAs(state tasks.State, reason tasks.Reason, detail string) decision {
	return decision{kind: kindFinish, state: state, reason: reason, detail: detail}
}

func waitAs(reason tasks.Reason, after time.Duration, detail string) decision {
	return decision{kind: kindWait, reason: reason, after: after, detail: detail}
}

// classify is the one mapping of a failed provider call or attachment fetch to what happens to
// the send. By phase:
//
//	account    404 (or resource_not_found)        → failed account_disconnected; else as a read
//	chat       account_mismatch                   → skipped account_mismatch
//	           404 (or resource_not_found)        → skipped chat_not_found (message send) /
//	                                                message_not_found (reaction, edit, delete)
//	                                                else as a read
//	any read   the global rate wait failed        → retry in 5 s (the read did not happen)
//	           account scope                      → waits account_unhealthy, refusal counted
//	           rate limited                       → waits provider_backoff, account penalized
//	           transient, unknown outcome         → waits provider_backoff
//	           credentials scope                  → waits provider_backoff
//	           anything else                      → failed provider_rejected
//	attachments by attachments.KindOf: origin, too large, hash mismatch fail the send; a fetch
//	           error waits transient_error, then fails attachment_fetch_failed
//	send       account scope                      → waits account_unhealthy, refusal counted
//	           unknown outcome                    → EndCall, retry after ReconcileDelay
//	           rate limited                       → waits provider_backoff, account penalized
//	           transient                          → waits transient_error, then retries_exhausted
//	           anything else                      → refused (see refusal)
//
// Nothing was sent in any phase but an unknown outcome of phaseSend.
func classify(ph phase, op tasks.Operation, err error) decision {
	switch ph {
	case phaseAccount:
		if provider.StatusOf(err) == http.StatusNotFound || provider.SlugOf(err) == provider.SlugResourceNotFound {
			return finishAs(tasks.StateFailed, tasks.ReasonAccountDisconnected, "the provider does not know the account")
		}
	case phaseChat:
		switch {
		case provider.SlugOf(err) == provider.SlugAccountMismatch:
			return finishAs(tasks.StateSkipped, tasks.ReasonAccountMismatch, "the chat belongs to another account")
		case provider.SlugOf(err) == provider.SlugResourceNotFound || provider.StatusOf(err) == http.StatusNotFound:
			notFound := tasks.ReasonChatNotFound
			if targetsMessage(op) {
				notFound = tasks.ReasonMessageNotFound
			}
			return finishAs(tasks.StateSkipped, notFound, "the provider does not know the chat")
		}
	case phaseAttachments:
		return fetchFailed(err)
	case phaseSend:
		return sendFailed(op, err)
	}
	return readFailed(ph.what(), err)
}

// targetsMessage: the operation acts on an existing message (its chat is the message's).
func targetsMessage(op tasks.Operation) bool {
	return op == tasks.OpReaction || op == tasks.OpEdit || op == tasks.OpDelete
}

// readFailed is a failed read of a guard. Nothing was sent: a provider that is unavailable,
// slow or rate limiting makes the send wait (provider_backoff, not a failure, not counted); a
// refusal that waiting cannot fix fails the send with the slug in the detail.
func readFailed(what string, err error) decision {
	var pe *provider.PaceError
	if errors.As(err, &pe) {
		// The read did not happen: the global rate limiter is unavailable, or the worker stops.
		return decision{kind: kindRetry, after: 5 * time.Second, detail: what + ": global provider rate: " + pe.Err.Error()}
	}
	if provider.ScopeOf(err) == provider.ScopeAccount {
		// The account or its session refused (401 disconnected_account, 503 no_client_session...)
		// since its status was read: counted toward its breaker like a sending call's refusal.
		return accountRefusal(err)
	}
	switch provider.ClassOf(err) {
	case provider.ClassRateLimited:
		d := waitAs(tasks.ReasonWaitProvider, provider.RetryAfterOf(err), what+": rate limited")
		d.penalize = true
		return d
	case provider.ClassTransient, provider.ClassUnknownOutcome:
		return waitAs(tasks.ReasonWaitProvider, 0, what+": provider unavailable")
	}
	if provider.ScopeOf(err) == provider.ScopeCredentials {
		// Our credentials, not the send: wait for ops to fix them.
		return waitAs(tasks.ReasonWaitProvider, 0, what+": provider credentials refused")
	}
	return finishAs(tasks.StateFailed, tasks.ReasonProviderRejected,
		fmt.Sprintf("%s: provider refused the read (%s)", what, slugOrStatus(err)))
}

// fetchFailed is a refused or failed attachment fetch.
func fetchFailed(err error) decision {
	switch attachments.KindOf(err) {
	case attachments.KindOrigin:
		return finishAs(tasks.StateFailed, tasks.ReasonAttachmentOrigin, err.Error())
	case attachments.KindTooLarge:
		return finishAs(tasks.StateFailed, tasks.ReasonAttachmentTooLarge, err.Error())
	case attachments.KindHashMismatch:
		return finishAs(tasks.StateFailed, tasks.ReasonAttachmentMismatch, err.Error())
	}
	d := waitAs(tasks.ReasonWaitTransient, 0, err.Error())
	d.exhausted, d.exhaustedDetail = tasks.ReasonAttachmentFetch, err.Error()
	return d
}

// sendFailed is a failed sending call. Only an unknown outcome leaves the attempt in sending:
// every other class means the provider did not act, so the attempt ends or is deferred now.
func sendFailed(op tasks.Operation, err error) decision {
	if provider.ScopeOf(err) == provider.ScopeAccount {
		// The account or its session refused (401 expired_credentials, 503 no_client_session...):
		// counted toward its breaker, whatever the class; the send waits, it does not fail.
		return accountRefusal(err)
	}
	switch provider.ClassOf(err) {
	case provider.ClassUnknownOutcome:
		// The message may have been delivered: reconcile against the chat before anything else.
		return decision{kind: kindRetry, reconcile: true}
	case provider.ClassRateLimited:
		// Certainly not sent; not a failure and not counted against the send. The whole
		// account slows down (every replica): no slot of it before the Retry-After.
		d := waitAs(tasks.ReasonWaitProvider, provider.RetryAfterOf(err), "provider rate limit (429)")
		d.penalize = true
		return d
	case provider.ClassTransient:
		d := waitAs(tasks.ReasonWaitTransient, 0, "transient provider error: "+slugOrStatus(err))
		d.exhausted, d.exhaustedDetail = tasks.ReasonRetriesExhausted, "transient provider errors: "+slugOrStatus(err)
		return d
	}
	return refusal(op, err)
}

// refusal maps the provider's refusals of a sending call (nothing was sent) to reason codes, by
// the scope of their problem type (provider's vocabulary):
//
//	credentials (missing_/invalid_credentials...) → waits (provider_backoff): our configuration, not the send
//	cannot_resend_yet                     → waits (provider_backoff)
//	chat scope                            → skipped with the chat's reason (chatRefusal)
//	a call the client refused itself      → failed invalid_payload
//	anything else                         → failed provider_rejected, slug in detail
//
// Account-level refusals never get here: sendFailed counts them toward the account breaker.
func refusal(op tasks.Operation, err error) decision {
	slug := provider.SlugOf(err)
	switch provider.ScopeOf(err) {
	case provider.ScopeCredentials:
		return waitAs(tasks.ReasonWaitProvider, 0, "provider: "+slug)
	case provider.ScopeChat:
		if reason, ok := chatRefusal(op, slug); ok {
			return finishAs(tasks.StateSkipped, reason, "provider: "+slug)
		}
	}
	if slug == provider.SlugCannotResendYet {
		return waitAs(tasks.ReasonWaitProvider, 0, "provider: "+slug)
	}
	if slug == "" && provider.StatusOf(err) == 0 && errors.Is(err, provider.ErrInvalidArgument) {
		return finishAs(tasks.StateFailed, tasks.ReasonInvalidPayload, "the provider client refused the call: invalid argument")
	}
	return finishAs(tasks.StateFailed, tasks.ReasonProviderRejected, "provider: "+slugOrStatus(err))
}

// chatRefusal is the skip reason of a send refused for its chat or recipient:
//
//	account_mismatch                      → account_mismatch
//	resource_not_found, invalid_resource_identifier → chat_not_found (send) / message_not_found
//	                                        (reaction, edit, delete); chats_create: not handled here
//	invalid_recipient, no_connection_with_recipient → cold_recipient: the provider says the
//	                                        account has no relationship with the recipient, which is
//	                                        exactly what the warm guard refuses
//	blocked_recipient                     → recipient_blocked
//	user_unreachable, recipient_rejected  → recipient_unreachable
//	cant_send_message, resource_access_restricted → chat_read_only: the provider refuses writes
//	                                        into the chat
func chatRefusal(op tasks.Operation, slug string) (tasks.Reason, bool) {
	switch slug {
	case provider.SlugAccountMismatch:
		return tasks.ReasonAccountMismatch, true
	case provider.SlugResourceNotFound, "invalid_resource_identifier":
		switch {
		case op == tasks.OpSendMessage:
			return tasks.ReasonChatNotFound, true
		case targetsMessage(op):
			return tasks.ReasonMessageNotFound, true
		}
	case provider.SlugInvalidRecipient, provider.SlugNoConnectionWithRecipient:
		return tasks.ReasonColdRecipient, true
	case provider.SlugBlockedRecipient:
		return tasks.ReasonRecipientBlocked, true
	case provider.SlugUserUnreachable, "recipient_rejected":
		return tasks.ReasonRecipientUnreachable, true
	case provider.SlugCantSendMessage, "resource_access_restricted":
		return tasks.ReasonChatReadOnly, true
	}
	return "", false
}

// accountRefusal is the wait of a send whose call met an account-level refusal (a sending call
// or a guard's read): the refusal counts toward the account's breaker (DisconnectTrips within
// DisconnectWindow open it), the cached account status is dropped, and the send waits
// (account_unhealthy), never fails.
func accountRefusal(err error) decision {
	slug := provider.SlugOf(err)
	d := waitAs(tasks.ReasonWaitAccountDown, 0, "provider: "+slug)
	d.refused, d.refusedSlug = true, slug
	return d
}

func slugOrStatus(err error) string {
	if s := provider.SlugOf(err); s != "" {
		return s
	}
	if st := provider.StatusOf(err); st != 0 {
		return fmt.Sprintf("status %d", st)
	}
	var pe *provider.Error
	if errors.As(err, &pe) && errors.Is(pe.Err, provider.ErrInvalidArgument) {
		return "invalid argument"
	}
	return "error"
}

// failedRead is the outcome of a guard's failed read or fetch (never the sending call).
func (x *execution) failedRead(ctx context.Context, ph phase, err error) outcome {
	return x.decided(ctx, classify(ph, x.op, err), time.Time{})
}

// decided applies a decision's side effects and returns its outcome. started is when the
// execution asked BeginAttempt (zero outside phaseSend): a reconcile whose EndCall fails waits
// for the lease that started then.
func (x *execution) decided(ctx context.Context, d decision, started time.Time) outcome {
	switch d.kind {
	case kindFinish:
		return outcome{kind: kindFinish, state: d.state, reason: d.reason, detail: d.detail}

	case kindRetry:
		if d.reconcile {
			return x.endCall(ctx, started)
		}
		return retryAfter(d.after, d.detail)
	}

	if d.refused {
		account := x.rec.Request.AccountID
		x.w.health.forget(account)
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := x.w.breaker.refused(bctx, account, d.refusedSlug); err != nil {
			x.logger().Warn("account breaker: account-level refusal not counted", zap.Error(err))
		}
		cancel()
	}
	now := x.w.opts.Now()
	n := waitsFor(x.rec, d.reason)
	if d.exhausted != "" && n+1 >= x.w.opts.MaxTransientAttempts {
		return failed(d.exhausted, d.exhaustedDetail)
	}
	wait := d.after
	if wait <= 0 {
		wait = x.w.backoff(n)
	}
	if d.penalize {
		x.penalize(ctx, now.Add(wait))
	}
	return outcome{kind: kindWait, until: now.Add(wait), reason: d.reason, detail: d.detail}
}

// endCall ends a sending call whose outcome is unknown: the message may have been delivered.
// The call is over, so the attempt's lease is cut to ReconcileDelay (time for a late delivery
// to show in the chat), and the next execution after it gets BeginReconcile and reads the chat
// before anything else.
func (x *execution) endCall(ctx context.Context, started time.Time) outcome {
	reconcileAt := x.w.opts.Now().Add(x.w.opts.ReconcileDelay)
	if err := x.w.l.EndCall(context.WithoutCancel(ctx), x.p.SendID, x.token, x.w.opts.ReconcileDelay); err != nil {
		// The attempt is no longer ours, or Redis failed: the lease ends on its own.
		x.logger().Warn("could not end the call early; reconciling after the lease", zap.Error(err))
		leaseLeft := x.w.opts.Lease - time.Since(started)
		return retryAfter(max(x.w.opts.ReconcileDelay, leaseLeft), "outcome unknown: reconcile after the lease")
	}
	return retryAfter(x.w.opts.ReconcileDelay, "outcome unknown: reconcile at "+reconcileAt.UTC().Format(time.RFC3339))
}
