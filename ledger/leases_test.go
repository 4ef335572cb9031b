package ledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/internal/redisproc"
	"github.com/sendworker/sendworker/tasks"
)

const leaseGrace = 5 * time.Second

func (e *env) recoverLeases(limit int) []string {
	e.t.Helper()
	ids, err := e.l.RecoverExpiredLeases(e.ctx, leaseGrace, limit)
	if err != nil {
		e.t.Fatal(err)
	}
	slices.Sort(ids)
	return ids
}

// TestRecoverExpiredLeases: a sending send whose lease ended more than grace
// ago is recovered (outbox at now, gen+1, watch at now, history event), not
// before; then it is neither recovered again nor by RecoverStuck until its
// next lease; the new task reconciles and the old one is stale.
func TestRecoverExpiredLeases(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	t0 := e.clock.Now()
	_, oldToken := e.sending("s1", "acct") // lease until t0+1m
	oldGen := e.gen("s1")
	if s, ok := e.zscore(e.l.Keys().Leases(), "s1"); !ok || int64(s) != t0.Add(time.Minute).UnixMilli() {
		t.Fatalf("leases %v %v", s, ok)
	}
	e.clock.Advance(30 * time.Second) // live lease
	if ids := e.recoverLeases(10); len(ids) != 0 {
		t.Fatalf("recovered a live lease: %v", ids)
	}
	e.clock.Advance(30*time.Second + leaseGrace) // lease end + grace: not yet
	if ids := e.recoverLeases(10); len(ids) != 0 {
		t.Fatalf("recovered at lease end + grace: %v", ids)
	}
	e.clock.Advance(time.Millisecond)
	if ids := e.recoverLeases(10); !slices.Equal(ids, []string{"s1"}) {
		t.Fatalf("recovered %v", ids)
	}
	rec := e.get("s1")
	wantState(t, rec, tasks.StateSending, "")
	if rec.Gen != oldGen+1 || e.gen("s1") != oldGen+1 {
		t.Fatalf("gen %d (record %d), want %d", e.gen("s1"), rec.Gen, oldGen+1)
	}
	if last := rec.History[len(rec.History)-1]; last.State != tasks.StateSending || last.Attempt != 1 ||
		last.By != RecoveredBy || last.Detail != "recovered: lease expired at 2030-01-02T03:05:05Z" {
		t.Fatalf("history event %+v", last)
	}
	if s, ok := e.zscore(e.l.Keys().Outbox(), "s1"); !ok || int64(s) != e.clock.Now().UnixMilli() {
		t.Fatalf("outbox %v %v", s, ok)
	}
	e.wantWatch("s1", e.clock.Now())
	if _, ok := e.zscore(e.l.Keys().Leases(), "s1"); ok {
		t.Fatal("still in leases")
	}
	e.checkWatch()

	// Recovered once: neither recovery takes it again.
	e.clock.Advance(leaseGrace + time.Second)
	if ids := e.recoverLeases(10); len(ids) != 0 {
		t.Fatalf("recovered twice: %v", ids)
	}
	if ids := e.recoverStuck(10); len(ids) != 0 {
		t.Fatalf("RecoverStuck after RecoverExpiredLeases: %v", ids)
	}

	// The new task reconciles; the old one is stale and its token is gone.
	due := e.releaseAll()
	if len(due) != 1 || due[0].Gen != oldGen+1 {
		t.Fatalf("due %+v", due)
	}
	if res := e.begin("s1", oldGen, "old-retry", time.Minute); res.Outcome != BeginStale {
		t.Fatalf("old task: %v", res.Outcome)
	}
	if res := e.begin("s1", oldGen+1, "new", time.Minute); res.Outcome != BeginReconcile || res.Attempt != 1 {
		t.Fatalf("new task: %v attempt %d", res.Outcome, res.Attempt)
	}
	e.checkWatch()
	if _, err := e.l.Finish(e.ctx, "s1", oldToken, Outcome{State: tasks.StateSent, MessageID: "m1"}); err == nil {
		t.Fatal("old execution finished")
	}

	// The reconciler's lease expires in turn: recovered again, once.
	e.clock.Advance(time.Minute + leaseGrace + time.Millisecond)
	if ids := e.recoverLeases(10); !slices.Equal(ids, []string{"s1"}) || e.gen("s1") != oldGen+2 {
		t.Fatalf("second recovery %v gen %d", ids, e.gen("s1"))
	}
	e.checkWatch()
	res := e.begin("s1", oldGen+2, "newer", time.Minute)
	if res.Outcome != BeginReconcile {
		t.Fatalf("newer task: %v", res.Outcome)
	}
	if _, err := e.l.Finish(e.ctx, "s1", "newer", Outcome{State: tasks.StateSent, MessageID: "m1"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.zscore(e.l.Keys().Leases(), "s1"); ok {
		t.Fatal("final send still in leases")
	}
	e.checkWatch()
}

// TestRecoverStuckLeavesLeases: a sending send RecoverStuck recovered is not
// recovered again by RecoverExpiredLeases.
func TestRecoverStuckLeavesLeases(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.sending("s1", "acct")
	gen := e.gen("s1")
	e.clock.Advance(time.Minute + grace + time.Millisecond)
	if ids := e.recoverStuck(10); !slices.Equal(ids, []string{"s1"}) {
		t.Fatalf("RecoverStuck %v", ids)
	}
	if ids := e.recoverLeases(10); len(ids) != 0 || e.gen("s1") != gen+1 {
		t.Fatalf("RecoverExpiredLeases after RecoverStuck: %v gen %d", ids, e.gen("s1"))
	}
	e.checkWatch()
}

// TestExpiredLeasesOnlyTouchSending: sends in any other state, or sending
// with a live lease, are left exactly as they are, even with an expired
// entry forged into the leases.
func TestExpiredLeasesOnlyTouchSending(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(e *env)
	}{
		{"sending with a live lease", func(e *env) {
			_, gen := e.approved("s1", "acct")
			e.releaseAll()
			e.begin("s1", gen, "t1", 3*time.Hour)
		}},
		{"approved, released long ago", func(e *env) {
			e.approved("s1", "acct")
			e.releaseAll()
		}},
		{"approved, not yet released", func(e *env) {
			e.approved("s1", "acct")
		}},
		{"waiting", func(e *env) {
			e.waiting("s1", "acct")
		}},
		{"waiting after a deferred attempt", func(e *env) {
			_, token := e.sending("s1", "acct")
			if _, err := e.l.Defer(e.ctx, "s1", token, e.clock.Now().Add(time.Minute), tasks.ReasonWaitProvider); err != nil {
				e.t.Fatal(err)
			}
		}},
		{"approved after a reconciled attempt", func(e *env) {
			e.sending("s1", "acct")
			e.clock.Advance(2 * time.Minute)
			e.begin("s1", e.gen("s1"), "rec", time.Minute)
			if err := e.l.ResolveReconciled(e.ctx, "s1", "rec"); err != nil {
				e.t.Fatal(err)
			}
		}},
		{"held by a pause", func(e *env) {
			_, gen := e.approved("s1", "acct")
			e.releaseAll()
			e.pause("acct", true)
			e.begin("s1", gen, "t1", time.Minute)
		}},
		{"sent", func(e *env) {
			_, token := e.sending("s1", "acct")
			if _, err := e.l.Finish(e.ctx, "s1", token, Outcome{State: tasks.StateSent, MessageID: "m1"}); err != nil {
				e.t.Fatal(err)
			}
		}},
		{"needs_review", func(e *env) {
			_, token := e.sending("s1", "acct")
			if _, err := e.l.Finish(e.ctx, "s1", token, Outcome{State: tasks.StateNeedsReview, Reason: tasks.ReasonUnknownOutcome}); err != nil {
				e.t.Fatal(err)
			}
		}},
		{"pending", func(e *env) {
			e.create("s1", "acct")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			tt.setup(e)
			e.clock.Advance(time.Hour)
			k := e.l.Keys()
			before := e.get("s1")
			watch, watched := e.zscore(k.Watch(), "s1")
			out, queued := e.zscore(k.Outbox(), "s1")
			check := func(when string) {
				t.Helper()
				after := e.get("s1")
				if after.Gen != before.Gen || after.State != before.State || len(after.History) != len(before.History) ||
					!after.UpdatedAt.Equal(before.UpdatedAt) {
					t.Fatalf("%s: changed: gen %d→%d, %s→%s", when, before.Gen, after.Gen, before.State, after.State)
				}
				if w, ok := e.zscore(k.Watch(), "s1"); ok != watched || w != watch {
					t.Fatalf("%s: watch %v/%v → %v/%v", when, watch, watched, w, ok)
				}
				if o, ok := e.zscore(k.Outbox(), "s1"); ok != queued || o != out {
					t.Fatalf("%s: outbox %v/%v → %v/%v", when, out, queued, o, ok)
				}
			}
			if ids := e.recoverLeases(10); len(ids) != 0 {
				t.Fatalf("recovered %v", ids)
			}
			check("recover")
			// Even with an entry that is (wrongly) long expired.
			e.rdb.ZAdd(e.ctx, k.Leases(), redisZ(time.Unix(0, 0), "s1")...)
			if ids := e.recoverLeases(10); len(ids) != 0 {
				t.Fatalf("recovered from a forged entry: %v", ids)
			}
			check("forged entry")
			e.checkWatch() // the forged entry was dropped, or re-scored at the live lease
		})
	}
	e := newEnv(t)
	if _, err := e.l.RecoverExpiredLeases(e.ctx, 0, 5); err == nil {
		t.Fatal("zero grace accepted")
	}
}

// TestRecoverExpiredLeasesConcurrent: concurrent calls recover each expired
// lease once, in batches that do not starve each other; live ones stay.
func TestRecoverExpiredLeasesConcurrent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const n = 60
	gens := map[string]int64{}
	for i := range n {
		id := fmt.Sprintf("s%02d", i)
		e.sending(id, "acct")
		gens[id] = e.gen(id)
	}
	_, liveGen := e.approved("live", "acct")
	e.begin("live", liveGen, "t-live", time.Hour)
	e.clock.Advance(time.Minute + leaseGrace + time.Second)
	got := recoverConcurrently(t, 3, n, func() ([]string, error) { return e.l.RecoverExpiredLeases(e.ctx, leaseGrace, 7) })
	for id, gen := range gens {
		if got[id] != 1 || e.gen(id) != gen+1 {
			t.Fatalf("%s recovered %d times, gen %d (was %d)", id, got[id], e.gen(id), gen)
		}
	}
	if got["live"] != 0 || e.gen("live") != liveGen {
		t.Fatalf("live lease recovered %d times", got["live"])
	}
	if size, _ := e.l.OutboxSize(e.ctx); size != n {
		t.Fatalf("outbox %d", size)
	}
	if left := e.rdb.ZRange(e.ctx, e.l.Keys().Leases(), 0, -1).Val(); !slices.Equal(left, []string{"live"}) {
		t.Fatalf("leases left %v", left)
	}
	e.checkWatch()
}

// With LeaseClockRedis, leases are set and judged by Redis's clock: a replica whose own clock
// runs ten minutes ahead neither takes over nor recovers an attempt whose lease is live, and
// a lease ended by EndCall is over for everyone at once. With the callers' clocks (the
// contrast at the end) the same replica would take the attempt over.
func TestLeaseClockRedisIgnoresSkew(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rec, gen := e.approved("s1", "acct")
	opts := e.l.opts
	opts.LeaseClock = LeaseClockRedis
	opts.Now = time.Now
	owner := New(e.rdb, opts)
	opts.Now = func() time.Time { return time.Now().Add(10 * time.Minute) }
	ahead := New(e.rdb, opts)
	begin := func(l *Ledger, token string) BeginResult {
		t.Helper()
		res, err := l.BeginAttempt(e.ctx, BeginRequest{SendID: "s1", Digest: rec.Digest, Gen: gen, Token: token, Lease: time.Minute, NoRecord: true})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := begin(owner, "owner"); res.Outcome != BeginOK {
		t.Fatalf("owner: %v", res.Outcome)
	}
	if res := begin(ahead, "ahead"); res.Outcome != BeginInFlight {
		t.Fatalf("replica ahead: %v, want in_flight (its clock must not end the lease)", res.Outcome)
	}
	if ids, err := ahead.RecoverExpiredLeases(e.ctx, 5*time.Second, 100); err != nil || len(ids) != 0 {
		t.Fatalf("replica ahead recovered %v %v", ids, err)
	}
	if ids, err := ahead.RecoverStuck(e.ctx, 5*time.Second, 100); err != nil || len(ids) != 0 {
		t.Fatalf("replica ahead's watchdog recovered %v %v", ids, err)
	}
	// The owner's call ends with the outcome unknown: the lease is over now, for everyone.
	if err := owner.EndCall(e.ctx, "s1", "owner", 0); err != nil {
		t.Fatal(err)
	}
	if res := begin(ahead, "reconciler"); res.Outcome != BeginReconcile {
		t.Fatalf("after EndCall: %v, want reconcile", res.Outcome)
	}

	// Contrast: the same skew with the callers' clocks ends a live lease.
	e2 := newEnv(t)
	rec2, gen2 := e2.approved("s2", "acct")
	opts = e2.l.opts
	opts.LeaseClock = LeaseClockCaller
	opts.Now = time.Now
	owner2 := New(e2.rdb, opts)
	opts.Now = func() time.Time { return time.Now().Add(10 * time.Minute) }
	ahead2 := New(e2.rdb, opts)
	for i, l := range []*Ledger{owner2, ahead2} {
		res, err := l.BeginAttempt(e2.ctx, BeginRequest{SendID: "s2", Digest: rec2.Digest, Gen: gen2, Token: fmt.Sprint("t", i), Lease: time.Minute, NoRecord: true})
		if err != nil {
			t.Fatal(err)
		}
		if want := []BeginOutcome{BeginOK, BeginReconcile}[i]; res.Outcome != want {
			t.Fatalf("caller clocks, ledger %d: %v, want %v", i, res.Outcome, want)
		}
	}
}

// With WaitReplicas, an attempt is begun only once a replica holds its start: with the replica
// up, BeginAttempt answers as usual; with it down, the attempt is started but answered
// ErrNotReplicated (the caller must not send), with either way of reading the record.
func TestBeginAttemptWaitsForReplicas(t *testing.T) {
	t.Parallel()
	master, err := redisproc.Start(context.Background(), redisproc.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = master.Kill() })
	replica, err := redisproc.Start(context.Background(), redisproc.Options{Dir: t.TempDir(), ReplicaOf: master.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = replica.Kill() })
	rdb := redis.NewClient(&redis.Options{Addr: master.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	replicaClient := redis.NewClient(&redis.Options{Addr: replica.Addr()})
	t.Cleanup(func() { _ = replicaClient.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for replicaClient.InfoMap(ctx, "replication").Item("Replication", "master_link_status") != "up" {
		if time.Now().After(deadline) {
			t.Fatal("the replica did not sync")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A replica under a loaded CI box may take a while to acknowledge: 2 s while it is up,
	// 300 ms once it is gone (the refusals below wait that long).
	up := New(rdb, Options{WaitReplicas: 1, WaitTimeout: 2 * time.Second})
	if n, err := up.ConnectedReplicas(ctx); err != nil || n != 1 {
		t.Fatalf("connected replicas %d %v, want 1", n, err)
	}
	l := New(rdb, Options{WaitReplicas: 1, WaitTimeout: 300 * time.Millisecond})
	approved := func(id string) (string, int64) {
		t.Helper()
		req := request(id, "acct")
		rec, _, err := l.Create(ctx, req, req.Digest(), time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		// While the replica is up, with the 2 s ledger: an approval waits for it too.
		if rec, err = up.Approve(ctx, id, rec.Digest, "approver", ""); err != nil {
			t.Fatal(err)
		}
		return rec.Digest, rec.Gen
	}
	for _, noRecord := range []bool{true, false} {
		id := fmt.Sprintf("up-%v", noRecord)
		digest, gen := approved(id)
		res, err := up.BeginAttempt(ctx, BeginRequest{SendID: id, Digest: digest, Gen: gen, Token: "t", Lease: time.Minute, NoRecord: noRecord})
		if err != nil || res.Outcome != BeginOK {
			t.Fatalf("replica up, no record %v: %v %v", noRecord, res.Outcome, err)
		}
	}
	// Created while the replica is up, so that only the attempt's start can miss it.
	var ids []string
	for _, noRecord := range []bool{true, false} {
		ids = append(ids, fmt.Sprintf("down-%v", noRecord))
	}
	digests, gens := map[string]string{}, map[string]int64{}
	for _, id := range ids {
		digests[id], gens[id] = approved(id)
	}
	if err := replica.Kill(); err != nil {
		t.Fatal(err)
	}
	for i, noRecord := range []bool{true, false} {
		id := ids[i]
		res, err := l.BeginAttempt(ctx, BeginRequest{SendID: id, Digest: digests[id], Gen: gens[id], Token: "t", Lease: time.Minute, NoRecord: noRecord})
		if !errors.Is(err, ErrNotReplicated) || res.Outcome != BeginOK {
			t.Fatalf("replica down, no record %v: %v %v, want BeginOK with ErrNotReplicated", noRecord, res.Outcome, err)
		}
		// The attempt is the caller's: it ends it without sending.
		rec, err := l.Defer(ctx, id, "t", time.Now().Add(time.Minute), tasks.ReasonWaitTransient)
		if err != nil || rec.State != tasks.StateWaiting {
			t.Fatalf("defer after a refused start: %v %v", rec, err)
		}
	}
	// An approval is as durable as an attempt start: with the replica gone it stands on the
	// master but is answered ErrNotReplicated, not as done.
	req := request("approve-down", "acct")
	created, _, err := l.Create(ctx, req, req.Digest(), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := l.Approve(ctx, "approve-down", created.Digest, "approver", "")
	if !errors.Is(err, ErrNotReplicated) || rec == nil || rec.State != tasks.StateApproved {
		t.Fatalf("approve with the replica down: %v %v, want the approved record with ErrNotReplicated", rec, err)
	}
	if _, err := l.Approve(ctx, "missing", created.Digest, "approver", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("approve a missing send: %v", err)
	}
}
