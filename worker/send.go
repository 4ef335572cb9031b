package worker

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/tasks"
)

// send performs the one sending call of an attempt this execution owns (BeginOK). started is
// when this execution asked BeginAttempt, on the real clock (the lease runs from no later).
func (x *execution) send(ctx context.Context, started time.Time) outcome {
	// What goes out is x.rec, the record this round read (Get): precheck matched its digest to
	// the task's, integrity matched its request to that digest, and BeginAttempt found that
	// digest still the approved, current one. Nothing changes x.rec in between.
	req := &x.rec.Request
	if x.op == tasks.OpEdit && x.msg != nil && !editable(x.msg, x.w.opts.Now()) {
		return skipped(tasks.ReasonEditWindowClosed, "the edit window closed before sending")
	}
	if x.w.opts.DryRun {
		o := skipped(tasks.ReasonDryRun, "dry run: every check passed, nothing was sent")
		o.dryRun = true
		return o
	}
	if x.chat == nil {
		// Every guard that lets a send through resolves its chat.
		return failed(tasks.ReasonInvalidPayload, "no chat resolved for the send")
	}

	// The call ends before the lease does, whatever the client's timeout: another execution
	// may reconcile only after the lease, and must not meet a call still in flight.
	lease := x.w.opts.Lease
	callCtx, cancel := context.WithDeadline(ctx, started.Add(lease-leaseMargin(lease)))
	defer cancel()

	var messageID, chatID string
	var err error
	switch x.op {
	case tasks.OpSendMessage:
		var res *provider.MessageSent
		res, err = x.w.p.SendMessage(callCtx, x.chat.ID, provider.SendMessageParams{
			AccountID: req.AccountID, Text: req.Text, Attachments: x.files.Attachments(),
		})
		chatID = x.chat.ID
		if res != nil && res.MessageID != nil {
			messageID = *res.MessageID
		}
	case tasks.OpCreateChat:
		var res *provider.ChatStarted
		res, err = x.w.p.StartChat(callCtx, provider.StartChatParams{
			AccountID: req.AccountID, AttendeeIDs: req.AttendeeIDs, Text: req.Text, Attachments: x.files.Attachments(),
		})
		chatID = x.chat.ID
		if res != nil && res.ChatID != nil && *res.ChatID != "" {
			chatID = *res.ChatID
		}
		if res != nil && res.MessageID != nil {
			messageID = *res.MessageID
		}
	case tasks.OpReaction:
		err = x.w.p.AddReaction(callCtx, req.MessageID, req.Reaction)
		messageID, chatID = req.MessageID, x.chat.ID
	case tasks.OpEdit:
		err = x.w.p.EditMessage(callCtx, req.MessageID, req.Text)
		messageID, chatID = req.MessageID, x.chat.ID
	case tasks.OpDelete:
		err = x.w.p.DeleteMessage(callCtx, req.MessageID)
		messageID, chatID = req.MessageID, x.chat.ID
	}
	if err == nil {
		if x.trial != "" {
			// The trial of a half-open breaker went through: the account works again.
			if err := x.w.breaker.close(context.WithoutCancel(ctx), req.AccountID, x.trial); err != nil {
				x.logger().Warn("account breaker not closed after a delivered trial", zap.Error(err))
			}
		}
		if !x.op.SendsNewMessage() {
			return sent(messageID, chatID)
		}
		if messageID == "" {
			// Accepted without an id: the delivery is certain, the id is looked up (best effort).
			if m, ok := x.lookupSent(ctx, chatID, started); ok {
				messageID = m
			}
		}
		o := sent(messageID, chatID)
		o.claimed = func(context.Context) outcome {
			// The delivery is certain but its id is another send's (a concurrent reconciliation
			// took it, or the lookup guessed): record the send without an id.
			o := sent("", chatID)
			o.detail = "delivered; its message id " + messageID + " is already attributed to another send"
			return o
		}
		return o
	}
	return x.sendError(ctx, err, started)
}

// sendError maps a failed sending call. Only an unknown outcome leaves the attempt in sending:
// every other class means the provider did not act, so the attempt ends or is deferred now.
func (x *execution) sendError(ctx context.Context, err error, started time.Time) outcome {
	now := x.w.opts.Now()
	if provider.ScopeOf(err) == provider.ScopeAccount {
		// The account or its session refused (401 expired_credentials, 503 no_client_session...):
		// counted toward its breaker, whatever the class; the send waits, it does not fail.
		return x.accountRefused(err)
	}
	switch provider.ClassOf(err) {
	case provider.ClassUnknownOutcome:
		// The message may have been delivered. The call is over, so the attempt's lease is cut
		// to ReconcileDelay (time for a late delivery to show in the chat), and the next
		// execution after it gets BeginReconcile and reads the chat before anything else.
		reconcileAt := now.Add(x.w.opts.ReconcileDelay)
		if err := x.w.l.EndCall(context.WithoutCancel(ctx), x.p.SendID, x.token, x.w.opts.ReconcileDelay); err != nil {
			// The attempt is no longer ours, or Redis failed: the lease ends on its own.
			x.logger().Warn("could not end the call early; reconciling after the lease", zap.Error(err))
			leaseLeft := x.w.opts.Lease - time.Since(started)
			return retryAfter(max(x.w.opts.ReconcileDelay, leaseLeft), "outcome unknown: reconcile after the lease")
		}
		return retryAfter(x.w.opts.ReconcileDelay, "outcome unknown: reconcile at "+reconcileAt.UTC().Format(time.RFC3339))

	case provider.ClassRateLimited:
		// Certainly not sent; not a failure and not counted against the send. The whole
		// account slows down (every replica): no slot of it before the Retry-After.
		d := provider.RetryAfterOf(err)
		if d <= 0 {
			d = x.w.backoff(waitsFor(x.rec, tasks.ReasonWaitProvider))
		}
		x.penalize(context.Background(), now.Add(d))
		return wait(now.Add(d), tasks.ReasonWaitProvider, "provider rate limit (429)")

	case provider.ClassTransient:
		n := waitsFor(x.rec, tasks.ReasonWaitTransient)
		if n+1 >= x.w.opts.MaxTransientAttempts {
			return failed(tasks.ReasonRetriesExhausted, "transient provider errors: "+slugOrStatus(err))
		}
		return wait(now.Add(x.w.backoff(n)), tasks.ReasonWaitTransient, "transient provider error: "+slugOrStatus(err))
	}
	return x.permanentError(err)
}

// permanentError maps the provider's refusals (nothing was sent) to reason codes, by the scope
// of their problem type (provider's vocabulary):
//
//	credentials (missing_/invalid_credentials...) → waits (provider_backoff): our configuration, not the send
//	cannot_resend_yet                     → waits (provider_backoff)
//	chat scope                            → skipped with the chat's reason (chatRefusal)
//	a call the client refused itself      → failed invalid_payload
//	anything else                         → failed provider_rejected, slug in detail
//
// Account-level refusals never get here: sendError counts them toward the account breaker.
func (x *execution) permanentError(err error) outcome {
	now := x.w.opts.Now()
	slug := provider.SlugOf(err)
	switch provider.ScopeOf(err) {
	case provider.ScopeCredentials:
		n := waitsFor(x.rec, tasks.ReasonWaitProvider)
		return wait(now.Add(x.w.backoff(n)), tasks.ReasonWaitProvider, "provider: "+slug)
	case provider.ScopeChat:
		if o, ok := x.chatRefusal(slug); ok {
			return o
		}
	}
	if slug == provider.SlugCannotResendYet {
		n := waitsFor(x.rec, tasks.ReasonWaitProvider)
		return wait(now.Add(x.w.backoff(n)), tasks.ReasonWaitProvider, "provider: "+slug)
	}
	if slug == "" && provider.StatusOf(err) == 0 && errors.Is(err, provider.ErrInvalidArgument) {
		return failed(tasks.ReasonInvalidPayload, "the provider client refused the call: invalid argument")
	}
	return failed(tasks.ReasonProviderRejected, "provider: "+slugOrStatus(err))
}

// chatRefusal is the skip of a send refused for its chat or recipient:
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
func (x *execution) chatRefusal(slug string) (outcome, bool) {
	detail := "provider: " + slug
	switch slug {
	case provider.SlugAccountMismatch:
		return skipped(tasks.ReasonAccountMismatch, detail), true
	case provider.SlugResourceNotFound, "invalid_resource_identifier":
		switch x.op {
		case tasks.OpSendMessage:
			return skipped(tasks.ReasonChatNotFound, detail), true
		case tasks.OpReaction, tasks.OpEdit, tasks.OpDelete:
			return skipped(tasks.ReasonMessageNotFound, detail), true
		}
	case provider.SlugInvalidRecipient, provider.SlugNoConnectionWithRecipient:
		return skipped(tasks.ReasonColdRecipient, detail), true
	case provider.SlugBlockedRecipient:
		return skipped(tasks.ReasonRecipientBlocked, detail), true
	case provider.SlugUserUnreachable, "recipient_rejected":
		return skipped(tasks.ReasonRecipientUnreachable, detail), true
	case provider.SlugCantSendMessage, "resource_access_restricted":
		return skipped(tasks.ReasonChatReadOnly, detail), true
	}
	return outcome{}, false
}

// accountRefused is the wait of a send whose call met an account-level refusal (a sending call
// or a guard's read): the refusal counts toward the account's breaker (DisconnectTrips within
// DisconnectWindow open it), the cached account status is dropped, and the send waits
// (account_unhealthy), never fails.
func (x *execution) accountRefused(err error) outcome {
	slug := provider.SlugOf(err)
	account := x.rec.Request.AccountID
	x.w.health.forget(account)
	bctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if err := x.w.breaker.refused(bctx, account, slug); err != nil {
		x.logger().Warn("account breaker: account-level refusal not counted", zap.Error(err))
	}
	cancel()
	n := waitsFor(x.rec, tasks.ReasonWaitAccountDown)
	return wait(x.w.opts.Now().Add(x.w.backoff(n)), tasks.ReasonWaitAccountDown, "provider: "+slug)
}
