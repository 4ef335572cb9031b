package ledger

import (
	"errors"
	"maps"
	"reflect"
	"testing"
	"time"

	"github.com/sendworker/sendworker/tasks"
)

// sendingOp creates, approves and begins a send of any operation in chat; it
// returns the attempt token.
func (e *env) sendingOp(id string, op tasks.Operation, chat, target string) string {
	e.t.Helper()
	req := request(id, "acct")
	req.Operation, req.ChatID = op, chat
	switch op {
	case tasks.OpCreateChat:
		req.ChatID, req.AttendeeIDs = "", []string{"att-1"}
	case tasks.OpReaction:
		req.Text, req.MessageID, req.Reaction = "", target, "👍"
	case tasks.OpEdit:
		req.MessageID = target
	case tasks.OpDelete:
		req.Text, req.MessageID = "", target
	}
	rec, _, err := e.l.Create(e.ctx, req, req.Digest(), e.clock.Now().Add(time.Hour))
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.l.Approve(e.ctx, id, rec.Digest, "approver", ""); err != nil {
		e.t.Fatal(err)
	}
	token := "tok-" + id
	res := e.begin(id, e.gen(id), token, time.Minute)
	if res.Outcome != BeginOK {
		e.t.Fatalf("begin %s: %v", id, res.Outcome)
	}
	return token
}

// claimed returns which of the message ids are claimed, as a set of the claimed ones.
func (e *env) claimed(ids ...string) map[string]bool {
	e.t.Helper()
	c, err := e.l.Claimed(e.ctx, ids)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// TestFinishIndexesOnlyNewMessages: Finish(sent) of a reaction, edit or
// delete keeps the target's id in the record and result, but neither
// repoints SendByMessage nor claims the id; chats_create claims like a send.
func TestFinishIndexesOnlyNewMessages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	token := e.sendingOp("orig", tasks.OpSendMessage, "chat-1", "")
	if _, err := e.l.Finish(e.ctx, "orig", token, Outcome{State: tasks.StateSent, MessageID: "m1", ChatID: "chat-1"}); err != nil {
		t.Fatal(err)
	}
	for _, op := range []tasks.Operation{tasks.OpReaction, tasks.OpEdit, tasks.OpDelete} {
		id := string(op)
		token := e.sendingOp(id, op, "chat-1", "m1")
		rec, err := e.l.Finish(e.ctx, id, token, Outcome{State: tasks.StateSent, MessageID: "m1", ChatID: "chat-1"})
		if err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		if rec.Result.MessageID != "m1" || rec.Result.ChatID != "chat-1" || rec.Result.Operation != op {
			t.Fatalf("%s: result %+v", op, rec.Result)
		}
		if got, err := e.l.SendByMessage(e.ctx, "m1"); err != nil || got != "orig" {
			t.Fatalf("%s repointed the message index: %q %v", op, got, err)
		}
		// A target id nobody sent is not indexed or claimed either.
		token = e.sendingOp(id+"-foreign", op, "chat-1", "m-foreign")
		if _, err := e.l.Finish(e.ctx, id+"-foreign", token, Outcome{State: tasks.StateSent, MessageID: "m-foreign", ChatID: "chat-1"}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.l.SendByMessage(e.ctx, "m-foreign"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s indexed its target: %v", op, err)
		}
	}
	if c := e.claimed("m1", "m-foreign"); !maps.Equal(c, map[string]bool{"m1": true}) {
		t.Fatalf("claimed %v", c)
	}

	token = e.sendingOp("create", tasks.OpCreateChat, "", "")
	if _, err := e.l.Finish(e.ctx, "create", token, Outcome{State: tasks.StateSent, MessageID: "m2", ChatID: "chat-new"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.l.SendByMessage(e.ctx, "m2"); got != "create" {
		t.Fatalf("chats_create not indexed: %q", got)
	}
	if c := e.claimed("m2", "m-none"); !maps.Equal(c, map[string]bool{"m2": true}) {
		t.Fatalf("claimed %v", c)
	}
}

// TestFinishRefusesClaimedMessage: Finish(sent) of a new message whose id
// another send owns is refused with ErrMessageClaimed and changes nothing;
// the attempt can still end with another id.
func TestFinishRefusesClaimedMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		op      tasks.Operation
		chat    string // the finishing send's chat
		setup   func(e *env)
		outcome Outcome
	}{
		{"same chat, explicit chat id", tasks.OpSendMessage, "chat-1", nil,
			Outcome{State: tasks.StateSent, MessageID: "m1", ChatID: "chat-1"}},
		{"same chat, chat id from the record", tasks.OpSendMessage, "chat-1", nil,
			Outcome{State: tasks.StateSent, MessageID: "m1"}},
		{"another chat: the message index names the owner", tasks.OpSendMessage, "chat-2", nil,
			Outcome{State: tasks.StateSent, MessageID: "m1", ChatID: "chat-2"}},
		{"chats_create", tasks.OpCreateChat, "", nil,
			Outcome{State: tasks.StateSent, MessageID: "m1", ChatID: "chat-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			owner := e.sendingOp("owner", tasks.OpSendMessage, "chat-1", "")
			if _, err := e.l.Finish(e.ctx, "owner", owner, Outcome{State: tasks.StateSent, MessageID: "m1", ChatID: "chat-1"}); err != nil {
				t.Fatal(err)
			}
			token := e.sendingOp("s2", tt.op, tt.chat, "")
			if tt.setup != nil {
				tt.setup(e)
			}
			before := e.get("s2")
			results := len(e.results())
			_, err := e.l.Finish(e.ctx, "s2", token, tt.outcome)
			wantStateErr(t, err, ErrMessageClaimed, tasks.StateSending)
			if after := e.get("s2"); !reflect.DeepEqual(after, before) {
				t.Fatalf("record changed\n got %+v\nwant %+v", after, before)
			}
			if n := len(e.results()); n != results {
				t.Fatalf("results %d → %d", results, n)
			}
			if got, _ := e.l.SendByMessage(e.ctx, "m1"); tt.setup == nil && got != "owner" {
				t.Fatalf("message index repointed to %q", got)
			}
			e.checkWatch()
			// The same attempt ends with its own message.
			rec, err := e.l.Finish(e.ctx, "s2", token, Outcome{State: tasks.StateSent, MessageID: "m2", ChatID: "chat-1"})
			if err != nil {
				t.Fatal(err)
			}
			if rec.Result.MessageID != "m2" {
				t.Fatalf("result %+v", rec.Result)
			}
			if c := e.claimed("m1", "m2", "m3"); !maps.Equal(c, map[string]bool{"m1": true, "m2": true}) {
				t.Fatalf("claimed %v", c)
			}
		})
	}

	// Not sent, or not a new message: no claim check.
	e := newEnv(t)
	owner := e.sendingOp("owner", tasks.OpSendMessage, "chat-1", "")
	if _, err := e.l.Finish(e.ctx, "owner", owner, Outcome{State: tasks.StateSent, MessageID: "m1", ChatID: "chat-1"}); err != nil {
		t.Fatal(err)
	}
	token := e.sendingOp("edit", tasks.OpEdit, "chat-1", "m1")
	if _, err := e.l.Finish(e.ctx, "edit", token, Outcome{State: tasks.StateSent, MessageID: "m1", ChatID: "chat-1"}); err != nil {
		t.Fatalf("edit of a claimed message: %v", err)
	}
	token = e.sendingOp("review", tasks.OpSendMessage, "chat-1", "")
	rec, err := e.l.Finish(e.ctx, "review", token, Outcome{State: tasks.StateNeedsReview, Reason: tasks.ReasonUnknownOutcome, MessageID: "m1", ChatID: "chat-1"})
	if err != nil || rec.Result.MessageID != "m1" {
		t.Fatalf("needs_review with a claimed id: %v %+v", err, rec)
	}
	if got, _ := e.l.SendByMessage(e.ctx, "m1"); got != "owner" {
		t.Fatalf("message index repointed to %q", got)
	}
}

// TestClaimOutlivesAShortRetention: a message id's claim is kept as long as the record, and at
// least claimMinTTL even when the retention is shorter, so a reconciliation never meets a
// recent message whose claim has gone.
func TestClaimOutlivesAShortRetention(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		retention, want time.Duration
	}{{time.Minute, claimMinTTL}, {testRetention, testRetention}} {
		e := newEnv(t)
		e.l.opts.Retention = c.retention
		token := e.sendingOp("s1", tasks.OpSendMessage, "chat-1", "")
		if _, err := e.l.Finish(e.ctx, "s1", token, Outcome{State: tasks.StateSent, MessageID: "m1", ChatID: "chat-1"}); err != nil {
			t.Fatal(err)
		}
		ttl := e.rdb.PTTL(e.ctx, e.l.Keys().Msg("m1")).Val()
		if ttl <= c.want-time.Minute || ttl > c.want {
			t.Errorf("retention %v: claim ttl %v, want ~%v", c.retention, ttl, c.want)
		}
	}
}
