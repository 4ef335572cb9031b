package ledger

import (
	"errors"
	"testing"

	"github.com/sendworker/sendworker/tasks"
)

// inReview brings a send to needs_review as the worker does when it cannot
// tell whether an attempt was delivered.
func (e *env) inReview(id string) *tasks.Record {
	e.t.Helper()
	_, token := e.sending(id, "acc")
	rec, err := e.l.Finish(e.ctx, id, token, Outcome{State: tasks.StateNeedsReview, Reason: tasks.ReasonUnknownOutcome})
	if err != nil || rec.State != tasks.StateNeedsReview {
		e.t.Fatalf("needs review %s: %+v %v", id, rec, err)
	}
	return rec
}

func TestResolveReview(t *testing.T) {
	e := newEnv(t)
	// Marked sent with the chat's message: sent, the message claimed, a result written.
	e.inReview("s-1")
	rec, err := e.l.ResolveReview(e.ctx, "s-1", ResolveSent, "m-1", "ops", "found it")
	if err != nil || rec.State != tasks.StateSent || rec.Reason != tasks.ReasonMarkedSent || rec.Result.MessageID != "m-1" || rec.Decision.By != "ops" {
		t.Fatalf("marked sent = %+v, %v", rec, err)
	}
	if owner, _ := e.l.SendByMessage(e.ctx, "m-1"); owner != "s-1" {
		t.Fatalf("m-1 is claimed by %q", owner)
	}
	// Another send cannot take the same message; a send not in review is refused.
	e.inReview("s-2")
	if _, err := e.l.ResolveReview(e.ctx, "s-2", ResolveSent, "m-1", "ops", ""); !errors.Is(err, ErrMessageClaimed) {
		t.Fatalf("claimed message: %v", err)
	}
	if _, err := e.l.ResolveReview(e.ctx, "s-1", ResolveCancel, "", "ops", ""); !errors.Is(err, ErrNotInReview) {
		t.Fatalf("resolve of a sent send: %v", err)
	}
	// Canceled.
	if rec, err := e.l.ResolveReview(e.ctx, "s-2", ResolveCancel, "", "ops", "stale"); err != nil || rec.State != tasks.StateCanceled {
		t.Fatalf("cancel = %+v, %v", rec, err)
	}
	// Not sent: approved again, in the outbox with a new generation, out of the finished set.
	before := e.inReview("s-3")
	rec, err = e.l.ResolveReview(e.ctx, "s-3", ResolveNotSent, "", "ops", "checked the chat")
	if err != nil || rec.State != tasks.StateApproved || rec.Gen != before.Gen+1 || rec.Result != nil {
		t.Fatalf("not sent = %+v, %v", rec, err)
	}
	if last := rec.History[len(rec.History)-1]; last.Reason != tasks.ReasonMarkedNotSent || last.By != "ops" {
		t.Fatalf("history = %+v", last)
	}
	due, err := e.l.DueForRelease(e.ctx, 10)
	if err != nil || len(due) != 1 || due[0].SendID != "s-3" || due[0].Gen != rec.Gen {
		t.Fatalf("outbox = %+v, %v", due, err)
	}
	if ttl := e.rdb.PTTL(e.ctx, e.l.Keys().Send("s-3")).Val(); ttl >= 0 {
		t.Fatalf("the record of a send approved again still expires in %v", ttl)
	}
	if n := e.rdb.ZCard(e.ctx, e.l.Keys().Finished()).Val(); n != 2 {
		t.Fatalf("finished set holds %d entries, want 2 (s-1 sent, s-2 canceled)", n)
	}
}
