package worker

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/provider/wasim"
	"github.com/sendworker/sendworker/tasks"
)

// TestSendEndToEnd: an approved send goes out once, through asynq, and its result is in the
// record, the results stream and the asynq task result; logs never carry the text.
func TestSendEndToEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	id := newID("happy")
	e.submit(message(id, accA, chatA1))
	rec := e.waitTerminal(id, 10*time.Second)
	ds := e.deliveries(id)
	if rec.State != tasks.StateSent || len(ds) != 1 || applied(ds) != 1 {
		t.Fatalf("state %s reason %s, %d deliveries", rec.State, rec.Reason, len(ds))
	}
	if rec.Result.MessageID == "" || rec.Result.MessageID != ds[0].MessageID || rec.Result.ChatID != chatA1 {
		t.Fatalf("result %+v, delivery %+v", rec.Result, ds[0])
	}
	e.expectResult(rec)
	deadline := time.Now().Add(3 * time.Second)
	for e.taskResult(id) == nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if res := e.taskResult(id); res == nil || res.State != tasks.StateSent || res.MessageID != rec.Result.MessageID {
		t.Fatalf("task result %+v", res)
	}
	for _, entry := range e.logs.All() {
		b, _ := json.Marshal(entry.ContextMap())
		if strings.Contains(entry.Message+string(b), "Following up") {
			t.Fatalf("message text in logs: %s %s", entry.Message, b)
		}
	}
	if n := e.logs.FilterMessage("send finished").FilterField(zapString("send_id", id)).Len(); n != 1 {
		t.Errorf("%d 'send finished' log lines, want 1", n)
	}
}

// TestNothingUnapprovedGoesOut: tasks that do not name the current release of an approved send
// (pending send, forged digest, forged or stale generation, replay) change nothing and send
// nothing; only the real release sends, once.
func TestNothingUnapprovedGoesOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *envConfig) { c.noStart = true })
	ctx := context.Background()
	h := e.worker.Handler()

	// A pending (never approved) send, with its true digest and a guessed generation.
	pendingID := newID("pending")
	req := message(pendingID, accA, chatA1)
	rec, _, err := e.approval.Enqueue(ctx, req, "sequencer")
	if err != nil {
		t.Fatal(err)
	}
	for gen := int64(0); gen <= 2; gen++ {
		if err := h.ProcessTask(ctx, taskFor(tasks.OpSendMessage, pendingID, rec.Digest, max(gen, 1))); err != nil {
			t.Fatal(err)
		}
	}
	// The same through asynq itself, straight into the send queue.
	b, _ := json.Marshal(tasks.Payload{SendID: pendingID, Digest: rec.Digest, Gen: 1})
	if _, err := e.asynq.Enqueue(asynq.NewTask(tasks.OpSendMessage.TaskType(), b), asynq.Queue(tasks.DefaultQueue)); err != nil {
		t.Fatal(err)
	}

	// An approved send, hit by forged tasks before its real release runs.
	id := newID("forged")
	rec = e.submit(message(id, accA, chatA2))
	real := e.releaseTask(id)
	forged := []*asynq.Task{
		taskFor(tasks.OpSendMessage, id, strings.Repeat("0", 64), 1), // forged digest
		taskFor(tasks.OpSendMessage, id, rec.Digest, 7),              // forged generation
		taskFor(tasks.OpEdit, id, rec.Digest, 1),                     // wrong type for the send
		asynq.NewTask(tasks.OpSendMessage.TaskType(), []byte(`{"send_id":"`+id+`","text":"hi"}`)),
	}
	for _, task := range forged {
		if err := h.ProcessTask(ctx, task); err != nil && !errors.Is(err, asynq.SkipRetry) {
			t.Fatalf("forged task: %v", err)
		}
	}
	if n := len(e.sim.Sim().Deliveries()); n != 0 {
		t.Fatalf("%d deliveries before any valid release", n)
	}
	if st := e.get(id).State; st != tasks.StateApproved {
		t.Fatalf("forged tasks moved the send to %s", st)
	}

	// The pending send's task now runs in a real worker: still nothing.
	e.start()
	time.Sleep(500 * time.Millisecond)
	if n := len(e.deliveries(pendingID)); n != 0 {
		t.Fatalf("pending send delivered %d times", n)
	}
	if st := e.get(pendingID).State; st != tasks.StatePendingApproval {
		t.Fatalf("pending send is %s", st)
	}

	// The real release sends once; replaying it afterwards does nothing.
	if err := h.ProcessTask(ctx, real); err != nil {
		t.Fatal(err)
	}
	if err := h.ProcessTask(ctx, real); err != nil {
		t.Fatal(err)
	}
	if rec := e.get(id); rec.State != tasks.StateSent || len(e.deliveries(id)) != 1 {
		t.Fatalf("state %s, %d deliveries", rec.State, len(e.deliveries(id)))
	}
}

// TestTamperedContentIsNotSent: a record whose stored request no longer matches the approved
// digest (edited in Redis after approval) fails digest_mismatch and sends nothing.
func TestTamperedContentIsNotSent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *envConfig) { c.noStart = true })
	ctx := context.Background()
	id := newID("tampered")
	e.submit(message(id, accA, chatA1))
	// The request is stored in chunks req, req.1, ... (count in req.n): join
	// them, edit, and store it back whole (also a valid form).
	h, err := e.rdb.HGetAll(ctx, e.ledger.Keys().Send(id)).Result()
	if err != nil {
		t.Fatal(err)
	}
	raw, chunks := h["req"], []string{"req.n"}
	n, _ := strconv.Atoi(h["req.n"])
	for i := 1; i < n; i++ {
		raw += h["req."+strconv.Itoa(i)]
		chunks = append(chunks, "req."+strconv.Itoa(i))
	}
	evil := strings.Replace(raw, "Following up on our call", "Click this link", 1)
	if evil == raw {
		t.Fatalf("the request holds no text to tamper with: %s", raw)
	}
	if err := e.rdb.HDel(ctx, e.ledger.Keys().Send(id), chunks...).Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.rdb.HSet(ctx, e.ledger.Keys().Send(id), "req", evil).Err(); err != nil {
		t.Fatal(err)
	}
	rec := e.drive(id, 5*time.Second)
	if rec.State != tasks.StateFailed || rec.Reason != tasks.ReasonDigestMismatch {
		t.Fatalf("state %s reason %s", rec.State, rec.Reason)
	}
	if n := len(e.sim.Sim().Deliveries()); n != 0 {
		t.Fatalf("%d deliveries", n)
	}
	e.expectResult(rec)
}

// TestColdRecipientsRefusedBeforeSending: warm-only. Raw numbers, unknown attendees, contacts
// without a chat, chats of another account and missing chats are refused without any sending
// call.
func TestColdRecipientsRefusedBeforeSending(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	create := func(id, attendee string) tasks.SendRequest {
		return tasks.SendRequest{SendID: id, Operation: tasks.OpCreateChat, AccountID: accA, AttendeeIDs: []string{attendee}, Text: "Hello [" + id + "]"}
	}
	cases := []struct {
		name   string
		req    func(id string) tasks.SendRequest
		raw    bool // bypass enqueue validation (which refuses raw numbers itself)
		reason tasks.Reason
	}{
		{"raw phone number", func(id string) tasks.SendRequest { return create(id, "+33 6 99 99 99 99") }, true, tasks.ReasonColdRecipient},
		{"raw digits", func(id string) tasks.SendRequest { return create(id, "33699999999") }, true, tasks.ReasonColdRecipient},
		{"unknown attendee", func(id string) tasks.SendRequest { return create(id, "33699999999@s.whatsapp.net") }, false, tasks.ReasonColdRecipient},
		{"known contact without a chat", func(id string) tasks.SendRequest { return create(id, c3NoChat) }, false, tasks.ReasonColdRecipient},
		{"attendee of another account", func(id string) tasks.SendRequest { return create(id, cB1) }, false, tasks.ReasonColdRecipient},
		{"chat of another account", func(id string) tasks.SendRequest { return message(id, accA, chatB1) }, false, tasks.ReasonAccountMismatch},
		{"missing chat", func(id string) tasks.SendRequest { return message(id, accA, "chat-nope") }, false, tasks.ReasonChatNotFound},
		{"chat id that is a raw number", func(id string) tasks.SendRequest { return message(id, accA, "33699999999") }, false, tasks.ReasonChatNotFound},
	}
	ids := make([]string, len(cases))
	for i, tc := range cases {
		ids[i] = newID("cold")
		if tc.raw {
			e.submitRaw(tc.req(ids[i]))
		} else {
			e.submit(tc.req(ids[i]))
		}
	}
	// A warm chats_create into an existing chat works.
	warm := newID("warm")
	e.submit(create(warm, c2))
	for i, tc := range cases {
		rec := e.waitTerminal(ids[i], 10*time.Second)
		if rec.State != tasks.StateSkipped || rec.Reason != tc.reason {
			t.Errorf("%s: state %s reason %s (%s), want skipped %s", tc.name, rec.State, rec.Reason, rec.Detail, tc.reason)
		}
		if rec.Attempts != 0 {
			t.Errorf("%s: %d attempts", tc.name, rec.Attempts)
		}
		e.expectResult(rec)
	}
	rec := e.waitTerminal(warm, 10*time.Second)
	if rec.State != tasks.StateSent || rec.Result.ChatID != chatA2 {
		t.Fatalf("warm create: %s %s chat %q", rec.State, rec.Reason, rec.Result.ChatID)
	}
	all := e.sim.Sim().Deliveries()
	if len(all) != 1 || !strings.Contains(all[0].Text, warm) {
		t.Fatalf("deliveries: %+v", all)
	}
}

// TestContactsWill: a contact who replied after stop_if_replied_since, or who opted out, gets
// nothing; a reply before the cut-off does not stop the send.
func TestContactsWill(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	since := time.Now().Add(-10 * time.Minute)

	replied := newID("replied")
	if _, err := e.sim.Sim().AddIncomingMessage(chatA1, "Actually, no thanks", time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	req := message(replied, accA, chatA1)
	req.StopIfRepliedSince = &since
	e.submit(req)

	notYet := newID("replied-before")
	req = message(notYet, accA, chatA2) // c2 last wrote 2 h ago
	req.StopIfRepliedSince = &since
	e.submit(req)

	// Opt-outs by chat id, and by attendee provider id for a new chat.
	if err := e.ledger.AddOptOut(ctx, "chat-x01", "admin"); err != nil {
		t.Fatal(err)
	}
	if err := e.ledger.AddOptOut(ctx, "33670000002@s.whatsapp.net", "admin"); err != nil {
		t.Fatal(err)
	}
	optChat := newID("optout-chat")
	e.submit(message(optChat, accA, "chat-x01"))
	optCreate := newID("optout-create")
	e.submit(tasks.SendRequest{SendID: optCreate, Operation: tasks.OpCreateChat, AccountID: accA,
		AttendeeIDs: []string{"33670000002@s.whatsapp.net"}, Text: "Hi [" + optCreate + "]"})

	for _, tc := range []struct {
		id     string
		state  tasks.State
		reason tasks.Reason
	}{
		{replied, tasks.StateSkipped, tasks.ReasonContactReplied},
		{notYet, tasks.StateSent, ""},
		{optChat, tasks.StateSkipped, tasks.ReasonOptedOut},
		{optCreate, tasks.StateSkipped, tasks.ReasonOptedOut},
	} {
		rec := e.waitTerminal(tc.id, 10*time.Second)
		if rec.State != tc.state || rec.Reason != tc.reason {
			t.Errorf("%s: %s %s, want %s %s", tc.id, rec.State, rec.Reason, tc.state, tc.reason)
		}
		want := 0
		if tc.state == tasks.StateSent {
			want = 1
		}
		if n := len(e.deliveries(tc.id)); n != want {
			t.Errorf("%s: %d deliveries, want %d", tc.id, n, want)
		}
		e.expectResult(rec)
	}
}

// TestCancelAndPause: cancellation and pauses stop an approved send up to the moment of
// sending; a resumed send goes out once.
func TestCancelAndPause(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *envConfig) { c.noStart = true })
	ctx := context.Background()

	canceled := newID("canceled")
	e.submit(message(canceled, accA, chatA1))
	task := e.releaseTask(canceled)
	if _, err := e.approval.Cancel(ctx, canceled, "sequencer", "sequence stopped"); err != nil {
		t.Fatal(err)
	}
	if err := e.worker.Handler().ProcessTask(ctx, task); err != nil {
		t.Fatal(err)
	}
	if rec := e.get(canceled); rec.State != tasks.StateCanceled {
		t.Fatalf("canceled send is %s", rec.State)
	}

	paused := newID("paused")
	e.submit(message(paused, accA, chatA2))
	task = e.releaseTask(paused)
	if err := e.approval.Pause(ctx, accA, "ops"); err != nil {
		t.Fatal(err)
	}
	if err := e.worker.Handler().ProcessTask(ctx, task); err != nil {
		t.Fatal(err)
	}
	rec := e.get(paused)
	if rec.State != tasks.StateWaiting || rec.Wait == nil || rec.Wait.Reason != tasks.ReasonWaitPaused {
		t.Fatalf("paused send: %s %+v", rec.State, rec.Wait)
	}
	// Replaying the same task while paused does nothing either.
	if err := e.worker.Handler().ProcessTask(ctx, task); err != nil {
		t.Fatal(err)
	}
	if n := len(e.sim.Sim().Deliveries()); n != 0 {
		t.Fatalf("%d deliveries while canceled/paused", n)
	}
	e.start()
	time.Sleep(300 * time.Millisecond)
	if n := len(e.sim.Sim().Deliveries()); n != 0 {
		t.Fatalf("%d deliveries while paused", n)
	}
	if err := e.approval.Resume(ctx, accA, "ops"); err != nil {
		t.Fatal(err)
	}
	rec = e.waitTerminal(paused, 10*time.Second)
	if rec.State != tasks.StateSent || len(e.deliveries(paused)) != 1 {
		t.Fatalf("resumed: %s, %d deliveries", rec.State, len(e.deliveries(paused)))
	}
	e.expectResult(rec)
	e.expectResult(e.get(canceled))
}

// TestLostOutcomesDeliverOnce: the provider applies the send and the answer is lost (the
// connection dropped, or a 504). The worker reconciles against the chat: exactly one
// delivery, state sent with the message id wasim gave it.
func TestLostOutcomesDeliverOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		faults wasim.Faults
		op     tasks.Operation
	}{
		{"accept then drop", wasim.Faults{AcceptThenDropRate: 1}, tasks.OpSendMessage},
		{"504 after store", wasim.Faults{Error504Rate: 1}, tasks.OpSendMessage},
		{"chats_create accept then drop", wasim.Faults{AcceptThenDropRate: 1}, tasks.OpCreateChat},
		{"edit 504", wasim.Faults{Error504Rate: 1}, tasks.OpEdit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(c *envConfig) {
				c.provider = func(cl *provider.Client, sim *wasim.Sim) Provider {
					return &faultyProvider{Client: cl, sim: sim, faults: tc.faults, left: 1}
				}
			})
			id := newID("lost")
			var req tasks.SendRequest
			switch tc.op {
			case tasks.OpSendMessage:
				req = message(id, accA, chatA1)
			case tasks.OpCreateChat:
				req = tasks.SendRequest{SendID: id, Operation: tasks.OpCreateChat, AccountID: accA, AttendeeIDs: []string{c2}, Text: "Hello again [" + id + "]"}
			case tasks.OpEdit:
				req = tasks.SendRequest{SendID: id, Operation: tasks.OpEdit, AccountID: accA, ChatID: chatA1, MessageID: msgOwnRecent, Text: "Our offer (fixed) [" + id + "]"}
			}
			e.submit(req)
			rec := e.waitTerminal(id, 15*time.Second)
			ds := e.deliveries(id)
			if rec.State != tasks.StateSent || len(ds) != 1 || applied(ds) != 1 {
				t.Fatalf("state %s %s, deliveries %+v; %s", rec.State, rec.Reason, ds, historyString(rec))
			}
			if rec.Result.MessageID != ds[0].MessageID {
				t.Fatalf("message id %q, delivered %q", rec.Result.MessageID, ds[0].MessageID)
			}
			if ds[0].Outcome == "ok" {
				t.Fatalf("the fault did not apply: %+v", ds[0])
			}
			if rec.Attempts != 1 {
				t.Fatalf("%d attempts: reconciliation should not start a second one", rec.Attempts)
			}
			e.expectResult(rec)
		})
	}
}

// TestNotDeliveredIsResent: the connection breaks before the provider acted (reconciliation
// finds nothing): the send goes out again, once.
func TestNotDeliveredIsResent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *envConfig) {
		c.provider = func(cl *provider.Client, _ *wasim.Sim) Provider {
			return &lostBeforeApply{Client: cl, left: 1}
		}
	})
	id := newID("resend")
	e.submit(message(id, accA, chatA1))
	rec := e.waitTerminal(id, 15*time.Second)
	if rec.State != tasks.StateSent || applied(e.deliveries(id)) != 1 || rec.Attempts != 2 {
		t.Fatalf("state %s, %d applied, %d attempts; %s", rec.State, applied(e.deliveries(id)), rec.Attempts, historyString(rec))
	}
}

// lostBeforeApply reports an unknown outcome for the first sending call without calling the
// provider: what a worker sees when the request was written but never reached the provider.
type lostBeforeApply struct {
	*provider.Client
	mu   sync.Mutex
	left int
}

func (l *lostBeforeApply) SendMessage(ctx context.Context, chatID string, p provider.SendMessageParams) (*provider.MessageSent, error) {
	l.mu.Lock()
	lose := l.left > 0
	l.left--
	l.mu.Unlock()
	if lose {
		return nil, &provider.Error{Op: provider.OpChatsMessagesSend, Class: provider.ClassUnknownOutcome, Err: errors.New("connection reset")}
	}
	return l.Client.SendMessage(ctx, chatID, p)
}

// TestRateLimitedWaitsWithoutBurningAttempts: 429s on the sending call (more of them than the
// transient budget) make the send wait and then go out; it never fails for them.
func TestRateLimitedWaitsWithoutBurningAttempts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *envConfig) {
		c.opts.MaxTransientAttempts = 2
		c.provider = func(cl *provider.Client, s *wasim.Sim) Provider {
			return &faultyProvider{Client: cl, sim: s, faults: wasim.Faults{RateLimitRate: 1, RetryAfter: time.Second}, left: 3}
		}
	})
	id := newID("429")
	e.submit(message(id, accA, chatA1))
	rec := e.waitTerminal(id, 20*time.Second)
	ds := e.deliveries(id)
	if rec.State != tasks.StateSent || applied(ds) != 1 || len(ds) != 4 {
		t.Fatalf("state %s %s, %d deliveries (%d applied); %s", rec.State, rec.Reason, len(ds), applied(ds), historyString(rec))
	}
	if n := waitsFor(rec, tasks.ReasonWaitProvider); n != 3 {
		t.Fatalf("%d provider_backoff waits, want 3", n)
	}
	// Retry-After was honoured: the sends are at least a second apart.
	for i := 1; i < len(ds); i++ {
		if gap := ds[i].At.Sub(ds[i-1].At); gap < 900*time.Millisecond {
			t.Fatalf("send %d came %s after the 429", i, gap)
		}
	}
}

// TestTransientErrorsExhaust: a provider that keeps failing (503) the sending call makes the
// send wait a few times, then fail retries_exhausted; nothing is delivered.
func TestTransientErrorsExhaust(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *envConfig) {
		c.opts.MaxTransientAttempts = 3
		c.provider = func(cl *provider.Client, s *wasim.Sim) Provider {
			return &faultyProvider{Client: cl, sim: s, faults: wasim.Faults{Error503Rate: 1}, left: 100}
		}
	})
	id := newID("503")
	e.submit(message(id, accA, chatA1))
	rec := e.waitTerminal(id, 20*time.Second)
	ds := e.deliveries(id)
	if rec.State != tasks.StateFailed || rec.Reason != tasks.ReasonRetriesExhausted || len(ds) != 3 || applied(ds) != 0 {
		t.Fatalf("state %s %s, %d deliveries (%d applied); %s", rec.State, rec.Reason, len(ds), applied(ds), historyString(rec))
	}
	e.expectResult(rec)
}

// TestDisconnectedAccountWaits: a send for a disconnected account waits (it does not fail),
// and goes out once the account is back; a disconnection discovered by the sending call itself
// (401 disconnected_account) waits the same way.
func TestDisconnectedAccountWaits(t *testing.T) {
	t.Parallel()
	var once sync.Once
	var simRef *wasim.Sim
	e := newEnv(t, func(c *envConfig) {
		c.provider = func(cl *provider.Client, s *wasim.Sim) Provider {
			simRef = s
			f := &faultyProvider{Client: cl, sim: s}
			// The account drops just before the first sending call.
			f.before = func() { once.Do(func() { _ = s.SetAccountStatus(accB, "CREDENTIALS") }) }
			return f
		}
	})
	if err := simRef.SetAccountStatus(accA, "CREDENTIALS"); err != nil {
		t.Fatal(err)
	}
	idA := newID("down-a")
	e.submit(message(idA, accA, chatA1))
	idB := newID("down-b")
	e.submit(message(idB, accB, chatB1))

	for _, id := range []string{idA, idB} {
		e.waitFor(id, 10*time.Second, "waiting for the account", func(r *tasks.Record) bool {
			return waitsFor(r, tasks.ReasonWaitAccountDown) >= 2
		})
	}
	if applied(e.deliveries(idA)) != 0 || applied(e.deliveries(idB)) != 0 {
		t.Fatal("delivered while disconnected")
	}
	if rec := e.get(idA); rec.State.Terminal() {
		t.Fatalf("disconnected send ended: %s %s", rec.State, rec.Reason)
	}
	_ = simRef.SetAccountStatus(accA, "OK")
	_ = simRef.SetAccountStatus(accB, "CONNECTED")
	for _, id := range []string{idA, idB} {
		rec := e.waitTerminal(id, 15*time.Second)
		if rec.State != tasks.StateSent || applied(e.deliveries(id)) != 1 {
			t.Fatalf("%s: %s %s, %d applied", id, rec.State, rec.Reason, applied(e.deliveries(id)))
		}
	}
	// B's first sending call met the disconnection: rejected, not delivered, then sent.
	if ds := e.deliveries(idB); len(ds) != 2 || ds[0].Outcome != "rejected_disconnected_account" {
		t.Fatalf("B deliveries: %+v", ds)
	}
}

// TestMessageOperations: reactions, edits and deletes act only on a located message of the
// account, edits and deletes only on our own messages and within WhatsApp's windows (refused
// locally: no sending call at all).
func TestMessageOperations(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	// A message sent by an earlier send, to edit without naming its chat.
	first := newID("first")
	e.submit(message(first, accA, chatA2))
	firstRec := e.waitTerminal(first, 10*time.Second)

	type tc struct {
		name   string
		req    tasks.SendRequest
		state  tasks.State
		reason tasks.Reason
	}
	mk := func(op tasks.Operation, chat, msg, text, reaction string) tasks.SendRequest {
		return tasks.SendRequest{Operation: op, AccountID: accA, ChatID: chat, MessageID: msg, Text: text, Reaction: reaction}
	}
	cases := []tc{
		{"edit out of window", mk(tasks.OpEdit, chatA1, msgOwnOld, "Our better offer", ""), tasks.StateSkipped, tasks.ReasonEditWindowClosed},
		{"edit of the contact's message", mk(tasks.OpEdit, chatA1, msgIncoming, "Hacked", ""), tasks.StateSkipped, tasks.ReasonNotOwnMessage},
		{"edit within window", mk(tasks.OpEdit, chatA1, msgOwnRecent, "Our offer (fixed)", ""), tasks.StateSent, ""},
		{"edit found through the ledger", mk(tasks.OpEdit, "", firstRec.Result.MessageID, "Following up (edited)", ""), tasks.StateSent, ""},
		{"edit of an unknown message", mk(tasks.OpEdit, "", "m-unknown", "x", ""), tasks.StateSkipped, tasks.ReasonMessageNotFound},
		{"edit of a message not in the chat", mk(tasks.OpEdit, chatA2, msgOwnRecent, "x", ""), tasks.StateSkipped, tasks.ReasonMessageNotFound},
		{"delete out of window", mk(tasks.OpDelete, chatA1, msgOwnAncient, "", ""), tasks.StateSkipped, tasks.ReasonDeleteWindowClosed},
		{"delete of the contact's message", mk(tasks.OpDelete, chatA1, msgIncoming, "", ""), tasks.StateSkipped, tasks.ReasonNotOwnMessage},
		{"reaction in another account's chat", mk(tasks.OpReaction, chatB1, msgB, "", "👍"), tasks.StateSkipped, tasks.ReasonAccountMismatch},
		{"reaction", mk(tasks.OpReaction, chatA1, msgIncoming, "", "👍"), tasks.StateSent, ""},
		{"delete within window", mk(tasks.OpDelete, chatA1, msgOwnOld, "", ""), tasks.StateSent, ""},
	}
	ids := make([]string, len(cases))
	for i := range cases {
		ids[i] = newID("msgop")
		cases[i].req.SendID = ids[i]
		e.submit(cases[i].req)
	}
	for i, c := range cases {
		rec := e.waitTerminal(ids[i], 10*time.Second)
		if rec.State != c.state || rec.Reason != c.reason {
			t.Errorf("%s: %s %s (%s), want %s %s", c.name, rec.State, rec.Reason, rec.Detail, c.state, c.reason)
		}
	}
	// Only the sending calls that should happen did: one per sent case, none for refusals.
	var edits, deletes, reactions int
	for _, d := range e.sim.Sim().Deliveries() {
		switch d.Operation {
		case "messages_edit":
			edits++
		case "messages_delete":
			deletes++
		case "messages_reaction":
			reactions++
		}
	}
	if edits != 2 || deletes != 1 || reactions != 1 {
		t.Fatalf("edits %d deletes %d reactions %d, want 2 1 1", edits, deletes, reactions)
	}
	if m, _ := e.sim.Sim().Message(msgOwnOld); !m.Deleted {
		t.Fatal("message not deleted")
	}
	if m, _ := e.sim.Sim().Message(msgOwnRecent); m.Text != "Our offer (fixed)" {
		t.Fatalf("edit not applied: %q", m.Text)
	}
	if m, _ := e.sim.Sim().Message(firstRec.Result.MessageID); m.Text != "Following up (edited)" {
		t.Fatalf("edit through the ledger not applied: %q", m.Text)
	}
}

// TestEditWindowUsesTheClock: with the worker's clock 16 minutes ahead, an edit of a
// 2-minute-old message is refused locally (the margin is part of the rule).
func TestEditWindowUsesTheClock(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *envConfig) {
		c.workerNow = func() time.Time { return time.Now().Add(EditWindow - EditWindowMargin) }
	})
	id := newID("edit-late")
	e.submit(tasks.SendRequest{SendID: id, Operation: tasks.OpEdit, AccountID: accA, ChatID: chatA1, MessageID: msgOwnRecent, Text: "Too late"})
	rec := e.waitTerminal(id, 10*time.Second)
	if rec.State != tasks.StateSkipped || rec.Reason != tasks.ReasonEditWindowClosed || len(e.sim.Sim().Deliveries()) != 0 {
		t.Fatalf("%s %s, %d deliveries", rec.State, rec.Reason, len(e.sim.Sim().Deliveries()))
	}
}

// TestSendWindow: outside the recipient's window a send waits until it opens; past not_after
// it expires. The worker's clock is injected.
func TestSendWindow(t *testing.T) {
	t.Parallel()
	// Saturday 2027-01-09 10:00 in Paris; the window is weekdays 09:00-18:00.
	var now atomic.Int64
	now.Store(mustTime(t, "2027-01-09T09:00:00Z").UnixNano())
	e := newEnv(t, func(c *envConfig) { c.workerNow = func() time.Time { return time.Unix(0, now.Load()) } })
	closed := newID("window-closed")
	req := message(closed, accA, chatA1)
	req.Window = &tasks.Window{Timezone: "Europe/Paris", Days: []string{"mon", "tue", "wed", "thu", "fri"}, From: "09:00", To: "18:00"}
	e.submit(req)
	rec := e.waitFor(closed, 10*time.Second, "waiting for its window", func(r *tasks.Record) bool {
		return r.State == tasks.StateWaiting && r.Wait != nil && r.Wait.Reason == tasks.ReasonWaitWindow
	})
	if want := mustTime(t, "2027-01-11T08:00:00Z"); !rec.Wait.Until.Equal(want) {
		t.Fatalf("waits until %s, want %s", rec.Wait.Until, want)
	}

	gone := newID("window-expired")
	later := time.Now().Add(time.Hour)
	req = message(gone, accA, chatA1)
	req.Window = &tasks.Window{NotAfter: &later}
	// The worker's clock is past not_after.
	now.Store(time.Now().Add(2 * time.Hour).UnixNano())
	e.submit(req)
	rec = e.waitTerminal(gone, 10*time.Second)
	if rec.State != tasks.StateExpired || rec.Reason != tasks.ReasonWindowExpired {
		t.Fatalf("%s %s", rec.State, rec.Reason)
	}
	if n := len(e.sim.Sim().Deliveries()); n != 0 {
		t.Fatalf("%d deliveries", n)
	}
	e.expectResult(rec)
}

// TestDryRun: every check runs, nothing is sent, the result says dry_run.
func TestDryRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *envConfig) { c.opts.DryRun = true })
	id := newID("dry")
	e.submit(message(id, accA, chatA1))
	cold := newID("dry-cold")
	e.submit(message(cold, accA, chatB1))
	rec := e.waitTerminal(id, 10*time.Second)
	if rec.State != tasks.StateSkipped || rec.Reason != tasks.ReasonDryRun || !rec.Result.DryRun {
		t.Fatalf("%s %s dry=%v", rec.State, rec.Reason, rec.Result.DryRun)
	}
	if rec := e.waitTerminal(cold, 10*time.Second); rec.Reason != tasks.ReasonAccountMismatch {
		t.Fatalf("dry run skipped the guards: %s", rec.Reason)
	}
	if n := len(e.sim.Sim().Deliveries()); n != 0 {
		t.Fatalf("%d deliveries in dry run", n)
	}
	e.expectResult(rec)
}

// TestConcurrentDuplicateExecution: the same task run by many handlers at once (asynq
// redelivery, replicas) delivers once.
func TestConcurrentDuplicateExecution(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *envConfig) { c.noStart = true })
	e.sim.Sim().SetFaults(wasim.Faults{LatencyMin: 300 * time.Millisecond})
	id := newID("dup")
	e.submit(message(id, accA, chatA1))
	task := e.releaseTask(id)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() { errs <- e.worker.Handler().ProcessTask(context.Background(), task) })
	}
	wg.Wait()
	close(errs)
	retries := 0
	for err := range errs {
		var re *retryError
		switch {
		case err == nil:
		case errors.As(err, &re):
			retries++
		default:
			t.Fatalf("handler: %v", err)
		}
	}
	rec := e.get(id)
	if rec.State != tasks.StateSent || len(e.deliveries(id)) != 1 {
		t.Fatalf("%s, %d deliveries", rec.State, len(e.deliveries(id)))
	}
	// The duplicates that met the live lease come back later and find the send final.
	if err := e.worker.Handler().ProcessTask(context.Background(), task); err != nil {
		t.Fatal(err)
	}
	if len(e.deliveries(id)) != 1 {
		t.Fatal("second delivery")
	}
	t.Logf("%d of 8 executions met the attempt in flight", retries)
}

// TestManySendsAllTerminal: a mixed batch under random provider faults: every send ends in a
// terminal state with one result, and no send is delivered twice.
func TestManySendsAllTerminal(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.sim.Sim().SetFaults(wasim.Faults{LatencyMin: 5 * time.Millisecond, LatencyMax: 50 * time.Millisecond,
		Error503Rate: 0.05, RateLimitRate: 0.05, Error504Rate: 0.1, AcceptThenDropRate: 0.1})
	var ids []string
	for i := range 20 {
		id := newID("many")
		chat := "chat-x" + twoDigits(i)
		if i%7 == 3 {
			chat = chatB1 // account mismatch
		}
		e.submit(message(id, accA, chat))
		ids = append(ids, id)
	}
	for _, id := range ids {
		rec := e.waitTerminal(id, 60*time.Second)
		if n := applied(e.deliveries(id)); n > 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
		if rec.State == tasks.StateSent && applied(e.deliveries(id)) != 1 {
			t.Errorf("%s sent but %d applied deliveries", id, applied(e.deliveries(id)))
		}
		e.expectResult(rec)
	}
}

func twoDigits(i int) string { return string([]byte{'0' + byte(i/10), '0' + byte(i%10)}) }

// TestAttachments: only allow-listed, size-capped files whose bytes match the approved hash are
// sent; a fetch problem fails the send before any sending call.
func TestAttachments(t *testing.T) {
	t.Parallel()
	files := newFileServer(t)
	e := newEnv(t, func(c *envConfig) {
		c.opts.AttachmentOrigins = []string{files.URL}
		c.opts.MaxAttachmentBytes = 1 << 20
		c.opts.MaxTransientAttempts = 2
	})
	att := func(path string, body []byte) tasks.Attachment {
		return tasks.Attachment{URL: files.URL + path, Filename: "offer.pdf", ContentType: "application/pdf", Size: int64(len(body)), SHA256: sha(body)}
	}
	good := []byte(strings.Repeat("%PDF-", 1000))
	withAtt := func(a tasks.Attachment) tasks.SendRequest {
		id := newID("att")
		r := message(id, accA, chatA1)
		r.Attachments = []tasks.Attachment{a}
		return r
	}
	mismatch := att("/offer.pdf", []byte("other bytes"))
	mismatch.Size = int64(len(good))
	cases := []struct {
		name   string
		req    tasks.SendRequest
		state  tasks.State
		reason tasks.Reason
	}{
		{"good", withAtt(att("/offer.pdf", good)), tasks.StateSent, ""},
		{"hash mismatch", withAtt(mismatch), tasks.StateFailed, tasks.ReasonAttachmentMismatch},
		{"origin not allowed", withAtt(tasks.Attachment{URL: "https://evil.example.com/x.pdf", Filename: "x.pdf", ContentType: "application/pdf", Size: 10, SHA256: sha(good)}), tasks.StateFailed, tasks.ReasonAttachmentOrigin},
		{"too large", withAtt(tasks.Attachment{URL: files.URL + "/offer.pdf", Filename: "x.pdf", ContentType: "application/pdf", Size: 2 << 20, SHA256: sha(good)}), tasks.StateFailed, tasks.ReasonAttachmentTooLarge},
		{"fetch keeps failing", withAtt(att("/500", good)), tasks.StateFailed, tasks.ReasonAttachmentFetch},
	}
	for _, c := range cases {
		e.submit(c.req)
	}
	for _, c := range cases {
		rec := e.waitTerminal(c.req.SendID, 15*time.Second)
		if rec.State != c.state || rec.Reason != c.reason {
			t.Errorf("%s: %s %s (%s)", c.name, rec.State, rec.Reason, rec.Detail)
		}
		want := 0
		if c.state == tasks.StateSent {
			want = 1
		}
		if n := len(e.deliveries(c.req.SendID)); n != want {
			t.Errorf("%s: %d deliveries", c.name, n)
		}
	}
	ds := e.deliveries(cases[0].req.SendID)
	if len(ds) != 1 || len(ds[0].Attachments) != 1 || ds[0].Attachments[0].SHA256 != sha(good) {
		t.Fatalf("delivered attachments: %+v", ds)
	}
	if n := leftoverTempFiles(t); n != 0 {
		t.Fatalf("%d attachment temp files left", n)
	}
}

// TestMaxDelayAfterApproval: an approved send without window.not_after that could not go out
// within the maximum delay after its approval (default 72h) ends expired with its own reason,
// nothing sent; a send whose window.not_after is later still goes (its window wins).
func TestMaxDelayAfterApproval(t *testing.T) {
	t.Parallel()
	var now atomic.Int64
	now.Store(time.Now().Add(73 * time.Hour).UnixNano()) // the worker's clock: 73 h after the approvals
	e := newEnv(t, func(c *envConfig) { c.workerNow = func() time.Time { return time.Unix(0, now.Load()) } })

	late := newID("max-delay")
	e.submit(message(late, accA, chatA1))
	rec := e.waitTerminal(late, 10*time.Second)
	if rec.State != tasks.StateExpired || rec.Reason != tasks.ReasonMaxDelay || !strings.Contains(rec.Detail, "not sent within 72h0m0s") {
		t.Fatalf("%s %s %q, want expired max_delay_exceeded", rec.State, rec.Reason, rec.Detail)
	}
	e.expectResult(rec)

	windowed := newID("max-delay-window")
	notAfter := time.Now().Add(100 * time.Hour)
	req := message(windowed, accA, chatA2)
	req.Window = &tasks.Window{NotAfter: &notAfter}
	e.submit(req)
	if rec := e.waitTerminal(windowed, 10*time.Second); rec.State != tasks.StateSent {
		t.Fatalf("%s: %s %s, want sent (its not_after is later than the default delay)", windowed, rec.State, rec.Reason)
	}
	if n := len(e.deliveries(late)); n != 0 {
		t.Fatalf("%d deliveries of the expired send", n)
	}
}

// TestMaxDelayCountsFromNotBefore: a send scheduled on purpose (window.not_before) later than
// the maximum delay after its approval, with no not_after, goes out when its window opens: the
// maximum delay counts from when the send could first go out, not from its approval.
func TestMaxDelayCountsFromNotBefore(t *testing.T) {
	t.Parallel()
	var now atomic.Int64
	now.Store(time.Now().Add(100 * time.Hour).UnixNano()) // the worker's clock: 100 h after the approval
	e := newEnv(t, func(c *envConfig) { c.workerNow = func() time.Time { return time.Unix(0, now.Load()) } })

	id := newID("max-delay-not-before")
	notBefore := time.Now().Add(99 * time.Hour) // opened 1 h ago on the worker's clock
	req := message(id, accA, chatA1)
	req.Window = &tasks.Window{NotBefore: &notBefore}
	e.submit(req)
	if rec := e.waitTerminal(id, 10*time.Second); rec.State != tasks.StateSent {
		t.Fatalf("%s %s %q, want sent: its window opened 1 h ago", rec.State, rec.Reason, rec.Detail)
	}

	// Counted from not_before, the delay still ends a send whose window opened long ago.
	stale := newID("max-delay-not-before-stale")
	openedLongAgo := time.Now().Add(time.Hour) // 99 h before the worker's clock
	req = message(stale, accA, chatA2)
	req.Window = &tasks.Window{NotBefore: &openedLongAgo}
	e.submit(req)
	rec := e.waitTerminal(stale, 10*time.Second)
	if rec.State != tasks.StateExpired || rec.Reason != tasks.ReasonMaxDelay || !strings.Contains(rec.Detail, "window.not_before") {
		t.Fatalf("%s %s %q, want expired max_delay_exceeded counted from window.not_before", rec.State, rec.Reason, rec.Detail)
	}
	if n := len(e.deliveries(stale)); n != 0 {
		t.Fatalf("%d deliveries of the expired send", n)
	}
}

// TestLogLinesHaveUniqueKeys: no log line of a send repeats a key (a JSON line with "attempt"
// twice is ambiguous for log processors). The observer keeps the fields of With and of the
// call side by side, so a repeat shows as two fields with one key.
func TestLogLinesHaveUniqueKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	id := newID("log-keys")
	e.submit(message(id, accA, chatA1))
	if rec := e.waitTerminal(id, 10*time.Second); rec.State != tasks.StateSent {
		t.Fatalf("%s %s", rec.State, rec.Reason)
	}
	lines := 0
	for _, entry := range e.logs.All() {
		seen := map[string]bool{}
		for _, f := range entry.Context {
			if seen[f.Key] {
				t.Errorf("log line %q repeats the key %q", entry.Message, f.Key)
			}
			seen[f.Key] = true
		}
		if seen["send_id"] {
			lines++
		}
	}
	if lines == 0 {
		t.Fatal("no log line of the send was observed")
	}
}
