package ledger

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sendworker/sendworker/tasks"
)

// stopWhileSending cancels or rejects a sending send and checks the answer:
// still a 409-style ErrTooLate, now ErrStopPending, nothing stopped yet.
func (e *env) stopWhileSending(id string, reject bool) {
	e.t.Helper()
	stop, want := e.l.Cancel, "canceled_requested"
	if reject {
		stop, want = e.l.Reject, "rejected_requested"
	}
	_, err := stop(e.ctx, id, "admin", "changed my mind")
	wantStateErr(e.t, err, ErrTooLate, tasks.StateSending)
	wantStateErr(e.t, err, ErrStopPending, tasks.StateSending)
	rec := e.get(id)
	if rec.State != tasks.StateSending || rec.Result != nil || rec.Decision != nil {
		e.t.Fatalf("stop request changed the send: %+v", rec)
	}
	last := rec.History[len(rec.History)-1]
	if last.State != tasks.StateSending || last.By != "admin" || !strings.Contains(last.Detail, "requested while sending") {
		e.t.Fatalf("history event %+v", last)
	}
	if ev := e.auditEvents(); ev[len(ev)-1] != want {
		e.t.Fatalf("audit %v, want %s last", ev, want)
	}
	// A second request is answered the same and changes nothing.
	n := len(rec.History)
	_, err = e.l.Cancel(e.ctx, id, "other", "")
	wantStateErr(e.t, err, ErrStopPending, tasks.StateSending)
	if got := len(e.get(id).History); got != n {
		e.t.Fatalf("second stop request added history: %d → %d", n, got)
	}
	e.checkWatch()
}

// wantStoppedEnd checks a send ended by its stop request: final state, the
// request's decision, a result in the stream, out of every work list.
func (e *env) wantStoppedEnd(id string, state tasks.State, reason tasks.Reason) {
	e.t.Helper()
	rec := e.get(id)
	wantState(e.t, rec, state, reason)
	if rec.Decision == nil || rec.Decision.By != "admin" || rec.Decision.Note != "changed my mind" {
		e.t.Fatalf("decision %+v", rec.Decision)
	}
	if rec.Result == nil || rec.Result.State != state {
		e.t.Fatalf("result %+v", rec.Result)
	}
	var found bool
	for _, m := range e.results() {
		if m.Values["send_id"] == id {
			found = m.Values["state"] == string(state) && m.Values["reason"] == string(reason)
		}
	}
	if !found {
		e.t.Fatalf("no %s result for %s in the stream", state, id)
	}
	k := e.l.Keys()
	for _, key := range []string{k.Outbox(), k.Watch(), k.Leases()} {
		if _, ok := e.zscore(key, id); ok {
			e.t.Fatalf("%s still in %s", id, key)
		}
	}
	if !slices.Contains(e.auditEvents(), string(state)) {
		e.t.Fatalf("audit %v has no %s", e.auditEvents(), state)
	}
	e.checkWatch()
}

func TestCancelWhileSendingThenDefer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rec, token := e.sending("s1", "acct")
	e.stopWhileSending("s1", false)
	e.clock.Advance(time.Second)
	got, err := e.l.Defer(e.ctx, "s1", token, e.clock.Now().Add(time.Minute), tasks.ReasonWaitProvider)
	if err != nil {
		t.Fatal(err)
	}
	wantState(t, got, tasks.StateCanceled, tasks.ReasonCanceled)
	e.wantStoppedEnd("s1", tasks.StateCanceled, tasks.ReasonCanceled)
	// The task's next release (any gen) finds it final.
	res, err := e.l.BeginAttempt(e.ctx, BeginRequest{SendID: "s1", Digest: rec.Digest, Gen: e.gen("s1"), Token: "t2", Lease: time.Minute})
	if err != nil || res.Outcome != BeginFinal {
		t.Fatalf("begin after stopped defer: %v %v", res.Outcome, err)
	}
	if _, err := e.l.Cancel(e.ctx, "s1", "admin", ""); !errors.Is(err, ErrFinal) {
		t.Fatalf("cancel after: %v", err)
	}
}

func TestRejectWhileSendingThenResolveReconciled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rec, token := e.sending("s1", "acct")
	if err := e.endCallAt("s1", token, e.clock.Now().Add(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	e.stopWhileSending("s1", true)
	e.clock.Advance(15 * time.Second)
	gen := e.gen("s1")
	res, err := e.l.BeginAttempt(e.ctx, BeginRequest{SendID: "s1", Digest: rec.Digest, Gen: gen, Token: "rec", Lease: time.Minute})
	if err != nil || res.Outcome != BeginReconcile {
		t.Fatalf("begin %v %v", res.Outcome, err)
	}
	e.checkWatch()
	if err := e.l.ResolveReconciled(e.ctx, "s1", "rec"); err != nil {
		t.Fatal(err)
	}
	e.wantStoppedEnd("s1", tasks.StateRejected, tasks.ReasonRejected)
	res, err = e.l.BeginAttempt(e.ctx, BeginRequest{SendID: "s1", Digest: rec.Digest, Gen: gen, Token: "rec", Lease: time.Minute})
	if err != nil || res.Outcome != BeginFinal || res.Record.State != tasks.StateRejected {
		t.Fatalf("begin after stopped resolve: %v %v", res.Outcome, err)
	}
}

func TestCancelWhileSendingThenResolveReconciled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rec, _ := e.sending("s1", "acct")
	e.stopWhileSending("s1", false)
	e.clock.Advance(2 * time.Minute)
	res, err := e.l.BeginAttempt(e.ctx, BeginRequest{SendID: "s1", Digest: rec.Digest, Gen: e.gen("s1"), Token: "rec", Lease: time.Minute})
	if err != nil || res.Outcome != BeginReconcile {
		t.Fatalf("begin %v %v", res.Outcome, err)
	}
	if err := e.l.ResolveReconciled(e.ctx, "s1", "rec"); err != nil {
		t.Fatal(err)
	}
	e.wantStoppedEnd("s1", tasks.StateCanceled, tasks.ReasonCanceled)
	if n, _ := e.l.OutboxSize(e.ctx); n != 0 {
		t.Fatalf("outbox entry left: %d", n)
	}
}

func TestRejectWhileSendingThenSent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, token := e.sending("s1", "acct")
	e.stopWhileSending("s1", true)
	rec, err := e.l.Finish(e.ctx, "s1", token, Outcome{State: tasks.StateSent, MessageID: "m1", ChatID: "chat-s1"})
	if err != nil {
		t.Fatal(err)
	}
	wantState(t, rec, tasks.StateSent, "")
	if rec.Decision != nil {
		t.Fatalf("decision %+v on a sent send", rec.Decision)
	}
	noted := slices.ContainsFunc(rec.History, func(ev tasks.Event) bool {
		return ev.Reason == tasks.ReasonRejected && ev.By == "admin" && strings.Contains(ev.Detail, "requested while sending")
	})
	if !noted {
		t.Fatalf("stop request not in history: %+v", rec.History)
	}
	if slices.Contains(e.auditEvents(), "rejected") {
		t.Fatalf("audit %v: rejected though sent", e.auditEvents())
	}
	e.checkWatch()
}

// TestBeginHonoursStopRequest: a stop request on an approved send (which the
// scripts never leave; defensive) ends it at BeginAttempt.
func TestBeginHonoursStopRequest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rec, gen := e.approved("s1", "acct")
	e.rdb.HSet(e.ctx, e.l.Keys().Send("s1"), "stop_state", "canceled", "stop_by", "admin",
		"stop_note", "changed my mind", "stop_ms", e.clock.Now().UnixMilli())
	res, err := e.l.BeginAttempt(e.ctx, BeginRequest{SendID: "s1", Digest: rec.Digest, Gen: gen, Token: "t", Lease: time.Minute})
	if err != nil || res.Outcome != BeginFinal {
		t.Fatalf("begin %v %v", res.Outcome, err)
	}
	e.wantStoppedEnd("s1", tasks.StateCanceled, tasks.ReasonCanceled)
	if res.Record.Attempts != 0 {
		t.Fatalf("attempts %d", res.Record.Attempts)
	}
}
