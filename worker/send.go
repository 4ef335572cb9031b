package worker

import (
	"context"
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
	// may reconcile only after the lease, and must not meet a call still in flight. The global
	// request rate was waited for before BeginAttempt (waitGlobal): the sending call alone does
	// not wait again, with the lease running; the reads after it (the message look-up) are paced.
	lease := x.w.opts.Lease
	callCtx, cancel := context.WithDeadline(provider.WithoutPacing(ctx), started.Add(lease-leaseMargin(lease)))
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
	return x.decided(ctx, classify(phaseSend, x.op, err), started)
}
