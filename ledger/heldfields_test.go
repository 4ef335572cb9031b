package ledger

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/sendworker/sendworker/tasks"
)

// The scripts read (and clear) a record's rarer fields only where they can be held, since an
// absent field costs HMGET a scan of the whole listpack record: BeginAttempt the wait's fields
// only from a waiting send and the previous attempt's watermark and reconciliation only once an
// attempt began; finish the wait's fields only from a waiting send, revised_by only with a
// revision, and writes an empty reason or detail only over a final state's. heldFieldsProblem
// says which of those assumptions the record h breaks ("" if none).
func heldFieldsProblem(h map[string]string) string {
	st := tasks.State(h[fState])
	for _, f := range []string{fWaitUntilMs, fWaitReason} {
		if h[f] != "" && st != tasks.StateWaiting {
			return f + " held in state " + string(st)
		}
	}
	attempts, _ := strconv.Atoi(h[fAttempts])
	for _, f := range []string{fReconcileAbsent, fReconcileLandsMs, fReconcileNextMs, fReconcileWhy, fAttemptWatermark} {
		if _, ok := h[f]; ok && attempts == 0 {
			return f + " held before any attempt"
		}
	}
	for _, f := range []string{fReason, fDetail} {
		if h[f] != "" && !st.Terminal() {
			return f + " held in state " + string(st)
		}
	}
	if _, ok := h[fRevisedBy]; ok && h[fRevision] == "" {
		return "revised_by held without a revision"
	}
	return ""
}

// TestFieldsAreHeldWhereTheScriptsReadThem takes sends through every kind of transition and
// checks after each step that the record holds the rarer fields only where the scripts look for
// them (heldFieldsProblem), and that a new attempt and a final state leave none of the fields
// they end: what a record reads back as does not depend on the fields the scripts skip.
func TestFieldsAreHeldWhereTheScriptsReadThem(t *testing.T) {
	t.Parallel()
	sent := Outcome{State: tasks.StateSent, MessageID: "m-s1", ChatID: "chat-s1"}
	review := Outcome{State: tasks.StateNeedsReview, Reason: tasks.ReasonUnknownOutcome, Detail: "unknown"}
	wm := &tasks.Watermark{ChatID: "chat-s1", MessageID: "m-0", At: time.Date(2030, 1, 2, 3, 0, 0, 0, time.UTC)}
	beginWith := func(w *tasks.Watermark) historyStep {
		name := "begin" // as stepBegin's: no watermark
		if w != nil {
			name = "begin with watermark"
		}
		return historyStep{name, func(r *historyRun) error {
			r.n++
			r.token = "tok-" + r.id + "-" + strconv.Itoa(r.n)
			rec := r.e.get(r.id)
			res, err := r.e.l.BeginAttempt(r.e.ctx, BeginRequest{SendID: r.id, Digest: rec.Digest, Gen: r.e.gen(r.id),
				Token: r.token, Lease: time.Minute, Watermark: w})
			if err == nil && res.Outcome != BeginOK {
				r.e.t.Fatalf("begin: %v", res.Outcome)
			}
			return err
		}}
	}
	reconcileLater := historyStep{"reconcile later", func(r *historyRun) error {
		_, err := r.e.l.ReconcileLater(r.e.ctx, r.id, r.token, Undecided{After: time.Second,
			LandsUntil: r.e.clock.Now().Add(time.Hour), Absent: true, Why: "absent in read 1"})
		return err
	}}
	revise := historyStep{"revise", func(r *historyRun) error {
		rec := r.e.get(r.id)
		next := request(r.id, "acct")
		next.Text = "revised"
		_, err := r.e.l.Revise(r.e.ctx, r.id, rec.Digest, next, next.Digest(), "editor")
		return err
	}}
	guard := func(out Outcome) historyStep { // ended by a guard, before any attempt of this release
		return historyStep{"guard ends " + string(out.State), func(r *historyRun) error {
			_, err := r.e.l.Finish(r.e.ctx, r.id, "", out)
			return err
		}}
	}
	dryReview := review
	dryReview.DryRun = true
	newChat := sent
	newChat.ChatID = "chat-new"
	scenarios := []struct {
		name  string
		steps []historyStep
		dry   bool   // the final result's dry run
		chat  string // the final result's chat ("" = the request's)
	}{
		{"dry run", []historyStep{stepApprove(), stepBegin(), stepEnd(Outcome{State: tasks.StateSent, MessageID: "m-s1",
			DryRun: true})}, true, ""},
		{"dry run review marked not sent, then sent", []historyStep{stepApprove(), stepBegin(), stepEnd(dryReview),
			stepReview(ResolveNotSent), stepBegin(), stepEnd(sent)}, false, ""},
		{"sent to another chat", []historyStep{stepApprove(), stepBegin(), stepEnd(newChat)}, false, "chat-new"},
		{"sent", []historyStep{stepApprove(), stepBegin(), stepEnd(sent)}, false, ""},
		{"skipped by a guard", []historyStep{stepApprove(), stepEnd(Outcome{State: tasks.StateSkipped,
			Reason: tasks.ReasonColdRecipient, Detail: "no chat"})}, false, ""},
		{"deferred, then sent", []historyStep{stepApprove(), stepBegin(), stepDefer(true), stepBegin(), stepEnd(sent)}, false, ""},
		{"deferred, then ended waiting", []historyStep{stepApprove(), stepDefer(false), guard(Outcome{
			State: tasks.StateFailed, Reason: tasks.ReasonProviderRejected})}, false, ""},
		{"deferred, then canceled", []historyStep{stepApprove(), stepDefer(false), stepCancel()}, false, ""},
		{"reconciled later, not sent, begun again", []historyStep{stepApprove(), beginWith(wm), reconcileLater,
			stepResolve(), stepBegin(), stepEnd(sent)}, false, ""},
		{"reconciled later, not sent, begun again with a watermark", []historyStep{stepApprove(), beginWith(wm),
			reconcileLater, stepResolve(), beginWith(wm), stepEnd(sent)}, false, ""},
		{"reconciled later, deferred, begun again", []historyStep{stepApprove(), beginWith(wm), reconcileLater,
			stepDefer(true), stepBegin(), stepEnd(sent)}, false, ""},
		{"lease lost, reconciled", []historyStep{stepApprove(), beginWith(wm), stepEndCall(), stepRecoverLeases(),
			stepResolve(), beginWith(nil), stepEnd(sent)}, false, ""},
		{"stop requested while sending", []historyStep{stepApprove(), stepBegin(), stepCancel(), stepDefer(true)}, false, ""},
		{"review marked not sent, then sent", []historyStep{stepApprove(), stepBegin(), stepEnd(review),
			stepReview(ResolveNotSent), stepBegin(), stepEnd(sent)}, false, ""},
		{"review marked not sent, then skipped", []historyStep{stepApprove(), stepBegin(), stepEnd(review),
			stepReview(ResolveNotSent), guard(Outcome{State: tasks.StateSkipped, Reason: tasks.ReasonColdRecipient})}, false, ""},
		{"review marked sent", []historyStep{stepApprove(), stepBegin(), stepEnd(review), stepReview(ResolveSent)}, false, ""},
		{"held by a pause, resumed", []historyStep{stepPause(true), stepApprove(), stepBegin(), stepPause(false),
			stepBegin(), stepEnd(sent)}, false, ""},
		{"deferred, held by a pause", []historyStep{stepApprove(), stepBegin(), stepDefer(true), stepPause(true),
			stepBegin(), stepPause(false), stepBegin(), stepEnd(sent)}, false, ""},
		{"revised, then sent", []historyStep{revise, stepApprove(), stepBegin(), stepEnd(sent)}, false, ""},
		{"revised, then canceled", []historyStep{revise, stepCancel()}, false, ""},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.create("s1", "acct")
			run := &historyRun{e: e, id: "s1"}
			rk := e.l.Keys().Send("s1")
			for _, step := range sc.steps {
				e.clock.Advance(1500 * time.Millisecond)
				before := e.get("s1")
				if err := step.do(run); err != nil {
					t.Fatalf("%s: %v", step.name, err)
				}
				h, err := e.rdb.HGetAll(e.ctx, rk).Result()
				if err != nil {
					t.Fatal(err)
				}
				if p := heldFieldsProblem(h); p != "" {
					t.Fatalf("after %s: %s", step.name, p)
				}
				rec := e.get("s1")
				if rec.State == tasks.StateSending && rec.Attempts > before.Attempts {
					// a new attempt: nothing of the wait or of the previous attempt's reconciliation
					rc := rec.Reconcile
					if rec.Wait != nil || rc.AbsentReads != 0 || rc.Why != "" || !rc.NextCheck.IsZero() || !rc.LandsUntil.IsZero() {
						t.Fatalf("after %s: wait %+v, reconcile %+v", step.name, rec.Wait, rc)
					}
					given := step.name == "begin with watermark"
					if (rc.Watermark != nil) != given || (given && *rc.Watermark != *wm) {
						t.Fatalf("after %s: watermark %+v", step.name, rc.Watermark)
					}
				}
				if rec.State.Terminal() {
					for _, f := range []string{fAttemptToken, fLeaseUntilMs, fWaitUntilMs, fWaitReason} {
						if h[f] != "" {
							t.Fatalf("after %s: final, %s = %q", step.name, f, h[f])
						}
					}
					if !before.State.Terminal() || rec.State != before.State {
						// the result written as the send ended is the record's
						msgs := e.results()
						var res tasks.Result
						if err := json.Unmarshal([]byte(msgs[len(msgs)-1].Values["result"].(string)), &res); err != nil {
							t.Fatal(err)
						}
						got, _ := json.Marshal(res)
						want, _ := json.Marshal(rec.Result)
						if string(got) != string(want) {
							t.Fatalf("after %s: result\n got %s\nwant %s", step.name, got, want)
						}
					}
					if before.State.Terminal() && rec.State != before.State && rec.Detail != "" {
						// a review's resolution leaves no detail of the state it ends
						t.Fatalf("after %s: detail %q", step.name, rec.Detail)
					}
				}
			}
			final := e.get("s1")
			if final.State == tasks.StateSent {
				chat := sc.chat
				if chat == "" {
					chat = "chat-s1"
				}
				if res := final.Result; res.MessageID != "m-s1" || res.DryRun != sc.dry || res.ChatID != chat {
					t.Fatalf("sent: result %+v", res)
				}
			}
		})
	}
}
