package ledger

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/sendworker/sendworker/tasks"
)

// historyRun drives one send through a scenario, keeping the attempt token.
type historyRun struct {
	e     *env
	id    string
	token string
	n     int
}

type historyStep struct {
	name string
	do   func(r *historyRun) error
}

func stepApprove() historyStep {
	return historyStep{"approve", func(r *historyRun) error {
		rec := r.e.get(r.id)
		_, err := r.e.l.Approve(r.e.ctx, r.id, rec.Digest, "approver", "ok")
		return err
	}}
}

func stepBegin() historyStep {
	return historyStep{"begin", func(r *historyRun) error {
		r.n++
		r.token = "tok-" + r.id + "-" + string(rune('a'+r.n))
		rec := r.e.get(r.id)
		res, err := r.e.l.BeginAttempt(r.e.ctx, BeginRequest{SendID: r.id, Digest: rec.Digest, Gen: r.e.gen(r.id),
			Token: r.token, Lease: time.Minute})
		if err == nil && res.Outcome != BeginOK && res.Outcome != BeginHeld {
			r.e.t.Fatalf("begin: %v", res.Outcome)
		}
		return err
	}}
}

func stepEnd(out Outcome) historyStep {
	return historyStep{"end " + string(out.State), func(r *historyRun) error {
		_, err := r.e.l.Finish(r.e.ctx, r.id, r.token, out)
		return err
	}}
}

func stepDefer(token bool) historyStep {
	return historyStep{"defer", func(r *historyRun) error {
		tok := ""
		if token {
			tok = r.token
		}
		_, err := r.e.l.Defer(r.e.ctx, r.id, tok, r.e.clock.Now().Add(time.Minute), tasks.ReasonWaitRateLimit)
		return err
	}}
}

func stepResolve() historyStep {
	return historyStep{"resolve", func(r *historyRun) error { return r.e.l.ResolveReconciled(r.e.ctx, r.id, r.token) }}
}

func stepEndCall() historyStep {
	return historyStep{"end call", func(r *historyRun) error { return r.e.l.EndCall(r.e.ctx, r.id, r.token, time.Second) }}
}

func stepCancel() historyStep {
	return historyStep{"cancel", func(r *historyRun) error {
		_, err := r.e.l.Cancel(r.e.ctx, r.id, "ops", "no longer")
		if errors.Is(err, ErrTooLate) {
			return nil // recorded as a stop request, with its event
		}
		return err
	}}
}

func stepReceipt(kind string) historyStep {
	return historyStep{"receipt " + kind, func(r *historyRun) error {
		_, err := r.e.l.RecordReceipt(r.e.ctx, Receipt{MessageID: "m-" + r.id, Kind: kind, At: r.e.clock.Now()})
		return err
	}}
}

func stepReview(res Resolution) historyStep {
	return historyStep{"review " + string(res), func(r *historyRun) error {
		_, err := r.e.l.ResolveReview(r.e.ctx, r.id, res, "m-"+r.id, "ops", "checked")
		return err
	}}
}

func stepPause(paused bool) historyStep {
	return historyStep{"pause", func(r *historyRun) error { return r.e.l.SetPaused(r.e.ctx, "", paused, "ops") }}
}

func stepRecoverLeases() historyStep {
	return historyStep{"expired leases", func(r *historyRun) error {
		r.e.clock.Advance(2 * time.Minute)
		ids, err := r.e.l.RecoverExpiredLeases(r.e.ctx, time.Millisecond, 10)
		if err == nil && len(ids) != 1 {
			r.e.t.Fatalf("recovered %v", ids)
		}
		return err
	}}
}

// TestImplicitHistoryMatchesStored: a send whose history is implicit (the
// record tells its routine events) shows, after every step of every scenario,
// exactly the history the same send shows when every event is stored (its
// twin, given a stored history from its creation on, as sends had before
// implicit histories), and keeps no list while its life is routine.
func TestImplicitHistoryMatchesStored(t *testing.T) {
	t.Parallel()
	sent := Outcome{State: tasks.StateSent, MessageID: "m-s1", ChatID: "chat-s1"}
	scenarios := []struct {
		name  string
		steps []historyStep
		list  bool // the implicit send ends with a history list
	}{
		{"sent", []historyStep{stepApprove(), stepBegin(), stepEnd(sent)}, false},
		{"skipped by a guard", []historyStep{stepApprove(), stepEnd(Outcome{State: tasks.StateSkipped,
			Reason: tasks.ReasonColdRecipient, Detail: "no chat"})}, false},
		{"failed", []historyStep{stepApprove(), stepBegin(), stepEnd(Outcome{State: tasks.StateFailed,
			Reason: tasks.ReasonProviderRejected, Detail: "400"})}, false},
		{"receipts after sent", []historyStep{stepApprove(), stepBegin(), stepEnd(sent),
			stepReceipt("delivered"), stepReceipt("read")}, true},
		{"deferred then sent", []historyStep{stepApprove(), stepBegin(), stepDefer(true), stepBegin(), stepEnd(sent)}, true},
		{"deferred before any attempt", []historyStep{stepApprove(), stepDefer(false), stepBegin(), stepEnd(sent)}, true},
		{"reconciled not sent", []historyStep{stepApprove(), stepBegin(), stepEndCall(), stepResolve(), stepBegin(),
			stepEnd(sent)}, true},
		{"canceled while approved", []historyStep{stepApprove(), stepCancel()}, true},
		{"cancel requested while sending", []historyStep{stepApprove(), stepBegin(), stepCancel(), stepDefer(true)}, true},
		{"review marked not sent", []historyStep{stepApprove(), stepBegin(), stepEnd(Outcome{State: tasks.StateNeedsReview,
			Reason: tasks.ReasonUnknownOutcome}), stepReview(ResolveNotSent), stepBegin(), stepEnd(sent)}, true},
		{"review marked sent", []historyStep{stepApprove(), stepBegin(), stepEnd(Outcome{State: tasks.StateNeedsReview,
			Reason: tasks.ReasonUnknownOutcome}), stepReview(ResolveSent)}, true},
		{"held by a pause", []historyStep{stepPause(true), stepApprove(), stepBegin(), stepPause(false)}, true},
		{"lease expired", []historyStep{stepApprove(), stepBegin(), stepRecoverLeases()}, true},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			implicit, stored := newEnv(t), newEnv(t)
			implicit.create("s1", "acct")
			created := stored.create("s1", "acct")
			// the twin's history is stored from its creation on
			first, _ := json.Marshal(created.History[0])
			if err := stored.rdb.RPush(stored.ctx, stored.l.Keys().History("s1"), first).Err(); err != nil {
				t.Fatal(err)
			}
			runs := []*historyRun{{e: implicit, id: "s1"}, {e: stored, id: "s1"}}
			for _, step := range sc.steps {
				for _, r := range runs {
					r.e.clock.Advance(1500 * time.Millisecond)
					if err := step.do(r); err != nil {
						t.Fatalf("%s: %v", step.name, err)
					}
				}
				got, want := implicit.get("s1"), stored.get("s1")
				if got.State != want.State {
					t.Fatalf("after %s: state %s, twin %s", step.name, got.State, want.State)
				}
				if !reflect.DeepEqual(got.History, want.History) {
					t.Fatalf("after %s: history\n got %+v\nwant %+v", step.name, got.History, want.History)
				}
			}
			if len(implicit.get("s1").History) < 2 {
				t.Fatal("no events")
			}
			hk := implicit.l.Keys().History("s1")
			if n := implicit.rdb.Exists(implicit.ctx, hk).Val(); (n == 1) != sc.list {
				t.Fatalf("history list exists: %v, want %v", n == 1, sc.list)
			}
			if sc.list {
				// a written-out history expires with its record
				rttl := implicit.rdb.PTTL(implicit.ctx, implicit.l.Keys().Send("s1")).Val()
				httl := implicit.rdb.PTTL(implicit.ctx, hk).Val()
				if (rttl > 0) != (httl > 0) || httl > rttl+time.Second {
					t.Fatalf("history ttl %v, record ttl %v", httl, rttl)
				}
			}
		})
	}
}

// TestHistoryReadAcrossAWriteOut: a record read with hi set, then its history list read after a
// script wrote the implicit history out (GetWithBreaker's reads are not one MULTI), gives the
// history a read after the script gives.
func TestHistoryReadAcrossAWriteOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, token := e.sending("s1", "acct")
	if _, err := e.l.Finish(e.ctx, "s1", token, Outcome{State: tasks.StateSent, MessageID: "m-s1", ChatID: "c"}); err != nil {
		t.Fatal(err)
	}
	before := e.rdb.HGetAll(e.ctx, e.l.Keys().Send("s1")).Val()
	if before[fHistImplicit] != "1" {
		t.Fatalf("hi %q", before[fHistImplicit])
	}
	e.clock.Advance(time.Second)
	if _, err := e.l.RecordReceipt(e.ctx, Receipt{MessageID: "m-s1", Kind: "delivered", At: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	items := e.rdb.LRange(e.ctx, e.l.Keys().History("s1"), 0, -1).Val()
	st, err := decodeRecord(before)
	if err != nil {
		t.Fatal(err)
	}
	got, err := historyOf(before, st.rec, items)
	if err != nil {
		t.Fatal(err)
	}
	if want := e.get("s1").History; !reflect.DeepEqual(got, want) || len(want) != 5 {
		t.Fatalf("history\n got %+v\nwant %+v", got, want)
	}
}
