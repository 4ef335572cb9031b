package ledger

import (
	"errors"
	"testing"
	"time"

	"github.com/sendworker/sendworker/tasks"
)

// TestAttemptWatermarkAndReconcileLater: a new attempt stores its watermark and starts on the
// lease clock; ReconcileLater moves the lease to the next check (later than it was), counts an
// absent read and says why in the record; a new attempt clears all of it.
func TestAttemptWatermarkAndReconcileLater(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rec, gen := e.approved("s1", "acct")
	wm := &tasks.Watermark{ChatID: "chat-1", MessageID: "m-9", At: time.Date(2030, 1, 2, 3, 0, 0, 0, time.UTC)}
	t0 := e.clock.Now()
	res, err := e.l.BeginAttempt(e.ctx, BeginRequest{SendID: "s1", Digest: rec.Digest, Gen: gen, Token: "tok", Lease: time.Minute, Watermark: wm})
	if err != nil || res.Outcome != BeginOK || !res.AttemptStartedAt.Equal(t0) {
		t.Fatalf("begin: %v %v, started %v (want %v)", res.Outcome, err, res.AttemptStartedAt, t0)
	}
	rc := e.get("s1").Reconcile
	if rc == nil || *rc.Watermark != *wm || !rc.AttemptStartedAt.Equal(t0) || rc.AbsentReads != 0 || !rc.NextCheck.IsZero() {
		t.Fatalf("reconcile %+v", rc)
	}

	e.clock.Advance(5 * time.Second)
	lands := t0.Add(11 * time.Minute)
	next, err := e.l.ReconcileLater(e.ctx, "s1", "tok", Undecided{After: 10 * time.Minute, LandsUntil: lands, Absent: true, Why: "absent in read 1"})
	want := e.clock.Now().Add(10 * time.Minute)
	if err != nil || !next.Equal(want) {
		t.Fatalf("reconcile later: %v %v, want %v", next, err, want)
	}
	r := e.get("s1")
	rc = r.Reconcile
	if r.State != tasks.StateSending || rc.AbsentReads != 1 || !rc.NextCheck.Equal(want) || !rc.LandsUntil.Equal(lands) || rc.Why != "absent in read 1" {
		t.Fatalf("after: %s %+v", r.State, rc)
	}
	if !e.leaseUntil("s1").Equal(want) {
		t.Fatalf("lease %v, want %v (extended to the next check)", e.leaseUntil("s1"), want)
	}
	if s, ok := e.zscore(e.l.Keys().Leases(), "s1"); !ok || int64(s) != want.UnixMilli() {
		t.Fatalf("leases %v %v", s, ok)
	}
	e.wantWatch("s1", want)
	e.checkWatch()
	last := r.History[len(r.History)-1]
	if last.State != tasks.StateSending || last.Reason != tasks.ReasonUnknownOutcome || last.Detail != "absent in read 1" || last.Attempt != 1 {
		t.Fatalf("event %+v", last)
	}

	// Before the next check another execution is in flight; at it, it takes over.
	e.clock.Advance(10*time.Minute - time.Millisecond)
	if res := e.begin("s1", gen, "other", time.Minute); res.Outcome != BeginInFlight {
		t.Fatalf("before the next check: %v", res.Outcome)
	}
	e.clock.Advance(time.Millisecond)
	res = e.begin("s1", gen, "reconciler", time.Minute)
	if res.Outcome != BeginReconcile || !res.AttemptStartedAt.Equal(t0) || res.Record.Reconcile.AbsentReads != 1 {
		t.Fatalf("at the next check: %v started %v", res.Outcome, res.AttemptStartedAt)
	}
	// The replaced token is stale; a read that was not absent does not count.
	if _, err := e.l.ReconcileLater(e.ctx, "s1", "tok", Undecided{After: time.Second}); !errors.Is(err, ErrStaleAttempt) {
		t.Fatalf("stale token: %v", err)
	}
	if _, err := e.l.ReconcileLater(e.ctx, "s1", "reconciler", Undecided{After: time.Second, Why: "cannot tell"}); err != nil {
		t.Fatal(err)
	}
	if rc := e.get("s1").Reconcile; rc.AbsentReads != 1 || rc.Why != "cannot tell" {
		t.Fatalf("after a read that was not absent: %+v", rc)
	}

	// Given back, then a new attempt without a watermark: nothing of the old one is left.
	if err := e.l.ResolveReconciled(e.ctx, "s1", "reconciler"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	if res := e.begin("s1", gen, "second", time.Minute); res.Outcome != BeginOK {
		t.Fatalf("second attempt: %v", res.Outcome)
	}
	if rc := e.get("s1").Reconcile; rc.Watermark != nil || rc.AbsentReads != 0 || rc.Why != "" || !rc.NextCheck.IsZero() {
		t.Fatalf("second attempt kept the first's reconciliation: %+v", rc)
	}
	for _, bad := range []Undecided{{After: 0}, {After: -time.Second}} {
		if _, err := e.l.ReconcileLater(e.ctx, "s1", "second", bad); err == nil {
			t.Errorf("ReconcileLater(%+v) accepted", bad)
		}
	}
	if _, err := e.l.ReconcileLater(e.ctx, "nope", "x", Undecided{After: time.Second}); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing send: %v", err)
	}
}
