package ledger

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sendworker/sendworker/results"
	"github.com/sendworker/sendworker/tasks"
)

// createIn enqueues a send into chat with stop_if_replied_since = since (nil: none).
func (e *env) createIn(id, account, chat string, since *time.Time) *tasks.Record {
	e.t.Helper()
	req := request(id, account)
	req.ChatID = chat
	req.StopIfRepliedSince = since
	rec, created, err := e.l.Create(e.ctx, req, req.Digest(), e.clock.Now().Add(time.Hour))
	if err != nil || !created {
		e.t.Fatalf("create %s: created=%v err=%v", id, created, err)
	}
	return rec
}

func TestContactRepliedEndsTheChatsPendingSends(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	since := e.clock.Now().Add(-time.Hour)
	later := e.clock.Now().Add(time.Minute)
	const chat = "chat-lucas"
	e.createIn("pending", "acc", chat, &since)
	rec := e.createIn("approved", "acc", chat, &since)
	if _, err := e.l.Approve(e.ctx, "approved", rec.Digest, "alice", ""); err != nil {
		t.Fatal(err)
	}
	rec = e.createIn("waiting", "acc", chat, &since)
	if _, err := e.l.Approve(e.ctx, "waiting", rec.Digest, "alice", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.l.Defer(e.ctx, "waiting", "", e.clock.Now().Add(time.Hour), tasks.ReasonWaitRateLimit); err != nil {
		t.Fatal(err)
	}
	e.createIn("no-stop", "acc", chat, nil)           // no stop_if_replied_since: goes on
	e.createIn("after", "acc", chat, &later)          // stop set after the reply: goes on
	e.createIn("other-account", "acc2", chat, &since) // another account's send: goes on
	e.createIn("other-chat", "acc", "chat-other", &since)

	at := e.clock.Now()
	ev := ReplyEvent{Key: "acc:m1", AccountID: "acc", ChatID: chat, MessageID: "m1", SenderID: "336@s", At: at,
		ContactIDs: []string{chat, "336@s"}}
	out, err := e.l.ContactReplied(e.ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out.SendIDs)
	if want := []string{"approved", "pending", "waiting"}; !slices.Equal(out.SendIDs, want) || out.Duplicate {
		t.Fatalf("skipped %v (duplicate %v), want %v", out.SendIDs, out.Duplicate, want)
	}
	for _, id := range out.SendIDs {
		wantState(t, e.get(id), tasks.StateSkipped, tasks.ReasonContactReplied)
	}
	for _, id := range []string{"no-stop", "after", "other-account", "other-chat"} {
		if st := e.get(id).State; st != tasks.StatePendingApproval {
			t.Errorf("%s: state %s, want pending_approval", id, st)
		}
	}
	// One result per send and one event entry for the reply itself.
	var results, events int
	for _, m := range e.results() {
		if m.Values["event"] == EventContactReplied {
			events++
			if m.Values["chat_id"] != chat || m.Values["send_ids"] == "" {
				t.Errorf("event entry %v", m.Values)
			}
		} else if m.Values["reason"] == string(tasks.ReasonContactReplied) {
			results++
		}
	}
	if results != 3 || events != 1 {
		t.Fatalf("%d results and %d events, want 3 and 1", results, events)
	}
	// The same event again (a provider retry) changes nothing.
	again, err := e.l.ContactReplied(e.ctx, ev)
	if err != nil || !again.Duplicate {
		t.Fatalf("retry: %+v %v", again, err)
	}
	if n := len(e.results()); n != 4 {
		t.Fatalf("%d stream entries after the retry, want 4", n)
	}
}

func TestPutOptOutEndsPendingSendsAndBeginAttemptRefusesLaterOnes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createIn("p1", "acc", "chat-x", nil)
	e.createIn("p2", "acc2", "chat-x", nil)
	out, err := e.l.PutOptOut(e.ctx, OptOutRequest{
		Entry: OptOutEntry{ContactID: "336@s", Reason: "keyword", Source: "message m9", Keyword: "STOP", By: InboundBy},
		Key:   "acc:m9", AccountID: "acc", ChatID: "chat-x", OtherContactIDs: []string{"chat-x"},
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out.SendIDs)
	if !out.Added || !slices.Equal(out.SendIDs, []string{"p1", "p2"}) {
		t.Fatalf("outcome %+v", out)
	}
	wantState(t, e.get("p1"), tasks.StateSkipped, tasks.ReasonOptedOut)
	entries, err := e.l.OptOutEntries(e.ctx)
	if err != nil || len(entries) != 1 || entries[0].Keyword != "STOP" || entries[0].Source != "message m9" || entries[0].At.IsZero() {
		t.Fatalf("entries %+v %v", entries, err)
	}
	// A send enqueued afterwards is refused at the moment of sending.
	rec := e.createIn("later", "acc", "chat-x", nil)
	rec, err = e.l.Approve(e.ctx, "later", rec.Digest, "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.l.BeginAttempt(e.ctx, BeginRequest{SendID: "later", Digest: rec.Digest, Gen: e.gen("later"),
		Token: "t", Lease: time.Minute, ContactIDs: []string{"chat-x", "336@s"}})
	if err != nil || res.Outcome != BeginOptedOut {
		t.Fatalf("begin: %v %v", res.Outcome, err)
	}
	removed, err := e.l.DeleteOptOut(e.ctx, "336@s", "ops", "asked again")
	if err != nil || !removed {
		t.Fatalf("delete: %v %v", removed, err)
	}
	if entries, _ := e.l.OptOutEntries(e.ctx); len(entries) != 0 {
		t.Fatalf("entries after delete %+v", entries)
	}
	if ev := e.auditEvents(); !slices.Contains(ev, "optout_added") || !slices.Contains(ev, "optout_removed") {
		t.Fatalf("audit %v", ev)
	}
}

func TestRecordReceiptOnOurMessage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, token := e.sending("s1", "acc")
	if _, err := e.l.Finish(e.ctx, "s1", token, Outcome{State: tasks.StateSent, MessageID: "mid-1"}); err != nil {
		t.Fatal(err)
	}
	out, err := e.l.RecordReceipt(e.ctx, Receipt{Key: "r1", MessageID: "mid-1", Kind: "read", At: e.clock.Now()})
	if err != nil || !out.Matched || !slices.Equal(out.SendIDs, []string{"s1"}) {
		t.Fatalf("receipt %+v %v", out, err)
	}
	rec := e.get("s1")
	if rec.State != tasks.StateSent {
		t.Fatalf("state %s, want sent unchanged", rec.State)
	}
	last := rec.History[len(rec.History)-1]
	if last.By != InboundBy || last.State != tasks.StateSent {
		t.Fatalf("last history event %+v", last)
	}
	msgs := e.results()
	if m := msgs[len(msgs)-1]; m.Values["event"] != "message_read" || m.Values["send_id"] != "s1" {
		t.Fatalf("last stream entry %v", m.Values)
	}
	other, err := e.l.RecordReceipt(e.ctx, Receipt{Key: "r2", MessageID: "not-ours", Kind: "read", At: e.clock.Now()})
	if err != nil || other.Matched {
		t.Fatalf("receipt of another message %+v %v", other, err)
	}
}

// Every receipt kind lands in the results stream under the event type package
// results names for it (the decoder of results readers matches on those).
func TestReceiptKindsUseTheResultsEventTypes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, token := e.sending("s1", "acc")
	if _, err := e.l.Finish(e.ctx, "s1", token, Outcome{State: tasks.StateSent, MessageID: "mid-1"}); err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct{ kind, value, event string }{
		{"delivered", "", results.EventMessageDelivered},
		{"read", "", results.EventMessageRead},
		{"reaction", "👍", results.EventMessageReaction},
		{"edited", "", results.EventMessageEdited},
		{"deleted", "", results.EventMessageDeleted},
	} {
		out, err := e.l.RecordReceipt(e.ctx, Receipt{Key: fmt.Sprint("k", i), MessageID: "mid-1", Kind: tc.kind, Value: tc.value, At: e.clock.Now()})
		if err != nil || !out.Matched {
			t.Fatalf("%s: %+v %v", tc.kind, out, err)
		}
		msgs := e.results()
		if m := msgs[len(msgs)-1]; m.Values["event"] != tc.event || m.Values["status"] != tc.value {
			t.Errorf("%s: last stream entry %v, want event %s", tc.kind, m.Values, tc.event)
		}
	}
	if _, err := e.l.RecordReceipt(e.ctx, Receipt{Key: "kx", MessageID: "mid-1", Kind: "bounced", At: e.clock.Now()}); err == nil {
		t.Fatal("unknown receipt kind accepted")
	}
}
