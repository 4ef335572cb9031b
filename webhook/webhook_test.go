package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/sendworker/sendworker/internal/redistest"
	"github.com/sendworker/sendworker/tasks"
	"github.com/sendworker/sendworker/webhook"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	stream = "sendworker:results"
	group  = webhook.DefaultGroup
)

var secret = []byte("0123456789abcdef-test-secret")

// result returns a terminal result like the worker produces for send name.
func result(name string) tasks.Result {
	return tasks.Result{
		SendID: name, Operation: tasks.OpSendMessage, AccountID: "acct-1", State: tasks.StateSent,
		MessageID: "wamid." + name, ChatID: "chat-1", Attempts: 1, ApprovedBy: "alice",
		FinishedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Metadata: json.RawMessage(`{"step":1}`),
	}
}

// add appends res the way the ledger does: flat fields plus the whole JSON.
func add(t *testing.T, rdb redis.UniversalClient, res tasks.Result) string {
	t.Helper()
	return redistest.AddResult(t, rdb, stream, res)
}

// receiver is a webhook endpoint that checks every request and counts them
// per delivery id. answer decides the status of the n-th request (1-based)
// of a delivery; it may block (honouring r.Context()).
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	answer func(r *http.Request, res tasks.Result, n int) int

	mu        sync.Mutex
	requests  map[string]int // delivery id → requests
	delivered map[string]int // delivery id → 2xx answers
	bodies    map[string]tasks.Result
	problems  []string
}

func newReceiver(t *testing.T, answer func(r *http.Request, res tasks.Result, n int) int) *receiver {
	t.Helper()
	rc := &receiver{t: t, answer: answer, requests: map[string]int{}, delivered: map[string]int{}, bodies: map[string]tasks.Result{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	t.Cleanup(func() {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		for _, p := range rc.problems {
			t.Error(p)
		}
	})
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	id := r.Header.Get(webhook.HeaderDelivery)
	var res tasks.Result
	var problems []string
	if err := webhook.Verify(secret, r.Header, body, time.Now(), time.Minute); err != nil {
		problems = append(problems, fmt.Sprintf("delivery %s: %v", id, err))
	}
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" ||
		r.Header.Get(webhook.HeaderEvent) != webhook.EventResult || id == "" {
		problems = append(problems, fmt.Sprintf("delivery %q: bad request line or headers: %s %v", id, r.Method, r.Header))
	}
	if err := json.Unmarshal(body, &res); err != nil {
		problems = append(problems, fmt.Sprintf("delivery %s: body: %v", id, err))
	}
	rc.mu.Lock()
	rc.problems = append(rc.problems, problems...)
	rc.requests[id]++
	n := rc.requests[id]
	rc.bodies[id] = res
	answer := rc.answer
	rc.mu.Unlock()

	status := answer(r, res, n)
	if status >= 200 && status < 300 {
		rc.mu.Lock()
		rc.delivered[id]++
		rc.mu.Unlock()
	}
	w.WriteHeader(status)
}

func (rc *receiver) setAnswer(answer func(r *http.Request, res tasks.Result, n int) int) {
	rc.mu.Lock()
	rc.answer = answer
	rc.mu.Unlock()
}

func (rc *receiver) counts(id string) (requests, delivered int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.requests[id], rc.delivered[id]
}

func (rc *receiver) totalRequests() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	n := 0
	for _, c := range rc.requests {
		n += c
	}
	return n
}

func ok(*http.Request, tasks.Result, int) int { return http.StatusOK }

// fastBackoff keeps retries quick and records which attempts were backed off.
type fastBackoff struct {
	mu    sync.Mutex
	calls []int
}

func (b *fastBackoff) backoff(attempt int) time.Duration {
	b.mu.Lock()
	b.calls = append(b.calls, attempt)
	b.mu.Unlock()
	return 5 * time.Millisecond
}

type running struct {
	d    *webhook.Dispatcher
	reg  *prometheus.Registry
	stop func()
}

// start runs a dispatcher until stop (or the end of the test).
func start(t *testing.T, rdb redis.UniversalClient, url string, edit func(*webhook.Options)) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts := webhook.Options{
		URL: url, Secret: secret, Stream: stream, StartID: "0", Consumer: "test-1",
		Backoff: (&fastBackoff{}).backoff, PollInterval: 20 * time.Millisecond,
		Logger: zaptest.NewLogger(t), Registerer: reg,
	}
	if edit != nil {
		edit(&opts)
	}
	d, err := webhook.New(rdb, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	}
	t.Cleanup(stop)
	waitFor(t, "the consumer group", func() bool { return hasGroup(rdb, opts.Group) })
	return &running{d: d, reg: reg, stop: stop}
}

// count reads the deliveries counter for outcome.
func (r *running) count(t *testing.T, outcome string) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "sendworker_webhook_deliveries_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no deliveries counter for outcome %q", outcome)
	return 0
}

// waitFor polls cond until it holds; the dispatcher works in the background.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func hasGroup(rdb redis.UniversalClient, name string) bool {
	if name == "" {
		name = group
	}
	groups, err := rdb.XInfoGroups(context.Background(), stream).Result()
	if err != nil {
		return false
	}
	for _, g := range groups {
		if g.Name == name {
			return true
		}
	}
	return false
}

func pending(t *testing.T, rdb redis.UniversalClient) int64 {
	t.Helper()
	p, err := rdb.XPending(context.Background(), stream, group).Result()
	if err != nil {
		t.Fatal(err)
	}
	return p.Count
}

func deadLetters(t *testing.T, rdb redis.UniversalClient) []redis.XMessage {
	t.Helper()
	msgs, err := rdb.XRange(context.Background(), webhook.DeadLetterStream(stream), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

// settled waits until the group has read the whole stream, has nothing
// pending and no attempt counter is left (it is dropped just after the ack).
func settled(t *testing.T, rdb redis.UniversalClient) {
	t.Helper()
	ctx := context.Background()
	waitFor(t, "every entry read and finished", func() bool {
		last, err := rdb.XRevRangeN(ctx, stream, "+", "-", 1).Result()
		if err != nil || len(last) != 1 {
			return false
		}
		groups, err := rdb.XInfoGroups(ctx, stream).Result()
		if err != nil {
			return false
		}
		read := false
		for _, g := range groups {
			read = read || (g.Name == group && g.LastDeliveredID == last[0].ID)
		}
		keys, err := rdb.Keys(ctx, stream+":webhook-attempts:*").Result()
		return read && err == nil && len(keys) == 0 && pending(t, rdb) == 0
	})
}

func TestDeliversEachResultOnceSigned(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	rc := newReceiver(t, ok)
	var ids []string
	for i := range 5 {
		ids = append(ids, add(t, rdb, result(fmt.Sprintf("send-%d", i))))
	}
	run := start(t, rdb, rc.srv.URL, nil)
	settled(t, rdb)
	run.stop()

	for i, id := range ids {
		if req, got := rc.counts(id); req != 1 || got != 1 {
			t.Errorf("delivery %s: %d requests, %d delivered; want 1, 1", id, req, got)
		}
		rc.mu.Lock()
		body := rc.bodies[id]
		rc.mu.Unlock()
		want := result(fmt.Sprintf("send-%d", i))
		if body.SendID != want.SendID || body.MessageID != want.MessageID || !body.FinishedAt.Equal(want.FinishedAt) ||
			!bytes.Equal(body.Metadata, want.Metadata) {
			t.Errorf("delivery %s: body %+v, want %+v", id, body, want)
		}
	}
	if got := run.count(t, "ok"); got != 5 {
		t.Errorf("ok deliveries = %v, want 5", got)
	}
	if dl := deadLetters(t, rdb); len(dl) != 0 {
		t.Errorf("dead letters: %v", dl)
	}
}

func TestNewResultsAreDeliveredWhileRunning(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	rc := newReceiver(t, ok)
	add(t, rdb, result("before")) // history: skipped by "$"
	start(t, rdb, rc.srv.URL, func(o *webhook.Options) { o.StartID = "$" })
	id := add(t, rdb, result("late"))
	waitFor(t, "the delivery", func() bool { _, got := rc.counts(id); return got == 1 })
	settled(t, rdb)
	if n := rc.totalRequests(); n != 1 {
		t.Errorf("%d requests, want 1 (the result written before the group was created is skipped)", n)
	}
}

func TestRetriesUntilReceiverRecovers(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	// Down for the first three requests of every delivery.
	rc := newReceiver(t, func(_ *http.Request, _ tasks.Result, n int) int {
		if n <= 3 {
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	})
	a, b := add(t, rdb, result("a")), add(t, rdb, result("b"))
	bo := &fastBackoff{}
	run := start(t, rdb, rc.srv.URL, func(o *webhook.Options) { o.Backoff = bo.backoff })
	settled(t, rdb)
	run.stop()

	for _, id := range []string{a, b} {
		if req, got := rc.counts(id); req != 4 || got != 1 {
			t.Errorf("delivery %s: %d requests, %d delivered; want 4, 1", id, req, got)
		}
	}
	bo.mu.Lock()
	calls := fmt.Sprint(bo.calls)
	bo.mu.Unlock()
	if len(bo.calls) != 6 || strings.Count(calls, "1") != 2 || strings.Count(calls, "3") != 2 {
		t.Errorf("backoff asked for attempts %s; want 1, 2, 3 for each delivery", calls)
	}
	if r, o := run.count(t, "retry"), run.count(t, "ok"); r != 6 || o != 2 {
		t.Errorf("retry = %v, ok = %v; want 6, 2", r, o)
	}
	if dl := deadLetters(t, rdb); len(dl) != 0 {
		t.Errorf("dead letters: %v", dl)
	}
}

func TestPermanentRejectionIsDeadLetteredAtOnce(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	rc := newReceiver(t, func(*http.Request, tasks.Result, int) int { return http.StatusBadRequest })
	id := add(t, rdb, result("refused"))
	run := start(t, rdb, rc.srv.URL, nil)
	waitFor(t, "a dead letter", func() bool { return len(deadLetters(t, rdb)) == 1 })
	settled(t, rdb)
	run.stop()

	if req, _ := rc.counts(id); req != 1 {
		t.Errorf("%d requests, want 1 (a 400 is not retried)", req)
	}
	dl := deadLetters(t, rdb)[0].Values
	body, _ := json.Marshal(result("refused"))
	want := map[string]any{
		"delivery_id": id, "send_id": "refused", "group": group, "reason": webhook.DeadRejected,
		"status": "400", "attempts": "1", "error": "", "result": string(body),
	}
	for k, v := range want {
		if dl[k] != v {
			t.Errorf("dead letter %s = %q, want %q", k, dl[k], v)
		}
	}
	if r, d := run.count(t, "retry"), run.count(t, "dead"); r != 0 || d != 1 {
		t.Errorf("retry = %v, dead = %v; want 0, 1", r, d)
	}
}

func TestMaxAttemptsDeadLetters(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	rc := newReceiver(t, func(*http.Request, tasks.Result, int) int { return http.StatusServiceUnavailable })
	id := add(t, rdb, result("never"))
	run := start(t, rdb, rc.srv.URL, func(o *webhook.Options) { o.MaxAttempts = 3 })
	waitFor(t, "a dead letter", func() bool { return len(deadLetters(t, rdb)) == 1 })
	settled(t, rdb)
	run.stop()

	if req, _ := rc.counts(id); req != 3 {
		t.Errorf("%d requests, want 3", req)
	}
	dl := deadLetters(t, rdb)[0].Values
	if dl["reason"] != webhook.DeadMaxAttempts || dl["status"] != "503" || dl["attempts"] != "3" || dl["delivery_id"] != id {
		t.Errorf("dead letter = %v", dl)
	}
	if r, d := run.count(t, "retry"), run.count(t, "dead"); r != 2 || d != 1 {
		t.Errorf("retry = %v, dead = %v; want 2, 1", r, d)
	}
}

func TestTransportErrorsAreRetried(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	rc := newReceiver(t, ok)
	add(t, rdb, result("unreachable"))
	// A closed port: every attempt is a connection error.
	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL + "/hook?token=do-not-log"
	dead.Close()
	run := start(t, rdb, url, func(o *webhook.Options) { o.MaxAttempts = 2 })
	waitFor(t, "a dead letter", func() bool { return len(deadLetters(t, rdb)) == 1 })
	run.stop()
	dl := deadLetters(t, rdb)[0].Values
	if dl["reason"] != webhook.DeadMaxAttempts || dl["status"] != "0" || dl["attempts"] != "2" || dl["error"] == "" {
		t.Errorf("dead letter = %v", dl)
	}
	if strings.Contains(fmt.Sprint(dl["error"]), "do-not-log") {
		t.Errorf("dead letter error quotes the URL: %v", dl["error"])
	}
	if rc.totalRequests() != 0 {
		t.Error("unexpected requests")
	}
}

func TestUndecodableEntryIsDeadLettered(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	rc := newReceiver(t, ok)
	id, err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: stream, Values: []any{"something", "else"}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	start(t, rdb, rc.srv.URL, nil)
	waitFor(t, "a dead letter", func() bool { return len(deadLetters(t, rdb)) == 1 })
	settled(t, rdb)
	if dl := deadLetters(t, rdb)[0].Values; dl["reason"] != webhook.DeadUndecodable || dl["delivery_id"] != id {
		t.Errorf("dead letter = %v", dl)
	}
	if rc.totalRequests() != 0 {
		t.Error("an undecodable entry was POSTed")
	}
}

func TestSlowDeliveryDoesNotBlockOthers(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	release := make(chan struct{})
	rc := newReceiver(t, func(r *http.Request, res tasks.Result, _ int) int {
		if res.SendID == "slow" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		return http.StatusOK
	})
	slow := add(t, rdb, result("slow"))
	start(t, rdb, rc.srv.URL, func(o *webhook.Options) { o.Concurrency = 2 })
	waitFor(t, "the slow delivery to start", func() bool { req, _ := rc.counts(slow); return req == 1 })

	var others []string
	for i := range 6 {
		others = append(others, add(t, rdb, result(fmt.Sprintf("fast-%d", i))))
	}
	waitFor(t, "the fast deliveries", func() bool {
		for _, id := range others {
			if _, got := rc.counts(id); got != 1 {
				return false
			}
		}
		return true
	})
	if req, got := rc.counts(slow); req != 1 || got != 0 {
		t.Fatalf("slow delivery: %d requests, %d delivered; want 1 in flight", req, got)
	}
	close(release)
	waitFor(t, "the slow delivery", func() bool { _, got := rc.counts(slow); return got == 1 })
	settled(t, rdb)
}

func TestCrashBeforeAckIsRedelivered(t *testing.T) {
	for _, tc := range []struct {
		name     string
		consumer string // of the dispatcher started after the crash
	}{
		{"same consumer restarts", "test-1"},
		{"other consumer takes over", "test-2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdb := redistest.Start(t).Client(t)
			arrived := make(chan string, 10)
			// Before the crash the receiver hangs, so nothing is acked.
			rc := newReceiver(t, func(r *http.Request, _ tasks.Result, _ int) int {
				arrived <- r.Header.Get(webhook.HeaderDelivery)
				<-r.Context().Done()
				return http.StatusServiceUnavailable // nobody hears it: the client is gone
			})
			var ids []string
			for i := range 3 {
				ids = append(ids, add(t, rdb, result(fmt.Sprintf("send-%d", i))))
			}
			first := start(t, rdb, rc.srv.URL, nil)
			for range ids {
				select {
				case <-arrived:
				case <-time.After(10 * time.Second):
					t.Fatal("the deliveries did not start")
				}
			}
			first.stop() // the crash: requests cut, nothing acked
			if n := pending(t, rdb); n != 3 {
				t.Fatalf("%d pending after the crash, want 3", n)
			}

			rc.setAnswer(ok)
			claimMinIdle := time.Hour // the same consumer gets its entries back without a claim
			if tc.consumer != "test-1" {
				claimMinIdle = 50 * time.Millisecond
			}
			start(t, rdb, rc.srv.URL, func(o *webhook.Options) {
				o.Consumer = tc.consumer
				o.ClaimMinIdle = claimMinIdle
			})
			settled(t, rdb)
			for _, id := range ids {
				if _, got := rc.counts(id); got != 1 {
					t.Errorf("delivery %s delivered %d times after the restart, want 1", id, got)
				}
			}
		})
	}
}

func TestLiveConsumerKeepsItsRetries(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	begin := time.Now()
	// Failing for a while, many times longer than ClaimMinIdle.
	rc := newReceiver(t, func(*http.Request, tasks.Result, int) int {
		if time.Since(begin) < 500*time.Millisecond {
			return http.StatusBadGateway
		}
		return http.StatusOK
	})
	id := add(t, rdb, result("flaky"))
	edit := func(name string) func(*webhook.Options) {
		return func(o *webhook.Options) {
			o.Consumer = name
			o.ClaimMinIdle = 200 * time.Millisecond
			o.MaxAttempts = 1000
			o.Backoff = func(int) time.Duration { return 20 * time.Millisecond }
		}
	}
	start(t, rdb, rc.srv.URL, edit("one"))
	start(t, rdb, rc.srv.URL, edit("two"))
	waitFor(t, "the delivery", func() bool { _, got := rc.counts(id); return got >= 1 })
	settled(t, rdb)
	time.Sleep(50 * time.Millisecond) // a second, stolen delivery would land now
	if _, got := rc.counts(id); got != 1 {
		t.Errorf("delivered %d times, want 1: the other consumer took over a live one's entry", got)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:0"})
	defer rdb.Close()
	tests := []struct {
		name string
		opts webhook.Options
		want string
	}{
		{"no url", webhook.Options{Secret: secret}, "URL: required"},
		{"relative url", webhook.Options{URL: "/hook", Secret: secret}, "URL: must be"},
		{"ftp url", webhook.Options{URL: "ftp://x/hook", Secret: secret}, "URL: must be"},
		{"short secret", webhook.Options{URL: "https://x/hook", Secret: []byte("short")}, "Secret: must be at least 16"},
		{"negative attempts", webhook.Options{URL: "https://x/hook", Secret: secret, MaxAttempts: -1}, "MaxAttempts"},
		{"negative timeout", webhook.Options{URL: "https://x/hook", Secret: secret, Timeout: -time.Second}, "Timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := webhook.New(rdb, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
			if strings.Contains(err.Error(), string(secret)) {
				t.Fatal("the error quotes the secret")
			}
		})
	}
	if _, err := webhook.New(nil, webhook.Options{URL: "https://x/hook", Secret: secret}); err == nil {
		t.Error("nil client accepted")
	}
	// Two dispatchers may share one registry.
	reg := prometheus.NewRegistry()
	for range 2 {
		if _, err := webhook.New(rdb, webhook.Options{URL: "https://x/hook", Secret: secret, Registerer: reg}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStartDeliversStopEndsAndRestarts: a started Dispatcher delivers; a
// second Start is refused; after Stop a new result waits in the stream; a new
// Start delivers it. Stop on a stopped Dispatcher does nothing, and Stop with
// an ended context returns its error without waiting.
func TestStartDeliversStopEndsAndRestarts(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	rc := newReceiver(t, ok)
	run := start(t, rdb, rc.srv.URL, nil)
	ctx := context.Background()
	if err := run.d.Start(ctx); !errors.Is(err, webhook.ErrStarted) {
		t.Fatalf("second Start = %v, want ErrStarted", err)
	}
	first := add(t, rdb, result("first"))
	waitFor(t, "the first delivery", func() bool { _, got := rc.counts(first); return got == 1 })
	settled(t, rdb)

	run.stop()
	if err := run.d.Stop(ctx); err != nil {
		t.Fatalf("second Stop = %v", err)
	}
	second := add(t, rdb, result("second"))
	time.Sleep(100 * time.Millisecond) // five reads' PollInterval: a run still going would have posted
	if req, _ := rc.counts(second); req != 0 {
		t.Fatalf("%d requests after Stop, want 0", req)
	}

	if err := run.d.Start(ctx); err != nil {
		t.Fatalf("Start after Stop = %v", err)
	}
	waitFor(t, "the second delivery", func() bool { _, got := rc.counts(second); return got == 1 })
	settled(t, rdb)
	ended, cancel := context.WithCancel(ctx)
	cancel()
	if err := run.d.Stop(ended); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stop with an ended context = %v, want context.Canceled", err)
	}
	// The run still ends (the cleanup's Stop waits for it); requests stay one each.
	run.stop()
	for _, id := range []string{first, second} {
		if req, got := rc.counts(id); req != 1 || got != 1 {
			t.Errorf("delivery %s: %d requests, %d delivered; want 1, 1", id, req, got)
		}
	}
}

// TestEventsArePosted: the results stream's event entries (an account's breaker opening and
// closing) are POSTed, signed, with their own X-Sendworker-Event and the event as body; the
// results around them are still send.result.
func TestEventsArePosted(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	type got struct {
		event string
		body  []byte
	}
	var mu sync.Mutex
	posts := map[string]got{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhook.Verify(secret, r.Header, body, time.Now(), time.Minute); err != nil {
			t.Errorf("verify: %v", err)
		}
		mu.Lock()
		posts[r.Header.Get(webhook.HeaderDelivery)] = got{event: r.Header.Get(webhook.HeaderEvent), body: body}
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)

	before := add(t, rdb, result("ev-1"))
	addEvent := func(typ, status string) string {
		id, err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: stream, Values: []any{
			"event", typ, "account_id", "acct-1", "status", status, "at", "2025-01-02T03:04:05Z",
		}}).Result()
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	open := addEvent("account_breaker_open", "CREDENTIALS")
	closed := addEvent("account_breaker_closed", "OK")
	after := add(t, rdb, result("ev-2"))
	r := start(t, rdb, srv.URL, nil)
	waitFor(t, "four posts", func() bool { mu.Lock(); defer mu.Unlock(); return len(posts) == 4 })
	// A post is acknowledged in the stream after its answer: the last one may still be on its way.
	waitFor(t, "four acknowledgements", func() bool { return pending(t, rdb) == 0 })
	r.stop()

	mu.Lock()
	defer mu.Unlock()
	for _, id := range []string{before, after} {
		if posts[id].event != webhook.EventResult {
			t.Errorf("result %s posted as %q", id, posts[id].event)
		}
	}
	for id, want := range map[string]struct{ header, typ, status string }{
		open:   {webhook.EventAccountBreakerOpen, "account_breaker_open", "CREDENTIALS"},
		closed: {webhook.EventAccountBreakerClosed, "account_breaker_closed", "OK"},
	} {
		p := posts[id]
		var body map[string]any
		if err := json.Unmarshal(p.body, &body); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if p.event != want.header || body["type"] != want.typ || body["account_id"] != "acct-1" ||
			body["status"] != want.status || body["at"] != "2025-01-02T03:04:05Z" {
			t.Errorf("event %s posted as %q %s", id, p.event, p.body)
		}
	}
	if n := pending(t, rdb); n != 0 {
		t.Errorf("%d entries still pending", n)
	}
	if webhook.EventHeader("account_breaker_open") != webhook.EventAccountBreakerOpen ||
		webhook.EventHeader("account_breaker_closed") != webhook.EventAccountBreakerClosed {
		t.Error("EventHeader does not name the breaker events")
	}
}
