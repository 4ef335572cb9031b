package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"

	"go.uber.org/zap"
	"golang.org/x/text/unicode/norm"

	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/tasks"
)

// reconcile decides the outcome of an attempt whose lease expired without a result (a lost
// answer, a crash, a killed process). This execution owns the attempt (BeginReconcile: res).
// It reads the current state of the chat:
//
//   - the message is there (after the attempt's watermark) → sent, with that message id;
//   - the listing succeeded and it is not there → absent, which proves nothing until the
//     attempt can no longer land (see absent): until then the send stays sending, undecided,
//     and the chat is read again; after it, the attempt is given back (ResolveReconciled) and
//     the send starts over from the guards (again = true), or under ResendNever it ends
//     needs_review;
//   - the message found turns out to be another send's (the ledger refuses its id: a
//     concurrent claim) → the candidates are chosen again without it; none left →
//     needs_review, never a resend (see attribute);
//   - the chat cannot be read (an error, a 404: a chat that was there when the attempt
//     started), or several messages match → try again after this execution's lease, and
//     after MaxReconcileTries such tries → needs_review (never resent automatically).
//
// Reactions, edits and deletes are idempotent, so they reconcile on the message's state: the
// reaction is present, the text is the new one, the message is deleted.
func (x *execution) reconcile(ctx context.Context, res ledger.BeginResult, started time.Time) (outcome, bool) {
	av := x.attemptView(res)
	// Reads that found the message absent are not failures: they wait for the attempt to be
	// unable to land, and do not use up the tries.
	tries := max(reconcileTries(x.rec, x.attempt)-av.absentReads, 0)
	undecided := func(detail string) (outcome, bool) {
		if tries >= x.w.opts.MaxReconcileTries {
			return needsReview(tasks.ReasonUnknownOutcome, detail+"; the outcome of the attempt cannot be decided; "+av.evidence(nil)), false
		}
		leaseLeft := x.w.opts.Lease - time.Since(started)
		return retryAfter(max(leaseLeft, x.w.opts.ReconcileDelay, time.Second), "reconcile undecided: "+detail), false
	}

	var found bool
	var messageID, chatID string
	switch x.op {
	case tasks.OpSendMessage, tasks.OpCreateChat:
		chat, detail := x.reconcileChat(ctx)
		if chat == nil {
			return undecided(detail)
		}
		return x.attribute(ctx, chat.ID, av, nil, undecided)

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
			found = !bool(msg.Deleted) && sameText(msg.Text, x.rec.Request.Text)
		case tasks.OpDelete:
			found = bool(msg.Deleted)
		}
	}
	if found {
		return sent(messageID, chatID), false
	}
	// A reaction, edit or delete applied twice changes nothing: give the attempt back.
	return x.resend(ctx)
}

// attemptView is what reconciliation knows of the attempt it decides.
type attemptView struct {
	startedAt   time.Time        // the attempt's start, on Redis's clock
	now         time.Time        // Redis's clock when this execution took the attempt over
	landsUntil  time.Time        // until then (Redis's clock) the provider could still store it
	watermark   *tasks.Watermark // nil: an attempt begun without one (see watermarkFallback)
	absentReads int              // earlier reads that did not find the message
	seen        []provider.Message
}

func (x *execution) attemptView(res ledger.BeginResult) *attemptView {
	av := &attemptView{
		startedAt: res.AttemptStartedAt,
		// The takeover set the lease to Redis's now + Lease.
		now:        res.LeaseUntil.Add(-x.w.opts.Lease),
		landsUntil: res.AttemptStartedAt.Add(x.w.opts.Lease + x.w.opts.LateCompletion),
	}
	if rc := x.rec.Reconcile; rc != nil {
		av.watermark, av.absentReads = rc.Watermark, rc.AbsentReads
	}
	return av
}

// maxEvidence bounds the messages an evidence text lists.
const maxEvidence = 10

// evidence is what a person deciding an undecided send needs: when the attempt began, the
// watermark, and the chat's messages after it (ids, times, ours or not, content matching or
// not; never their text). matching, when not nil, names the messages that matched.
func (av *attemptView) evidence(matching map[string]bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "attempt started %s (Redis clock)", av.startedAt.UTC().Format(time.RFC3339Nano))
	if wm := av.watermark; wm != nil {
		if wm.MessageID != "" {
			fmt.Fprintf(&b, "; watermark %s at %s (provider clock) in chat %s", wm.MessageID, wm.At.UTC().Format(time.RFC3339Nano), wm.ChatID)
		} else {
			fmt.Fprintf(&b, "; watermark: chat %s, last activity %s (provider clock), no message", wm.ChatID, wm.At.UTC().Format(time.RFC3339Nano))
		}
	} else {
		b.WriteString("; no watermark")
	}
	if av.absentReads > 0 {
		fmt.Fprintf(&b, "; absent in %d earlier reads", av.absentReads)
	}
	if av.seen == nil {
		return b.String()
	}
	b.WriteString("; messages after the watermark:")
	if len(av.seen) == 0 {
		b.WriteString(" none")
	}
	for i, m := range av.seen {
		if i == maxEvidence {
			fmt.Fprintf(&b, " (%d more)", len(av.seen)-maxEvidence)
			break
		}
		who := "theirs"
		if m.IsSender {
			who = "ours"
		}
		match := ""
		if matching[m.ID] {
			match = " matching"
		}
		fmt.Fprintf(&b, " %s at %s %s%s;", m.ID, m.Timestamp.UTC().Format(time.RFC3339Nano), who, match)
	}
	return strings.TrimSuffix(b.String(), ";")
}

// maxClaimConflicts bounds how many candidates one reconciliation may lose to other sends'
// claims before it gives up (needs_review).
const maxClaimConflicts = 3

// attribute decides a lost send or new chat from the chat's messages: exactly one unclaimed
// message of ours with the send's content after the watermark → sent with its id; none →
// absent; several → undecided. notOurs holds the candidates the ledger already refused as
// another send's (ErrMessageClaimed): a refused candidate is excluded and the choice made
// again, but if none is left the send goes to needs_review rather than out again, because the
// one message that matched may have been this send's (never two deliveries).
func (x *execution) attribute(ctx context.Context, chatID string, av *attemptView, notOurs []string,
	undecided func(string) (outcome, bool)) (outcome, bool) {
	refused := make(map[string]bool, len(notOurs))
	for _, id := range notOurs {
		refused[id] = true
	}
	cands, claimedMatches, seen, err := x.candidates(ctx, chatID, av.watermark, av.startedAt, refused)
	var ce *claimsError
	if errors.As(err, &ce) {
		return infraError(ce.err), false
	}
	av.seen = seen
	matching := map[string]bool{}
	for _, m := range cands {
		matching[m.ID] = true
	}
	switch {
	case err != nil:
		return undecided("cannot list the chat's messages")
	case len(cands) > 1:
		return undecided("several messages of ours match")
	case len(cands) == 0 && len(notOurs) > 0:
		return needsReview(tasks.ReasonUnknownOutcome, "the message that matched is attributed to another send; "+av.evidence(matching)), false
	case len(cands) == 0 && claimedMatches > 0:
		// A message with this content went out in the window but another send took it: it may
		// have been ours (the other send may have matched it first). Never send again on a guess.
		return needsReview(tasks.ReasonUnknownOutcome, "a matching message is attributed to another send; "+av.evidence(matching)), false
	case len(cands) == 0:
		return x.absent(ctx, av)
	}
	o := sent(cands[0].ID, chatID)
	o.claimed = func(ctx context.Context) outcome {
		refused := append(slices.Clone(notOurs), cands[0].ID)
		if len(refused) >= maxClaimConflicts {
			return needsReview(tasks.ReasonUnknownOutcome, "every message that matched is attributed to another send; "+av.evidence(matching))
		}
		o, _ := x.attribute(ctx, chatID, av, refused, undecided) // never a resend: notOurs is not empty
		return o
	}
	return o, false
}

// absent decides a read that did not find the message. Absence proves the message will never
// be there only once the attempt can no longer land: its sending call ended by the lease
// (start + Lease) and the provider had LateCompletion more to store it. Before that, or when
// no earlier read found it absent too, the send stays sending, undecided, its record saying
// why, and the chat is read again at the later of landsUntil and ReconcileDelay from now.
// Both times are on Redis's clock; the message times on the provider's are only compared with
// the watermark, which is on the provider's clock too.
func (x *execution) absent(ctx context.Context, av *attemptView) (outcome, bool) {
	if av.now.Before(av.landsUntil) || av.absentReads == 0 {
		next := max(av.landsUntil.Sub(av.now), x.w.opts.ReconcileDelay, time.Second)
		at := av.now.Add(next).UTC().Format(time.RFC3339)
		why := fmt.Sprintf("absent in read %d, but the provider could still store it until %s; next check at %s",
			av.absentReads+1, av.landsUntil.UTC().Format(time.RFC3339), at)
		if !av.now.Before(av.landsUntil) {
			why = fmt.Sprintf("absent in read %d, after it could land (%s); read again at %s to confirm",
				av.absentReads+1, av.landsUntil.UTC().Format(time.RFC3339), at)
		}
		_, err := x.w.l.ReconcileLater(ctx, x.p.SendID, x.token, ledger.Undecided{
			After: next, LandsUntil: av.landsUntil, Absent: true, Why: why})
		switch {
		case errors.Is(err, ledger.ErrFinal), errors.Is(err, ledger.ErrStaleAttempt), errors.Is(err, ledger.ErrNotFound):
			return done("attempt taken over by another execution", nil), false
		case err != nil:
			return infraError(err), false
		}
		x.logger().Info("reconcile undecided: "+why, zap.String("state", string(tasks.StateSending)))
		// A little after the lease's end, so that the next execution takes the attempt over.
		return retryAfter(next+200*time.Millisecond, "reconcile undecided: "+why), false
	}
	if x.w.opts.ResendPolicy == ResendNever {
		return needsReview(tasks.ReasonUnknownOutcome, fmt.Sprintf(
			"not found in the chat in %d reads up to after %s, when it could no longer land; the resend policy is %s: a person decides; %s",
			av.absentReads+1, av.landsUntil.UTC().Format(time.RFC3339), ResendNever, av.evidence(nil))), false
	}
	return x.resend(ctx)
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

// reconcileChat resolves the chat a send or new chat went into; nil with a detail when it
// cannot. A chat the provider does not find (404) is not proof of anything: it was there when
// the attempt started (the guards read it), so this is a provider that cannot tell now.
func (x *execution) reconcileChat(ctx context.Context) (chat *provider.Chat, detail string) {
	req := &x.rec.Request
	if x.op == tasks.OpSendMessage {
		c, err := x.w.p.GetChat(ctx, req.ChatID, req.AccountID)
		switch {
		case provider.SlugOf(err) == provider.SlugResourceNotFound || provider.StatusOf(err) == http.StatusNotFound:
			return nil, "the provider does not find the chat"
		case err != nil:
			return nil, "cannot read the chat"
		}
		return c, ""
	}
	// chats_create: WhatsApp keeps one chat per person, so the message is in the attendee's
	// chat. Read the chat list afresh, not from the cache.
	c, ok, err := x.w.known.lookup(ctx, x.w.p, req.AccountID, req.AttendeeIDs[0], true)
	switch {
	case err != nil:
		return nil, "cannot list the account's chats"
	case !ok:
		return nil, "the account's chats do not list the attendee's chat"
	}
	return &c, ""
}

// watermarkSlack is how much older than the watermark, on the provider's own clock, a message
// listed before the watermark message may be stamped and still count as newer: the provider
// orders its listing by its timestamps, which may tie or jitter.
const watermarkSlack = time.Minute

// watermarkFallback is how far before an attempt's start (Redis's clock) reconciliation looks
// when the attempt has no watermark (begun by a version that took none): wide enough for any
// skew between Redis's clock and the provider's that NTP leaves.
const watermarkFallback = time.Hour

// watermarkOf is the watermark of a chat as a guard read it: its last message when the
// provider gave it (chats_get), else its last activity (a chat listing), on the provider's
// clock.
func watermarkOf(c *provider.Chat) *tasks.Watermark {
	wm := &tasks.Watermark{ChatID: c.ID, At: c.Timestamp.Time}
	if m := c.LastMessage; m != nil && m.ID != "" {
		wm.MessageID, wm.At = m.ID, m.Timestamp.Time
	}
	return wm
}

// candidates lists the chat's messages newer than the watermark (newest first), and among
// them ours, not claimed by another send (the ledger's claims, read for the matching ones
// once the listing is done, and the ids in refused), whose content is the send's; it counts
// the matching ones another send has claimed. A failed read of the claims is a *claimsError. "Newer" is the provider's: the messages listed
// before the watermark message; once it is passed (or when the watermark names no message,
// or another chat), listing stops at the first message stamped before the watermark's time
// (minus watermarkSlack when no watermark message can be met). Never a replica's clock.
func (x *execution) candidates(ctx context.Context, chatID string, wm *tasks.Watermark, startedAt time.Time,
	refused map[string]bool) (out []provider.Message, claimedMatches int, seen []provider.Message, err error) {
	var stopBefore time.Time
	markID := ""
	switch {
	case wm == nil:
		stopBefore = startedAt.Add(-watermarkFallback)
	case wm.ChatID == chatID && wm.MessageID != "":
		markID, stopBefore = wm.MessageID, wm.At.Add(-watermarkSlack)
	case !wm.At.IsZero():
		stopBefore = wm.At.Add(-watermarkSlack)
	}
	params := provider.ListMessagesParams{Limit: 250}
	if !stopBefore.IsZero() {
		params.After = stopBefore.Add(-time.Millisecond)
	}
	passed := false
	n := 0
	seen = []provider.Message{}
	var matches []provider.Message
	for m, err := range x.w.p.Messages(ctx, chatID, params) {
		if err != nil {
			return nil, 0, nil, err
		}
		if n++; n > maxScan {
			break
		}
		if markID != "" && (m.ID == markID || (m.ProviderID != "" && m.ProviderID == markID)) {
			passed = true
			continue
		}
		if passed && m.Timestamp.Before(wm.At) {
			break
		}
		if !stopBefore.IsZero() && m.Timestamp.Before(stopBefore) {
			break
		}
		seen = append(seen, m)
		if !bool(m.IsSender) || bool(m.IsEvent) || bool(m.Deleted) || !sameContent(&m, &x.rec.Request) {
			continue
		}
		matches = append(matches, m)
	}
	ids := make([]string, len(matches))
	for i, m := range matches {
		ids[i] = m.ID
	}
	claimed, err := x.w.l.Claimed(ctx, ids)
	if err != nil {
		return nil, 0, nil, &claimsError{err: err}
	}
	for _, m := range matches {
		if claimed[m.ID] || refused[m.ID] {
			claimedMatches++
			continue
		}
		out = append(out, m)
	}
	return out, claimedMatches, seen, nil
}

// claimsError is a failed read of the ledger's claims (Redis), not of the chat.
type claimsError struct{ err error }

func (e *claimsError) Error() string { return "claimed message ids: " + e.err.Error() }
func (e *claimsError) Unwrap() error { return e.err }

// sameContent compares a listed message with the request: text (as normText sees it) and
// the attachments by count and, when listed, file names.
func sameContent(m *provider.Message, req *tasks.SendRequest) bool {
	if !sameText(m.Text, req.Text) {
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

// sameText reports whether a text the provider lists is the text we sent, allowing for what
// a provider or WhatsApp may do to it on the way (see normText); any other difference is
// another message.
func sameText(listed, sent string) bool {
	return normText(listed) == normText(sent)
}

// normText is a text as reconciliation compares it: line ends as LF (CRLF and lone CR
// become LF), Unicode in NFC (composed: "é" one code point, whether it came as one or as
// "e" + combining accent), trailing white space removed from every line, and the whole
// trimmed. Nothing else changes: letters, their case, inner spaces, punctuation, emoji.
func normText(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	s = norm.NFC.String(s)
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRightFunc(l, unicode.IsSpace)
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

// lookupSent finds the id of a message the provider accepted without naming it: exactly one
// unclaimed message of ours with the send's content after the watermark the guards took.
func (x *execution) lookupSent(ctx context.Context, chatID string, startedAt time.Time) (string, bool) {
	cands, _, _, err := x.candidates(ctx, chatID, x.watermark, startedAt, nil)
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
