package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/internal/luafn"
	"github.com/sendworker/sendworker/tasks"
)

// BeginRequest asks to start an attempt of a released send.
type BeginRequest struct {
	SendID, Digest string // from the task payload
	Gen            int64  // from the task payload
	Token          string // random, unique per execution
	Lease          time.Duration
	ContactIDs     []string // checked against the opt-out list atomically
	// Identities are the recipients as WhatsApp persons (the provider's data
	// about the chat), checked in the same script: see Identity.
	Identities []Identity
	// Watermark is the chat's newest message before the sending call, as the
	// provider showed it (nil: none taken). Stored with a new attempt; a
	// reconciliation judges the chat's messages against it, on the provider's
	// clock.
	Watermark *tasks.Watermark
	// ExpectSending: the caller saw the send in state sending and skipped the
	// guards to reconcile it; if it is no longer sending (its owner gave the
	// attempt back, or ended it), the answer is BeginStale, nothing changed.
	ExpectSending bool
	// NoRecord: the caller holds the record (Get) and needs only the answer,
	// so BeginAttempt runs the script alone (one EVALSHA, no MULTI and no
	// read back). Record is then nil, except on the rare paths that need the
	// record as the script left it: BeginFinal and BeginOptedOut (final, so
	// unchanged since) and BeginReconcile (the attempt is now the caller's,
	// and its history holds the takeover), read right after the script.
	NoRecord bool
}

// Identity is a recipient's WhatsApp ids as the provider showed them, phone
// form ("<digits>@s.whatsapp.net") and @lid form, "" for a form not shown.
// BeginAttempt, atomically with its opt-out check: records a pair as one
// person (as LinkIdentity); checks the other form of an id seen alone when a
// link is known (an opt-out under either form refuses the send); and when
// none is, answers BeginIdentityUnresolved if some opt-out of the missing form
// is linked to no one, since it may be the recipient's. Ids of neither form
// are ignored.
type Identity struct{ Phone, LID string }

// identityArgs is ids as beginScript takes them: their count, then a
// (phone, lid) pair each, normalized; ids that name no WhatsApp person are
// left out.
func identityArgs(ids []Identity) []any {
	out := []any{0}
	for _, id := range ids {
		phone, lid := tasks.NormalizeID(id.Phone), tasks.NormalizeID(id.LID)
		if tasks.FormOf(phone) != tasks.FormPhone {
			phone = ""
		}
		if tasks.FormOf(lid) != tasks.FormLID {
			lid = ""
		}
		if phone == "" && lid == "" {
			continue
		}
		out = append(out, phone, lid)
	}
	out[0] = (len(out) - 1) / 2
	return out
}

// BeginOutcome says what BeginAttempt decided.
type BeginOutcome int

// The outcomes of BeginAttempt.
const (
	// BeginOK: the state is now sending, Attempt is the new attempt number; go send.
	BeginOK BeginOutcome = iota
	// BeginFinal: the record is already final; nothing to do (Record set).
	BeginFinal
	// BeginStale: the task's gen or digest is not current, or the send is not
	// approved: drop the task, nothing changed.
	BeginStale
	// BeginHeld: paused; the send is now waiting (reason paused), parked until resume.
	BeginHeld
	// BeginOptedOut: a contact is opted out; the send is now skipped (opted_out), result written.
	BeginOptedOut
	// BeginIdentityUnresolved: a recipient is known by one id form only, nothing links it to
	// the other, and UnlinkedOptOuts opt-outs of that form (Unresolved) are linked to no one:
	// one may be the recipient's. Nothing changed; the caller ends the send for a human.
	BeginIdentityUnresolved
	// BeginInFlight: another execution holds a live lease (until LeaseUntil);
	// nothing changed: retry the task later.
	BeginInFlight
	// BeginReconcile: a previous attempt's lease expired (or its owner ended
	// it early with EndCall) with its outcome unknown; this execution now owns
	// it (token replaced, attempt number unchanged) and must reconcile before
	// any new send.
	BeginReconcile
)

var beginOutcomes = map[string]BeginOutcome{
	"ok": BeginOK, "final": BeginFinal, "stale": BeginStale, "held": BeginHeld,
	"opted_out": BeginOptedOut, "identity_unresolved": BeginIdentityUnresolved, "in_flight": BeginInFlight,
	"reconcile": BeginReconcile,
}

var beginOutcomeNames = [...]string{"ok", "final", "stale", "held", "opted_out", "identity_unresolved", "in_flight",
	"reconcile"}

func (o BeginOutcome) String() string {
	if o >= 0 && int(o) < len(beginOutcomeNames) {
		return beginOutcomeNames[o]
	}
	return fmt.Sprintf("BeginOutcome(%d)", int(o))
}

// BeginResult is the answer of BeginAttempt.
type BeginResult struct {
	Outcome          BeginOutcome
	Record           *tasks.Record
	Attempt          int
	AttemptStartedAt time.Time // start of the attempt begun or being reconciled, on the lease clock (Redis's)
	LeaseUntil       time.Time
	// BeginIdentityUnresolved: the id form the recipient is not known by, and how many
	// opt-outs of that form are linked to no one.
	Unresolved      tasks.IDForm
	UnlinkedOptOuts int64
}

// BeginAttempt re-checks everything at the moment of sending, in one script:
// the record exists (else ErrNotFound), is not final, is approved with the
// task's digest and generation, no pause applies, no contact opted out; then
// it sets sending with r.Token, attempts+1 and a lease of r.Lease. An
// approved or waiting send with a stop request (Reject/Cancel while it was
// sending) is ended as requested instead: BeginFinal. See the BeginOutcome
// values for the other answers.
func (l *Ledger) BeginAttempt(ctx context.Context, r BeginRequest) (BeginResult, error) {
	if r.Token == "" || r.Lease <= 0 {
		return BeginResult{}, errors.New("ledger: begin attempt: a token and a positive lease are required")
	}
	expect := "0"
	if r.ExpectSending {
		expect = "1"
	}
	wm := ""
	if r.Watermark != nil {
		b, err := json.Marshal(r.Watermark)
		if err != nil {
			return BeginResult{}, fmt.Errorf("ledger: begin attempt: watermark: %w", err)
		}
		wm = string(b)
	}
	args := append([]any{r.SendID, r.Gen, r.Digest, r.Token, r.Lease.Milliseconds(), expect, wm},
		identityArgs(r.Identities)...)
	for _, c := range r.ContactIDs {
		args = append(args, c)
	}
	keys := []string{l.opts.ResultsStream, l.keys.Send(r.SendID)}
	if r.NoRecord {
		return l.beginNoRecord(ctx, r.SendID, keys, args)
	}
	if l.opts.WaitReplicas > 0 {
		// WAIT counts the writes of its own connection: it must follow the script on the same
		// one (runAndWait), so the record is read afterwards.
		res, err := l.beginNoRecord(ctx, r.SendID, keys, args)
		if (err == nil || errors.Is(err, ErrNotReplicated)) && res.Record == nil {
			rec, gerr := l.getAfter(ctx, r.SendID)
			if gerr != nil {
				return BeginResult{}, gerr
			}
			res.Record = rec
		}
		return res, err
	}
	rep, err := l.runRecord(ctx, l.lease(beginScript), r.SendID, keys, args...)
	if err != nil {
		return BeginResult{}, err
	}
	outcome, ok := beginOutcomes[rep.code]
	if !ok || rep.st.rec == nil {
		return BeginResult{}, refusal(rep.code, r.SendID, nil)
	}
	if outcome == BeginIdentityUnresolved {
		items, err := stringList(rep.raw)
		if err != nil {
			return BeginResult{}, err
		}
		res, err := unresolvedResult(r.SendID, items)
		res.Record = rep.st.rec
		return res, err
	}
	res := BeginResult{Outcome: outcome, Record: rep.st.rec, Attempt: rep.st.rec.Attempts}
	if outcome == BeginOK || outcome == BeginReconcile || outcome == BeginInFlight {
		res.AttemptStartedAt = msTime(rep.st.attemptStartedMs)
		res.LeaseUntil = msTime(rep.st.leaseUntilMs)
	}
	return res, nil
}

// unresolvedResult decodes beginScript's {"identity_unresolved", form, count}.
func unresolvedResult(sendID string, items []string) (BeginResult, error) {
	if len(items) != 3 {
		return BeginResult{}, fmt.Errorf("ledger: begin attempt %s: unexpected reply %v", sendID, items)
	}
	n, err := strconv.ParseInt(items[2], 10, 64)
	form := tasks.FormOther
	for _, f := range []tasks.IDForm{tasks.FormPhone, tasks.FormLID} {
		if f.String() == items[1] {
			form = f
		}
	}
	if err != nil || form == tasks.FormOther {
		return BeginResult{}, fmt.Errorf("ledger: begin attempt %s: unexpected reply %v", sendID, items)
	}
	return BeginResult{Outcome: BeginIdentityUnresolved, Unresolved: form, UnlinkedOptOuts: n}, nil
}

// replicated is the verdict of BeginAttempt's WAIT: acked replicas (-1 when
// none was asked for), or the error WAIT itself answered.
func (l *Ledger) replicated(sendID string, acked int, waitErr error) error {
	switch {
	case waitErr != nil:
		return fmt.Errorf("send %s: %w (WAIT failed: %v)", sendID, ErrNotReplicated, waitErr)
	case acked < 0 || acked >= l.opts.WaitReplicas:
		return nil
	}
	return fmt.Errorf("send %s: %w (%d of %d within %s)", sendID, ErrNotReplicated, acked, l.opts.WaitReplicas, l.opts.WaitTimeout)
}

// nodeOf is the Redis node that owns key: the client itself, or on Cluster
// the master of key's slot (WAIT counts the replicas of the node it runs on).
func (l *Ledger) nodeOf(ctx context.Context, key string) (redis.UniversalClient, error) {
	if cc, ok := l.rdb.(*redis.ClusterClient); ok {
		return cc.MasterForKey(ctx, key)
	}
	return l.rdb, nil
}

// ConnectedReplicas is the number of replicas connected to the Redis master
// that holds the ledger's keys (what BeginAttempt's WAIT can count on).
func (l *Ledger) ConnectedReplicas(ctx context.Context) (int, error) {
	node, err := l.nodeOf(ctx, l.keys.Outbox())
	if err != nil {
		return 0, fmt.Errorf("ledger: replicas: %w", err)
	}
	info, err := node.Info(ctx, "replication").Result()
	if err != nil {
		return 0, fmt.Errorf("ledger: replicas: %w", err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "connected_slaves:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("ledger: replicas: INFO replication has no connected_slaves")
}

// runAndWait runs s like run, followed in the same round trip (and on the
// same connection, whose writes WAIT counts) by WAIT for Options.WaitReplicas
// replicas on the node of keys[1]. It returns the script's reply, the replicas
// that acknowledged, and WAIT's own error when only WAIT failed.
func (l *Ledger) runAndWait(ctx context.Context, s *luafn.Script, keys []string, args []any) (v any, acked int, waitErr, err error) {
	node, err := l.nodeOf(ctx, keys[1])
	if err != nil {
		return nil, 0, nil, fmt.Errorf("ledger: %w", err)
	}
	all := l.argv(l.nowMs(), args)
	call := l.lua.Call(s)
	for try := 0; ; try++ {
		pipe := node.Pipeline()
		ev := call.Queue(ctx, pipe, keys, all...)
		wait := pipe.Do(ctx, "WAIT", l.opts.WaitReplicas, l.opts.WaitTimeout.Milliseconds())
		_, _ = pipe.Exec(ctx) // the errors are each command's
		if try < luafn.MaxRecover {
			// A script not found (or FCALL refused) did nothing: load it (or
			// fall back to EVALSHA) and run it all again.
			again, err := call.Recover(ctx, node, ev)
			if err != nil {
				return nil, 0, nil, fmt.Errorf("ledger: %w", err)
			}
			if again {
				continue
			}
		}
		if err := ev.Err(); err != nil {
			return nil, 0, nil, fmt.Errorf("ledger: %w", err)
		}
		n, err := wait.Int64()
		if err != nil {
			// The script ran: its changes stand, their replication is unknown.
			return ev.Val(), 0, err, nil
		}
		return ev.Val(), int(n), nil, nil
	}
}

// beginNoRecord is BeginAttempt with BeginRequest.NoRecord: the answer
// comes from the script's reply alone.
func (l *Ledger) beginNoRecord(ctx context.Context, sendID string, keys []string, args []any) (BeginResult, error) {
	var v any
	var err, waitErr error
	acked := -1 // not asked
	if l.opts.WaitReplicas > 0 {
		v, acked, waitErr, err = l.runAndWait(ctx, l.lease(beginScript), keys, args)
	} else {
		v, err = l.run(ctx, l.lease(beginScript), l.nowMs(), keys, args...)
	}
	if err != nil {
		return BeginResult{}, err
	}
	reply, err := stringList(v)
	if err != nil || len(reply) == 0 {
		return BeginResult{}, fmt.Errorf("ledger: begin attempt %s: unexpected reply %v", sendID, v)
	}
	outcome, ok := beginOutcomes[reply[0]]
	if !ok {
		return BeginResult{}, refusal(reply[0], sendID, nil)
	}
	if outcome == BeginIdentityUnresolved {
		return unresolvedResult(sendID, reply)
	}
	ints, err := replyInts(reply[1:])
	if err != nil {
		return BeginResult{}, fmt.Errorf("ledger: begin attempt %s: %w", sendID, err)
	}
	res := BeginResult{Outcome: outcome}
	switch {
	case (outcome == BeginOK || outcome == BeginReconcile) && len(ints) == 3:
		res.Attempt, res.AttemptStartedAt, res.LeaseUntil = int(ints[0]), msTime(ints[1]), msTime(ints[2])
	case outcome == BeginInFlight && len(ints) == 1:
		res.LeaseUntil = msTime(ints[0])
	case len(ints) == 0 && outcome != BeginOK && outcome != BeginReconcile && outcome != BeginInFlight:
	default:
		return BeginResult{}, fmt.Errorf("ledger: begin attempt %s: unexpected reply %v", sendID, reply)
	}
	if outcome == BeginFinal || outcome == BeginOptedOut || outcome == BeginReconcile {
		rec, err := l.getAfter(ctx, sendID)
		if err != nil {
			return BeginResult{}, err
		}
		res.Record = rec
		if outcome != BeginReconcile {
			res.Attempt = rec.Attempts
		}
	}
	if outcome != BeginOK {
		// Only a new attempt leads to a sending call. A takeover that a failover loses is
		// taken over again and reconciled again: reconciliation never sends by itself.
		acked, waitErr = -1, nil
	}
	return res, l.replicated(sendID, acked, waitErr)
}

// getAfter is Get right after a script that changed the send: retried a few
// times, on a context of its own, since the change is already made and a
// caller that never learns of it would have to wait for recovery.
func (l *Ledger) getAfter(ctx context.Context, sendID string) (*tasks.Record, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	var err error
	for try := range 3 {
		if try > 0 {
			select {
			case <-ctx.Done():
				return nil, err
			case <-time.After(time.Duration(try) * 200 * time.Millisecond):
			}
		}
		var rec *tasks.Record
		if rec, err = l.Get(ctx, sendID); err == nil || errors.Is(err, ErrNotFound) {
			return rec, err
		}
	}
	return nil, err
}

// replyInts parses the decimal integers of a script reply.
func replyInts(items []string) ([]int64, error) {
	out := make([]int64, len(items))
	for i, s := range items {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bad integer %q in reply", s)
		}
		out[i] = n
	}
	return out, nil
}

// Outcome is how a send ended, for End. State must be final.
type Outcome struct {
	State     tasks.State
	Reason    tasks.Reason
	Detail    string
	MessageID string
	ChatID    string
	DryRun    bool
}

func finishArgs(sendID, token string, out Outcome) []any {
	dry := "0"
	if out.DryRun {
		dry = "1"
	}
	return []any{sendID, token, string(out.State), string(out.Reason), out.Detail, out.MessageID, out.ChatID, dry}
}

// Ended is what End answers: the send's result as written to the results
// stream (tasks.Result JSON) and its attempts.
type Ended struct {
	Result   []byte
	Attempts int
}

// End ends a send. token is the current attempt token (state sending), or
// "" when finishing before any attempt (state approved or waiting). A
// mismatch is *StateError{ErrStaleAttempt}; an already final send is
// *StateError{ErrFinal}. One script writes the record, indexes, history, the
// results stream entry, the claimed message id and the retention expiry.
//
// Only a send of a new message (chats_messages_send, chats_create) finished
// sent claims its MessageID ({p}:msg:<id> → send: SendByMessage, Claimed).
// Its claim is atomic: if another send already owns the id, End refuses with
// *StateError{ErrMessageClaimed} and changes nothing. A reaction, edit or
// delete stores the target's id in the record and result but never claims
// it.
//
// End runs the script alone (one EVALSHA, no MULTI and no read back of the
// record).
func (l *Ledger) End(ctx context.Context, sendID, token string, out Outcome) (Ended, error) {
	if !out.State.Terminal() {
		return Ended{}, fmt.Errorf("ledger: end: %q is not a final state", out.State)
	}
	v, err := l.run(ctx, finishScript, l.nowMs(), []string{l.opts.ResultsStream, l.keys.Send(sendID)},
		finishArgs(sendID, token, out)...)
	if err != nil {
		return Ended{}, err
	}
	reply, err := stringList(v)
	if err != nil || len(reply) == 0 {
		return Ended{}, fmt.Errorf("ledger: end %s: unexpected reply %v", sendID, v)
	}
	if reply[0] != "ok" {
		return Ended{}, refusal(reply[0], sendID, nil)
	}
	if len(reply) != 3 {
		return Ended{}, fmt.Errorf("ledger: end %s: unexpected reply of %d items", sendID, len(reply))
	}
	n, err := strconv.Atoi(reply[2])
	if err != nil {
		return Ended{}, fmt.Errorf("ledger: end %s: bad attempts %q", sendID, reply[2])
	}
	return Ended{Result: []byte(reply[1]), Attempts: n}, nil
}

// Defer parks a send until a time: from approved/waiting (token "") or from
// sending with that token when the call certainly did not go out. The send
// becomes waiting with Wait{until, reason}, its attempt token is cleared and
// it is in the outbox at until with a new release generation. A send with a
// stop request (Reject/Cancel while sending) is ended instead as requested
// (rejected/canceled, result written): the record returned is then final,
// and the caller must not send it.
func (l *Ledger) Defer(ctx context.Context, sendID, token string, until time.Time, reason tasks.Reason) (*tasks.Record, error) {
	if until.IsZero() || reason == "" {
		return nil, errors.New("ledger: defer: until and reason are required")
	}
	ms := until.UnixMilli()
	r, err := l.runRecord(ctx, deferScript, sendID, []string{l.opts.ResultsStream, l.keys.Send(sendID)},
		sendID, token, ms, string(reason), isoMs(ms))
	return recordOrError(r, err, sendID)
}

// ResolveReconciled gives back an attempt that reconciliation found clearly
// not delivered: sending (with token) → approved, token cleared; the caller
// then calls BeginAttempt again with the same task. Should it die first, an
// outbox entry at the end of its lease (same generation) releases the send
// again. A send with a stop request (Reject/Cancel while sending) is ended
// instead as requested (rejected/canceled, result written); the nil error is
// the same, and the caller's next BeginAttempt answers BeginFinal (a fresh
// Get shows the final record).
func (l *Ledger) ResolveReconciled(ctx context.Context, sendID, token string) error {
	r, err := l.runRecord(ctx, resolveScript, sendID, []string{l.opts.ResultsStream, l.keys.Send(sendID)},
		sendID, token)
	_, err = recordOrError(r, err, sendID)
	return err
}

// EndCall is the owner of the current attempt (state sending, token its
// attempt token) declaring its sending call over with the outcome unknown:
// the send stays sending with the same token, but its lease now ends after
// (from now, on the lease clock: see LeaseClock) instead of waiting out the
// whole lease. A BeginAttempt before then still gets BeginInFlight; from then
// on, BeginReconcile (the usual takeover: new token, same attempt, reconcile
// before any new send); RecoverExpiredLeases recovers the send a grace later if
// no task comes. The lease is only ever shortened: an end after the current
// lease end leaves the lease as it is. {p}:leases and the watch follow the new
// lease end, and a history event (reason unknown_outcome, detail "reconcile
// at <time>") records the call.
//
// Until a reconciling execution takes over, the owner may still end its
// attempt (End, Defer, ResolveReconciled) with its token. A token that is
// not the current one, or a send not sending, is *StateError{ErrStaleAttempt};
// a final send *StateError{ErrFinal}.
func (l *Ledger) EndCall(ctx context.Context, sendID, token string, after time.Duration) error {
	if token == "" {
		return errors.New("ledger: end call: a token is required")
	}
	r, err := l.runRecord(ctx, l.lease(endCallScript), sendID, []string{l.keys.Send(sendID)},
		sendID, token, after.Milliseconds(), string(tasks.ReasonUnknownOutcome))
	_, err = recordOrError(r, err, sendID)
	return err
}

// Undecided is what ReconcileLater records about an attempt still undecided.
type Undecided struct {
	After      time.Duration // the next check, from now on the lease clock
	LandsUntil time.Time     // until when the attempt could still land (lease clock)
	Absent     bool          // this read found the message absent (counted in AbsentReads)
	Why        string        // shown in the record and its history
}

// ReconcileLater keeps the current attempt (state sending, token the
// reconciling execution's) undecided: its lease now ends at the next check
// (u.After from now on the lease clock, sooner or later than it did), so that
// only then another execution takes it over and reads the chat again. The
// record's Reconcile shows u, and a history event (reason unknown_outcome,
// detail u.Why) records the read. It answers the next check's time. Errors
// are EndCall's.
func (l *Ledger) ReconcileLater(ctx context.Context, sendID, token string, u Undecided) (time.Time, error) {
	if token == "" || u.After <= 0 {
		return time.Time{}, errors.New("ledger: reconcile later: a token and a positive delay are required")
	}
	absent := "0"
	if u.Absent {
		absent = "1"
	}
	lands := int64(0)
	if !u.LandsUntil.IsZero() {
		lands = u.LandsUntil.UnixMilli()
	}
	v, err := l.run(ctx, l.lease(reconcileLaterScript), l.nowMs(), []string{l.keys.Send(sendID)},
		sendID, token, u.After.Milliseconds(), lands, absent, u.Why, string(tasks.ReasonUnknownOutcome))
	if err != nil {
		return time.Time{}, err
	}
	reply, err := stringList(v)
	if err != nil || len(reply) == 0 {
		return time.Time{}, fmt.Errorf("ledger: reconcile later %s: unexpected reply %v", sendID, v)
	}
	if reply[0] != "ok" {
		return time.Time{}, refusal(reply[0], sendID, nil)
	}
	ints, err := replyInts(reply[1:])
	if err != nil || len(ints) != 1 {
		return time.Time{}, fmt.Errorf("ledger: reconcile later %s: unexpected reply %v", sendID, reply)
	}
	return msTime(ints[0]), nil
}

// Claimed returns which of the provider message ids are attributed to a send
// (End(sent) of a new message, or an admin's marked_sent): one MGET of their
// {p}:msg:<id> keys.
func (l *Ledger) Claimed(ctx context.Context, messageIDs []string) (map[string]bool, error) {
	out := make(map[string]bool, len(messageIDs))
	if len(messageIDs) == 0 {
		return out, nil
	}
	keys := make([]string, len(messageIDs))
	for i, id := range messageIDs {
		keys[i] = l.keys.Msg(id)
	}
	vals, err := l.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("ledger: claimed: %w", err)
	}
	for i, v := range vals {
		if v != nil {
			out[messageIDs[i]] = true
		}
	}
	return out, nil
}

// SendByMessage returns the send of a new message (chats_messages_send,
// chats_create) whose End(sent) recorded messageID, or ErrNotFound.
func (l *Ledger) SendByMessage(ctx context.Context, messageID string) (string, error) {
	id, err := l.rdb.Get(ctx, l.keys.Msg(messageID)).Result()
	if errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("message %s: %w", messageID, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("ledger: send by message: %w", err)
	}
	return id, nil
}
