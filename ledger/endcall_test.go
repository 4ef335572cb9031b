package ledger

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/sendworker/sendworker/tasks"
)

// leaseUntil is the stored lease end of a send.
func (e *env) leaseUntil(id string) time.Time {
	e.t.Helper()
	ms, err := e.rdb.HGet(e.ctx, e.l.Keys().Send(id), fLeaseUntilMs).Int64()
	if err != nil {
		e.t.Fatalf("lease of %s: %v", id, err)
	}
	return time.UnixMilli(ms).UTC()
}

// TestEndCall: the owner shortens its lease to reconcileAt; leases and watch
// follow; a BeginAttempt before reconcileAt is in flight, at it reconciles.
func TestEndCall(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	t0 := e.clock.Now()
	_, token := e.sending("s1", "acct") // lease until t0+1m
	gen := e.gen("s1")
	e.clock.Advance(5 * time.Second)
	at := e.clock.Now().Add(10 * time.Second)
	if err := e.l.EndCall(e.ctx, "s1", token, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	rec := e.get("s1")
	wantState(t, rec, tasks.StateSending, "")
	if !e.leaseUntil("s1").Equal(at) || rec.Gen != gen || rec.Attempts != 1 || !rec.UpdatedAt.Equal(e.clock.Now()) {
		t.Fatalf("lease %v (want %v), gen %d, attempts %d, updated %v", e.leaseUntil("s1"), at, rec.Gen, rec.Attempts, rec.UpdatedAt)
	}
	if last := rec.History[len(rec.History)-1]; last.State != tasks.StateSending || last.Reason != tasks.ReasonUnknownOutcome ||
		last.Attempt != 1 || last.Detail != "reconcile at 2030-01-02T03:04:20Z" {
		t.Fatalf("history event %+v", last)
	}
	if s, ok := e.zscore(e.l.Keys().Leases(), "s1"); !ok || int64(s) != at.UnixMilli() {
		t.Fatalf("leases %v %v", s, ok)
	}
	e.wantWatch("s1", at)
	e.checkWatch()

	// Before reconcileAt: in flight, nothing changed.
	e.clock.Advance(10*time.Second - time.Millisecond)
	res := e.begin("s1", gen, "other", time.Minute)
	if res.Outcome != BeginInFlight || !res.LeaseUntil.Equal(at) || !res.AttemptStartedAt.Equal(t0) {
		t.Fatalf("before reconcileAt: %v lease %v started %v", res.Outcome, res.LeaseUntil, res.AttemptStartedAt)
	}
	// At reconcileAt: the reconciler takes the attempt over.
	e.clock.Advance(time.Millisecond)
	res = e.begin("s1", gen, "reconciler", time.Minute)
	if res.Outcome != BeginReconcile || res.Attempt != 1 || !res.AttemptStartedAt.Equal(t0) {
		t.Fatalf("at reconcileAt: %v attempt %d", res.Outcome, res.Attempt)
	}
	e.checkWatch()
	// The old owner is stale now.
	if err := e.l.EndCall(e.ctx, "s1", token, 0); err == nil {
		t.Fatal("EndCall with the replaced token")
	} else {
		wantStateErr(t, err, ErrStaleAttempt, tasks.StateSending)
	}
	if _, err := e.l.Finish(e.ctx, "s1", "reconciler", Outcome{State: tasks.StateSent, MessageID: "m1"}); err != nil {
		t.Fatal(err)
	}
	e.checkWatch()
}

// TestEndCallRefusals: wrong token, not sending, final, missing.
func TestEndCallRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const now = time.Duration(0)
	_, token := e.sending("s1", "acct")
	before := e.get("s1")
	lease := e.leaseUntil("s1")
	err := e.l.EndCall(e.ctx, "s1", "not-the-token", now)
	wantStateErr(t, err, ErrStaleAttempt, tasks.StateSending)
	if after := e.get("s1"); len(after.History) != len(before.History) || !e.leaseUntil("s1").Equal(lease) {
		t.Fatal("a refused EndCall changed the send")
	}

	e.approved("s2", "acct")
	wantStateErr(t, e.l.EndCall(e.ctx, "s2", token, now), ErrStaleAttempt, tasks.StateApproved)
	e.create("s3", "acct")
	wantStateErr(t, e.l.EndCall(e.ctx, "s3", token, now), ErrStaleAttempt, tasks.StatePendingApproval)
	e.waiting("s4", "acct")
	wantStateErr(t, e.l.EndCall(e.ctx, "s4", token, now), ErrStaleAttempt, tasks.StateWaiting)

	if _, err := e.l.Finish(e.ctx, "s1", token, Outcome{State: tasks.StateSent, MessageID: "m1"}); err != nil {
		t.Fatal(err)
	}
	wantStateErr(t, e.l.EndCall(e.ctx, "s1", token, now), ErrFinal, tasks.StateSent)
	if err := e.l.EndCall(e.ctx, "nope", token, now); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing send: %v", err)
	}
	if err := e.l.EndCall(e.ctx, "s1", "", now); err == nil {
		t.Fatal("empty token accepted")
	}
	e.checkWatch()
}

// TestEndCallNeverExtends: a reconcileAt after the lease end leaves the lease;
// a second, earlier one shortens it again.
func TestEndCallNeverExtends(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, token := e.sending("s1", "acct")
	lease := e.leaseUntil("s1")
	if err := e.endCallAt("s1", token, lease.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := e.leaseUntil("s1"); !got.Equal(lease) {
		t.Fatalf("lease extended to %v (was %v)", got, lease)
	}
	if s, _ := e.zscore(e.l.Keys().Leases(), "s1"); int64(s) != lease.UnixMilli() {
		t.Fatalf("leases score %v", s)
	}
	e.wantWatch("s1", lease)
	at := lease.Add(-30 * time.Second)
	if err := e.endCallAt("s1", token, at); err != nil {
		t.Fatal(err)
	}
	if err := e.endCallAt("s1", token, at.Add(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := e.leaseUntil("s1"); !got.Equal(at) {
		t.Fatalf("lease %v, want %v", got, at)
	}
	e.wantWatch("s1", at)
	e.checkWatch()
	// A reconcileAt in the past ends the lease at once.
	past := e.clock.Now().Add(-time.Second)
	if err := e.endCallAt("s1", token, past); err != nil {
		t.Fatal(err)
	}
	if res := e.begin("s1", e.gen("s1"), "reconciler", time.Minute); res.Outcome != BeginReconcile {
		t.Fatalf("after a past reconcileAt: %v", res.Outcome)
	}
	e.checkWatch()
}

// TestEndCallThenRecoverExpiredLeases: with no task coming, the send is
// recovered a grace after reconcileAt (long before its original lease end).
func TestEndCallThenRecoverExpiredLeases(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, token := e.sending("s1", "acct") // lease until t0+1m
	gen := e.gen("s1")
	at := e.clock.Now().Add(2 * time.Second)
	if err := e.endCallAt("s1", token, at); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2*time.Second + leaseGrace)
	if ids := e.recoverLeases(10); len(ids) != 0 {
		t.Fatalf("recovered at reconcileAt + grace: %v", ids)
	}
	e.clock.Advance(time.Millisecond)
	if ids := e.recoverLeases(10); !slices.Equal(ids, []string{"s1"}) {
		t.Fatalf("recovered %v", ids)
	}
	if e.gen("s1") != gen+1 {
		t.Fatalf("gen %d, want %d", e.gen("s1"), gen+1)
	}
	if last := e.get("s1").History; last[len(last)-1].Detail != "recovered: lease expired at 2030-01-02T03:04:07Z" {
		t.Fatalf("history %+v", last[len(last)-1])
	}
	e.checkWatch()
	if due := e.releaseAll(); len(due) != 1 || due[0].Gen != gen+1 {
		t.Fatalf("due %+v", due)
	}
	if res := e.begin("s1", gen+1, "new", time.Minute); res.Outcome != BeginReconcile {
		t.Fatalf("new task: %v", res.Outcome)
	}
	e.checkWatch()
}

// TestEndCallAfterRecovery: an owner still in its call when the watchdog
// re-scheduled the send (outbox, out of leases) shortens its lease without
// putting it back in leases or moving its watch off the outbox time.
func TestEndCallAfterRecovery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, token := e.sending("s1", "acct")
	e.clock.Advance(time.Minute + leaseGrace + time.Millisecond)
	if ids := e.recoverLeases(10); len(ids) != 1 {
		t.Fatalf("recovered %v", ids)
	}
	watch, _ := e.watchAt("s1")
	if err := e.endCallAt("s1", token, e.clock.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.zscore(e.l.Keys().Leases(), "s1"); ok {
		t.Fatal("back in leases")
	}
	e.wantWatch("s1", watch)
	e.checkWatch()
}

// TestTransitionsAfterScriptFlush: a transition whose script Redis no longer
// has (restart, SCRIPT FLUSH) loads it and runs once.
func TestTransitionsAfterScriptFlush(t *testing.T) {
	e := newEnv(t)
	rec := e.create("s1", "acct")
	if err := e.rdb.ScriptFlush(e.ctx).Err(); err != nil {
		t.Fatal(err)
	}
	rec, err := e.l.Approve(e.ctx, "s1", rec.Digest, "approver", "")
	if err != nil {
		t.Fatal(err)
	}
	wantState(t, rec, tasks.StateApproved, "")
	if n := len(rec.History); n != 2 {
		t.Fatalf("history of %d events, want 2 (approved once)", n)
	}
	if got := e.auditEvents(); !slices.Equal(got, []string{"enqueued", "approved"}) {
		t.Fatalf("audit %v", got)
	}
	e.checkWatch()
}

// endCallAt is EndCall with the reconcile time given on the injected clock (the tests' lease
// clock).
func (e *env) endCallAt(sendID, token string, at time.Time) error {
	return e.l.EndCall(e.ctx, sendID, token, at.Sub(e.clock.Now()))
}
