package ledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sendworker/sendworker/tasks"
)

func TestApprove(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rec := e.create("s1", "acct")
	if _, err := e.l.Approve(e.ctx, "s1", "other-digest", "approver", ""); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("wrong digest: %v", err)
	}
	if _, err := e.l.Approve(e.ctx, "s1", rec.Digest, "scheduler", ""); !errors.Is(err, ErrSelfApproval) {
		t.Fatalf("self approval: %v", err)
	}
	if _, err := e.l.Approve(e.ctx, "missing", rec.Digest, "approver", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	got, err := e.l.Approve(e.ctx, "s1", rec.Digest, "approver", "looks good")
	if err != nil {
		t.Fatal(err)
	}
	wantState(t, got, tasks.StateApproved, "")
	if a := got.Approval; a == nil || a.By != "approver" || a.Digest != rec.Digest || a.Note != "looks good" || !a.At.Equal(e.clock.Now()) {
		t.Fatalf("approval %+v", got.Approval)
	}
	k := e.l.Keys()
	if score, ok := e.zscore(k.Outbox(), "s1"); !ok || int64(score) != e.clock.Now().UnixMilli() {
		t.Fatalf("outbox entry %v %v", score, ok)
	}
	if _, ok := e.zscore(k.Deadlines(), "s1"); ok {
		t.Fatal("still in deadlines")
	}
	if e.gen("s1") != 1 {
		t.Fatalf("gen %d", e.gen("s1"))
	}
	_, err = e.l.Approve(e.ctx, "s1", rec.Digest, "approver2", "")
	wantStateErr(t, err, ErrNotPending, tasks.StateApproved)
	if got := e.auditEvents(); !slices.Equal(got, []string{"enqueued", "approved"}) {
		t.Fatalf("audit %v", got)
	}
}

func TestApproveAfterDeadlineExpires(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rec := e.create("s1", "acct")
	e.clock.Advance(time.Hour) // deadline reached
	_, err := e.l.Approve(e.ctx, "s1", rec.Digest, "approver", "")
	wantStateErr(t, err, ErrNotPending, tasks.StateExpired)
	got := e.get("s1")
	wantState(t, got, tasks.StateExpired, tasks.ReasonApprovalExpired)
	if got.Result == nil || got.Result.State != tasks.StateExpired {
		t.Fatalf("result %+v", got.Result)
	}
	if res := e.results(); len(res) != 1 || res[0].Values["state"] != "expired" {
		t.Fatalf("results %v", res)
	}
	if got := e.auditEvents(); !slices.Equal(got, []string{"enqueued", "expired"}) {
		t.Fatalf("audit %v", got)
	}
}

func TestRejectCancel(t *testing.T) {
	t.Parallel()
	setups := []struct {
		state tasks.State
		setup func(e *env, id string)
		want  error // nil: allowed
	}{
		{tasks.StatePendingApproval, func(e *env, id string) { e.create(id, "acct") }, nil},
		{tasks.StateApproved, func(e *env, id string) { e.approved(id, "acct") }, nil},
		{tasks.StateWaiting, func(e *env, id string) { e.waiting(id, "acct") }, nil},
		{tasks.StateSending, func(e *env, id string) { e.sending(id, "acct") }, ErrTooLate},
		{tasks.StateCanceled, func(e *env, id string) {
			e.create(id, "acct")
			if _, err := e.l.Cancel(e.ctx, id, "admin", ""); err != nil {
				e.t.Fatal(err)
			}
		}, ErrFinal},
	}
	ops := []struct {
		name   string
		do     func(e *env, id string) (*tasks.Record, error)
		state  tasks.State
		reason tasks.Reason
	}{
		{"reject", func(e *env, id string) (*tasks.Record, error) { return e.l.Reject(e.ctx, id, "approver", "off-tone") },
			tasks.StateRejected, tasks.ReasonRejected},
		{"cancel", func(e *env, id string) (*tasks.Record, error) { return e.l.Cancel(e.ctx, id, "scheduler", "moved on") },
			tasks.StateCanceled, tasks.ReasonCanceled},
	}
	for _, op := range ops {
		for _, s := range setups {
			t.Run(op.name+" from "+string(s.state), func(t *testing.T) {
				t.Parallel()
				e := newEnv(t)
				s.setup(e, "s1")
				rec, err := op.do(e, "s1")
				if s.want != nil {
					wantStateErr(t, err, s.want, s.state)
					if got := e.get("s1"); got.State != s.state {
						t.Fatalf("state changed to %s", got.State)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				wantState(t, rec, op.state, op.reason)
				if rec.Decision == nil || rec.Decision.Note == "" || rec.Result == nil || rec.Result.State != op.state {
					t.Fatalf("decision %+v result %+v", rec.Decision, rec.Result)
				}
				k := e.l.Keys()
				for _, key := range []string{k.Outbox(), k.Deadlines()} {
					if _, ok := e.zscore(key, "s1"); ok {
						t.Errorf("still in %s", key)
					}
				}
				if _, ok := e.zscore(k.State(s.state), "s1"); ok {
					t.Errorf("still indexed as %s", s.state)
				}
				if _, ok := e.zscore(k.Account("acct", op.state), "s1"); !ok {
					t.Errorf("not indexed as %s", op.state)
				}
				if res := e.results(); len(res) != 1 || res[0].Values["state"] != string(op.state) {
					t.Fatalf("results %v", res)
				}
				// A later release of an old generation does nothing.
				due, _ := e.l.DueForRelease(e.ctx, 10)
				if len(due) != 0 {
					t.Fatalf("due %v", due)
				}
				if ev := e.auditEvents(); ev[len(ev)-1] != string(op.state) {
					t.Fatalf("audit %v", ev)
				}
			})
		}
	}
}

func TestExpireDue(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.create("early1", "acct")
	e.create("early2", "acct")
	e.approved("approved", "acct")
	e.clock.Advance(30 * time.Minute)
	e.create("late", "acct")
	if got, err := e.l.ExpireDue(e.ctx, 10); err != nil || len(got) != 0 {
		t.Fatalf("nothing due yet: %v %v", got, err)
	}
	e.clock.Advance(30 * time.Minute)
	got, err := e.l.ExpireDue(e.ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"early1", "early2"}) {
		t.Fatalf("expired %v", got)
	}
	for _, id := range got {
		wantState(t, e.get(id), tasks.StateExpired, tasks.ReasonApprovalExpired)
	}
	wantState(t, e.get("late"), tasks.StatePendingApproval, "")
	wantState(t, e.get("approved"), tasks.StateApproved, "")
	if n := e.rdb.ZCard(e.ctx, e.l.Keys().Deadlines()).Val(); n != 1 {
		t.Fatalf("deadlines holds %d", n)
	}
	if n := len(e.results()); n != 2 {
		t.Fatalf("%d results", n)
	}
}

func TestOutboxGenerations(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rec, gen := e.approved("s1", "acct")
	due, err := e.l.DueForRelease(e.ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := Release{SendID: "s1", Gen: gen, Digest: rec.Digest, Operation: tasks.OpSendMessage, AccountID: "acct", At: e.clock.Now()}
	if len(due) != 1 || due[0] != want {
		t.Fatalf("due %+v, want %+v", due, want)
	}
	// Rescheduled before the release was marked: new gen, later time.
	until := e.clock.Now().Add(time.Minute)
	if _, err := e.l.Defer(e.ctx, "s1", "", until, tasks.ReasonWaitWindow); err != nil {
		t.Fatal(err)
	}
	if err := e.l.MarkReleased(e.ctx, "s1", gen); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.l.OutboxSize(e.ctx); n != 1 {
		t.Fatalf("stale MarkReleased removed the new entry (size %d)", n)
	}
	if due, _ := e.l.DueForRelease(e.ctx, 10); len(due) != 0 {
		t.Fatalf("due before until: %+v", due)
	}
	e.clock.Advance(time.Minute)
	due, _ = e.l.DueForRelease(e.ctx, 10)
	if len(due) != 1 || due[0].Gen != gen+1 || !due[0].At.Equal(until) {
		t.Fatalf("due %+v", due)
	}
	if err := e.l.MarkReleased(e.ctx, "s1", gen+1); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.l.OutboxSize(e.ctx); n != 0 {
		t.Fatalf("outbox size %d", n)
	}
}

func TestPauseHoldsAndResumeReleases(t *testing.T) {
	t.Parallel()
	for _, account := range []string{"", "acct"} {
		t.Run("scope="+account, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			rec, gen := e.approved("s1", "acct")
			e.approved("other", "acct-2")
			if err := e.l.SetPaused(e.ctx, account, true, "admin"); err != nil {
				t.Fatal(err)
			}
			if err := e.l.SetPaused(e.ctx, account, true, "admin"); err != nil { // idempotent
				t.Fatal(err)
			}
			global, accounts, err := e.l.PauseState(e.ctx)
			if err != nil || global != (account == "") || (account != "" && !slices.Equal(accounts, []string{"acct"})) {
				t.Fatalf("pause state %v %v %v", global, accounts, err)
			}
			res, err := e.l.BeginAttempt(e.ctx, BeginRequest{SendID: "s1", Digest: rec.Digest, Gen: gen, Token: "t1", Lease: time.Minute})
			if err != nil || res.Outcome != BeginHeld {
				t.Fatalf("begin: %v %v", res.Outcome, err)
			}
			wantState(t, res.Record, tasks.StateWaiting, "")
			if res.Record.Wait == nil || res.Record.Wait.Reason != tasks.ReasonWaitPaused {
				t.Fatalf("wait %+v", res.Record.Wait)
			}
			held := e.l.Keys().HeldGlobal()
			if account != "" {
				held = e.l.Keys().HeldAccount(account)
			}
			if !e.rdb.SIsMember(e.ctx, held, "s1").Val() {
				t.Fatal("not held")
			}
			if n, _ := e.l.OutboxSize(e.ctx); n != 1 { // only "other" remains
				t.Fatalf("outbox %d", n)
			}

			if err := e.l.SetPaused(e.ctx, account, false, "admin"); err != nil {
				t.Fatal(err)
			}
			if e.rdb.SCard(e.ctx, held).Val() != 0 {
				t.Fatal("held set not emptied")
			}
			due, _ := e.l.DueForRelease(e.ctx, 10)
			var got *Release
			for i := range due {
				if due[i].SendID == "s1" {
					got = &due[i]
				}
			}
			if got == nil || got.Gen != gen+1 {
				t.Fatalf("due %+v", due)
			}
			stale, _ := e.l.BeginAttempt(e.ctx, BeginRequest{SendID: "s1", Digest: rec.Digest, Gen: gen, Token: "t2", Lease: time.Minute})
			if stale.Outcome != BeginStale {
				t.Fatalf("old gen after resume: %v", stale.Outcome)
			}
			ok, err := e.l.BeginAttempt(e.ctx, BeginRequest{SendID: "s1", Digest: rec.Digest, Gen: gen + 1, Token: "t3", Lease: time.Minute})
			if err != nil || ok.Outcome != BeginOK {
				t.Fatalf("new gen: %v %v", ok.Outcome, err)
			}
			if ev := e.auditEvents(); !slices.Equal(ev[len(ev)-2:], []string{"paused", "resumed"}) {
				t.Fatalf("audit %v", ev)
			}
		})
	}
}

// TestResumeLargeHeldSet moves more than one batch of held sends.
func TestResumeLargeHeldSet(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const n = resumeBatch + 234
	k := e.l.Keys()
	if err := e.l.SetPaused(e.ctx, "", true, "admin"); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		id := fmt.Sprintf("s%04d", i)
		rec, gen := e.approved(id, "acct")
		res, err := e.l.BeginAttempt(e.ctx, BeginRequest{SendID: id, Digest: rec.Digest, Gen: gen, Token: "t", Lease: time.Minute})
		if err != nil || res.Outcome != BeginHeld {
			t.Fatalf("begin %s: %v %v", id, res.Outcome, err)
		}
	}
	if got := e.rdb.SCard(e.ctx, k.HeldGlobal()).Val(); got != n {
		t.Fatalf("held %d", got)
	}
	// The admin's request goes away at once: the move is not cut short.
	gone, cancel := context.WithCancel(e.ctx)
	cancel()
	if err := e.l.SetPaused(gone, "", false, "admin"); err != nil {
		t.Fatal(err)
	}
	if got := e.rdb.SCard(e.ctx, k.HeldGlobal()).Val(); got != 0 {
		t.Fatalf("still held %d", got)
	}
	if got, _ := e.l.OutboxSize(e.ctx); got != n {
		t.Fatalf("outbox %d", got)
	}
}

func TestOptOuts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, c := range []string{"c2", "c1", "c1"} {
		if err := e.l.AddOptOut(e.ctx, c, "admin"); err != nil {
			t.Fatal(err)
		}
	}
	list, _ := e.l.OptOuts(e.ctx)
	if !slices.Equal(list, []string{"c1", "c2"}) {
		t.Fatalf("opt-outs %v", list)
	}
	if yes, _ := e.l.IsOptedOut(e.ctx, "x", "c2"); !yes {
		t.Fatal("c2 not opted out")
	}
	if yes, _ := e.l.IsOptedOut(e.ctx, "x"); yes {
		t.Fatal("x opted out")
	}
	if err := e.l.RemoveOptOut(e.ctx, "c2", "admin"); err != nil {
		t.Fatal(err)
	}
	if yes, _ := e.l.IsOptedOut(e.ctx, "c2"); yes {
		t.Fatal("c2 still opted out")
	}
	if ev := e.auditEvents(); !slices.Equal(ev, []string{"optout_added", "optout_added", "optout_removed"}) {
		t.Fatalf("audit %v", ev)
	}
}

// A resume whose move failed half-way (the pause flag is cleared, sends are still held) is
// finished by FinishResumes; a scope still paused keeps its sends held.
func TestFinishResumes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k := e.l.Keys()
	hold := func(id, account string) {
		t.Helper()
		rec, gen := e.approved(id, account)
		res, err := e.l.BeginAttempt(e.ctx, BeginRequest{SendID: id, Digest: rec.Digest, Gen: gen, Token: "t", Lease: time.Minute})
		if err != nil || res.Outcome != BeginHeld {
			t.Fatalf("begin %s: %v %v", id, res.Outcome, err)
		}
	}
	for _, acct := range []string{"acct-a", "acct-b"} {
		if err := e.l.SetPaused(e.ctx, acct, true, "admin"); err != nil {
			t.Fatal(err)
		}
	}
	hold("a1", "acct-a")
	hold("a2", "acct-a")
	hold("b1", "acct-b")
	if err := e.l.SetPaused(e.ctx, "", true, "admin"); err != nil {
		t.Fatal(err)
	}
	hold("g1", "acct-c")
	// acct-b's sends were held before the index of held accounts existed.
	e.rdb.SRem(e.ctx, k.HeldAccounts(), "acct-b")

	// Nothing to finish while every scope is paused; every paused account gets indexed.
	if n, err := e.l.FinishResumes(e.ctx); err != nil || n != 0 {
		t.Fatalf("finish while paused: %d %v", n, err)
	}
	if got := e.rdb.SMembers(e.ctx, k.HeldAccounts()).Val(); len(got) != 2 {
		t.Fatalf("held accounts %v, want acct-a and acct-b", got)
	}
	// The flags of the global scope and of acct-a are cleared, as a resume does first, but
	// Redis "fails" before any send moved.
	e.rdb.Del(e.ctx, k.PausedGlobal())
	e.rdb.SRem(e.ctx, k.PausedAccounts(), "acct-a")

	n, err := e.l.FinishResumes(e.ctx)
	if err != nil || n != 3 {
		t.Fatalf("finish: moved %d %v, want 3", n, err)
	}
	for _, id := range []string{"a1", "a2", "g1"} {
		rec := e.get(id)
		if rec.State != tasks.StateWaiting || rec.Wait == nil || rec.Wait.Reason != tasks.ReasonWaitPaused || rec.Wait.Until.IsZero() {
			t.Fatalf("%s: %s %+v, want waiting with a release time", id, rec.State, rec.Wait)
		}
		if last := rec.History[len(rec.History)-1]; last.By != ResumeBy || last.Detail != "released by resume" {
			t.Fatalf("%s: last event %+v", id, last)
		}
		if _, err := e.rdb.ZScore(e.ctx, k.Outbox(), id).Result(); err != nil {
			t.Fatalf("%s not in the outbox: %v", id, err)
		}
	}
	// acct-b is still paused: b1 stays held.
	if !e.rdb.SIsMember(e.ctx, k.HeldAccount("acct-b"), "b1").Val() {
		t.Fatal("b1 released while its account is paused")
	}
	// A second call has nothing to do, and forgets acct-a (not paused, holds nothing).
	if n, err := e.l.FinishResumes(e.ctx); err != nil || n != 0 {
		t.Fatalf("second finish: %d %v", n, err)
	}
	if got := e.rdb.SMembers(e.ctx, k.HeldAccounts()).Val(); !slices.Equal(got, []string{"acct-b"}) {
		t.Fatalf("held accounts %v, want [acct-b]", got)
	}
	// acct-b's resume is interrupted too: its send, held before the index existed, moves.
	e.rdb.SRem(e.ctx, k.PausedAccounts(), "acct-b")
	if n, err := e.l.FinishResumes(e.ctx); err != nil || n != 1 {
		t.Fatalf("finish acct-b: %d %v", n, err)
	}
	if rec := e.get("b1"); rec.State != tasks.StateWaiting || rec.Wait == nil || rec.Wait.Until.IsZero() {
		t.Fatalf("b1 %s %+v", rec.State, rec.Wait)
	}
}
