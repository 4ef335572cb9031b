package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/internal/redisproc"
	"github.com/sendworker/sendworker/tasks"
)

// All tests share one throwaway redis-server; each test gets its own key
// prefix (and results stream), so they cannot see each other's keys.
var (
	sharedAddr string
	prefixSeq  atomic.Int64
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "ledger-redis-")
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

// clock is an injected clock that tests advance instead of sleeping.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type env struct {
	l     *Ledger
	rdb   *redis.Client
	clock *clock
	ctx   context.Context
	t     *testing.T
}

const testRetention = 7 * 24 * time.Hour

// newEnv gives a test its own key space on the shared redis-server and a
// ledger on an injected clock.
func newEnv(t *testing.T) *env {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: sharedAddr})
	t.Cleanup(func() { _ = rdb.Close() })
	prefix := fmt.Sprintf("t%d", prefixSeq.Add(1))
	c := &clock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	// Leases on the injected clock: the tests move time to end them.
	l := New(rdb, Options{Prefix: prefix, ResultsStream: "{" + prefix + "}:results", Retention: testRetention, Now: c.Now,
		LeaseClock: LeaseClockCaller})
	return &env{l: l, rdb: rdb, clock: c, ctx: context.Background(), t: t}
}

func request(id, account string) *tasks.SendRequest {
	return &tasks.SendRequest{
		SendID:      id,
		Operation:   tasks.OpSendMessage,
		AccountID:   account,
		RequestedBy: "scheduler",
		Metadata:    json.RawMessage(`{"sequence": "seq-1", "step": 2, "contacts": []}`),
		ChatID:      "chat-" + id,
		Text:        "hello " + id,
	}
}

// create enqueues a send with a deadline one hour ahead.
func (e *env) create(id, account string) *tasks.Record {
	e.t.Helper()
	req := request(id, account)
	rec, created, err := e.l.Create(e.ctx, req, req.Digest(), e.clock.Now().Add(time.Hour))
	if err != nil || !created {
		e.t.Fatalf("create %s: created=%v err=%v", id, created, err)
	}
	return rec
}

// approved creates and approves a send and returns it with its release gen.
func (e *env) approved(id, account string) (*tasks.Record, int64) {
	e.t.Helper()
	rec := e.create(id, account)
	rec, err := e.l.Approve(e.ctx, id, rec.Digest, "approver", "ok")
	if err != nil {
		e.t.Fatalf("approve %s: %v", id, err)
	}
	return rec, e.gen(id)
}

func (e *env) gen(id string) int64 {
	e.t.Helper()
	g, err := e.rdb.HGet(e.ctx, e.l.Keys().Send(id), fGen).Int64()
	if errors.Is(err, redis.Nil) && e.rdb.Exists(e.ctx, e.l.Keys().Send(id)).Val() == 1 {
		return 0 // Create does not write it: 0 until the first release
	}
	if err != nil {
		e.t.Fatalf("gen of %s: %v", id, err)
	}
	return g
}

// sending creates, approves and begins a send; it returns the token.
func (e *env) sending(id, account string) (*tasks.Record, string) {
	e.t.Helper()
	rec, gen := e.approved(id, account)
	token := "tok-" + id
	res, err := e.l.BeginAttempt(e.ctx, BeginRequest{SendID: id, Digest: rec.Digest, Gen: gen, Token: token, Lease: time.Minute})
	if err != nil || res.Outcome != BeginOK {
		e.t.Fatalf("begin %s: %v %v", id, res.Outcome, err)
	}
	return res.Record, token
}

// waiting creates and approves a send and defers it one minute.
func (e *env) waiting(id, account string) *tasks.Record {
	e.t.Helper()
	e.approved(id, account)
	rec, err := e.l.Defer(e.ctx, id, "", e.clock.Now().Add(time.Minute), tasks.ReasonWaitRateLimit)
	if err != nil {
		e.t.Fatalf("defer %s: %v", id, err)
	}
	return rec
}

func (e *env) get(id string) *tasks.Record {
	e.t.Helper()
	rec, err := e.l.Get(e.ctx, id)
	if err != nil {
		e.t.Fatalf("get %s: %v", id, err)
	}
	return rec
}

func (e *env) results() []redis.XMessage {
	e.t.Helper()
	msgs, err := e.rdb.XRange(e.ctx, e.l.opts.ResultsStream, "-", "+").Result()
	if err != nil {
		e.t.Fatal(err)
	}
	return msgs
}

// auditEvents returns the event names of the audit stream, in order.
func (e *env) auditEvents() []string {
	e.t.Helper()
	msgs, err := e.rdb.XRange(e.ctx, e.l.Keys().Audit(), "-", "+").Result()
	if err != nil {
		e.t.Fatal(err)
	}
	var names []string
	for _, m := range msgs {
		names = append(names, m.Values["event"].(string))
	}
	return names
}

func (e *env) zscore(key, member string) (float64, bool) {
	e.t.Helper()
	s, err := e.rdb.ZScore(e.ctx, key, member).Result()
	if errors.Is(err, redis.Nil) {
		return 0, false
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return s, true
}

func wantState(t *testing.T, rec *tasks.Record, state tasks.State, reason tasks.Reason) {
	t.Helper()
	if rec.State != state || rec.Reason != reason {
		t.Fatalf("send %s: state %s/%s, want %s/%s", rec.SendID, rec.State, rec.Reason, state, reason)
	}
}

// wantStateErr checks err is a *StateError wrapping target with that state.
func wantStateErr(t *testing.T, err, target error, current tasks.State) {
	t.Helper()
	var se *StateError
	if !errors.Is(err, target) || !errors.As(err, &se) || se.Current != current {
		t.Fatalf("err = %v, want %v in state %s", err, target, current)
	}
}
