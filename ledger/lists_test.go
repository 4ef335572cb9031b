package ledger

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sendworker/sendworker/tasks"
)

// lists returns the work lists and the state indexes id is on, by name:
// deadlines, outbox, watch, leases, held, finished, state:<s>, acct:<s>.
func (e *env) lists(id, account string) []string {
	e.t.Helper()
	k := e.l.Keys()
	var on []string
	for _, l := range []struct{ name, key string }{
		{"deadlines", k.Deadlines()}, {"outbox", k.Outbox()}, {"watch", k.Watch()}, {"leases", k.Leases()},
	} {
		if _, ok := e.zscore(l.key, id); ok {
			on = append(on, l.name)
		}
	}
	for _, key := range []string{k.HeldGlobal(), k.HeldAccount(account)} {
		if in, err := e.rdb.SIsMember(e.ctx, key, id).Result(); err != nil {
			e.t.Fatal(err)
		} else if in {
			on = append(on, "held")
		}
	}
	finished, err := e.rdb.ZRange(e.ctx, k.Finished(), 0, -1).Result()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, m := range finished {
		if strings.Split(m, "\n")[2] == id {
			on = append(on, "finished")
		}
	}
	for _, s := range tasks.States {
		if _, ok := e.zscore(k.State(s), id); ok {
			on = append(on, "state:"+string(s))
		}
		if _, ok := e.zscore(k.Account(account, s), id); ok {
			on = append(on, "acct:"+string(s))
		}
	}
	sort.Strings(on)
	return on
}

// TestWorkListsFollowTheState walks sends through every kind of transition
// and checks, after each, that the send is on exactly the lists its state
// (and sub-state: queued, held, leased) calls for — the table move follows
// in lua/lib.lua — and in its state's indexes only.
func TestWorkListsFollowTheState(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const acct = "acc-lists"
	want := func(step, id string, st tasks.State, lists ...string) {
		t.Helper()
		w := append([]string{"state:" + string(st), "acct:" + string(st)}, lists...)
		sort.Strings(w)
		if got := e.lists(id, acct); strings.Join(got, " ") != strings.Join(w, " ") {
			t.Errorf("%s: %s is on %v, want %v", step, id, got, w)
		}
	}
	begin := func(id, token string) {
		t.Helper()
		rec := e.get(id)
		res, err := e.l.BeginAttempt(e.ctx, BeginRequest{SendID: id, Digest: rec.Digest, Gen: e.gen(id), Token: token,
			Lease: time.Minute})
		if err != nil {
			t.Fatalf("begin %s: %v", id, err)
		}
		if res.Outcome != BeginOK && res.Outcome != BeginHeld && res.Outcome != BeginReconcile {
			t.Fatalf("begin %s: outcome %v", id, res.Outcome)
		}
	}

	// a send that goes the whole way, through a wait, a pause and a lost lease
	e.create("s1", acct)
	want("created", "s1", tasks.StatePendingApproval, "deadlines")
	if _, err := e.l.Approve(e.ctx, "s1", e.get("s1").Digest, "approver", ""); err != nil {
		t.Fatal(err)
	}
	want("approved", "s1", tasks.StateApproved, "outbox", "watch")
	if err := e.l.MarkReleased(e.ctx, "s1", e.gen("s1")); err != nil {
		t.Fatal(err)
	}
	want("released", "s1", tasks.StateApproved, "watch")
	begin("s1", "t1")
	want("attempt begun", "s1", tasks.StateSending, "leases", "watch")
	if err := e.l.EndCall(e.ctx, "s1", "t1", time.Second); err != nil {
		t.Fatal(err)
	}
	want("call over, outcome unknown", "s1", tasks.StateSending, "leases", "watch")
	if err := e.l.ResolveReconciled(e.ctx, "s1", "t1"); err != nil {
		t.Fatal(err)
	}
	want("reconciled: not sent", "s1", tasks.StateApproved, "outbox", "watch")
	begin("s1", "t2")
	if _, err := e.l.Defer(e.ctx, "s1", "t2", e.clock.Now().Add(time.Minute), tasks.ReasonWaitRateLimit); err != nil {
		t.Fatal(err)
	}
	want("deferred", "s1", tasks.StateWaiting, "outbox", "watch")
	if err := e.l.SetPaused(e.ctx, acct, true, "ops"); err != nil {
		t.Fatal(err)
	}
	begin("s1", "t3")
	want("held by a pause", "s1", tasks.StateWaiting, "held")
	if err := e.l.SetPaused(e.ctx, acct, false, "ops"); err != nil {
		t.Fatal(err)
	}
	want("resumed", "s1", tasks.StateWaiting, "outbox", "watch")
	if err := e.l.MarkReleased(e.ctx, "s1", e.gen("s1")); err != nil {
		t.Fatal(err)
	}
	begin("s1", "t4")
	want("attempt begun again", "s1", tasks.StateSending, "leases", "watch")
	e.clock.Advance(2 * time.Minute)
	if ids, err := e.l.RecoverExpiredLeases(e.ctx, time.Millisecond, 10); err != nil || len(ids) != 1 {
		t.Fatalf("requeue expired leases: %v %v", ids, err)
	}
	want("lease lost, re-queued", "s1", tasks.StateSending, "outbox", "watch")
	begin("s1", "t5")
	want("taken over to reconcile", "s1", tasks.StateSending, "leases", "watch")
	if _, err := e.l.End(e.ctx, "s1", "t5", Outcome{State: tasks.StateNeedsReview, Reason: tasks.ReasonUnknownOutcome}); err != nil {
		t.Fatal(err)
	}
	want("needs review", "s1", tasks.StateNeedsReview, "finished")
	if _, err := e.l.ResolveReview(e.ctx, "s1", ResolveNotSent, "", "admin", "checked"); err != nil {
		t.Fatal(err)
	}
	want("marked not sent", "s1", tasks.StateApproved, "outbox", "watch")
	begin("s1", "t6")
	if _, err := e.l.End(e.ctx, "s1", "t6", Outcome{State: tasks.StateSent, MessageID: "m1", ChatID: "chat-s1"}); err != nil {
		t.Fatal(err)
	}
	want("sent", "s1", tasks.StateSent, "finished")

	// pending and waiting sends that end without an attempt
	e.create("s2", acct)
	if _, err := e.l.Reject(e.ctx, "s2", "approver", ""); err != nil {
		t.Fatal(err)
	}
	want("rejected", "s2", tasks.StateRejected, "finished")
	e.waiting("s3", acct)
	if _, err := e.l.Cancel(e.ctx, "s3", "ops", ""); err != nil {
		t.Fatal(err)
	}
	want("canceled while waiting", "s3", tasks.StateCanceled, "finished")
}
