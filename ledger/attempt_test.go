package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/tasks"
)

func TestBeginAttempt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// setup returns the request to begin with
		setup     func(e *env) BeginRequest
		want      BeginOutcome
		wantState tasks.State
	}{
		{"approved begins", func(e *env) BeginRequest {
			rec, gen := e.approved("s1", "acct")
			return BeginRequest{SendID: "s1", Digest: rec.Digest, Gen: gen}
		}, BeginOK, tasks.StateSending},
		{"waiting begins", func(e *env) BeginRequest {
			rec := e.waiting("s1", "acct")
			return BeginRequest{SendID: "s1", Digest: rec.Digest, Gen: e.gen("s1")}
		}, BeginOK, tasks.StateSending},
		{"stale gen", func(e *env) BeginRequest {
			rec, gen := e.approved("s1", "acct")
			return BeginRequest{SendID: "s1", Digest: rec.Digest, Gen: gen - 1}
		}, BeginStale, tasks.StateApproved},
		{"future gen", func(e *env) BeginRequest {
			rec, gen := e.approved("s1", "acct")
			return BeginRequest{SendID: "s1", Digest: rec.Digest, Gen: gen + 1}
		}, BeginStale, tasks.StateApproved},
		{"stale digest", func(e *env) BeginRequest {
			_, gen := e.approved("s1", "acct")
			return BeginRequest{SendID: "s1", Digest: "0000", Gen: gen}
		}, BeginStale, tasks.StateApproved},
		{"pending never begins", func(e *env) BeginRequest {
			rec := e.create("s1", "acct")
			return BeginRequest{SendID: "s1", Digest: rec.Digest, Gen: 0}
		}, BeginStale, tasks.StatePendingApproval},
		{"final", func(e *env) BeginRequest {
			rec, gen := e.approved("s1", "acct")
			if _, err := e.l.Cancel(e.ctx, "s1", "admin", ""); err != nil {
				e.t.Fatal(err)
			}
			return BeginRequest{SendID: "s1", Digest: rec.Digest, Gen: gen}
		}, BeginFinal, tasks.StateCanceled},
		{"in flight", func(e *env) BeginRequest {
			rec, _ := e.sending("s1", "acct")
			e.clock.Advance(59 * time.Second)
			return BeginRequest{SendID: "s1", Digest: rec.Digest, Gen: e.gen("s1")}
		}, BeginInFlight, tasks.StateSending},
		{"expired lease reconciles", func(e *env) BeginRequest {
			rec, _ := e.sending("s1", "acct")
			e.clock.Advance(time.Minute)
			return BeginRequest{SendID: "s1", Digest: rec.Digest, Gen: e.gen("s1")}
		}, BeginReconcile, tasks.StateSending},
		{"expecting sending, expired lease reconciles", func(e *env) BeginRequest {
			rec, _ := e.sending("s1", "acct")
			e.clock.Advance(time.Minute)
			return BeginRequest{SendID: "s1", Digest: rec.Digest, Gen: e.gen("s1"), ExpectSending: true}
		}, BeginReconcile, tasks.StateSending},
		{"expecting sending, but approved again: no attempt", func(e *env) BeginRequest {
			rec, gen := e.approved("s1", "acct")
			return BeginRequest{SendID: "s1", Digest: rec.Digest, Gen: gen, ExpectSending: true}
		}, BeginStale, tasks.StateApproved},
	}
	// Every case twice: with the record read back, and with NoRecord (the worker's way).
	for _, tt := range tests {
		for _, noRecord := range []bool{false, true} {
			name := tt.name
			if noRecord {
				name += "/no-record"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				beginCase(t, tt.setup, tt.want, tt.wantState, noRecord)
			})
		}
	}
}

func beginCase(t *testing.T, setup func(e *env) BeginRequest, want BeginOutcome, wantState tasks.State, noRecord bool) {
	t.Helper()
	e := newEnv(t)
	req := setup(e)
	before := e.get("s1")
	req.Token, req.Lease, req.NoRecord = "new-token", 2*time.Minute, noRecord
	res, err := e.l.BeginAttempt(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	after := e.get("s1")
	switch {
	case !noRecord || want == BeginFinal || want == BeginOptedOut || want == BeginReconcile:
		if res.Record == nil || !reflect.DeepEqual(res.Record, after) {
			t.Fatalf("record\n got %+v\nwant %+v", res.Record, after)
		}
	case res.Record != nil:
		t.Fatalf("NoRecord: record %+v returned for %v", res.Record, res.Outcome)
	}
	if res.Outcome != want || after.State != wantState {
		t.Fatalf("outcome %v state %s, want %v %s", res.Outcome, after.State, want, wantState)
	}
	switch want {
	case BeginStale, BeginFinal, BeginInFlight:
		if !reflect.DeepEqual(before, after) {
			t.Fatalf("record changed:\n%+v\n%+v", before, after)
		}
	case BeginOK:
		if res.Attempt != 1 || after.Attempts != 1 || after.Wait != nil ||
			!res.AttemptStartedAt.Equal(e.clock.Now()) || !res.LeaseUntil.Equal(e.clock.Now().Add(2*time.Minute)) {
			t.Fatalf("begin result %+v, record %+v", res, after)
		}
		if n, _ := e.l.OutboxSize(e.ctx); n != 0 {
			t.Fatalf("outbox %d after begin", n)
		}
	}
	if want == BeginInFlight && !res.LeaseUntil.Equal(e.clock.Now().Add(time.Second)) {
		t.Fatalf("lease until %v", res.LeaseUntil)
	}
	if want == BeginReconcile {
		if res.Attempt != 1 || !res.AttemptStartedAt.Equal(e.clock.Now().Add(-time.Minute)) {
			t.Fatalf("reconcile result %+v", res)
		}
		// The token was replaced: the old execution can no longer finish.
		_, err := e.l.Finish(e.ctx, "s1", "tok-s1", Outcome{State: tasks.StateSent, MessageID: "m1"})
		wantStateErr(t, err, ErrStaleAttempt, tasks.StateSending)
		if _, err := e.l.Finish(e.ctx, "s1", "new-token", Outcome{State: tasks.StateSent, MessageID: "m1"}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBeginAttemptErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if _, err := e.l.BeginAttempt(e.ctx, BeginRequest{SendID: "x", Token: "t", Lease: time.Second}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	if _, err := e.l.BeginAttempt(e.ctx, BeginRequest{SendID: "x", Lease: time.Second}); err == nil {
		t.Fatal("no token accepted")
	}
}

func TestBeginAttemptRace(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rec, gen := e.approved("s1", "acct")
	var mu sync.Mutex
	counts := map[BeginOutcome]int{}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			res, err := e.l.BeginAttempt(e.ctx, BeginRequest{SendID: "s1", Digest: rec.Digest, Gen: gen,
				Token: fmt.Sprintf("t%d", i), Lease: time.Minute})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			counts[res.Outcome]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if counts[BeginOK] != 1 || counts[BeginInFlight] != 19 {
		t.Fatalf("outcomes %v", counts)
	}
	if got := e.get("s1"); got.Attempts != 1 {
		t.Fatalf("attempts %d", got.Attempts)
	}
}

// An opted-out contact ends the send in the begin script (skipped, result written), and the
// final record comes back, with either way of reading it.
func TestOptedOutAtBegin(t *testing.T) {
	t.Parallel()
	for _, noRecord := range []bool{false, true} {
		t.Run(fmt.Sprintf("no-record=%v", noRecord), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			rec, gen := e.approved("s1", "acct")
			if err := e.l.AddOptOut(e.ctx, "contact-9", "admin"); err != nil {
				t.Fatal(err)
			}
			res, err := e.l.BeginAttempt(e.ctx, BeginRequest{SendID: "s1", Digest: rec.Digest, Gen: gen, Token: "t", Lease: time.Minute,
				ContactIDs: []string{"chat-s1", "contact-9"}, NoRecord: noRecord})
			if err != nil || res.Outcome != BeginOptedOut {
				t.Fatalf("begin %v %v", res.Outcome, err)
			}
			wantState(t, res.Record, tasks.StateSkipped, tasks.ReasonOptedOut)
			if res.Record.Result == nil || res.Record.Result.Reason != tasks.ReasonOptedOut || res.Record.Attempts != 0 {
				t.Fatalf("result %+v", res.Record.Result)
			}
			msgs := e.results()
			if len(msgs) != 1 || msgs[0].Values["state"] != "skipped" || msgs[0].Values["reason"] != "opted_out" {
				t.Fatalf("results %v", msgs)
			}
		})
	}
}

func TestFinishAndResults(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rec, token := e.sending("s1", "acct")
	if _, err := e.l.Finish(e.ctx, "s1", "wrong", Outcome{State: tasks.StateSent}); !errors.Is(err, ErrStaleAttempt) {
		t.Fatalf("wrong token: %v", err)
	}
	if _, err := e.l.Finish(e.ctx, "s1", "", Outcome{State: tasks.StateSent}); !errors.Is(err, ErrStaleAttempt) {
		t.Fatalf("no token while sending: %v", err)
	}
	if _, err := e.l.Finish(e.ctx, "s1", token, Outcome{State: tasks.StateSending}); err == nil {
		t.Fatal("non-final outcome accepted")
	}
	e.clock.Advance(1500 * time.Millisecond)
	done, err := e.l.Finish(e.ctx, "s1", token, Outcome{State: tasks.StateSent, MessageID: "msg-1", ChatID: "chat-s1"})
	if err != nil {
		t.Fatal(err)
	}
	wantState(t, done, tasks.StateSent, "")
	want := &tasks.Result{
		SendID: "s1", Operation: tasks.OpSendMessage, AccountID: "acct", State: tasks.StateSent,
		MessageID: "msg-1", ChatID: "chat-s1", Attempts: 1, ApprovedBy: "approver", FinishedAt: e.clock.Now(),
		Metadata: json.RawMessage(`{"sequence":"seq-1","step":2,"contacts":[]}`),
	}
	if !reflect.DeepEqual(done.Result, want) {
		t.Fatalf("result\n got %+v\nwant %+v", done.Result, want)
	}
	if _, err := e.l.Finish(e.ctx, "s1", token, Outcome{State: tasks.StateSent}); !errors.Is(err, ErrFinal) {
		t.Fatalf("finish twice: %v", err)
	}
	if rec.SendID != "s1" {
		t.Fatal(rec.SendID)
	}

	// The results stream, read as a consumer group would.
	stream := e.l.opts.ResultsStream
	if err := e.rdb.XGroupCreateMkStream(e.ctx, stream, "sequencer", "0").Err(); err != nil {
		t.Fatal(err)
	}
	got, err := e.rdb.XReadGroup(e.ctx, &redis.XReadGroupArgs{Group: "sequencer", Consumer: "c1", Streams: []string{stream, ">"}, Count: 10}).Result()
	if err != nil || len(got) != 1 || len(got[0].Messages) != 1 {
		t.Fatalf("xreadgroup %v %v", got, err)
	}
	fields := got[0].Messages[0].Values
	var fromStream tasks.Result
	if err := json.Unmarshal([]byte(fields["result"].(string)), &fromStream); err != nil {
		t.Fatalf("result JSON %q: %v", fields["result"], err)
	}
	if !reflect.DeepEqual(&fromStream, want) {
		t.Fatalf("stream result\n got %+v\nwant %+v", fromStream, want)
	}
	delete(fields, "result")
	wantFields := map[string]any{
		"send_id": "s1", "operation": "chats_messages_send", "account_id": "acct", "state": "sent", "reason": "",
		"message_id": "msg-1", "chat_id": "chat-s1", "attempts": "1", "approved_by": "approver",
		"finished_at": "2030-01-02T03:04:06.5Z", "metadata": `{"sequence":"seq-1","step":2,"contacts":[]}`, "dry_run": "false",
	}
	if !reflect.DeepEqual(fields, wantFields) {
		t.Fatalf("stream fields\n got %v\nwant %v", fields, wantFields)
	}

	// Claimed message id and the reverse index.
	if yes, _ := e.l.IsClaimed(e.ctx, "msg-1"); !yes {
		t.Fatal("not claimed")
	}
	claimed, _ := e.l.Claimed(e.ctx, []string{"msg-1", "msg-2"})
	if !reflect.DeepEqual(claimed, map[string]bool{"msg-1": true}) {
		t.Fatalf("claimed %v", claimed)
	}
	if id, err := e.l.SendByMessage(e.ctx, "msg-1"); err != nil || id != "s1" {
		t.Fatalf("send by message %q %v", id, err)
	}
	if _, err := e.l.SendByMessage(e.ctx, "msg-2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown message: %v", err)
	}

	// Retention: record and message index expire; the history is implicit (no list).
	k := e.l.Keys()
	if n := e.rdb.Exists(e.ctx, k.History("s1")).Val(); n != 0 {
		t.Errorf("a send approved and sent once has a history list")
	}
	for _, key := range []string{k.Send("s1"), k.Msg("msg-1")} {
		ttl := e.rdb.PTTL(e.ctx, key).Val()
		if ttl <= testRetention-time.Minute || ttl > testRetention {
			t.Errorf("%s ttl %v, want ~%v", key, ttl, testRetention)
		}
	}
}

func TestFinishWithoutAttempt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.approved("s1", "acct")
	rec, err := e.l.Finish(e.ctx, "s1", "", Outcome{State: tasks.StateSkipped, Reason: tasks.ReasonColdRecipient, Detail: "unknown attendee", DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	wantState(t, rec, tasks.StateSkipped, tasks.ReasonColdRecipient)
	if rec.Detail != "unknown attendee" || !rec.Result.DryRun || rec.Result.Attempts != 0 {
		t.Fatalf("record %+v result %+v", rec, rec.Result)
	}
	msg := e.results()[0].Values
	if msg["dry_run"] != "true" || msg["reason"] != "cold_recipient" {
		t.Fatalf("stream %v", msg)
	}
	e.create("p1", "acct")
	if _, err := e.l.Finish(e.ctx, "p1", "", Outcome{State: tasks.StateFailed}); !errors.Is(err, ErrStaleAttempt) {
		t.Fatalf("finish of a pending send: %v", err)
	}
}

func TestDefer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, token := e.sending("s1", "acct")
	gen := e.gen("s1")
	until := e.clock.Now().Add(90 * time.Second)
	if _, err := e.l.Defer(e.ctx, "s1", "other", until, tasks.ReasonWaitProvider); !errors.Is(err, ErrStaleAttempt) {
		t.Fatalf("wrong token: %v", err)
	}
	rec, err := e.l.Defer(e.ctx, "s1", token, until, tasks.ReasonWaitProvider)
	if err != nil {
		t.Fatal(err)
	}
	wantState(t, rec, tasks.StateWaiting, "")
	if rec.Wait == nil || !rec.Wait.Until.Equal(until) || rec.Wait.Reason != tasks.ReasonWaitProvider {
		t.Fatalf("wait %+v", rec.Wait)
	}
	if score, ok := e.zscore(e.l.Keys().Outbox(), "s1"); !ok || int64(score) != until.UnixMilli() {
		t.Fatalf("outbox %v %v", score, ok)
	}
	if e.gen("s1") != gen+1 {
		t.Fatalf("gen %d, want %d", e.gen("s1"), gen+1)
	}
	if _, err := e.l.Finish(e.ctx, "s1", token, Outcome{State: tasks.StateSent}); !errors.Is(err, ErrStaleAttempt) {
		t.Fatalf("finish with the cleared token: %v", err)
	}
	// The next release attempts again.
	res, err := e.l.BeginAttempt(e.ctx, BeginRequest{SendID: "s1", Digest: rec.Digest, Gen: gen + 1, Token: "t2", Lease: time.Minute})
	if err != nil || res.Outcome != BeginOK || res.Attempt != 2 || res.Record.Wait != nil {
		t.Fatalf("begin after defer: %+v %v", res, err)
	}
}

func TestResolveReconciled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rec, _ := e.sending("s1", "acct")
	gen := e.gen("s1")
	e.clock.Advance(2 * time.Minute)
	res, err := e.l.BeginAttempt(e.ctx, BeginRequest{SendID: "s1", Digest: rec.Digest, Gen: gen, Token: "rec", Lease: time.Minute})
	if err != nil || res.Outcome != BeginReconcile {
		t.Fatalf("begin %v %v", res.Outcome, err)
	}
	if err := e.l.ResolveReconciled(e.ctx, "s1", "tok-s1"); !errors.Is(err, ErrStaleAttempt) {
		t.Fatalf("old token: %v", err)
	}
	if err := e.l.ResolveReconciled(e.ctx, "s1", "rec"); err != nil {
		t.Fatal(err)
	}
	wantState(t, e.get("s1"), tasks.StateApproved, "")
	res, err = e.l.BeginAttempt(e.ctx, BeginRequest{SendID: "s1", Digest: rec.Digest, Gen: gen, Token: "rec", Lease: time.Minute})
	if err != nil || res.Outcome != BeginOK || res.Attempt != 2 {
		t.Fatalf("begin again %+v %v", res, err)
	}
	if n, _ := e.l.OutboxSize(e.ctx); n != 0 {
		t.Fatalf("safety-net outbox entry left: %d", n)
	}
}

// TestResolveSafetyNet: a reconciler that dies after ResolveReconciled is
// covered by an outbox entry of the same generation.
func TestResolveSafetyNet(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rec, _ := e.sending("s1", "acct")
	gen := e.gen("s1")
	e.clock.Advance(2 * time.Minute)
	if res, _ := e.l.BeginAttempt(e.ctx, BeginRequest{SendID: "s1", Digest: rec.Digest, Gen: gen, Token: "rec", Lease: time.Minute}); res.Outcome != BeginReconcile {
		t.Fatal(res.Outcome)
	}
	if err := e.l.ResolveReconciled(e.ctx, "s1", "rec"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	due, err := e.l.DueForRelease(context.Background(), 10)
	if err != nil || len(due) != 1 || due[0].Gen != gen {
		t.Fatalf("due %+v %v", due, err)
	}
}

// TestResultJSONEscaping: the result JSON the script assembles decodes to the
// record's Result whatever characters the strings hold.
func TestResultJSONEscaping(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	req := request("odd.id:1", `acct/é"x`)
	req.Metadata = json.RawMessage(`{"note":"a/b <c> & \"d\" \u00e9 \n","n":[1,2.5,{}]}`)
	if _, _, err := e.l.Create(e.ctx, req, req.Digest(), e.clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.l.Approve(e.ctx, req.SendID, req.Digest(), `appr\over`, ""); err != nil {
		t.Fatal(err)
	}
	rec, err := e.l.Finish(e.ctx, req.SendID, "", Outcome{State: tasks.StateSent, MessageID: "m/\t\"1\"ü", ChatID: "c<1>&"})
	if err != nil {
		t.Fatal(err)
	}
	var fromStream tasks.Result
	if err := json.Unmarshal([]byte(e.results()[0].Values["result"].(string)), &fromStream); err != nil {
		t.Fatal(err)
	}
	var want, got any
	_ = json.Unmarshal(mustJSON(t, rec.Result), &want)
	_ = json.Unmarshal(mustJSON(t, &fromStream), &got)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("stream result %v\nrecord result %v", got, want)
	}
	if id, _ := e.l.SendByMessage(e.ctx, "m/\t\"1\"ü"); id != req.SendID {
		t.Fatalf("send by message %q", id)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// End is Finish without the record read back: same script, same refusals, and its result is the
// one the stream and the record hold.
func TestEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, token := e.sending("s1", "acct")
	if _, err := e.l.End(e.ctx, "s1", "wrong", Outcome{State: tasks.StateSent}); !errors.Is(err, ErrStaleAttempt) {
		t.Fatalf("wrong token: %v", err)
	}
	if _, err := e.l.End(e.ctx, "s1", token, Outcome{State: tasks.StateSending}); err == nil {
		t.Fatal("non-final outcome accepted")
	}
	if _, err := e.l.End(e.ctx, "nope", "t", Outcome{State: tasks.StateSent}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing send: %v", err)
	}
	e.clock.Advance(time.Second)
	ended, err := e.l.End(e.ctx, "s1", token, Outcome{State: tasks.StateSent, MessageID: "msg-1", ChatID: "chat-s1"})
	if err != nil {
		t.Fatal(err)
	}
	rec := e.get("s1")
	var res tasks.Result
	if err := json.Unmarshal(ended.Result, &res); err != nil {
		t.Fatalf("result %q: %v", ended.Result, err)
	}
	if ended.Attempts != 1 || rec.State != tasks.StateSent || !reflect.DeepEqual(&res, rec.Result) {
		t.Fatalf("ended %+v (%s)\nrecord %+v", ended, ended.Result, rec.Result)
	}
	msgs := e.results()
	if len(msgs) != 1 || msgs[0].Values["result"] != string(ended.Result) {
		t.Fatalf("stream %v, want result %s", msgs, ended.Result)
	}
	if _, err := e.l.End(e.ctx, "s1", token, Outcome{State: tasks.StateSent}); !errors.Is(err, ErrFinal) {
		t.Fatalf("end twice: %v", err)
	}

	// Another send may not take the same message id: refused, nothing changed.
	_, token2 := e.sending("s2", "acct")
	_, err = e.l.End(e.ctx, "s2", token2, Outcome{State: tasks.StateSent, MessageID: "msg-1", ChatID: "chat-s1"})
	if !errors.Is(err, ErrMessageClaimed) {
		t.Fatalf("claimed id: %v", err)
	}
	if got := e.get("s2"); got.State != tasks.StateSending {
		t.Fatalf("s2 is %s after a refused end", got.State)
	}
}

// MarkAllReleased removes the entries whose generation is current, in one script, and starts
// their watchdog clock; a stale generation keeps its entry.
func TestMarkAllReleased(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, g1 := e.approved("s1", "acct")
	_, g2 := e.approved("s2", "acct")
	_, g3 := e.approved("s3", "other")
	e.clock.Advance(time.Second)
	err := e.l.MarkAllReleased(e.ctx, []Release{{SendID: "s1", Gen: g1}, {SendID: "s2", Gen: g2 - 1}, {SendID: "s3", Gen: g3}, {SendID: "gone", Gen: 1}})
	if err != nil {
		t.Fatal(err)
	}
	left, err := e.rdb.ZRange(e.ctx, e.l.Keys().Outbox(), 0, -1).Result()
	if err != nil || !reflect.DeepEqual(left, []string{"s2"}) {
		t.Fatalf("outbox %v %v, want [s2]", left, err)
	}
	for _, id := range []string{"s1", "s3"} {
		score, err := e.rdb.ZScore(e.ctx, e.l.Keys().Watch(), id).Result()
		if err != nil || int64(score) != e.clock.Now().UnixMilli() {
			t.Fatalf("%s watch score %v %v, want the release time", id, score, err)
		}
	}
	if err := e.l.MarkAllReleased(e.ctx, nil); err != nil {
		t.Fatalf("empty batch: %v", err)
	}
}

// More entries than one script takes: every batch is marked.
func TestMarkAllReleasedManyBatches(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var rs []Release
	for i := range maxMarkBatch*2 + 17 {
		id := fmt.Sprintf("s%04d", i)
		_, gen := e.approved(id, "acct")
		rs = append(rs, Release{SendID: id, Gen: gen})
	}
	if err := e.l.MarkAllReleased(e.ctx, rs); err != nil {
		t.Fatal(err)
	}
	if n, err := e.l.OutboxSize(e.ctx); err != nil || n != 0 {
		t.Fatalf("outbox %d %v after marking every entry", n, err)
	}
}
