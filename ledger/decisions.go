package ledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/tasks"
)

// Approve approves a pending send: the digest must be the record's, the
// approver must not be the requester, and the deadline must not have passed
// (else the send is expired in the same script and a *StateError{ErrNotPending,
// Current: expired} returned). On success the send is approved and in the
// outbox at now with a new release generation.
func (l *Ledger) Approve(ctx context.Context, sendID, digest, by, note string) (*tasks.Record, error) {
	if by == "" {
		return nil, errors.New("ledger: approve: approver identity is required")
	}
	keys := []string{l.opts.ResultsStream, l.keys.Send(sendID)}
	if l.opts.WaitReplicas > 0 {
		return l.approveAndWait(ctx, sendID, keys, []any{sendID, digest, by, note})
	}
	r, err := l.runRecord(ctx, approveScript, sendID, keys, sendID, digest, by, note)
	return recordOrError(r, err, sendID)
}

// approveAndWait is Approve with Options.WaitReplicas: the script, then WAIT on the same
// connection, as BeginAttempt does; an approval is then as durable as an attempt start. When
// too few replicas acknowledged it in time the approval stands on the master and the answer
// is the record with ErrNotReplicated: the caller must not report it as done (a failover
// could still lose it).
func (l *Ledger) approveAndWait(ctx context.Context, sendID string, keys []string, args []any) (*tasks.Record, error) {
	v, acked, waitErr, err := l.runAndWait(ctx, approveScript, keys, args)
	if err != nil {
		return nil, err
	}
	reply, err := stringList(v)
	if err != nil || len(reply) == 0 {
		return nil, fmt.Errorf("ledger: approve %s: unexpected reply %v", sendID, v)
	}
	rec, gerr := l.getAfter(ctx, sendID)
	if reply[0] != "ok" {
		return nil, refusal(reply[0], sendID, rec)
	}
	if gerr != nil {
		return nil, gerr
	}
	if err := l.replicated(sendID, acked, waitErr); err != nil {
		return rec, fmt.Errorf("approve: %w", err)
	}
	return rec, nil
}

// Reject ends a send that has not started sending: state rejected (see stop
// for a send being sent).
func (l *Ledger) Reject(ctx context.Context, sendID, by, note string) (*tasks.Record, error) {
	return l.stop(ctx, sendID, by, note, tasks.StateRejected, tasks.ReasonRejected, "rejected")
}

// Cancel ends a send that has not started sending: state canceled (see stop
// for a send being sent).
func (l *Ledger) Cancel(ctx context.Context, sendID, by, note string) (*tasks.Record, error) {
	return l.stop(ctx, sendID, by, note, tasks.StateCanceled, tasks.ReasonCanceled, "canceled")
}

// stop is Reject and Cancel: allowed from pending_approval, approved and
// waiting; from a final state → *StateError{ErrFinal}. The result is written
// like End's. From sending → *StateError{ErrStopPending} (errors.Is
// ErrTooLate too): nothing is stopped now, but the request is recorded on the
// send (the first one is kept), in its history and the audit stream
// ("<event>_requested"); if the attempt turns out not delivered (Defer,
// ResolveReconciled) the send ends rejected or canceled as requested, with
// the decision of the request; if it went out (End sent) it ends sent.
func (l *Ledger) stop(ctx context.Context, sendID, by, note string, state tasks.State, reason tasks.Reason, auditEvent string) (*tasks.Record, error) {
	r, err := l.runRecord(ctx, stopScript, sendID, []string{l.opts.ResultsStream, l.keys.Send(sendID)},
		sendID, by, note, string(state), string(reason), auditEvent)
	return recordOrError(r, err, sendID)
}

// ExpireDue expires up to limit (default 100, at most 1000) pending sends
// whose deadline passed (reason approval_expired, result written) and
// returns their ids.
func (l *Ledger) ExpireDue(ctx context.Context, limit int) ([]string, error) {
	limit = clampLimit(limit)
	v, err := l.run(ctx, expireScript, l.nowMs(), []string{l.opts.ResultsStream, l.keys.Deadlines()}, limit)
	if err != nil {
		return nil, err
	}
	return stringList(v)
}

func clampLimit(limit int) int {
	switch {
	case limit <= 0:
		return 100
	case limit > 1000:
		return 1000
	}
	return limit
}

// resumeBatch bounds the held sends one resume script call moves.
const resumeBatch = 1000

// SetPaused turns the global ("" account) or one account's kill switch on or
// off. A paused send is held at BeginAttempt; resume moves the held sends of
// that scope to the outbox with a new generation. A huge held set is moved by
// several script calls of at most 1000 sends each, not cut short by the
// caller's cancellation; if Redis fails half-way the rest stay held until
// FinishResumes (the daemon's maintenance loop, every few seconds) or another
// SetPaused(false) moves them; a scope paused again meanwhile keeps them.
func (l *Ledger) SetPaused(ctx context.Context, accountID string, paused bool, by string) error {
	flag, held := l.keys.PausedGlobal(), l.keys.HeldGlobal()
	if accountID != "" {
		flag, held = l.keys.PausedAccounts(), l.keys.HeldAccount(accountID)
	}
	if paused {
		_, err := l.run(ctx, pauseScript, l.nowMs(), []string{flag}, accountID, by)
		return err
	}
	// Once the flag is cleared the held sends must all move: a caller that
	// goes away (an admin's HTTP request cancelled) must not stop the move
	// half-way, so the loop runs on its own bounded context.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	_, err := l.moveHeld(ctx, flag, held, accountID, by, true)
	return err
}

// moveHeld runs resumeScript until the held set is empty: the first call
// clears the flag when lift is set; without lift (or after the first call) a
// scope paused again stops the move. It returns the sends moved.
func (l *Ledger) moveHeld(ctx context.Context, flag, held, accountID, by string, lift bool) (int, error) {
	first := "0"
	if lift {
		first = "1"
	}
	moved := 0
	for {
		v, err := l.run(ctx, resumeScript, l.nowMs(), []string{flag, held}, accountID, by, resumeBatch, first)
		if err != nil {
			return moved, err
		}
		first = "0"
		n, _ := v.(int64)
		if n > 0 {
			moved += int(n)
		}
		if n < resumeBatch {
			return moved, nil
		}
	}
}

// ResumeBy is the actor FinishResumes records on the sends it releases.
const ResumeBy = "system"

// FinishResumes completes the resumes that did not finish: a scope (global,
// or an account) whose pause is lifted but whose held set still holds sends,
// because Redis failed while SetPaused(false) moved them. Those sends go to
// the outbox as the resume would have moved them (history by ResumeBy). Any
// replica may call it, at any time; it returns how many sends it moved. The
// daemon calls it from its maintenance loop.
func (l *Ledger) FinishResumes(ctx context.Context) (int, error) {
	v, err := l.run(ctx, unfinishedResumesScript, l.nowMs(),
		[]string{l.keys.PausedGlobal(), l.keys.PausedAccounts(), l.keys.HeldGlobal(), l.keys.HeldAccounts()})
	if err != nil {
		return 0, err
	}
	scopes, err := stringList(v)
	if err != nil || len(scopes) == 0 {
		return 0, fmt.Errorf("ledger: finish resumes: unexpected reply %v", v)
	}
	moved := 0
	if scopes[0] == "1" {
		n, err := l.moveHeld(ctx, l.keys.PausedGlobal(), l.keys.HeldGlobal(), "", ResumeBy, false)
		moved += n
		if err != nil {
			return moved, err
		}
	}
	for _, acct := range scopes[1:] {
		n, err := l.moveHeld(ctx, l.keys.PausedAccounts(), l.keys.HeldAccount(acct), acct, ResumeBy, false)
		moved += n
		if err != nil {
			return moved, err
		}
	}
	return moved, nil
}

// PauseState reports the kill switches: global, and the paused accounts
// (sorted).
func (l *Ledger) PauseState(ctx context.Context) (bool, []string, error) {
	pipe := l.rdb.TxPipeline()
	g := pipe.Exists(ctx, l.keys.PausedGlobal())
	a := pipe.SMembers(ctx, l.keys.PausedAccounts())
	if _, err := pipe.Exec(ctx); err != nil {
		return false, nil, fmt.Errorf("ledger: pause state: %w", err)
	}
	accounts := a.Val()
	slices.Sort(accounts)
	return g.Val() == 1, accounts, nil
}

// AddOptOut puts a contact id (attendee provider id or chat id) on the
// opt-out list, under every known id of the person (see tasks.PersonOf): a
// WhatsApp id is normalized and its linked id of the other form, when a link
// is known (LinkIdentity), is opted out too; audited when it was not there.
func (l *Ledger) AddOptOut(ctx context.Context, contactID, by string) error {
	return l.optOut(ctx, contactID, by, "1")
}

// RemoveOptOut takes a contact id, and its linked id of the other form, off
// the opt-out list; audited when it was there.
func (l *Ledger) RemoveOptOut(ctx context.Context, contactID, by string) error {
	return l.optOut(ctx, contactID, by, "0")
}

func (l *Ledger) optOut(ctx context.Context, contactID, by, add string) error {
	contactID, form, err := optOutContact(contactID)
	if err != nil {
		return err
	}
	_, err = l.run(ctx, optOutScript, l.nowMs(), []string{l.keys.OptOut()}, contactID, by, add, form)
	return err
}

// optOutContact normalizes a contact id for the opt-out list (a phone number written with a
// leading "+" becomes its phone-form WhatsApp id) and returns its WhatsApp id form
// ("phone", "lid", or "" for another id), which the opt-out scripts use to file it under every
// known form of the person. Every way onto or off the list goes through it.
func optOutContact(contactID string) (id, form string, err error) {
	id = tasks.NormalizeID(contactID)
	if phone, ok := tasks.PhoneID(id); ok && strings.HasPrefix(id, "+") {
		// A number in international format ("+33 6 12 34 56 78"): the person's phone-form id,
		// which is what the checks at dispatch compare; stored raw it would never match.
		id = phone
	}
	if id == "" || strings.Contains(id, "\n") {
		return "", "", errors.New("ledger: opt-out: contact id is required")
	}
	if strings.HasPrefix(id, unlinkedMarkerPrefix) {
		return "", "", fmt.Errorf("ledger: opt-out: %q is reserved", id)
	}
	if f := tasks.FormOf(id); f != tasks.FormOther {
		form = f.String()
	}
	return id, form, nil
}

// LinkIdentity records what the provider's data showed: a and b are the two
// forms of one WhatsApp person (one "<digits>@s.whatsapp.net", the other
// "<opaque>@lid", in either order). An opt-out of either then covers both,
// including one added before the link. Anything else (two ids of one form, an
// id that is not a WhatsApp user id) is ignored: there is nothing to link.
func (l *Ledger) LinkIdentity(ctx context.Context, a, b string) error {
	a, b = tasks.NormalizeID(a), tasks.NormalizeID(b)
	if tasks.FormOf(a) == tasks.FormLID {
		a, b = b, a
	}
	if tasks.FormOf(a) != tasks.FormPhone || tasks.FormOf(b) != tasks.FormLID {
		return nil
	}
	_, err := l.run(ctx, linkScript, l.nowMs(), []string{l.keys.OptOut()}, a, b)
	return err
}

// LinkedID returns the id of the other form linked to a WhatsApp id, or "".
func (l *Ledger) LinkedID(ctx context.Context, id string) (string, error) {
	v, err := l.rdb.HGet(ctx, l.keys.IDLink(), tasks.NormalizeID(id)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("ledger: identity link: %w", err)
	}
	return v, nil
}

// unlinkedMarkerPrefix starts the marker members older releases kept in the opt-out set, one
// per id form while an opt-out of that form was linked to no one. None is written any more
// (BeginAttempt counts the unlinked opt-outs themselves); those left are never listed nor
// matched, and no contact id may start with it.
const unlinkedMarkerPrefix = "?unlinked:"

// IsOptedOut reports whether any of the contact ids is on the opt-out list.
func (l *Ledger) IsOptedOut(ctx context.Context, contactIDs ...string) (bool, error) {
	if len(contactIDs) == 0 {
		return false, nil
	}
	members := make([]any, len(contactIDs))
	for i, c := range contactIDs {
		members[i] = tasks.NormalizeID(c)
	}
	found, err := l.rdb.SMIsMember(ctx, l.keys.OptOut(), members...).Result()
	if err != nil {
		return false, fmt.Errorf("ledger: opt-out: %w", err)
	}
	return slices.Contains(found, true), nil
}

// OptOuts lists the opt-out list, sorted (without its markers).
func (l *Ledger) OptOuts(ctx context.Context) ([]string, error) {
	ids, err := l.rdb.SMembers(ctx, l.keys.OptOut()).Result()
	if err != nil {
		return nil, fmt.Errorf("ledger: opt-outs: %w", err)
	}
	ids = slices.DeleteFunc(ids, func(id string) bool { return strings.HasPrefix(id, unlinkedMarkerPrefix) })
	slices.Sort(ids)
	return ids, nil
}
