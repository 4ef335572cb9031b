package inbound_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/inbound"
	"github.com/sendworker/sendworker/internal/redisproc"
	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/tasks"
	"github.com/sendworker/sendworker/worker"
)

const secret = "current-secret-0123456789"

var prefixSeq atomic.Int64

type env struct {
	t       *testing.T
	ctx     context.Context
	rdb     *redis.Client
	l       *ledger.Ledger
	srv     *httptest.Server
	metrics *inbound.Metrics
	stream  string
	logs    string
	prefix  string
	proc    *inbound.Processor
}

// All tests share one throwaway redis-server; each gets its own key prefix.
var sharedAddr string

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "inbound-redis-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	proc, err := redisproc.Start(context.Background(), redisproc.Options{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer proc.Kill()
	sharedAddr = proc.Addr()
	return m.Run()
}

func client(t *testing.T) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: sharedAddr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func newEnv(t *testing.T, run bool) *env {
	t.Helper()
	rdb := client(t)
	prefix := fmt.Sprintf("t%d", prefixSeq.Add(1))
	l := ledger.New(rdb, ledger.Options{Prefix: prefix, ResultsStream: prefix + ":results"})
	e := &env{t: t, ctx: context.Background(), rdb: rdb, l: l, metrics: inbound.NewMetrics(nil),
		stream: l.Keys().Inbound(), logs: l.Keys().InboundLog(), prefix: prefix}
	e.srv = httptest.NewServer(inbound.NewReceiver(rdb, inbound.ReceiverOptions{
		Secrets: []string{secret, "previous-secret-0123456789"}, Stream: e.stream, Metrics: e.metrics, MaxBodyBytes: 4096}))
	t.Cleanup(e.srv.Close)
	e.proc = e.processor("p1", time.Minute)
	if run {
		if err := e.proc.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := e.proc.Stop(context.Background()); err != nil {
				t.Errorf("Stop: %v", err)
			}
		})
	}
	return e
}

func (e *env) processor(consumer string, minIdle time.Duration) *inbound.Processor {
	return inbound.NewProcessor(e.rdb, e.l, inbound.ProcessorOptions{Stream: e.stream, LogStream: e.logs,
		Consumer: consumer, MinIdle: minIdle, Block: 50 * time.Millisecond, Metrics: e.metrics,
		Breakers: worker.NewAccountBreakers(e.l, nil, nil, nil)})
}

func (e *env) post(body, key string) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL, strings.NewReader(body))
	if key != "" {
		req.Header.Set(inbound.DefaultHeader, key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// create enqueues a send into chat with stop_if_replied_since an hour ago.
func (e *env) create(id, account, chat string) *tasks.Record {
	e.t.Helper()
	since := time.Now().Add(-time.Hour)
	req := &tasks.SendRequest{SendID: id, Operation: tasks.OpSendMessage, AccountID: account, RequestedBy: "seq",
		ChatID: chat, Text: "hello " + id, StopIfRepliedSince: &since}
	rec, _, err := e.l.Create(e.ctx, req, req.Digest(), time.Now().Add(time.Hour))
	if err != nil {
		e.t.Fatal(err)
	}
	return rec
}

func (e *env) approve(rec *tasks.Record) {
	e.t.Helper()
	if _, err := e.l.Approve(e.ctx, rec.SendID, rec.Digest, "alice", ""); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) state(id string) tasks.State {
	e.t.Helper()
	rec, err := e.l.Get(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return rec.State
}

// eventually polls cond every 10 ms until it holds or within passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		<-time.After(10 * time.Millisecond)
	}
}

func message(account, chat, msgID, sender, text string, isSender bool) string {
	b, _ := json.Marshal(map[string]any{
		"account_id": account, "account_type": "WHATSAPP", "event": "message_received", "chat_id": chat,
		"timestamp": time.Now().UTC().Format(time.RFC3339Nano), "webhook_name": "sendworker", "message_id": msgID,
		"message": text, "is_sender": isSender,
		"sender": map[string]string{"attendee_id": "att-" + sender, "attendee_provider_id": sender},
	})
	return string(b)
}

func (e *env) results(event string) []redis.XMessage {
	e.t.Helper()
	all, err := e.rdb.XRange(e.ctx, e.l.ResultsStream(), "-", "+").Result()
	if err != nil {
		e.t.Fatal(err)
	}
	var out []redis.XMessage
	for _, m := range all {
		if m.Values["event"] == event {
			out = append(out, m)
		}
	}
	return out
}

// TestStartProcessesStopEndsAndRestarts: a started Processor acts on an event; a second Start is
// refused; Stop ends it (an event accepted then waits in the stream); a new Start processes that
// event. Stopping a stopped Processor does nothing.
func TestStartProcessesStopEndsAndRestarts(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	if err := e.proc.Stop(ctx); err != nil {
		t.Fatalf("Stop before Start = %v", err)
	}
	if err := e.proc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.proc.Start(ctx); !errors.Is(err, inbound.ErrStarted) {
		t.Fatalf("second Start = %v, want ErrStarted", err)
	}
	e.create("first", "acc", "chat-1")
	if code, body := e.post(message("acc", "chat-1", "m1", "33611@s.whatsapp.net", "hi", false), secret); code != 200 {
		t.Fatalf("answer %d %s", code, body)
	}
	eventually(t, 5*time.Second, "the first event processed and acknowledged", func() bool {
		n, err := e.rdb.XLen(ctx, e.logs).Result()
		return err == nil && n == 1 && e.state("first") == tasks.StateSkipped
	})

	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := e.proc.Stop(stopCtx); err != nil {
		t.Fatalf("Stop = %v", err)
	}
	if err := e.proc.Stop(stopCtx); err != nil {
		t.Fatalf("second Stop = %v", err)
	}
	e.create("second", "acc", "chat-2")
	if code, body := e.post(message("acc", "chat-2", "m2", "33622@s.whatsapp.net", "hi", false), secret); code != 200 {
		t.Fatalf("answer %d %s", code, body)
	}
	<-time.After(200 * time.Millisecond) // four reads' Block: a loop still running would have acted
	if n, err := e.rdb.XLen(ctx, e.stream).Result(); err != nil || n != 1 || e.state("second") != tasks.StatePendingApproval {
		t.Fatalf("after Stop: %d entries (err %v), second %s; want the event waiting", n, err, e.state("second"))
	}

	if err := e.proc.Start(ctx); err != nil {
		t.Fatalf("Start after Stop = %v", err)
	}
	t.Cleanup(func() { _ = e.proc.Stop(context.Background()) })
	eventually(t, 5*time.Second, "the second send skipped", func() bool { return e.state("second") == tasks.StateSkipped })
}

// TestStopIsBoundedByItsContext: Stop with a context already ended returns its error at once; the
// loop still ends, and Start works again once it has.
func TestStopIsBoundedByItsContext(t *testing.T) {
	e := newEnv(t, false)
	if err := e.proc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.proc.Stop(ended); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stop with an ended context = %v, want context.Canceled", err)
	}
	if err := e.proc.Stop(context.Background()); err != nil {
		t.Fatalf("Stop = %v", err)
	}
	if err := e.proc.Start(context.Background()); err != nil {
		t.Fatalf("Start after Stop = %v", err)
	}
	if err := e.proc.Stop(context.Background()); err != nil {
		t.Fatalf("Stop = %v", err)
	}
}

func TestReplySkipsPendingApprovedAndWaitingSendsWithinTwoSeconds(t *testing.T) {
	e := newEnv(t, true)
	const chat = "chat-lucas"
	e.create("pending", "acc", chat)
	e.approve(e.create("approved", "acc", chat))
	e.approve(e.create("waiting", "acc", chat))
	if _, err := e.l.Defer(e.ctx, "waiting", "", time.Now().Add(time.Hour), tasks.ReasonWaitRateLimit); err != nil {
		t.Fatal(err)
	}
	e.create("elsewhere", "acc", "chat-other")
	start := time.Now()
	if code, body := e.post(message("acc", chat, "m1", "33611@s.whatsapp.net", "Thanks, see you!", false), secret); code != 200 {
		t.Fatalf("answer %d %s", code, body)
	}
	eventually(t, 2*time.Second, "three sends skipped", func() bool {
		for _, id := range []string{"pending", "approved", "waiting"} {
			if e.state(id) != tasks.StateSkipped {
				return false
			}
		}
		return true
	})
	t.Logf("skipped %s after the event", time.Since(start))
	for _, id := range []string{"pending", "approved", "waiting"} {
		rec, _ := e.l.Get(e.ctx, id)
		if rec.Reason != tasks.ReasonContactReplied {
			t.Errorf("%s: reason %s", id, rec.Reason)
		}
	}
	if st := e.state("elsewhere"); st != tasks.StatePendingApproval {
		t.Fatalf("send of another chat: %s", st)
	}
	// None can go out: the outbox no longer holds them, and a task would find them final.
	if n, _ := e.l.OutboxSize(e.ctx); n != 0 {
		t.Fatalf("outbox holds %d", n)
	}
	if ev := e.results("contact_replied"); len(ev) != 1 || ev[0].Values["contact_id"] != "33611@s.whatsapp.net" {
		t.Fatalf("reply event entries %v", ev)
	}
}

func TestSameEventThreeTimesIsProcessedOnce(t *testing.T) {
	e := newEnv(t, true)
	e.create("s1", "acc", "chat-1")
	body := message("acc", "chat-1", "m-dup", "336@s", "ok", false)
	for range 3 {
		if code, _ := e.post(body, secret); code != 200 {
			t.Fatalf("answer %d", code)
		}
	}
	eventually(t, 2*time.Second, "three events processed", func() bool {
		return e.metrics.Count("message_received", "replied")+e.metrics.Count("message_received", "duplicate") == 3
	})
	if r, d := e.metrics.Count("message_received", "replied"), e.metrics.Count("message_received", "duplicate"); r != 1 || d != 2 {
		t.Fatalf("replied %v duplicate %v, want 1 and 2", r, d)
	}
	if ev := e.results("contact_replied"); len(ev) != 1 {
		t.Fatalf("%d reply events, want 1", len(ev))
	}
	if n, _ := e.rdb.XLen(e.ctx, e.stream).Result(); n != 0 {
		t.Fatalf("%d entries left in the accepted stream", n)
	}
}

func TestStopOptsOutCancelsPendingAndLaterSendsAreRefused(t *testing.T) {
	e := newEnv(t, true)
	e.create("p1", "acc", "chat-s")
	e.approve(e.create("p2", "acc", "chat-s"))
	if code, _ := e.post(message("acc", "chat-s", "m-stop", "3377@s.whatsapp.net", "  Stop! ", false), secret); code != 200 {
		t.Fatal("not accepted")
	}
	eventually(t, 2*time.Second, "pending sends opted out", func() bool {
		return e.state("p1") == tasks.StateSkipped && e.state("p2") == tasks.StateSkipped
	})
	entries, err := e.l.OptOutEntries(e.ctx)
	if err != nil || len(entries) != 1 || entries[0].ContactID != "3377@s.whatsapp.net" || entries[0].Keyword != "STOP" ||
		!strings.Contains(entries[0].Source, "m-stop") {
		t.Fatalf("opt-out entries %+v %v", entries, err)
	}
	if ev := e.results("contact_opted_out"); len(ev) != 1 {
		t.Fatalf("%d opt-out announcements", len(ev))
	}
	// Enqueued afterwards: refused at the moment of sending (BeginAttempt checks the list).
	rec := e.create("later", "acc", "chat-s")
	e.approve(rec)
	rec, _ = e.l.Get(e.ctx, "later")
	res, err := e.l.BeginAttempt(e.ctx, ledger.BeginRequest{SendID: "later", Digest: rec.Digest, Gen: rec.Gen, Token: "t",
		Lease: time.Minute, ContactIDs: []string{"chat-s", "3377@s.whatsapp.net"}})
	if err != nil || res.Outcome != ledger.BeginOptedOut {
		t.Fatalf("begin: %v %v", res.Outcome, err)
	}
}

func TestOwnMessagesAndUnknownSendersChangeNothing(t *testing.T) {
	e := newEnv(t, true)
	e.create("s1", "acc", "chat-o")
	e.post(message("acc", "chat-o", "m-own", "me@s", "STOP", true), secret)
	noSender := `{"account_id":"acc","event":"message_received","chat_id":"chat-o","message_id":"m-x","timestamp":"2026-01-01T00:00:00Z","message":"hi"}`
	e.post(noSender, secret)
	eventually(t, 2*time.Second, "both processed", func() bool {
		return e.metrics.Count("message_received", "own_message") == 1 && e.metrics.Count("message_received", "sender_unknown") == 1
	})
	if st := e.state("s1"); st != tasks.StatePendingApproval {
		t.Fatalf("state %s", st)
	}
}

func TestAccountStatusOpensTheBreakerForEveryReplica(t *testing.T) {
	e := newEnv(t, true)
	body := `{"AccountStatus":{"account_id":"acc-m","account_type":"WHATSAPP","message":"CREDENTIALS"}}`
	if code, _ := e.post(body, secret); code != 200 {
		t.Fatal("not accepted")
	}
	// Two other replicas, each with its own Redis connection, see the same breaker.
	replicas := []*worker.AccountBreakers{
		worker.NewAccountBreakers(ledger.New(client(t), ledger.Options{Prefix: e.prefix}), nil, nil, nil),
		worker.NewAccountBreakers(ledger.New(client(t), ledger.Options{Prefix: e.prefix}), nil, nil, nil),
	}
	eventually(t, 2*time.Second, "breaker open on every replica", func() bool {
		for _, r := range replicas {
			if open, st, err := r.State(e.ctx, "acc-m"); err != nil || !open || st != "CREDENTIALS" {
				return false
			}
		}
		return true
	})
	if ev := e.results("account_breaker_open"); len(ev) != 1 {
		t.Fatalf("%d breaker events", len(ev))
	}
	e.post(`{"AccountStatus":{"account_id":"acc-m","account_type":"WHATSAPP","message":"OK"}}`, secret)
	eventually(t, 2*time.Second, "breaker closed", func() bool {
		open, _, _ := replicas[0].State(e.ctx, "acc-m")
		return !open
	})
}

func TestRefusedRequestsChangeNothing(t *testing.T) {
	e := newEnv(t, false)
	good := message("acc", "chat", "m", "p", "hi", false)
	tests := []struct {
		name, body, key string
		want            int
	}{
		{"unsigned", good, "", 401},
		{"forged", good, "guess", 401},
		{"prefix of the secret", good, secret[:10], 401},
		{"bad json", `{"event":`, secret, 400},
		{"not an object", `[1,2]`, secret, 400},
		{"unknown type", `{"event":"post_liked","account_id":"a"}`, secret, 422},
		{"missing chat", `{"event":"message_received","account_id":"a","message_id":"m","timestamp":"2026-01-01T00:00:00Z"}`, secret, 400},
		{"oversized", `{"event":"message_received","message":"` + strings.Repeat("x", 5000) + `"}`, secret, 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := e.post(tt.body, tt.key)
			if code != tt.want {
				t.Fatalf("answer %d %s, want %d", code, body, tt.want)
			}
			if strings.Contains(body, "hi\"") || strings.Contains(body, "xxxx") {
				t.Fatalf("the answer quotes the message: %s", body)
			}
		})
	}
	if n, _ := e.rdb.XLen(e.ctx, e.stream).Result(); n != 0 {
		t.Fatalf("%d entries stored", n)
	}
	// The previous secret of a rotation is accepted.
	if code, _ := e.post(good, "previous-secret-0123456789"); code != 200 {
		t.Fatalf("previous secret refused: %d", code)
	}
}

func TestCrashBetweenAcceptAndProcessing(t *testing.T) {
	e := newEnv(t, false)
	e.create("s1", "acc", "chat-c")
	if code, _ := e.post(message("acc", "chat-c", "m-c", "336@s", "later", false), secret); code != 200 {
		t.Fatal("not accepted")
	}
	// A replica reads the event and dies before acting on it.
	dead := e.processor("dead", time.Minute)
	if err := dead.EnsureGroup(e.ctx); err != nil {
		t.Fatal(err)
	}
	got, err := e.rdb.XReadGroup(e.ctx, &redis.XReadGroupArgs{Group: inbound.DefaultGroup, Consumer: "dead",
		Streams: []string{e.stream, ">"}, Count: 10, Block: -1}).Result()
	if err != nil || len(got[0].Messages) != 1 {
		t.Fatalf("read %v %v", got, err)
	}
	// Another replica claims it once it has been idle long enough.
	survivor := e.processor("survivor", 50*time.Millisecond)
	eventually(t, 2*time.Second, "the event processed by the survivor", func() bool {
		_, err := survivor.ProcessOnce(e.ctx)
		return err == nil && e.state("s1") == tasks.StateSkipped
	})
	// And a replica restarted under its own name re-reads what it had read.
	e.create("s2", "acc", "chat-d")
	e.post(message("acc", "chat-d", "m-d", "337@s", "later", false), secret)
	if _, err := e.rdb.XReadGroup(e.ctx, &redis.XReadGroupArgs{Group: inbound.DefaultGroup, Consumer: "restarted",
		Streams: []string{e.stream, ">"}, Count: 10, Block: -1}).Result(); err != nil {
		t.Fatal(err)
	}
	restarted := e.processor("restarted", time.Hour)
	if n, err := restarted.ProcessOnce(e.ctx); err != nil || n != 1 || e.state("s2") != tasks.StateSkipped {
		t.Fatalf("restart: %d %v %s", n, err, e.state("s2"))
	}
	logs, err := inbound.ReadLog(e.ctx, e.rdb, e.logs, "", 10)
	if err != nil || len(logs) != 2 || logs[0].Outcome != "replied" {
		t.Fatalf("log %+v %v", logs, err)
	}
}

func TestReceiptsAreWrittenBackToOurSend(t *testing.T) {
	e := newEnv(t, true)
	rec := e.create("s1", "acc", "chat-r")
	e.approve(rec)
	rec, _ = e.l.Get(e.ctx, "s1")
	res, err := e.l.BeginAttempt(e.ctx, ledger.BeginRequest{SendID: "s1", Digest: rec.Digest, Gen: rec.Gen, Token: "t", Lease: time.Minute})
	if err != nil || res.Outcome != ledger.BeginOK {
		t.Fatal(res.Outcome, err)
	}
	if _, err := e.l.End(e.ctx, "s1", "t", ledger.Outcome{State: tasks.StateSent, MessageID: "our-m"}); err != nil {
		t.Fatal(err)
	}
	read := `{"account_id":"acc","event":"message_read","chat_id":"chat-r","message_id":"our-m","timestamp":"2026-12-03T09:00:00Z","sender":{"attendee_provider_id":"336@s"}}`
	reaction := `{"account_id":"acc","event":"message_reaction","chat_id":"chat-r","message_id":"our-m","timestamp":"2026-12-03T09:01:00Z","reaction":"👍","reaction_sender":{"attendee_provider_id":"336@s"}}`
	e.post(read, secret)
	e.post(reaction, secret)
	eventually(t, 2*time.Second, "receipts written", func() bool {
		return len(e.results("message_read")) == 1 && len(e.results("message_reaction")) == 1
	})
	rec, _ = e.l.Get(e.ctx, "s1")
	if rec.State != tasks.StateSent {
		t.Fatalf("state %s", rec.State)
	}
	if r := e.results("message_reaction")[0]; r.Values["status"] != "👍" || r.Values["send_id"] != "s1" {
		t.Fatalf("reaction entry %v", r.Values)
	}
}

// failingBreakers stands for a breaker store that refuses every write.
type failingBreakers struct{}

func (failingBreakers) Open(context.Context, string, string) error {
	return fmt.Errorf("breaker store down")
}
func (failingBreakers) Close(context.Context, string, string) error {
	return fmt.Errorf("breaker store down")
}

func TestAnEventThatAlwaysFailsIsDroppedAndTheNextOnesGoOn(t *testing.T) {
	e := newEnv(t, false)
	e.create("s1", "acc", "chat-f")
	e.post(`{"AccountStatus":{"account_id":"acc","account_type":"WHATSAPP","message":"ERROR"}}`, secret)
	e.post(message("acc", "chat-f", "m-f", "336@s", "ok", false), secret)
	p := inbound.NewProcessor(e.rdb, e.l, inbound.ProcessorOptions{Stream: e.stream, LogStream: e.logs,
		Consumer: "c", Metrics: e.metrics, Breakers: failingBreakers{}})
	for i := 0; e.state("s1") != tasks.StateSkipped; i++ {
		if i > 20 {
			t.Fatal("the reply behind a failing event was never processed")
		}
		_, _ = p.ProcessOnce(e.ctx)
	}
	logs, err := inbound.ReadLog(e.ctx, e.rdb, e.logs, "", 10)
	if err != nil || len(logs) != 2 || logs[0].Outcome != "failed" || logs[1].Outcome != "replied" {
		t.Fatalf("log %+v %v", logs, err)
	}
	if e.metrics.Count("account_status", "error") != 10 {
		t.Fatalf("%v errors counted, want 10", e.metrics.Count("account_status", "error"))
	}
}

// A new chat's send addressed to the phone form of a person, and the person replies under their
// @lid id, which the ledger knows to be the same person: the send is skipped. The opt-out list
// shows the person, never the ledger's internal marker of unlinked opt-outs.
func TestReplyUnderTheOtherIDFormOfThePerson(t *testing.T) {
	e := newEnv(t, true)
	const phone, lid = "33612345678@s.whatsapp.net", "Z9abc@lid"
	if err := e.l.LinkIdentity(e.ctx, phone, lid); err != nil {
		t.Fatal(err)
	}
	since := time.Now().Add(-time.Hour)
	req := &tasks.SendRequest{SendID: "new-chat", Operation: tasks.OpCreateChat, AccountID: "acc", RequestedBy: "seq",
		AttendeeIDs: []string{" 33612345678@S.WhatsApp.net"}, Text: "hello", StopIfRepliedSince: &since}
	if _, _, err := e.l.Create(e.ctx, req, req.Digest(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if code, body := e.post(message("acc", "chat-fresh", "m-lid", lid, "Who is this?", false), secret); code != 200 {
		t.Fatalf("answer %d %s", code, body)
	}
	eventually(t, 2*time.Second, "the send skipped", func() bool { return e.state("new-chat") == tasks.StateSkipped })

	// STOP from an unlinked phone-form id: one entry, the person.
	if code, _ := e.post(message("acc", "chat-other", "m-stop2", "33699999999@s.whatsapp.net", "STOP", false), secret); code != 200 {
		t.Fatal("not accepted")
	}
	eventually(t, 2*time.Second, "opted out", func() bool {
		yes, _ := e.l.IsOptedOut(e.ctx, "33699999999@s.whatsapp.net")
		return yes
	})
	entries, err := e.l.OptOutEntries(e.ctx)
	if err != nil || len(entries) != 1 || entries[0].ContactID != "33699999999@s.whatsapp.net" {
		t.Fatalf("opt-out entries %+v %v", entries, err)
	}
}
