package worker

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/tasks"
)

// reconcile decides the outcome of an attempt whose lease expired without a result (a lost
// answer, a crash, a killed process). This execution owns the attempt (BeginReconcile). It reads
// the current state of the chat:
//
//   - the message is there → sent, with that message id;
//   - the listing succeeded and it is clearly not there → the attempt is given back
//     (ResolveReconciled) and the send starts over from the guards (again = true);
//   - the message found turns out to be another send's (the ledger refuses its id: a
//     concurrent claim) → the candidates are chosen again without it; none left →
//     needs_review, never a resend (see attribute);
//   - the listing failed or is ambiguous → try again after this execution's lease, and after
//     MaxReconcileTries such tries → needs_review (never resent automatically).
//
// Reactions, edits and deletes are idempotent, so they reconcile on the message's state: the
// reaction is present, the text is the new one, the message is deleted.
func (x *execution) reconcile(ctx context.Context, attemptStartedAt, started time.Time) (outcome, bool) {
	tries := reconcileTries(x.rec, x.attempt)
	undecided := func(detail string) (outcome, bool) {
		if tries >= x.w.opts.MaxReconcileTries {
			return needsReview(tasks.ReasonUnknownOutcome, detail+"; the outcome of the attempt cannot be decided"), false
		}
		leaseLeft := x.w.opts.Lease - time.Since(started)
		return retryAfter(max(leaseLeft, x.w.opts.ReconcileDelay, time.Second), "reconcile undecided: "+detail), false
	}

	var found bool
	var messageID, chatID string
	switch x.op {
	case tasks.OpSendMessage, tasks.OpCreateChat:
		chat, absent, detail := x.reconcileChat(ctx)
		switch {
		case absent:
			return x.resend(ctx)
		case chat == nil:
			return undecided(detail)
		}
		return x.attribute(ctx, chat.ID, attemptStartedAt, nil, undecided)

	case tasks.OpReaction, tasks.OpEdit, tasks.OpDelete:
		chat, msg, o, stop := x.locateMessage(ctx)
		if stop {
			if o.kind == kindFinish && o.reason == tasks.ReasonMessageNotFound {
				if x.op == tasks.OpDelete {
					// It was there when the attempt started; now it is gone: deleted.
					return sent(x.rec.Request.MessageID, x.rec.Request.ChatID), false
				}
				return x.resend(ctx) // the guards will refuse it with the same reason
			}
			if o.kind == kindFinish {
				return x.resend(ctx)
			}
			return undecided("cannot read the message")
		}
		chatID, messageID = chat.ID, x.rec.Request.MessageID
		switch x.op {
		case tasks.OpReaction:
			found = slices.ContainsFunc(msg.Reactions, func(r provider.Reaction) bool {
				return bool(r.IsSender) && r.Value == x.rec.Request.Reaction
			})
		case tasks.OpEdit:
			found = !bool(msg.Deleted) && strings.TrimSpace(msg.Text) == strings.TrimSpace(x.rec.Request.Text)
		case tasks.OpDelete:
			found = bool(msg.Deleted)
		}
	}
	if found {
		return sent(messageID, chatID), false
	}
	return x.resend(ctx)
}

// maxClaimConflicts bounds how many candidates one reconciliation may lose to other sends'
// claims before it gives up (needs_review).
const maxClaimConflicts = 3

// attribute decides a lost send or new chat from the chat's messages: exactly one unclaimed
// message of ours with the send's content → sent with its id; none → not delivered (resend);
// several → undecided. notOurs holds the candidates the ledger already refused as another
// send's (ErrMessageClaimed): a refused candidate is excluded and the choice made again, but
// if none is left the send goes to needs_review rather than out again, because the one
// message that matched may have been this send's (never two deliveries).
func (x *execution) attribute(ctx context.Context, chatID string, attemptStartedAt time.Time, notOurs []string,
	undecided func(string) (outcome, bool)) (outcome, bool) {
	claimed, err := x.w.l.ClaimedIn(ctx, chatID)
	if err != nil {
		return infraError(err), false
	}
	for _, id := range notOurs {
		claimed[id] = true
	}
	cands, claimedMatches, err := x.candidates(ctx, chatID, attemptStartedAt.Add(-reconcileLookback), claimed)
	switch {
	case err != nil:
		return undecided("cannot list the chat's messages")
	case len(cands) > 1:
		return undecided("several messages of ours match")
	case len(cands) == 0 && len(notOurs) > 0:
		return needsReview(tasks.ReasonUnknownOutcome, "the message that matched is attributed to another send"), false
	case len(cands) == 0 && claimedMatches > 0:
		// A message with this content went out in the window but another send took it: it may
		// have been ours (the other send may have matched it first). Never send again on a guess.
		return needsReview(tasks.ReasonUnknownOutcome, "a matching message is attributed to another send"), false
	case len(cands) == 0:
		return x.resend(ctx)
	}
	o := sent(cands[0].ID, chatID)
	o.claimed = func(ctx context.Context) outcome {
		refused := append(slices.Clone(notOurs), cands[0].ID)
		if len(refused) >= maxClaimConflicts {
			return needsReview(tasks.ReasonUnknownOutcome, "every message that matched is attributed to another send")
		}
		o, _ := x.attribute(ctx, chatID, attemptStartedAt, refused, undecided) // never a resend: notOurs is not empty
		return o
	}
	return o, false
}

// resend gives back an attempt reconciliation found clearly not delivered.
func (x *execution) resend(ctx context.Context) (outcome, bool) {
	err := x.w.l.ResolveReconciled(ctx, x.p.SendID, x.token)
	switch {
	case errors.Is(err, ledger.ErrFinal), errors.Is(err, ledger.ErrStaleAttempt), errors.Is(err, ledger.ErrNotFound):
		return done("attempt taken over by another execution", nil), false
	case err != nil:
		return infraError(err), false
	}
	// A send with a stop request (Reject/Cancel while sending) is now final instead of
	// approved: the next round reads it and stops there (precheck), without sending.
	x.logger().Info("reconciled: not delivered; starting over", zap.String("state", string(tasks.StateApproved)))
	x.token = ""
	return outcome{}, true
}

// reconcileChat resolves the chat a send or new chat went into. absent reports that the chat
// certainly does not hold the message (it does not exist); a nil chat without absent is a
// read that failed.
func (x *execution) reconcileChat(ctx context.Context) (chat *provider.Chat, absent bool, detail string) {
	req := &x.rec.Request
	if x.op == tasks.OpSendMessage {
		c, err := x.w.p.GetChat(ctx, req.ChatID, req.AccountID)
		if err != nil {
			if provider.SlugOf(err) == provider.SlugResourceNotFound || provider.StatusOf(err) == http.StatusNotFound {
				return nil, true, ""
			}
			return nil, false, "cannot read the chat"
		}
		return c, false, ""
	}
	// chats_create: WhatsApp keeps one chat per person, so the message is in the attendee's
	// chat. Read the chat list afresh, not from the cache.
	c, ok, err := x.w.known.lookup(ctx, x.w.p, req.AccountID, req.AttendeeIDs[0], true)
	switch {
	case err != nil:
		return nil, false, "cannot list the account's chats"
	case !ok:
		return nil, true, ""
	}
	return &c, false, ""
}

// candidates lists our messages of a chat newer than after, not claimed by another send, whose
// content is the send's, and counts the matching ones another send has claimed.
func (x *execution) candidates(ctx context.Context, chatID string, after time.Time, claimed map[string]bool) (out []provider.Message, claimedMatches int, err error) {
	for m, err := range x.w.p.Messages(ctx, chatID, provider.ListMessagesParams{After: after, Limit: 250}) {
		if err != nil {
			return nil, 0, err
		}
		if m.Timestamp.Before(after) {
			break
		}
		if !bool(m.IsSender) || bool(m.IsEvent) || bool(m.Deleted) || !sameContent(&m, &x.rec.Request) {
			continue
		}
		if claimed[m.ID] {
			claimedMatches++
			continue
		}
		out = append(out, m)
	}
	return out, claimedMatches, nil
}

// sameContent compares a listed message with the request: text (surrounding space aside) and
// the attachments by count and, when listed, file names.
func sameContent(m *provider.Message, req *tasks.SendRequest) bool {
	if strings.TrimSpace(m.Text) != strings.TrimSpace(req.Text) {
		return false
	}
	if len(m.Attachments) != len(req.Attachments) {
		return false
	}
	var listed, asked []string
	for _, a := range m.Attachments {
		if a.FileName == "" {
			return true // the provider does not name them: the count has to do
		}
		listed = append(listed, a.FileName)
	}
	for _, a := range req.Attachments {
		asked = append(asked, a.Filename)
	}
	slices.Sort(listed)
	slices.Sort(asked)
	return slices.Equal(listed, asked)
}

// lookupSent finds the id of a message the provider accepted without naming it: exactly one
// unclaimed message of ours with the send's content since the attempt started.
func (x *execution) lookupSent(ctx context.Context, chatID string, started time.Time) (string, bool) {
	claimed, err := x.w.l.ClaimedIn(ctx, chatID)
	if err != nil {
		return "", false
	}
	cands, _, err := x.candidates(ctx, chatID, started.Add(-reconcileLookback), claimed)
	if err != nil || len(cands) != 1 {
		return "", false
	}
	return cands[0].ID, true
}

// reconcileTries counts the reads of the chat already made for an attempt. Every takeover of
// the attempt appends a "sending" event with its number, by nobody and without a reason, after
// the one of the attempt's start. Other "sending" events of the attempt are not tries: the
// watchdog's recoveries (by RecoveredBy), EndCall (reason unknown_outcome: the call ended,
// nothing was read yet), and a cancel or reject asked while sending (by the admin, reason
// canceled/rejected).
func reconcileTries(rec *tasks.Record, attempt int) int {
	n := countEvents(rec, func(ev tasks.Event) bool {
		return ev.State == tasks.StateSending && ev.Attempt == attempt && ev.By == "" && ev.Reason == ""
	})
	return max(n-1, 0)
}
