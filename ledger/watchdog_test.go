package ledger

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/tasks"
)

const grace = time.Minute

// watchAt returns the watch score of a send as a time; ok false if unwatched.
func (e *env) watchAt(id string) (time.Time, bool) {
	e.t.Helper()
	s, ok := e.zscore(e.l.Keys().Watch(), id)
	return time.UnixMilli(int64(s)).UTC(), ok
}

// wantWatch checks a send is watched at "at" (zero: not watched).
func (e *env) wantWatch(id string, at time.Time) {
	e.t.Helper()
	got, ok := e.watchAt(id)
	switch {
	case at.IsZero() && ok:
		e.t.Fatalf("%s watched at %v, want unwatched", id, got)
	case !at.IsZero() && (!ok || !got.Equal(at)):
		e.t.Fatalf("%s watched=%v at %v, want %v", id, ok, got, at)
	}
}

// checkWatch checks the invariant of the watch against the whole key space:
// a send is watched iff it is approved, waiting or sending and not held; a
// watched send in the outbox is scored at its outbox time (or later, when the
// watchdog found it still there past grace), and a sending one not in the
// outbox at the end of its lease.
func (e *env) checkWatch() {
	e.t.Helper()
	k := e.l.Keys()
	watched := map[string]float64{}
	for _, z := range e.rdb.ZRangeWithScores(e.ctx, k.Watch(), 0, -1).Val() {
		watched[z.Member.(string)] = z.Score
	}
	live := map[string]bool{}
	for _, st := range []tasks.State{tasks.StateApproved, tasks.StateWaiting, tasks.StateSending} {
		for _, id := range e.rdb.ZRange(e.ctx, k.State(st), 0, -1).Val() {
			live[id] = true
			rec := e.get(id)
			held := e.rdb.SIsMember(e.ctx, k.HeldGlobal(), id).Val() ||
				e.rdb.SIsMember(e.ctx, k.HeldAccount(rec.Request.AccountID), id).Val()
			score, isWatched := watched[id]
			if isWatched == held {
				e.t.Fatalf("%s (%s): watched=%v held=%v", id, st, isWatched, held)
			}
			if !isWatched {
				continue
			}
			if out, queued := e.zscore(k.Outbox(), id); queued {
				if score < out {
					e.t.Fatalf("%s: watch %v, outbox %v", id, score, out)
				}
			} else if st == tasks.StateSending {
				lease, _ := e.rdb.HGet(e.ctx, k.Send(id), fLeaseUntilMs).Float64()
				if lease != score {
					e.t.Fatalf("%s: watch %v, lease until %v", id, score, lease)
				}
			}
		}
	}
	for id := range watched {
		if !live[id] {
			e.t.Fatalf("%s watched but not approved, waiting or sending (%s)", id, e.get(id).State)
		}
	}
	e.checkLeases()
}

// checkLeases checks the invariant of {p}:leases: its members are sending
// sends not in the outbox, scored at the end of their lease, and every
// sending send with a live lease is a member.
func (e *env) checkLeases() {
	e.t.Helper()
	k := e.l.Keys()
	leases := map[string]float64{}
	for _, z := range e.rdb.ZRangeWithScores(e.ctx, k.Leases(), 0, -1).Val() {
		leases[z.Member.(string)] = z.Score
	}
	for id, score := range leases {
		if st := e.get(id).State; st != tasks.StateSending {
			e.t.Fatalf("%s in leases but %s", id, st)
		}
		if _, queued := e.zscore(k.Outbox(), id); queued {
			e.t.Fatalf("%s in leases and in the outbox", id)
		}
		if lease, _ := e.rdb.HGet(e.ctx, k.Send(id), fLeaseUntilMs).Float64(); lease != score {
			e.t.Fatalf("%s: leases %v, lease until %v", id, score, lease)
		}
	}
	now := float64(e.clock.Now().UnixMilli())
	for _, id := range e.rdb.ZRange(e.ctx, k.State(tasks.StateSending), 0, -1).Val() {
		lease, _ := e.rdb.HGet(e.ctx, k.Send(id), fLeaseUntilMs).Float64()
		if _, ok := leases[id]; !ok && lease > now {
			e.t.Fatalf("%s: sending with a live lease, not in leases", id)
		}
	}
}

func redisZ(at time.Time, members ...string) []redis.Z {
	zs := make([]redis.Z, len(members))
	for i, m := range members {
		zs[i] = redis.Z{Score: float64(at.UnixMilli()), Member: m}
	}
	return zs
}

// releaseAll releases every due outbox entry (DueForRelease + MarkReleased).
func (e *env) releaseAll() []Release {
	e.t.Helper()
	due, err := e.l.DueForRelease(e.ctx, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, r := range due {
		if err := e.l.MarkReleased(e.ctx, r.SendID, r.Gen); err != nil {
			e.t.Fatal(err)
		}
	}
	return due
}

func (e *env) recoverStuck(limit int) []string {
	e.t.Helper()
	ids, err := e.l.RecoverStuck(e.ctx, grace, limit)
	if err != nil {
		e.t.Fatal(err)
	}
	slices.Sort(ids)
	return ids
}

func (e *env) begin(id string, gen int64, token string, lease time.Duration) BeginResult {
	e.t.Helper()
	res, err := e.l.BeginAttempt(e.ctx, BeginRequest{SendID: id, Digest: e.get(id).Digest, Gen: gen, Token: token, Lease: lease})
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

func (e *env) pause(account string, paused bool) {
	e.t.Helper()
	if err := e.l.SetPaused(e.ctx, account, paused, "admin"); err != nil {
		e.t.Fatal(err)
	}
}

// TestWatchTransitions: every script that moves a send keeps the watch exact.
func TestWatchTransitions(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC) // newEnv's clock
	tests := []struct {
		name string
		run  func(e *env) time.Time // returns the expected watch time of s1 (zero: unwatched)
	}{
		{"create: pending is not watched", func(e *env) time.Time {
			e.create("s1", "acct")
			return time.Time{}
		}},
		{"approve: at its outbox time", func(e *env) time.Time {
			e.approved("s1", "acct")
			return t0
		}},
		{"approve after the deadline: expired, not watched", func(e *env) time.Time {
			rec := e.create("s1", "acct")
			e.clock.Advance(2 * time.Hour)
			if _, err := e.l.Approve(e.ctx, "s1", rec.Digest, "approver", ""); err == nil {
				e.t.Fatal("late approval accepted")
			}
			return time.Time{}
		}},
		{"mark released: at the release", func(e *env) time.Time {
			_, gen := e.approved("s1", "acct")
			e.clock.Advance(10 * time.Second)
			if err := e.l.MarkReleased(e.ctx, "s1", gen); err != nil {
				e.t.Fatal(err)
			}
			return t0.Add(10 * time.Second)
		}},
		{"mark released, stale gen: unchanged", func(e *env) time.Time {
			_, gen := e.approved("s1", "acct")
			if _, err := e.l.Defer(e.ctx, "s1", "", t0.Add(time.Minute), tasks.ReasonWaitWindow); err != nil {
				e.t.Fatal(err)
			}
			e.clock.Advance(10 * time.Second)
			if err := e.l.MarkReleased(e.ctx, "s1", gen); err != nil {
				e.t.Fatal(err)
			}
			return t0.Add(time.Minute)
		}},
		{"mark released after the task began: the lease stays", func(e *env) time.Time {
			_, gen := e.approved("s1", "acct")
			e.begin("s1", gen, "t1", time.Minute)
			e.clock.Advance(10 * time.Second)
			if err := e.l.MarkReleased(e.ctx, "s1", gen); err != nil {
				e.t.Fatal(err)
			}
			return t0.Add(time.Minute)
		}},
		{"begin ok: at the lease end", func(e *env) time.Time {
			e.sending("s1", "acct")
			return t0.Add(time.Minute)
		}},
		{"begin reconcile: at the new lease end", func(e *env) time.Time {
			e.sending("s1", "acct")
			e.clock.Advance(2 * time.Minute)
			if res := e.begin("s1", e.gen("s1"), "t2", 3*time.Minute); res.Outcome != BeginReconcile {
				e.t.Fatal(res.Outcome)
			}
			return t0.Add(5 * time.Minute)
		}},
		{"begin in flight: unchanged", func(e *env) time.Time {
			e.sending("s1", "acct")
			e.clock.Advance(30 * time.Second)
			if res := e.begin("s1", e.gen("s1"), "t2", 3*time.Minute); res.Outcome != BeginInFlight {
				e.t.Fatal(res.Outcome)
			}
			return t0.Add(time.Minute)
		}},
		{"begin stale: unchanged", func(e *env) time.Time {
			_, gen := e.approved("s1", "acct")
			e.releaseAll()
			e.clock.Advance(30 * time.Second)
			if res := e.begin("s1", gen-1, "t2", time.Minute); res.Outcome != BeginStale {
				e.t.Fatal(res.Outcome)
			}
			return t0
		}},
		{"begin held: removed", func(e *env) time.Time {
			_, gen := e.approved("s1", "acct")
			e.pause("acct", true)
			if res := e.begin("s1", gen, "t1", time.Minute); res.Outcome != BeginHeld {
				e.t.Fatal(res.Outcome)
			}
			return time.Time{}
		}},
		{"resume: at the resume", func(e *env) time.Time {
			_, gen := e.approved("s1", "acct")
			e.pause("", true)
			if res := e.begin("s1", gen, "t1", time.Minute); res.Outcome != BeginHeld {
				e.t.Fatal(res.Outcome)
			}
			e.clock.Advance(time.Hour)
			e.pause("", false)
			return t0.Add(time.Hour)
		}},
		{"begin opted out: removed", func(e *env) time.Time {
			_, gen := e.approved("s1", "acct")
			if err := e.l.AddOptOut(e.ctx, "c1", "admin"); err != nil {
				e.t.Fatal(err)
			}
			res, err := e.l.BeginAttempt(e.ctx, BeginRequest{SendID: "s1", Digest: e.get("s1").Digest, Gen: gen,
				Token: "t", Lease: time.Minute, ContactIDs: []string{"c1"}})
			if err != nil || res.Outcome != BeginOptedOut {
				e.t.Fatal(res.Outcome, err)
			}
			return time.Time{}
		}},
		{"finish: removed", func(e *env) time.Time {
			_, token := e.sending("s1", "acct")
			if _, err := e.l.Finish(e.ctx, "s1", token, Outcome{State: tasks.StateSent, MessageID: "m1"}); err != nil {
				e.t.Fatal(err)
			}
			return time.Time{}
		}},
		{"finish without attempt: removed", func(e *env) time.Time {
			e.waiting("s1", "acct")
			if _, err := e.l.Finish(e.ctx, "s1", "", Outcome{State: tasks.StateSkipped, Reason: tasks.ReasonColdRecipient}); err != nil {
				e.t.Fatal(err)
			}
			return time.Time{}
		}},
		{"defer from sending: at until", func(e *env) time.Time {
			_, token := e.sending("s1", "acct")
			if _, err := e.l.Defer(e.ctx, "s1", token, t0.Add(time.Hour), tasks.ReasonWaitProvider); err != nil {
				e.t.Fatal(err)
			}
			return t0.Add(time.Hour)
		}},
		{"defer a held send: at until", func(e *env) time.Time {
			_, gen := e.approved("s1", "acct")
			e.pause("", true)
			e.begin("s1", gen, "t1", time.Minute)
			if _, err := e.l.Defer(e.ctx, "s1", "", t0.Add(time.Hour), tasks.ReasonWaitWindow); err != nil {
				e.t.Fatal(err)
			}
			return t0.Add(time.Hour)
		}},
		{"resolve reconciled: at the safety net's time", func(e *env) time.Time {
			e.sending("s1", "acct")
			e.clock.Advance(2 * time.Minute)
			e.begin("s1", e.gen("s1"), "rec", time.Minute)
			if err := e.l.ResolveReconciled(e.ctx, "s1", "rec"); err != nil {
				e.t.Fatal(err)
			}
			return t0.Add(3 * time.Minute)
		}},
		{"reject: removed", func(e *env) time.Time {
			e.approved("s1", "acct")
			if _, err := e.l.Reject(e.ctx, "s1", "approver", ""); err != nil {
				e.t.Fatal(err)
			}
			return time.Time{}
		}},
		{"cancel a waiting send: removed", func(e *env) time.Time {
			e.waiting("s1", "acct")
			if _, err := e.l.Cancel(e.ctx, "s1", "admin", ""); err != nil {
				e.t.Fatal(err)
			}
			return time.Time{}
		}},
		{"cancel a held send: removed", func(e *env) time.Time {
			_, gen := e.approved("s1", "acct")
			e.pause("acct", true)
			e.begin("s1", gen, "t1", time.Minute)
			if _, err := e.l.Cancel(e.ctx, "s1", "admin", ""); err != nil {
				e.t.Fatal(err)
			}
			return time.Time{}
		}},
		{"expire: never watched", func(e *env) time.Time {
			e.create("s1", "acct")
			e.clock.Advance(2 * time.Hour)
			if ids, err := e.l.ExpireDue(e.ctx, 10); err != nil || len(ids) != 1 {
				e.t.Fatal(ids, err)
			}
			return time.Time{}
		}},
		{"due for release drops the entries of a final send", func(e *env) time.Time {
			e.approved("s1", "acct")
			if _, err := e.l.Cancel(e.ctx, "s1", "admin", ""); err != nil {
				e.t.Fatal(err)
			}
			// Entries that should not exist (a bug, a hand edit) are cleaned up.
			e.rdb.ZAdd(e.ctx, e.l.Keys().Outbox(), redisZ(t0, "s1")...)
			e.rdb.ZAdd(e.ctx, e.l.Keys().Watch(), redisZ(t0, "s1")...)
			if due := e.releaseAll(); len(due) != 1 || due[0].SendID != "other" {
				e.t.Fatalf("due %+v", due)
			}
			if n, _ := e.l.OutboxSize(e.ctx); n != 0 {
				e.t.Fatalf("outbox %d", n)
			}
			return time.Time{}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.approved("other", "acct-2") // an unrelated send stays watched throughout
			want := tt.run(e)
			e.wantWatch("s1", want)
			e.checkWatch()
			if n, err := e.l.Watching(e.ctx); err != nil || (n == 2) != !want.IsZero() {
				t.Fatalf("watching %d %v", n, err)
			}
		})
	}
}

// TestRecoverLostTask: a released approved or waiting send whose task
// vanished is put back in the outbox with a new generation after grace, not
// before; the old task is stale; the new one sends.
func TestRecoverLostTask(t *testing.T) {
	t.Parallel()
	for _, state := range []tasks.State{tasks.StateApproved, tasks.StateWaiting} {
		t.Run(string(state), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			if state == tasks.StateApproved {
				e.approved("s1", "acct")
			} else {
				e.waiting("s1", "acct")
				e.clock.Advance(time.Minute)
			}
			oldGen := e.gen("s1")
			released := e.clock.Now()
			if due := e.releaseAll(); len(due) != 1 || due[0].Gen != oldGen {
				t.Fatalf("due %+v", due)
			}
			// The task is lost. Exactly grace later nothing happens yet.
			e.clock.Advance(grace)
			if ids := e.recoverStuck(10); len(ids) != 0 {
				t.Fatalf("recovered at grace: %v", ids)
			}
			if e.gen("s1") != oldGen {
				t.Fatal("gen changed")
			}
			e.clock.Advance(time.Millisecond)
			if ids := e.recoverStuck(10); !slices.Equal(ids, []string{"s1"}) {
				t.Fatalf("recovered %v", ids)
			}
			rec := e.get("s1")
			wantState(t, rec, state, "")
			if e.gen("s1") != oldGen+1 {
				t.Fatalf("gen %d, want %d", e.gen("s1"), oldGen+1)
			}
			last := rec.History[len(rec.History)-1]
			wantDetail := "recovered: no progress since " + isoMs(released.UnixMilli())
			if last.State != state || last.By != "watchdog" || last.Detail != wantDetail || !last.At.Equal(e.clock.Now()) {
				t.Fatalf("history event %+v, want detail %q", last, wantDetail)
			}
			if score, ok := e.zscore(e.l.Keys().Outbox(), "s1"); !ok || int64(score) != e.clock.Now().UnixMilli() {
				t.Fatalf("outbox %v %v", score, ok)
			}
			e.wantWatch("s1", e.clock.Now())
			e.checkWatch()
			// Idempotent: not recovered again, neither now nor while the
			// releaser has not handed it over.
			if ids := e.recoverStuck(10); len(ids) != 0 {
				t.Fatalf("recovered twice: %v", ids)
			}
			e.clock.Advance(time.Hour)
			if ids := e.recoverStuck(10); len(ids) != 0 || e.gen("s1") != oldGen+1 {
				t.Fatalf("recovered while in the outbox: %v (gen %d)", ids, e.gen("s1"))
			}
			// The lost task comes back after all: stale, nothing changes.
			before := e.get("s1")
			if res := e.begin("s1", oldGen, "old", time.Minute); res.Outcome != BeginStale {
				t.Fatalf("old task: %v", res.Outcome)
			}
			if n := len(e.get("s1").History); n != len(before.History) {
				t.Fatal("stale task changed the record")
			}
			// The new release is lost too: recovered again, one more gen.
			if due := e.releaseAll(); len(due) != 1 || due[0].Gen != oldGen+1 {
				t.Fatalf("due %+v", due)
			}
			e.clock.Advance(grace + time.Millisecond)
			if ids := e.recoverStuck(10); !slices.Equal(ids, []string{"s1"}) || e.gen("s1") != oldGen+2 {
				t.Fatalf("second recovery %v gen %d", ids, e.gen("s1"))
			}
			due := e.releaseAll()
			if len(due) != 1 || due[0].Gen != oldGen+2 {
				t.Fatalf("due %+v", due)
			}
			if res := e.begin("s1", oldGen+2, "new", time.Minute); res.Outcome != BeginOK || res.Attempt != 1 {
				t.Fatalf("new task: %v attempt %d", res.Outcome, res.Attempt)
			}
			e.checkWatch()
		})
	}
}

// TestRecoverExpiredLease: a sending send whose lease ended more than grace
// ago (its task lost after a crash) is released again, still sending, and its
// next execution reconciles; the old task is stale.
func TestRecoverExpiredLease(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, oldToken := e.sending("s1", "acct") // lease until t0+1m
	oldGen := e.gen("s1")
	e.clock.Advance(time.Minute + grace)
	if ids := e.recoverStuck(10); len(ids) != 0 {
		t.Fatalf("recovered at lease end + grace: %v", ids)
	}
	e.clock.Advance(time.Millisecond)
	if ids := e.recoverStuck(10); !slices.Equal(ids, []string{"s1"}) {
		t.Fatalf("recovered %v", ids)
	}
	rec := e.get("s1")
	wantState(t, rec, tasks.StateSending, "")
	if last := rec.History[len(rec.History)-1]; last.Attempt != 1 || last.By != "watchdog" ||
		last.Detail != "recovered: no progress since 2030-01-02T03:05:05Z" {
		t.Fatalf("history event %+v", last)
	}
	due, err := e.l.DueForRelease(e.ctx, 10)
	if err != nil || len(due) != 1 || due[0].Gen != oldGen+1 {
		t.Fatalf("due %+v %v", due, err)
	}
	// The new task runs before the releaser marks its entry released.
	res := e.begin("s1", oldGen+1, "new", time.Minute)
	if res.Outcome != BeginReconcile || res.Attempt != 1 {
		t.Fatalf("new task: %v attempt %d", res.Outcome, res.Attempt)
	}
	if err := e.l.MarkReleased(e.ctx, "s1", oldGen+1); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.l.OutboxSize(e.ctx); n != 0 {
		t.Fatalf("outbox %d", n)
	}
	e.wantWatch("s1", e.clock.Now().Add(time.Minute))
	e.checkWatch()
	// The old task (asynq retry) is stale; the old execution's token is gone.
	if res := e.begin("s1", oldGen, "old-retry", time.Minute); res.Outcome != BeginStale {
		t.Fatalf("old task: %v", res.Outcome)
	}
	if _, err := e.l.Finish(e.ctx, "s1", oldToken, Outcome{State: tasks.StateSent, MessageID: "m1"}); err == nil {
		t.Fatal("old execution finished")
	}
	if _, err := e.l.Finish(e.ctx, "s1", "new", Outcome{State: tasks.StateSent, MessageID: "m1"}); err != nil {
		t.Fatal(err)
	}
	e.wantWatch("s1", time.Time{})
}

// TestNotRecovered: sends that are not stuck stay as they are.
func TestNotRecovered(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(e *env)
		wait  time.Duration
	}{
		{"sending with a live lease", func(e *env) {
			_, gen := e.approved("s1", "acct")
			e.releaseAll()
			e.begin("s1", gen, "t1", 10*time.Minute)
		}, 5 * time.Minute},
		{"waiting in the outbox", func(e *env) {
			e.waiting("s1", "acct")
		}, time.Hour},
		{"approved, not yet released", func(e *env) {
			e.approved("s1", "acct")
		}, time.Hour},
		{"held by a pause", func(e *env) {
			_, gen := e.approved("s1", "acct")
			e.releaseAll()
			e.pause("acct", true)
			e.begin("s1", gen, "t1", time.Minute)
		}, time.Hour},
		{"final", func(e *env) {
			_, token := e.sending("s1", "acct")
			if _, err := e.l.Finish(e.ctx, "s1", token, Outcome{State: tasks.StateSent, MessageID: "m1"}); err != nil {
				e.t.Fatal(err)
			}
		}, time.Hour},
		{"pending", func(e *env) {
			e.create("s1", "acct")
		}, 30 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			tt.setup(e)
			before := e.get("s1")
			gen := e.gen("s1")
			e.clock.Advance(tt.wait)
			if ids := e.recoverStuck(10); len(ids) != 0 {
				t.Fatalf("recovered %v", ids)
			}
			// Even with a watch entry that is (wrongly) long overdue.
			e.rdb.ZAdd(e.ctx, e.l.Keys().Watch(), redisZ(time.Unix(0, 0), "s1")...)
			if ids := e.recoverStuck(10); len(ids) != 0 {
				t.Fatalf("recovered from a forged entry: %v", ids)
			}
			after := e.get("s1")
			if e.gen("s1") != gen || after.State != before.State || len(after.History) != len(before.History) {
				t.Fatalf("changed: gen %d→%d, %s→%s", gen, e.gen("s1"), before.State, after.State)
			}
			e.checkWatch()
		})
	}
}

// TestRecoverConcurrent: concurrent watchdogs recover each send once.
func TestRecoverConcurrent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const n = 60
	gens := map[string]int64{}
	for i := range n {
		id := fmt.Sprintf("s%02d", i)
		_, gens[id] = e.approved(id, "acct")
	}
	e.releaseAll()
	e.clock.Advance(grace + time.Second)
	got := recoverConcurrently(t, 2, n, func() ([]string, error) { return e.l.RecoverStuck(e.ctx, grace, 7) })
	for id, gen := range gens {
		if got[id] != 1 || e.gen(id) != gen+1 {
			t.Fatalf("%s recovered %d times, gen %d (was %d)", id, got[id], e.gen(id), gen)
		}
	}
	if size, _ := e.l.OutboxSize(e.ctx); size != n {
		t.Fatalf("outbox %d", size)
	}
	if w, _ := e.l.Watching(e.ctx); w != n {
		t.Fatalf("watching %d", w)
	}
	e.checkWatch()
}

// TestRecoverBatchesDoNotStarve: entries that are late but not stuck (the
// releaser's backlog) do not hide a stuck send behind them.
func TestRecoverBatchesDoNotStarve(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i := range 5 {
		e.approved(fmt.Sprintf("queued%d", i), "acct") // watched before "stuck", never released
	}
	e.clock.Advance(time.Second)
	_, gen := e.approved("stuck", "acct")
	if err := e.l.MarkReleased(e.ctx, "stuck", gen); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(grace + time.Second)
	if ids := e.recoverStuck(5); len(ids) != 0 {
		t.Fatalf("first batch %v", ids)
	}
	for i := range 5 {
		e.wantWatch(fmt.Sprintf("queued%d", i), e.clock.Now()) // pushed forward
	}
	if ids := e.recoverStuck(5); !slices.Equal(ids, []string{"stuck"}) {
		t.Fatalf("second batch %v", ids)
	}
	if _, err := e.l.RecoverStuck(e.ctx, 0, 5); err == nil {
		t.Fatal("zero grace accepted")
	}
}

// TestISOMatchesLua: the scripts format times as isoMs does.
func TestISOMatchesLua(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ms := []int64{0, 1, 10, 100, 120, 999, 1000, 1500, 59_999, 86_399_999, 86_400_000,
		951_782_400_000, 951_868_799_999, 978_307_200_000, 1_709_164_800_123, 4_102_444_799_999,
		4_107_542_400_000, 253_402_300_799_999, e.clock.Now().UnixMilli()}
	r := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		ms = append(ms, r.Int64N(253_402_300_800_000))
	}
	args := make([]any, len(ms))
	want := make([]string, len(ms))
	for i, m := range ms {
		args[i], want[i] = m, isoMs(m)
	}
	v, err := e.l.run(e.ctx, isoScript, e.l.nowMs(), []string{e.l.Keys().Seq()}, args...)
	if err != nil {
		t.Fatal(err)
	}
	got, err := stringList(v)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%d ms: lua %q, go %q", ms[i], got[i], want[i])
		}
	}
	if !strings.HasSuffix(got[0], "Z") {
		t.Fatal(got[0])
	}
}

// recoverConcurrently runs recover from workers goroutines, five times each, then alone until
// want sends were recovered or a call recovers nothing; it returns how many times each send
// was recovered.
func recoverConcurrently(t *testing.T, workers, want int, recover func() ([]string, error)) map[string]int {
	t.Helper()
	var (
		mu  sync.Mutex
		got = map[string]int{}
		wg  sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for range 5 {
				ids, err := recover()
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, id := range ids {
					got[id]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for len(got) < want { // the goroutines may not have drained it all
		ids, err := recover()
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) == 0 {
			break
		}
		for _, id := range ids {
			got[id]++
		}
	}
	return got
}
